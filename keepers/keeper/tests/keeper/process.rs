use std::time::Duration;

use gpunet_proto::v1 as pb;
use gpunet_task_client::spec as task;

use crate::common::*;

const T: Duration = Duration::from_secs(20);

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .split_whitespace()
            .nth(2)
            .is_some_and(|st| st == "Z" || st == "X"),
        Err(_) => false,
    }
}

fn tree_script() -> &'static str {
    // Two grandchildren in the background, pids written where the test can read them.
    "sleep 30 & echo $! >> \"$PIDS\"; sh -c 'sleep 30' & echo $! >> \"$PIDS\"; wait"
}

async fn pids(path: &std::path::Path, n: usize) -> Vec<i32> {
    wait_until(T, || {
        std::fs::read_to_string(path)
            .map(|s| s.lines().count() >= n)
            .unwrap_or(false)
    })
    .await;
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_cancel_kills_the_whole_process_tree() {
    let mut env = Env::start(test_config(), 4).await;
    // The task writes its pids to a file outside its directory and the test looks them up
    // in the host's PID namespace: the unsandboxed path (the sandbox's own kill test is in
    // the worker crate, `sandbox_tests.rs`).
    env.sandbox = gpunet_worker::SandboxMode::Off;
    env.add_worker(1, 2).await;
    let c = env.client().await;
    let pidfile = env.tmp.path().join("cancel.pids");
    let mut t = task::process(&["sh", "-c", tree_script()]);
    if let Some(pb::task_spec::Executor::Process(p)) = t.executor.as_mut() {
        p.env
            .insert("PIDS".into(), pidfile.to_string_lossy().into_owned());
    }
    let id = c.submit(vec![t]).await.unwrap()[0];
    let ps = pids(&pidfile, 2).await;
    assert!(ps.iter().all(|&p| alive(p)));
    assert_eq!(c.cancel(&[id]).await.unwrap(), vec![true]);
    let st = c.get(id, 0, T).await.unwrap().status.unwrap();
    assert_eq!(st.state, pb::TaskState::Cancelled as i32);
    wait_until(Duration::from_secs(5), || ps.iter().all(|&p| !alive(p))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_time_limit_kills_the_whole_process_tree() {
    let mut env = Env::start(test_config(), 4).await;
    // The task writes its pids to a file outside its directory and the test looks them up
    // in the host's PID namespace: the unsandboxed path (the sandbox's own kill test is in
    // the worker crate, `sandbox_tests.rs`).
    env.sandbox = gpunet_worker::SandboxMode::Off;
    env.add_worker(1, 2).await;
    let c = env.client().await;
    let pidfile = env.tmp.path().join("time.pids");
    let mut t = task::process(&["sh", "-c", tree_script()]);
    if let Some(pb::task_spec::Executor::Process(p)) = t.executor.as_mut() {
        p.env
            .insert("PIDS".into(), pidfile.to_string_lossy().into_owned());
        p.time_limit_ms = 500;
    }
    let id = c.submit(vec![t]).await.unwrap()[0];
    let ps = pids(&pidfile, 2).await;
    let st = c.get(id, 0, T).await.unwrap().status.unwrap();
    assert_eq!(st.state, pb::TaskState::Failed as i32);
    assert_eq!(st.error_kind, pb::ErrorKind::TimeLimit as i32);
    assert!(st.error.contains("time limit"), "{}", st.error);
    assert_eq!(st.attempts, 1, "limits are application errors: not retried");
    wait_until(Duration::from_secs(5), || ps.iter().all(|&p| !alive(p))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_memory_limit_stops_the_task_with_a_clear_error() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(1, 2).await;
    let c = env.client().await;
    let mut t = task::process(&[
        "python3",
        "-c",
        "b = bytearray(1024 * 1024 * 1024); print(len(b))",
    ]);
    if let Some(pb::task_spec::Executor::Process(p)) = t.executor.as_mut() {
        p.memory_limit_bytes = 256 << 20;
    }
    let id = c.submit(vec![t]).await.unwrap()[0];
    let st = c.get(id, 0, T).await.unwrap().status.unwrap();
    assert_eq!(st.state, pb::TaskState::Failed as i32, "{st:?}");
    assert_eq!(st.error_kind, pb::ErrorKind::MemoryLimit as i32, "{st:?}");
    assert!(
        st.error
            .contains("memory limit of 268435456 bytes exceeded"),
        "{}",
        st.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_process_stdin_stdout_stderr_env_and_workdir() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(1, 2).await;
    let c = env.client().await;
    let input = c
        .submit(vec![task::builtin("echo", "from-object")])
        .await
        .unwrap()[0];
    let mut t = task::process(&[
        "sh",
        "-c",
        "cat; printf ' %s %s' \"$GREETING\" \"$(basename \"$PWD\")\"; echo oops >&2",
    ]);
    if let Some(pb::task_spec::Executor::Process(p)) = t.executor.as_mut() {
        p.env.insert("GREETING".into(), "hi".into());
        p.stdin = Some(task::arg_ref(input, 0));
    }
    let id = c.submit(vec![t]).await.unwrap()[0];
    let out = c.get(id, 0, T).await.unwrap();
    let text = String::from_utf8(out.data.to_vec()).unwrap();
    assert!(text.starts_with("from-object hi task-"), "{text}");
    let err = c.get(id, 1, T).await.unwrap();
    assert_eq!(&err.data[..], b"oops\n");
    let st = out.status.unwrap();
    assert_eq!(st.exit_code, Some(0));
    // A non-zero exit is an application error with the code.
    let id = c
        .submit(vec![task::process(&["sh", "-c", "echo bad >&2; exit 3"])])
        .await
        .unwrap()[0];
    let st = c.get(id, 0, T).await.unwrap().status.unwrap();
    assert_eq!(
        (st.error_kind, st.exit_code),
        (pb::ErrorKind::Application as i32, Some(3))
    );
    assert!(st.error.contains("bad"));
    // A missing program is refused clearly.
    let id = c
        .submit(vec![task::process(&["/nonexistent/prog"])])
        .await
        .unwrap()[0];
    let st = c.get(id, 0, T).await.unwrap().status.unwrap();
    assert_eq!(st.error_kind, pb::ErrorKind::Invalid as i32);
}

/// A runtime env through the keeper: the working directory the client packed becomes the
/// task's, its build progress reaches the client's watch, and an env that cannot be built
/// fails its task with the installer's error instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_runtime_env_reports_progress_and_a_failed_build_fails_the_task() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(1, 2).await;
    let c = env.client().await;
    let mut watch = c.watch(&[]).await.unwrap();
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok(Some(ev)) = watch.message().await {
            if let Some(st) = ev.status.filter(|s| !s.progress.is_empty()) {
                s2.lock().push(st.progress);
            }
        }
    });
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("main.py"),
        "print('ran', open('data.txt').read())",
    )
    .unwrap();
    std::fs::write(src.path().join("data.txt"), "with its data").unwrap();
    let mut t = task::process(&["python3", "main.py"]);
    if let Some(pb::task_spec::Executor::Process(p)) = t.executor.as_mut() {
        p.runtime_env = Some(pb::RuntimeEnv {
            working_dir: gpunet_worker::runtime_env::pack_dir(src.path())
                .unwrap()
                .into(),
            ..Default::default()
        });
    }
    let id = c.submit(vec![t]).await.unwrap()[0];
    let out = c.get(id, 0, T).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.data).trim(),
        "ran with its data",
        "{:?}",
        out.status
    );
    wait_until(T, || seen.lock().iter().any(|p| p.contains("unpacking"))).await;

    let mut bad = task::process(&["python3", "-c", "print('never')"]);
    if let Some(pb::task_spec::Executor::Process(p)) = bad.executor.as_mut() {
        p.runtime_env = Some(pb::RuntimeEnv {
            pip: vec!["gpunet-no-such-package==9.9".into()],
            pip_no_index: true,
            ..Default::default()
        });
    }
    let id = c.submit(vec![bad]).await.unwrap()[0];
    let st = c
        .get(id, 0, Duration::from_secs(120))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.error_kind, pb::ErrorKind::RuntimeEnv as i32, "{st:?}");
    assert!(st.error.contains("pip install failed"), "{}", st.error);
    assert!(st.error.contains("gpunet-no-such-package"), "{}", st.error);
    wait_until(T, || {
        seen.lock()
            .iter()
            .any(|p| p.contains("creating a virtual environment"))
    })
    .await;
}

/// A task that streams its logs (a job's driver): a follower sees its output while it runs,
/// then the end with its status; a later reader gets the whole log from any offset; another
/// lease's session cannot read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_streaming_tasks_logs_are_followed_live_to_the_end() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(1, 2).await;
    let c = env.client().await;
    let mut t = task::process(&[
        "sh",
        "-c",
        "echo first; sleep 1; echo oops >&2; sleep 1; echo last",
    ]);
    if let Some(pb::task_spec::Executor::Process(p)) = t.executor.as_mut() {
        p.stream_logs = true;
    }
    let id = c.submit(vec![t]).await.unwrap()[0];
    let mut logs = c.logs(id, 0, true).await.unwrap();
    let mut text = String::new();
    let mut streams = Vec::new();
    let mut saw_running = false;
    let end = loop {
        let chunk = tokio::time::timeout(T, logs.message())
            .await
            .expect("a chunk in time")
            .unwrap()
            .expect("the stream ends with eof, not before");
        if chunk.eof {
            break chunk.status.unwrap();
        }
        if text.is_empty() {
            // The first line arrives while the task still runs.
            let st = c.status(&[id]).await.unwrap().pop().unwrap();
            saw_running = st.state == pb::TaskState::Running as i32;
        }
        text.push_str(&String::from_utf8_lossy(&chunk.data));
        streams.push(chunk.stream);
    };
    assert!(saw_running, "live: the first line came before the end");
    assert_eq!(text, "first\noops\nlast\n");
    assert!(streams.contains(&1), "stderr tagged: {streams:?}");
    assert_eq!(end.state, pb::TaskState::Finished as i32);
    // Read again later, from an offset: the rest of the log, then the end.
    let mut again = c.logs(id, 6, false).await.unwrap();
    let mut rest = String::new();
    while let Some(chunk) = again.message().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk.data));
    }
    assert_eq!(rest, "oops\nlast\n");
    // The captured outputs hold the same.
    assert_eq!(&c.get(id, 0, T).await.unwrap().data[..], b"first\nlast\n");
    // A session on another lease does not see the task.
    env.leases.insert(gpunet_keeper::directory::LeaseInfo {
        lease_id: "lease-b".into(),
        user: env.user.verifying_key().to_bytes(),
        provider: PROVIDER.into(),
        gpus: 1,
    });
    let other = gpunet_task_client::Client::connect(&env.keeper.url(), "lease-b", &env.user)
        .await
        .unwrap();
    let err = match other.logs(id, 0, false).await {
        Ok(mut s) => s.message().await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
}
