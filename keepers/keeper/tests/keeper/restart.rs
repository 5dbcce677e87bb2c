use std::time::Duration;

use gpunet_proto::v1 as pb;
use gpunet_task_client::spec as task;

use crate::common::*;

const T: Duration = Duration::from_secs(20);

/// Graceful restart on the same database (the SIGKILL variant runs the real binary in the CLI
/// crate's tests): finished tasks keep their results, unfinished ones run once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart_keeps_results_and_finishes_accepted_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.db_path = tmp.path().join("k.redb").to_string_lossy().into_owned();
    let mut env = Env::start(cfg.clone(), 4).await;
    env.add_worker(2, 2).await;
    let c = env.client().await;
    let done = c.submit(vec![task::builtin("echo", "kept")]).await.unwrap()[0];
    assert!(c.get(done, 0, T).await.unwrap().ready);
    let mut slow = c
        .submit(vec![
            task::builtin("sleep", "300"),
            task::builtin("sleep", "300"),
            task::builtin("sleep", "300"),
        ])
        .await
        .unwrap();
    // Submit-and-wait that times out: its acceptance must still be durable when answered.
    let r = c
        .submit_wait(
            vec![task::builtin("sleep", "300")],
            Duration::from_millis(20),
        )
        .await
        .unwrap();
    assert!(!r.outcomes[0].complete);
    slow.extend(r.task_ids);
    let env = env.restart(cfg).await;
    // The worker reconnects by itself (backoff); sessions are per keeper process: open a new one.
    let c = env.client().await;
    let r = c.get(done, 0, T).await.unwrap();
    assert_eq!(&r.data[..], b"kept");
    for id in slow {
        let st = c.get(id, 0, T).await.unwrap().status.unwrap();
        assert_eq!(st.state, pb::TaskState::Finished as i32);
    }
    let next = c.submit(vec![task::builtin("noop", "")]).await.unwrap()[0];
    assert!(next > done, "ids are not reused");
    env.keeper.shutdown().await.unwrap();
}
