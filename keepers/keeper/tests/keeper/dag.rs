use std::time::Duration;

use gpunet_proto::v1 as pb;
use gpunet_task_client::spec as task;

use crate::common::*;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_dag_runs_in_dependency_order_with_inputs() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(2, 4).await;
    env.add_worker(2, 4).await;
    let c = env.client().await;
    // a; b(a); c(a, b) — submitted in separate requests, with object refs.
    let mut sleep_a = task::builtin("sleep", "100");
    sleep_a.name = "slow".into();
    let a = c.submit(vec![task::builtin("echo", "A")]).await.unwrap()[0];
    let mut b = task::builtin("echo", "B");
    b.args = vec![task::arg_ref(a, 0)];
    let b = c.submit(vec![b]).await.unwrap()[0];
    let mut cc = task::builtin("echo", "C");
    cc.args = vec![
        task::arg_ref(a, 0),
        task::arg_value("-"),
        task::arg_ref(b, 0),
    ];
    let cc = c.submit(vec![cc]).await.unwrap()[0];
    let r = c.get(cc, 0, T).await.unwrap();
    assert!(r.ready);
    assert_eq!(&r.data[..], b"CA-BA");
    // The same DAG in one request with batch refs, behind a slow task.
    let mut t1 = task::builtin("echo", "1");
    t1.args = vec![task::arg_batch(0)];
    let mut t2 = task::builtin("echo", "2");
    t2.args = vec![task::arg_batch(1), task::arg_batch(0)];
    let ids = c.submit(vec![sleep_a, t1, t2]).await.unwrap();
    let st = c.status(&ids).await.unwrap();
    assert_eq!(
        st[2].state,
        pb::TaskState::WaitingForDeps as i32,
        "t2 waits for its inputs"
    );
    let r = c.get(ids[2], 0, T).await.unwrap();
    assert_eq!(&r.data[..], b"21");
    let st = c.status(&ids).await.unwrap();
    assert!(st.iter().all(|s| s.state == pb::TaskState::Finished as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_large_results_stay_on_worker_and_are_fetched() {
    let mut cfg = test_config();
    cfg.inline_limit = 1024;
    let mut env = Env::start(cfg, 4).await;
    env.add_worker(2, 4).await;
    env.add_worker(2, 4).await;
    let c = env.client().await;
    let big = c
        .submit(vec![task::builtin("fill", "300000")])
        .await
        .unwrap()[0];
    let r = c.get(big, 0, T).await.unwrap();
    assert_eq!(r.data.len(), 300_000);
    assert_eq!(r.status.unwrap().result_size, 300_000);
    assert_eq!(
        env.workers.iter().map(|w| w.held_objects()).sum::<usize>(),
        1,
        "held by its worker, not inline"
    );
    // A dependent task on (possibly) another worker fetches it on demand.
    let mut deps = Vec::new();
    for _ in 0..4 {
        let mut t = task::builtin("echo", "");
        t.args = vec![task::arg_ref(big, 0)];
        t.strategy = Some(task::strategy(pb::scheduling_strategy::Kind::Spread(
            pb::SpreadStrategy {},
        )));
        deps.push(t);
    }
    let ids = c.submit(deps).await.unwrap();
    for id in ids {
        let r = c.get(id, 0, T).await.unwrap();
        assert_eq!(r.data.len(), 300_000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_failed_dependency_fails_dependents() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(2, 2).await;
    let c = env.client().await;
    let mut dep = task::builtin("echo", "x");
    dep.args = vec![task::arg_batch(0)];
    let ids = c
        .submit(vec![task::builtin("fail", "boom"), dep])
        .await
        .unwrap();
    let r = c.get(ids[1], 0, T).await.unwrap();
    let st = r.status.unwrap();
    assert_eq!(st.state, pb::TaskState::Failed as i32);
    assert_eq!(st.error_kind, pb::ErrorKind::DependencyFailed as i32);
    assert!(st.error.contains("boom"), "{}", st.error);
    let st = c.status(&ids[..1]).await.unwrap();
    assert_eq!(st[0].error_kind, pb::ErrorKind::Application as i32);
    assert_eq!(st[0].attempts, 1, "application errors are not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_queueing_cancel_list_watch_and_submit_wait() {
    let mut env = Env::start(test_config(), 1).await;
    env.add_worker(1, 1).await;
    let c = env.client().await;
    let mut watch = c.watch(&[]).await.unwrap();
    // One CPU: the second task queues behind the first.
    let ids = c
        .submit(vec![
            task::builtin("sleep", "300"),
            task::builtin("noop", ""),
        ])
        .await
        .unwrap();
    let st = c.status(&ids).await.unwrap();
    assert_eq!(st[1].state, pb::TaskState::Queued as i32);
    assert_eq!(c.cancel(&[ids[1]]).await.unwrap(), vec![true]);
    let r = c.get(ids[1], 0, T).await.unwrap();
    assert_eq!(r.status.unwrap().state, pb::TaskState::Cancelled as i32);
    let r = c.get(ids[0], 0, T).await.unwrap();
    assert_eq!(r.status.unwrap().state, pb::TaskState::Finished as i32);
    let listed = c.list(pb::TaskState::Cancelled, 0, 0).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.task_id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    // Submit-and-wait: one round trip.
    let resp = c
        .submit_wait(vec![task::builtin("echo", "sync")], T)
        .await
        .unwrap();
    assert!(resp.outcomes[0].complete);
    assert_eq!(&resp.outcomes[0].data[..], b"sync");
    // The watch stream saw each task reach its terminal state once.
    let mut terminal = std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + T;
    while terminal.len() < 3 {
        let ev = tokio::time::timeout_at(deadline, watch.message())
            .await
            .expect("events")
            .unwrap()
            .unwrap();
        let s = ev.status.unwrap();
        if s.state >= pb::TaskState::Finished as i32 {
            *terminal.entry(s.task_id).or_insert(0) += 1;
        }
    }
    assert!(terminal.values().all(|&n| n == 1));
    // Cluster view.
    let cl = c.cluster().await.unwrap();
    assert_eq!(cl.state(), pb::ClusterState::Ready);
    assert_eq!(cl.workers.len(), 1);
    assert!(
        cl.workers[0].cpu_only,
        "declared GPUs are reported as CPU-only mode"
    );
}
