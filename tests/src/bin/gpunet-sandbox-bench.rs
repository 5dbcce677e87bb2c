//! Sandbox overhead per process task: the same short process tasks run through the worker's
//! process executor (`gpunet_worker::exec::process`) unsandboxed and in the bubblewrap sandbox,
//! interleaved (so both see the same machine state), each timed from the call to the result.
//! Prints a table of mean, p50 and p99 per path. Usage:
//! `gpunet-sandbox-bench [--tasks N] [-- ARGV…]` (default 200 tasks of `true`).

use std::time::{Duration, Instant};

use gpunet_sdk::task::pb;
use gpunet_worker::SandboxMode;
use gpunet_worker::exec::{ProcessLimits, process};
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
    let (mut plain, mut caged) = (Vec::new(), Vec::new());
    for n in 0..tasks {
        for (sb, out) in [(None, &mut plain), (Some(&sandbox), &mut caged)] {
            let dir = root.path().join(format!("t{n}-{}", sb.is_some()));
            let t = Instant::now();
            let o = process(&p, Default::default(), &[], &dir, limits, sb, None, &ct).await;
            out.push(t.elapsed());
            assert_eq!(o.kind, pb::ErrorKind::None as i32, "{:?}", o.error);
        }
    }
    println!("process task {argv:?}, {tasks} runs each, interleaved");
    println!("| path | mean ms | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [("unsandboxed", plain), ("bubblewrap sandbox", caged)] {
        let (mean, p50, p99) = stats(v);
        println!("| {name} | {mean:.2} | {p50:.2} | {p99:.2} |");
    }
}
