//! The sandbox against a task that tries to get out: each escape is refused sandboxed and
//! works unsandboxed (so the test can fail). Needs bubblewrap (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

use crate::exec::{ExecOutcome, ProcessLimits, RunWith, process};
use crate::sandbox::{Sandbox, SandboxMode};

fn sandbox() -> Sandbox {
    SandboxMode::Required
        .resolve()
        .expect("bubblewrap works here (install the `bubblewrap` package)")
        .expect("required gives a sandbox")
}

/// Runs `sh -c script` as a process task in a fresh directory under `root`.
async fn sh(root: &Path, script: &str, sandbox: Option<&Sandbox>, network: bool) -> ExecOutcome {
    let p = pb::ProcessTask {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        network,
        ..Default::default()
    };
    let dir = root.join(format!("task-{}", rand_suffix()));
    let limits = ProcessLimits {
        time: Duration::from_secs(20),
        memory: 0,
    };
    let ct = CancellationToken::new();
    process(
        &p,
        Bytes::new(),
        &[],
        &dir,
        limits,
        &RunWith {
            sandbox,
            ..Default::default()
        },
        &ct,
    )
    .await
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn ok(o: &ExecOutcome) -> bool {
    o.kind == pb::ErrorKind::None as i32
}

fn stdout(o: &ExecOutcome) -> String {
    String::from_utf8_lossy(o.outputs.first().map(|b| &b[..]).unwrap_or_default()).into_owned()
}

/// A work root the task user can enter (a root worker's tasks run as `nobody`).
pub(crate) fn work_root() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("work");
    std::fs::create_dir_all(&root).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for d in [t.path(), &root] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (t, root)
}

#[tokio::test]
async fn a_task_cannot_read_the_workers_key() {
    let s = sandbox();
    let (t, root) = work_root();
    let key = t.path().join("worker-key.json");
    std::fs::write(&key, "[1,2,3]").unwrap();
    let script = format!("cat {}", key.display());
    let caged = sh(&root, &script, Some(&s), false).await;
    assert!(!ok(&caged), "read the key: {}", stdout(&caged));
    assert!(caged.error.contains("No such file"), "{}", caged.error);
    // The key is hidden, not merely unreadable: its folder does not exist in the sandbox.
    let free = sh(&root, &script, None, false).await;
    assert!(ok(&free) && stdout(&free).contains("[1,2,3]"), "{free:?}");
}

#[tokio::test]
async fn a_task_cannot_write_outside_its_directory() {
    let s = sandbox();
    let (_t, root) = work_root();
    let escape = root.join("escaped");
    let script = format!("echo x > {}", escape.display());
    // The work root lies under /tmp here, which the sandbox has as a private tmpfs: the
    // write may land there, never in the host's folder.
    let _ = sh(&root, &script, Some(&s), false).await;
    assert!(!escape.exists(), "wrote beside its directory on the host");
    for target in ["/usr/escaped", "/etc/escaped", "/escaped"] {
        let o = sh(&root, &format!("echo x > {target}"), Some(&s), false).await;
        assert!(!ok(&o), "wrote {target}");
        assert!(!Path::new(target).exists());
    }
    // Its own directory and its private /tmp are writable.
    let own = sh(
        &root,
        "echo a > f && cat f && echo b > /tmp/g && cat /tmp/g",
        Some(&s),
        false,
    )
    .await;
    assert!(ok(&own), "{own:?}");
    assert_eq!(stdout(&own), "a\nb\n");
    let free = sh(&root, &script, None, false).await;
    assert!(ok(&free) && escape.exists(), "{free:?}");
}

#[tokio::test]
async fn a_task_sees_no_other_process_and_runs_unprivileged() {
    let s = sandbox();
    let (_t, root) = work_root();
    // Another lease's task, running beside it.
    let other = {
        let root = root.clone();
        let s = s.clone();
        tokio::spawn(async move { sh(&root, "sleep 31337", Some(&s), false).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let look = "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; id -u";
    let caged = sh(&root, look, Some(&s), false).await;
    assert!(ok(&caged), "{caged:?}");
    let out = stdout(&caged);
    assert!(!out.contains("31337"), "sees the other task: {out}");
    let uid = out.lines().last().unwrap().trim().to_string();
    assert_ne!(uid, "0", "runs as root");
    let free = sh(&root, look, None, false).await;
    assert!(stdout(&free).contains("sleep 31337"), "{free:?}");
    other.abort();
}

#[tokio::test]
async fn a_task_has_no_network_unless_it_asks_and_a_time_limit_kills_all_of_it() {
    let s = sandbox();
    let (_t, root) = work_root();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo connected");
    let caged = sh(&root, &connect, Some(&s), false).await;
    assert!(!ok(&caged), "connected without the network: {caged:?}");
    let asked = sh(&root, &connect, Some(&s), true).await;
    assert!(
        ok(&asked) && stdout(&asked).contains("connected"),
        "{asked:?}"
    );

    // A time limit takes the whole sandbox down, background processes included.
    let p = pb::ProcessTask {
        argv: vec!["sh".into(), "-c".into(), "sleep 4242 & sleep 4243".into()],
        ..Default::default()
    };
    let limits = ProcessLimits {
        time: Duration::from_millis(500),
        memory: 0,
    };
    let ct = CancellationToken::new();
    let o = process(
        &p,
        Bytes::new(),
        &[],
        &root.join("t"),
        limits,
        &RunWith {
            sandbox: Some(&s),
            ..Default::default()
        },
        &ct,
    )
    .await;
    assert_eq!(o.kind, pb::ErrorKind::TimeLimit as i32, "{o:?}");
    let mut left = Vec::new();
    for _ in 0..50 {
        left = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|c| c.starts_with(b"sleep\x00424"))
            .collect();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left.is_empty(),
        "{} sandboxed processes outlived it",
        left.len()
    );
}
