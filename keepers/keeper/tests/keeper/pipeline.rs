//! Pipelining: short tasks queued on a worker behind running ones (`pipeline_depth`,
//! `pipeline_below`).

use std::time::Duration;

use gpunet_proto::v1 as pb;
use gpunet_task_client::spec as task;

use crate::common::*;

const T: Duration = Duration::from_secs(30);

fn pipelined(env: &Env) -> u64 {
    env.keeper.core().metrics.tasks_pipelined.get()
}

/// Pipelined tasks still run at most as many at a time as the worker's slots: each lane runs
/// its tasks one after another, in the grant of the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pipelined_tasks_never_exceed_the_workers_slots() {
    let mut cfg = test_config();
    cfg.pipeline_depth = 4;
    cfg.pipeline_below = Duration::from_secs(10); // these 20 ms tasks count as short
    let mut env = Env::start(cfg, 4).await;
    env.add_worker(1, 2).await; // 2 CPUs: 2 slots for 1-CPU tasks
    let c = env.client().await;
    // Each task prints when it starts and ends (ns since the epoch).
    let t = task::process(&["sh", "-c", "date +%s%N; sleep 0.02; date +%s%N"]);
    let ids = c.submit(vec![t; 30]).await.unwrap();
    let mut spans = Vec::new();
    for &id in &ids {
        let out = c.get(id, 0, T).await.unwrap();
        let st = out.status.unwrap();
        assert_eq!(st.state, pb::TaskState::Finished as i32, "{st:?}");
        let text = String::from_utf8(out.data.to_vec()).unwrap();
        let v: Vec<u128> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
        assert_eq!(v.len(), 2, "{text}");
        spans.push((v[0], v[1]));
    }
    assert!(pipelined(&env) > 0, "nothing was pipelined");
    // Most tasks overlapped with at most one other.
    let mut edges: Vec<(u128, i32)> = spans.iter().flat_map(|&(a, b)| [(a, 1), (b, -1)]).collect();
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    assert!(most <= 2, "{most} tasks ran at once on a 2-slot worker");
}

/// A task waiting in a lane on the worker shows as queued, can be cancelled before the task
/// ahead of it ends, and the lane goes on with the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_cancelling_a_pipelined_task_takes_it_out_of_its_lane() {
    let mut cfg = test_config();
    cfg.pipeline_depth = 4;
    cfg.pipeline_below = Duration::from_secs(10);
    let mut env = Env::start(cfg, 4).await;
    env.add_worker(1, 1).await; // one slot
    let c = env.client().await;
    // One run teaches the keeper how long the class runs.
    let warm = c.submit(vec![task::builtin("sleep", "10")]).await.unwrap()[0];
    c.get(warm, 0, T).await.unwrap();
    let ids = c
        .submit(vec![task::builtin("sleep", "600"); 3])
        .await
        .unwrap();
    wait_until(T, || pipelined(&env) >= 2).await;
    let st = c.status(&ids).await.unwrap();
    assert_eq!(st[0].state, pb::TaskState::Running as i32);
    assert_eq!(
        st[1].state,
        pb::TaskState::Queued as i32,
        "waiting in the lane"
    );
    assert_eq!(
        st[2].state,
        pb::TaskState::Queued as i32,
        "waiting in the lane"
    );
    assert_eq!(c.cancel(&[ids[1]]).await.unwrap(), vec![true]);
    let st = c.get(ids[1], 0, T).await.unwrap().status.unwrap();
    assert_eq!(st.state, pb::TaskState::Cancelled as i32);
    let first = c.status(&[ids[0]]).await.unwrap().remove(0);
    assert_eq!(
        first.state,
        pb::TaskState::Running as i32,
        "cancelled without waiting for the task ahead of it"
    );
    for id in [ids[0], ids[2]] {
        let st = c.get(id, 0, T).await.unwrap().status.unwrap();
        assert_eq!(st.state, pb::TaskState::Finished as i32, "{st:?}");
        assert_eq!(st.attempts, 1);
    }
}

/// Only tasks known to run short are pipelined, judged per task name within a class (all
/// 1-CPU tasks share a class): never before a task of that name has run, nor while its runs
/// take longer than `pipeline_below`, nor when it may not be retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_only_tasks_known_to_run_short_are_pipelined() {
    let mut cfg = test_config();
    cfg.pipeline_below = Duration::from_millis(5);
    let mut env = Env::start(cfg, 4).await;
    env.add_worker(1, 1).await;
    let c = env.client().await;
    async fn run_all(c: &gpunet_task_client::Client, tasks: Vec<pb::TaskSpec>) {
        for id in c.submit(tasks).await.unwrap() {
            let st = c.get(id, 0, T).await.unwrap().status.unwrap();
            assert_eq!(st.state, pb::TaskState::Finished as i32, "{st:?}");
        }
    }
    run_all(&c, vec![task::builtin("sleep", "30"); 8]).await;
    assert_eq!(pipelined(&env), 0, "30 ms tasks were pipelined");
    // No-ops, same class (1 CPU, default strategy): they run short, so they are pipelined.
    run_all(&c, vec![task::builtin("noop", ""); 500]).await;
    let after_noops = pipelined(&env);
    assert!(after_noops > 0, "no-op tasks were not pipelined");
    // The sleeps are still long, whatever the no-ops taught the keeper about the class.
    run_all(&c, vec![task::builtin("sleep", "30"); 8]).await;
    assert_eq!(pipelined(&env), after_noops, "30 ms tasks were pipelined");
    // A task that may not be retried never waits on a worker it could die with.
    let mut once = task::builtin("noop", "");
    once.max_retries = Some(0);
    run_all(&c, vec![once; 300]).await;
    assert_eq!(
        pipelined(&env),
        after_noops,
        "max_retries = 0 tasks were pipelined"
    );
}

/// A worker that does not offer lanes gets one task per free slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_workers_without_lanes_get_no_pipelined_tasks() {
    let mut env = Env::start(test_config(), 4).await;
    let mut w = env.worker_config(1, 2);
    w.lanes = false;
    env.workers.push(gpunet_worker::spawn(w));
    wait_until(T, || env.keeper.core().connected_workers() == 1).await;
    let c = env.client().await;
    for _ in 0..3 {
        for id in c
            .submit(vec![task::builtin("noop", ""); 500])
            .await
            .unwrap()
        {
            let st = c.get(id, 0, T).await.unwrap().status.unwrap();
            assert_eq!(st.state, pb::TaskState::Finished as i32);
        }
    }
    assert_eq!(pipelined(&env), 0);
}

/// A lane does not keep its grant while tasks of another class wait: a backlog of no-ops
/// does not starve a task of another class (here: the same size, another strategy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_lanes_give_way_to_other_classes() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(1, 2).await;
    let c = env.client().await;
    let warm = c.submit(vec![task::builtin("noop", "")]).await.unwrap()[0];
    c.get(warm, 0, T).await.unwrap();
    let mut watch = c.watch(&[]).await.unwrap();
    let mut other = task::builtin("noop", "");
    other.strategy = Some(task::strategy(pb::scheduling_strategy::Kind::Spread(
        pb::SpreadStrategy {},
    )));
    let mut batch = vec![task::builtin("noop", ""); 3000];
    batch.insert(100, other);
    let ids = c.submit(batch).await.unwrap();
    let other_id = ids[100];
    // Order of completion as the watch stream reports it.
    let mut done = Vec::new();
    while done.len() < ids.len() {
        let ev = tokio::time::timeout(T, watch.message())
            .await
            .expect("all tasks finish")
            .unwrap()
            .unwrap();
        let s = ev.status.unwrap();
        if s.state == pb::TaskState::Finished as i32 && ids.contains(&s.task_id) {
            done.push(s.task_id);
        }
    }
    let pos = done.iter().position(|&i| i == other_id).unwrap();
    assert!(pipelined(&env) > 0, "nothing was pipelined");
    assert!(
        pos < 1000,
        "the other class's task finished {pos}th of 3001: lanes held the worker"
    );
}

/// A worker shut down gracefully finishes what it holds — running tasks and tasks waiting in
/// its lanes — and gets nothing new; every task completes once, none is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_draining_worker_finishes_its_lanes_and_gets_no_more() {
    let mut cfg = test_config();
    // 1 ms sleeps count as short even when a loaded CI machine stretches them past 2 ms.
    cfg.pipeline_below = Duration::from_secs(1);
    let mut env = Env::start(cfg, 4).await;
    env.add_worker(1, 1).await;
    env.add_worker(1, 1).await;
    let c = env.client().await;
    let warm = c.submit(vec![task::builtin("sleep", "1")]).await.unwrap()[0];
    c.get(warm, 0, T).await.unwrap();
    let ids = c
        .submit(vec![task::builtin("sleep", "1"); 1000])
        .await
        .unwrap();
    wait_until(T, || pipelined(&env) > 50).await;
    let leaving = env.workers.remove(0);
    let gone = leaving.id().to_string();
    leaving.shutdown().await.unwrap();
    let st = c.status(&ids).await.unwrap();
    let on_gone = st.iter().filter(|s| s.worker_id == gone).count();
    for id in &ids {
        let s = c.get(*id, 0, T).await.unwrap().status.unwrap();
        assert_eq!(
            s.state,
            pb::TaskState::Finished as i32,
            "{s:?} (drained worker {gone})"
        );
        assert_eq!(s.attempts, 1, "task {id} was retried: {s:?}");
    }
    assert!(on_gone > 0, "the drained worker ran nothing");
    let info = c.cluster().await.unwrap();
    assert!(info.workers.iter().all(|w| w.worker_id != gone));
}
