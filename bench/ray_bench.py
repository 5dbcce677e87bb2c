"""Ray side of bench/run.sh: the same workloads as `gpunet bench`, one JSON line each."""
import argparse
import json
import subprocess
import time

import ray

p = argparse.ArgumentParser()
p.add_argument("--cpus", type=int, default=2)
p.add_argument("--scale", type=float, default=1.0)
p.add_argument("--clients", type=int, default=4)
a = p.parse_args()


def n(x):
    return max(10, int(x * a.scale))


def pct(v, q):
    v = sorted(v)
    return v[round((len(v) - 1) * q)]


def emit(**kw):
    print(json.dumps({"system": "ray", **kw}), flush=True)


ray.init(num_cpus=a.cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)


@ray.remote
def noop(*_):
    return None


@ray.remote
def fill(k):
    return b"x" * k


@ray.remote
def bin_true():
    subprocess.run(["/bin/true"], check=True)


@ray.remote(num_cpus=0)
class Client:
    def run(self, k):
        ray.get([noop.remote() for _ in range(k)])
        return k


ray.get([noop.remote() for _ in range(100)])  # warm up the worker pool

lat = []
for _ in range(n(2000)):
    t = time.perf_counter()
    ray.get(noop.remote())
    lat.append((time.perf_counter() - t) * 1e6)
emit(workload="sync_noop", n=len(lat), p50_us=pct(lat, 0.5), p99_us=pct(lat, 0.99))

total = n(50_000) // 5  # Ray is ~10x slower; fewer tasks keep the run short
t = time.perf_counter()
ray.get([noop.remote() for _ in range(total)])
emit(workload="async_noop_1_client", n=total, tasks_per_s=total / (time.perf_counter() - t))

clients = [Client.remote() for _ in range(a.clients)]
ray.get([c.run.remote(10) for c in clients])
per = n(20_000) // 5
t = time.perf_counter()
done = sum(ray.get([c.run.remote(per) for c in clients]))
emit(workload=f"async_noop_{a.clients}_clients", n=done, tasks_per_s=done / (time.perf_counter() - t))

m = n(200)
t = time.perf_counter()
refs = [fill.remote(1 << 20) for _ in range(m)]
got = sum(len(ray.get(r)) for r in refs)
s = time.perf_counter() - t
assert got == m << 20
emit(workload="result_1mib", n=m, tasks_per_s=m / s, mib_per_s=got / s / 1048576)

t = time.perf_counter()
x = noop.remote()
for _ in range(999):
    x = noop.remote(x)
ray.get(x)
s = time.perf_counter() - t
emit(workload="chain_1000", n=1000, seconds=s, us_per_task=s * 1e6 / 1000)

k = n(200)
t = time.perf_counter()
ray.get([bin_true.remote() for _ in range(k)])
emit(workload="process_bin_true", n=k, tasks_per_s=k / (time.perf_counter() - t))
ray.shutdown()
