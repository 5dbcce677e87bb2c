//! Task cgroups against tasks that overstep: memory past the cap is killed by the kernel (and
//! a large address-space reservation is not, unlike under `RLIMIT_AS`), CPU is held to the
//! quota, and a process that leaves the task's process group still dies with the task. Each
//! check runs the same task without the cgroup too, so it can fail.
//!
//! They need a worker that can make cgroups (root, or a delegated cgroup v2 subtree), as a
//! provider's worker with `--cgroups on` does; where this machine cannot, they say so and
//! check only that `--cgroups on` refuses to start.

use std::time::Duration;

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::exec::{ExecOutcome, ProcessLimits, RunWith, process};
use crate::sandbox::SandboxMode;
use crate::sandbox::escape_tests::work_root;

fn cgroups() -> Option<Cgroups> {
    match Cgroups::detect() {
        Ok(c) => Some(c),
        Err(why) => {
            eprintln!("NOT CHECKED: this machine cannot make task cgroups ({why})");
            assert!(CgroupMode::Required.resolve().is_err());
            None
        }
    }
}

async fn run(
    argv: &[&str],
    memory_limit: u64,
    cgroup: Option<&TaskCgroup>,
    sandboxed: bool,
) -> ExecOutcome {
    let (_t, root) = work_root();
    let sandbox = if sandboxed {
        SandboxMode::Auto.resolve().unwrap()
    } else {
        None
    };
    let p = pb::ProcessTask {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    process(
        &p,
        Bytes::new(),
        &[],
        &root.join("t"),
        ProcessLimits {
            time: Duration::from_secs(30),
            memory: memory_limit,
        },
        &RunWith {
            sandbox: sandbox.as_ref(),
            cgroup,
            ..Default::default()
        },
        &CancellationToken::new(),
    )
    .await
}

fn stdout(o: &ExecOutcome) -> String {
    String::from_utf8_lossy(o.outputs.first().map(|b| &b[..]).unwrap_or_default()).into_owned()
}

const PY_TOUCH_256M: &str = "b = bytearray(256 << 20)\nprint('survived')";
const PY_RESERVE_1G: &str = "import mmap\nm = mmap.mmap(-1, 1 << 30)\nm[0] = 1\nprint('reserved')";

#[tokio::test]
async fn memory_past_the_cap_is_killed_and_a_reservation_is_not() {
    let Some(cg) = cgroups() else { return };
    let limits = |mb: u64| TaskLimits {
        memory: Some(mb << 20),
        milli_cpus: 1000,
    };
    // 256 MiB used under a 64 MiB cap: the OOM killer ends it; without the cgroup (and no
    // other limit) it runs.
    let t = cg.create("mem-a", limits(64)).unwrap();
    let o = run(&["python3", "-c", PY_TOUCH_256M], 64 << 20, Some(&t), true).await;
    assert_eq!(o.kind, pb::ErrorKind::MemoryLimit as i32, "{o:?}");
    assert!(o.error.contains("OOM killer"), "{}", o.error);
    assert!(t.oom_kills() > 0);
    t.finish().await;
    let o = run(&["python3", "-c", PY_TOUCH_256M], 0, None, true).await;
    assert_eq!(stdout(&o), "survived\n", "{o:?}");

    // 1 GiB of address space reserved, one page used, under the same 64 MiB cap: runs (as a
    // CUDA program's huge reservations must); RLIMIT_AS, the fallback, refuses it.
    let t = cg.create("mem-b", limits(64)).unwrap();
    let o = run(&["python3", "-c", PY_RESERVE_1G], 64 << 20, Some(&t), true).await;
    assert_eq!(stdout(&o), "reserved\n", "{o:?}");
    t.finish().await;
    let o = run(&["python3", "-c", PY_RESERVE_1G], 64 << 20, None, true).await;
    assert_ne!(stdout(&o), "reserved\n", "{o:?}");
}

#[tokio::test]
async fn cpu_is_held_to_the_quota() {
    let Some(cg) = cgroups() else { return };
    // Busy for 1.5 s of wall time; prints the CPU seconds it got.
    let busy = "import os, time\nt = time.time()\nwhile time.time() - t < 1.5: pass\n\
                c = os.times()\nprint(c.user + c.system)";
    let cpu =
        |o: &ExecOutcome| -> f64 { stdout(o).trim().parse().unwrap_or_else(|_| panic!("{o:?}")) };
    let t = cg
        .create(
            "cpu",
            TaskLimits {
                memory: None,
                milli_cpus: 200,
            },
        )
        .unwrap();
    let held = cpu(&run(&["python3", "-c", busy], 0, Some(&t), true).await);
    t.finish().await;
    let free = cpu(&run(&["python3", "-c", busy], 0, None, true).await);
    // A fifth of a CPU for 1.5 s is 0.3 s (the first period may run whole).
    assert!(held < 0.6, "held to 200 milli-CPUs, it used {held} s");
    assert!(free > held, "unheld {free} s, held {held} s");
}

#[tokio::test]
async fn a_process_that_leaves_the_group_dies_with_the_task() {
    let Some(cg) = cgroups() else { return };
    // It waits until the sleep has its own session (out of the task's process group).
    let script = "setsid sleep 300 </dev/null >/dev/null 2>&1 & p=$!; \
                  while [ \"$(cut -d' ' -f6 /proc/$p/stat)\" != \"$p\" ]; do :; done; echo $p";
    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    };
    let t = cg.create("escape", TaskLimits::default()).unwrap();
    let o = run(&["sh", "-c", script], 0, Some(&t), false).await;
    let pid = stdout(&o).trim().to_string();
    t.finish().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!alive(&pid), "pid {pid} outlived its task");
    // Without the cgroup it gets away (then is killed here).
    let o = run(&["sh", "-c", script], 0, None, false).await;
    let pid = stdout(&o).trim().to_string();
    assert!(
        alive(&pid),
        "pid {pid}: {:?} {o:?}",
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
    );
    // SAFETY: the test's own stray process.
    unsafe {
        libc::kill(pid.parse().unwrap(), libc::SIGKILL);
    }
}
