//! `gpunet bench`: the gpunet side of `bench/run.sh` (hidden subcommand). Talks to a running
//! keeper as a lease's user and prints one JSON line per workload, the same workloads
//! `bench/ray_bench.py` runs through Ray.

use std::time::{Duration, Instant};

use anyhow::Result;
use gpunet_sdk::task::{Client, SigningKey, pb, spec as task};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(600);

fn noop() -> pb::TaskSpec {
    task::builtin("noop", "")
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn async_throughput(c: &Client, n: usize, batch: usize, inflight: usize) -> Result<usize> {
    let mut set = tokio::task::JoinSet::new();
    let mut done = 0;
    let mut sent = 0;
    while sent < n || !set.is_empty() {
        while sent < n && set.len() < inflight {
            let k = batch.min(n - sent);
            sent += k;
            let c = c.clone();
            set.spawn(async move {
                c.submit_wait(vec![noop(); k], WAIT)
                    .await
                    .map(|r| r.outcomes.iter().filter(|o| o.complete).count())
            });
        }
        if let Some(r) = set.join_next().await {
            done += r??;
        }
    }
    Ok(done)
}

/// Run every workload once; `clients` sessions for the multi-client case.
pub async fn run(
    url: &str,
    lease: &str,
    key: &SigningKey,
    scale: f64,
    clients: usize,
) -> Result<()> {
    let c = Client::connect(url, lease, key).await?;
    let n = |x: f64| ((x * scale) as usize).max(10);
    // Warm up.
    c.submit_wait(vec![noop(); 100], WAIT).await?;
    sync_noop(&c, n(2000.0)).await?;
    async_one_client(&c, n(50_000.0)).await?;
    async_clients(url, lease, key, clients, n(20_000.0)).await?;
    result_1mib(&c, n(200.0)).await?;
    chain_1000(&c).await?;
    process_bin_true(&c, n(200.0)).await
}

/// 1. Synchronous round trips (submit-and-wait, one request per task).
async fn sync_noop(c: &Client, count: usize) -> Result<()> {
    let mut lat = Vec::new();
    for _ in 0..count {
        let t = Instant::now();
        let r = c.submit_wait(vec![noop()], WAIT).await?;
        anyhow::ensure!(r.outcomes[0].complete, "task did not complete");
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "{}",
        json!({"system": "gpunet", "workload": "sync_noop", "n": lat.len(), "p50_us": pct(&mut lat, 0.5), "p99_us": pct(&mut lat, 0.99)})
    );
    Ok(())
}

/// 2. One client, asynchronous.
async fn async_one_client(c: &Client, total: usize) -> Result<()> {
    let t = Instant::now();
    let done = async_throughput(c, total, 1000, 4).await?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"system": "gpunet", "workload": "async_noop_1_client", "n": done, "tasks_per_s": done as f64 / s})
    );
    Ok(())
}

/// 3. Several clients, asynchronous (separate sessions and connections).
async fn async_clients(
    url: &str,
    lease: &str,
    key: &SigningKey,
    clients: usize,
    per: usize,
) -> Result<()> {
    let mut cs = Vec::new();
    for _ in 0..clients {
        cs.push(Client::connect(url, lease, key).await?);
    }
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for cl in cs {
        set.spawn(async move { async_throughput(&cl, per, 1000, 2).await });
    }
    let mut done = 0;
    while let Some(r) = set.join_next().await {
        done += r??;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"system": "gpunet", "workload": format!("async_noop_{clients}_clients"), "n": done, "tasks_per_s": done as f64 / s})
    );
    Ok(())
}

/// 4. Tasks returning 1 MiB, fetched by the client.
async fn result_1mib(c: &Client, m: usize) -> Result<()> {
    let t = Instant::now();
    let ids = c.submit(vec![task::builtin("fill", "1048576"); m]).await?;
    let mut bytes = 0;
    for id in &ids {
        bytes += c.get(*id, 0, WAIT).await?.data.len();
    }
    let s = t.elapsed().as_secs_f64();
    anyhow::ensure!(bytes == m << 20, "short results");
    println!(
        "{}",
        json!({"system": "gpunet", "workload": "result_1mib", "n": m, "tasks_per_s": m as f64 / s, "mib_per_s": bytes as f64 / s / 1048576.0})
    );
    Ok(())
}

/// 5. A chain of 1,000 dependent tasks, submitted as one DAG.
async fn chain_1000(c: &Client) -> Result<()> {
    let mut chain = vec![noop()];
    for i in 1..1000u32 {
        let mut t = noop();
        t.args = vec![task::arg_batch(i - 1)];
        chain.push(t);
    }
    let t = Instant::now();
    let ids = c.submit(chain).await?;
    let last = *ids.last().unwrap_or(&0);
    c.get(last, 0, WAIT).await?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"system": "gpunet", "workload": "chain_1000", "n": 1000, "seconds": s, "us_per_task": s * 1e6 / 1000.0})
    );
    Ok(())
}

/// 6. /bin/true as a process task.
async fn process_bin_true(c: &Client, p: usize) -> Result<()> {
    let t = Instant::now();
    let r = c
        .submit_wait(vec![task::process(&["/bin/true"]); p], WAIT)
        .await?;
    let s = t.elapsed().as_secs_f64();
    let ok = r
        .outcomes
        .iter()
        .filter(|o| {
            o.status
                .as_ref()
                .is_some_and(|s| s.state == pb::TaskState::Finished as i32)
        })
        .count();
    anyhow::ensure!(ok == p, "process tasks failed");
    println!(
        "{}",
        json!({"system": "gpunet", "workload": "process_bin_true", "n": p, "tasks_per_s": p as f64 / s})
    );
    Ok(())
}
