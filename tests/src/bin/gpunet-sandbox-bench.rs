//! Sandbox overhead per process task: the same short process tasks run through the worker's
//! process executor (`gpunet_worker::exec::process`) unsandboxed, in the bubblewrap sandbox,
//! and (where this machine can make cgroups) in the sandbox with a task cgroup made, joined
//! and removed as the worker does (`gpunet_worker::cgroup`), interleaved (so all see the same
//! machine state), each timed from the call to the result.
//! Prints a table of mean, p50 and p99 per path. Usage:
//! `gpunet-sandbox-bench [--tasks N] [-- ARGV…]` (default 200 tasks of `true`).
//!
//! `gpunet-sandbox-bench --runtime-env N`: runtime env start instead, all sandboxed — a Python
//! task importing a package from a wheel in its working directory, cold (a fresh cache: the
//! venv is built) and warm (the env cached: only the working directory is copied), beside the
//! same interpreter's bare start without an env; N warm and bare runs, N/5 cold ones.

use std::time::{Duration, Instant};

use gpunet_sdk::task::pb;
use gpunet_worker::SandboxMode;
use gpunet_worker::exec::{ProcessLimits, RunWith, process};
use tokio_util::sync::CancellationToken;

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    let at = |q: f64| ms(v[((v.len() as f64 * q) as usize).min(v.len() - 1)]);
    (mean, at(0.5), at(0.99))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--runtime-env") {
        let runs = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(20);
        return runtime_env(runs).await;
    }
    let mut tasks = 200usize;
    let mut argv = vec!["true".to_string()];
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--tasks" => {
                tasks = args[i + 1].parse().expect("--tasks N");
                i += 2;
            }
            "--" => {
                argv = args[i + 1..].to_vec();
                break;
            }
            other => panic!("unknown argument {other:?}"),
        }
    }
    let sandbox = SandboxMode::Required
        .resolve()
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a sandbox");
    let root = tempfile::tempdir().expect("tmp");
    let p = pb::ProcessTask {
        argv: argv.clone(),
        ..Default::default()
    };
    let limits = ProcessLimits {
        time: Duration::from_secs(60),
        memory: 0,
    };
    let ct = CancellationToken::new();
    let cgroups = gpunet_worker::Cgroups::detect()
        .map_err(|why| eprintln!("no cgroup row: {why}"))
        .ok();
    let (mut plain, mut caged, mut grouped) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..tasks {
        let paths = [
            (None, false, &mut plain),
            (Some(&sandbox), false, &mut caged),
            (Some(&sandbox), true, &mut grouped),
        ];
        for (k, (sb, cg, out)) in paths.into_iter().enumerate() {
            // The cgroup path only where this machine can make them.
            let cgroups = match (cg, cgroups.as_ref()) {
                (false, _) => None,
                (true, Some(c)) => Some(c),
                (true, None) => continue,
            };
            let dir = root.path().join(format!("t{n}-{k}"));
            let t = Instant::now();
            // Made and joined per task, as the worker does: in the timing.
            let cgroup = cgroups.map(|c| {
                c.create(
                    "bench",
                    gpunet_worker::cgroup::TaskLimits {
                        memory: Some(1 << 30),
                        milli_cpus: 1000,
                    },
                )
                .expect("task cgroup")
            });
            let o = process(
                &p,
                Default::default(),
                &[],
                &dir,
                limits,
                &RunWith {
                    sandbox: sb,
                    cgroup: cgroup.as_ref(),
                    ..Default::default()
                },
                &ct,
            )
            .await;
            out.push(t.elapsed());
            // As the worker does: removed beside the result, not before it.
            if let Some(c) = cgroup {
                tokio::spawn(c.finish());
            }
            assert_eq!(o.kind, pb::ErrorKind::None as i32, "{:?}", o.error);
        }
    }
    println!("process task {argv:?}, {tasks} runs each, interleaved");
    println!("| path | mean ms | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    let rows = [
        ("unsandboxed", plain),
        ("bubblewrap sandbox", caged),
        ("bubblewrap sandbox + task cgroup", grouped),
    ];
    for (name, v) in rows.into_iter().filter(|(_, v)| !v.is_empty()) {
        let (mean, p50, p99) = stats(v);
        println!("| {name} | {mean:.2} | {p50:.2} | {p99:.2} |");
    }
}

/// Cold and warm runtime-env starts beside a bare start (see the module doc).
async fn runtime_env(runs: usize) {
    use gpunet_worker::runtime_env::{RuntimeEnvs, demo_wheel, find_python, pack_dir};
    let sandbox = SandboxMode::Required
        .resolve()
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a sandbox");
    let root = tempfile::tempdir().expect("tmp");
    let src = root.path().join("src");
    demo_wheel(&src.join("wheels")).expect("wheel");
    std::fs::write(
        src.join("main.py"),
        "import gpunet_hello\nprint(gpunet_hello.GREETING)\n",
    )
    .expect("main.py");
    let env = pb::RuntimeEnv {
        working_dir: pack_dir(&src).expect("pack").into(),
        pip: vec!["wheels/gpunet_hello-0.1-py3-none-any.whl".into()],
        pip_no_index: true,
        ..Default::default()
    };
    let python = find_python();
    let with_env = pb::ProcessTask {
        argv: vec!["python".into(), "main.py".into()],
        ..Default::default()
    };
    let bare = pb::ProcessTask {
        argv: vec![python.display().to_string(), "-c".into(), "print(1)".into()],
        ..Default::default()
    };
    let limits = ProcessLimits {
        time: Duration::from_secs(300),
        memory: 0,
    };
    let ct = CancellationToken::new();
    let quiet = |_: String| {};
    let warm_cache = RuntimeEnvs::new(root.path().join("warm"), python.clone());
    // Built once before timing: every warm start finds it.
    let prime = root.path().join("prime");
    std::fs::create_dir_all(&prime).expect("dir");
    warm_cache.prepare(&env, &prime, &quiet).await.expect("env");
    let (mut cold, mut warm, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..runs {
        // Cold every fifth round: a cache of its own, so the venv is built from scratch.
        let cold_round = n % 5 == 0;
        let fresh;
        let rounds: Vec<(&str, Option<&RuntimeEnvs>)> = if cold_round {
            fresh = RuntimeEnvs::new(root.path().join(format!("cold{n}")), python.clone());
            vec![
                ("cold", Some(&fresh)),
                ("warm", Some(&warm_cache)),
                ("bare", None),
            ]
        } else {
            vec![("warm", Some(&warm_cache)), ("bare", None)]
        };
        for (kind, envs) in rounds {
            let dir = root.path().join(format!("t{n}-{kind}"));
            std::fs::create_dir_all(&dir).expect("dir");
            let t = Instant::now();
            let (p, prepared) = match envs {
                Some(e) => (
                    &with_env,
                    Some(e.prepare(&env, &dir, &quiet).await.expect("env")),
                ),
                None => (&bare, None),
            };
            let o = process(
                p,
                Default::default(),
                &[],
                &dir,
                limits,
                &RunWith {
                    sandbox: Some(&sandbox),
                    env: prepared.as_ref(),
                    log: None,
                    cgroup: None,
                },
                &ct,
            )
            .await;
            let took = t.elapsed();
            assert_eq!(o.kind, pb::ErrorKind::None as i32, "{:?}", o.error);
            match kind {
                "cold" => cold.push(took),
                "warm" => warm.push(took),
                _ => plain.push(took),
            }
        }
    }
    println!("runtime env start, sandboxed: a wheel installed into a venv, imported by the task");
    println!("| start | runs | mean ms | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, v) in [
        (
            "cold (venv built, wheel installed, working dir unpacked)",
            cold,
        ),
        ("warm (env cached: working dir copied)", warm),
        ("bare interpreter, no env", plain),
    ] {
        let n = v.len();
        let (mean, p50, p99) = stats(v);
        println!("| {name} | {n} | {mean:.1} | {p50:.1} | {p99:.1} |");
    }
}
