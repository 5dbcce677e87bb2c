use std::collections::HashMap;
use std::time::{Duration, Instant};

use gpunet_proto::v1 as pb;
use gpunet_task_client::spec as task;

use crate::common::*;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_worker_killed_mid_task_is_retried_elsewhere() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(2, 2).await;
    env.add_worker(2, 2).await;
    let c = env.client().await;
    let id = c.submit(vec![task::builtin("sleep", "400")]).await.unwrap()[0];
    let w = running_on(&c, id).await;
    let idx = env.workers.iter().position(|h| h.id() == w).unwrap();
    env.workers[idx].kill();
    let r = c.get(id, 0, T).await.unwrap();
    let st = r.status.unwrap();
    assert_eq!(st.state, pb::TaskState::Finished as i32);
    assert_eq!(st.attempts, 2);
    assert_ne!(st.worker_id, w);
}

/// A worker shut down gracefully lets its running task finish within its drain timeout; past
/// it, the task is stopped and runs again elsewhere — it is not reported cancelled, since
/// nobody cancelled it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_task_outliving_a_workers_drain_runs_again_elsewhere() {
    let mut env = Env::start(test_config(), 4).await;
    let mut wc = env.worker_config(2, 2);
    wc.drain_timeout = Duration::from_millis(300);
    env.workers.push(gpunet_worker::spawn(wc));
    wait_until(T, || env.keeper.core().connected_workers() == 1).await;
    let c = env.client().await;
    let ids = c
        .submit(vec![
            task::builtin("sleep", "100"),
            task::builtin("sleep", "2000"),
        ])
        .await
        .unwrap();
    let first = running_on(&c, ids[1]).await;
    env.add_worker(2, 2).await;
    env.workers.remove(0).shutdown().await.unwrap();
    // The short one finished during the drain, on the worker that left.
    let st = c.get(ids[0], 0, T).await.unwrap().status.unwrap();
    assert_eq!(st.state, pb::TaskState::Finished as i32, "{st:?}");
    assert_eq!((st.attempts, st.worker_id.as_str()), (1, first.as_str()));
    // The long one outlived the drain: run again on the other worker.
    let st = c.get(ids[1], 0, T).await.unwrap().status.unwrap();
    assert_eq!(st.state, pb::TaskState::Finished as i32, "{st:?}");
    assert_eq!(st.attempts, 2);
    assert_ne!(st.worker_id, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_silent_worker_is_declared_dead_within_bound_and_evidence_is_recorded() {
    let mut cfg = test_config();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("k.redb");
    cfg.db_path = db.to_string_lossy().into_owned();
    let dead_after = cfg.dead_after;
    let mut env = Env::start(cfg, 4).await;
    env.add_worker(2, 2).await;
    env.add_worker(2, 2).await;
    let c = env.client().await;
    let mut t = task::builtin("sleep", "5000");
    t.max_retries = Some(0);
    let ids = c
        .submit(vec![t, task::builtin("sleep", "200")])
        .await
        .unwrap();
    let w = running_on(&c, ids[0]).await;
    let idx = env.workers.iter().position(|h| h.id() == w).unwrap();
    let start = Instant::now();
    env.workers[idx].pause_heartbeats(true);
    // max_retries = 0: the task fails with WORKER_DIED as soon as the worker is declared dead.
    let st = c.get(ids[0], 0, T).await.unwrap().status.unwrap();
    let took = start.elapsed();
    assert_eq!(st.error_kind, pb::ErrorKind::WorkerDied as i32, "{st:?}");
    assert!(took >= dead_after, "declared dead too early: {took:?}");
    // Bound: dead_after plus one monitor tick (dead_after / 4), with slack for a machine
    // loaded by a parallel build (it missed 1 s once).
    assert!(
        took < dead_after * 2 + Duration::from_secs(2),
        "declared dead too late: {took:?}"
    );
    env.workers[idx].kill();
    let keeper = env.keeper;
    keeper.shutdown().await.unwrap();
    let ev = gpunet_keeper::store::read_evidence(&db.to_string_lossy()).unwrap();
    assert!(
        ev.iter().any(|e| e.worker == w
            && e.reason.contains("missed heartbeats")
            && e.tasks.contains(&ids[0])),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_application_errors_retry_only_when_asked() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(2, 2).await;
    let c = env.client().await;
    let mut retried = task::builtin("fail", "nope");
    retried.retry_exceptions = true;
    retried.max_retries = Some(2);
    let ids = c
        .submit(vec![task::builtin("fail", "nope"), retried])
        .await
        .unwrap();
    let a = c.get(ids[0], 0, T).await.unwrap().status.unwrap();
    let b = c.get(ids[1], 0, T).await.unwrap().status.unwrap();
    assert_eq!(
        (a.attempts, a.error_kind),
        (1, pb::ErrorKind::Application as i32)
    );
    assert_eq!(
        (b.attempts, b.error_kind),
        (3, pb::ErrorKind::Application as i32)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_lost_object_is_remade_from_lineage() {
    let mut cfg = test_config();
    cfg.inline_limit = 1024;
    let mut env = Env::start(cfg, 4).await;
    env.add_worker(2, 2).await;
    env.add_worker(2, 2).await;
    let c = env.client().await;
    let big = c.submit(vec![task::builtin("fill", "5000")]).await.unwrap()[0];
    let st = c.get(big, 0, T).await.unwrap().status.unwrap();
    let holder = env
        .workers
        .iter()
        .position(|h| h.id() == st.worker_id)
        .unwrap();
    env.workers[holder].kill();
    wait_until(Duration::from_secs(10), || {
        env.keeper.core().connected_workers() == 1
    })
    .await;
    // The object is gone with its worker; getting it re-runs its task.
    let r = c.get(big, 0, T).await.unwrap();
    assert_eq!(r.data.len(), 5000);
    // A dependent of a lost object works too.
    env.add_worker(2, 2).await;
    let mut t = task::builtin("echo", "");
    t.args = vec![task::arg_ref(big, 0)];
    let id = c.submit(vec![t]).await.unwrap()[0];
    assert_eq!(c.get(id, 0, T).await.unwrap().data.len(), 5000);
    // Reported complete once: still one finished state, no failure.
    let st = c.status(&[big]).await.unwrap().remove(0);
    assert_eq!(st.state, pb::TaskState::Finished as i32);
}

/// 1,000 tasks, 20 workers, 2 of them (10%) killed at random moments: nothing lost, nothing
/// reported complete twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_chaos_1000_tasks_tenth_of_workers_killed() {
    let mut cfg = test_config();
    // Count these 0-19 ms tasks as short, so some wait in lanes on workers that get killed.
    cfg.pipeline_below = Duration::from_secs(1);
    let mut env = Env::start(cfg, 1000).await;
    for _ in 0..20 {
        env.add_worker(1, 2).await;
    }
    let c = env.client().await;
    let mut watch = c.watch(&[]).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..1000u32 {
        let ms = (i.wrapping_mul(2654435761) >> 27) % 20; // 0..19 ms, deterministic
        tasks.push(task::builtin("sleep", ms.to_string()));
    }
    let mut ids = Vec::new();
    for chunk in tasks.chunks(100) {
        ids.extend(c.submit(chunk.to_vec()).await.unwrap());
    }
    // Kill two workers while tasks run.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut killed = Vec::new();
    while killed.len() < 2 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let i = (seed % 20) as usize;
        if !killed.contains(&i) {
            tokio::time::sleep(Duration::from_millis(40)).await;
            env.workers[i].kill();
            killed.push(i);
        }
    }
    let mut terminal: HashMap<u64, (u32, i32)> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while terminal.len() < ids.len() {
        let ev = tokio::time::timeout_at(deadline, watch.message())
            .await
            .expect("all tasks finish")
            .unwrap()
            .unwrap();
        let s = ev.status.unwrap();
        if s.state >= pb::TaskState::Finished as i32 {
            let e = terminal.entry(s.task_id).or_insert((0, s.state));
            e.0 += 1;
        }
    }
    // Let any duplicate arrive before checking.
    while let Ok(Some(Ok(ev))) = tokio::time::timeout(Duration::from_millis(300), watch.message())
        .await
        .map(|r| r.transpose())
    {
        let s = ev.status.unwrap();
        if s.state >= pb::TaskState::Finished as i32 {
            terminal.entry(s.task_id).or_insert((0, s.state)).0 += 1;
        }
    }
    assert_eq!(terminal.len(), 1000);
    assert!(
        terminal.values().all(|(n, _)| *n == 1),
        "a task was reported complete twice"
    );
    assert!(
        terminal
            .values()
            .all(|(_, s)| *s == pb::TaskState::Finished as i32),
        "a task was lost"
    );
    let statuses = c.status(&ids).await.unwrap();
    assert!(
        statuses
            .iter()
            .all(|s| s.state == pb::TaskState::Finished as i32)
    );
    let retried = statuses.iter().filter(|s| s.attempts > 1).count();
    let pipelined = env.keeper.core().metrics.tasks_pipelined.get();
    eprintln!("chaos: {retried} task(s) retried after 2 worker kills; {pipelined} pipelined");
    assert!(pipelined > 0, "no task was pipelined");
}

/// A lease that ends (on chain: closed, expired, slashed, reassigned away) ends its cluster:
/// the task it runs fails `LEASE_ENDED` with the reason, new work on it is refused saying why,
/// and the freed worker joins another lease of its provider, which then runs tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_ended_lease_fails_its_tasks_and_frees_its_worker_for_another_lease() {
    let mut env = Env::start(test_config(), 1).await;
    env.add_worker(1, 2).await;
    let c = env.client().await;
    let long = c
        .submit(vec![task::process(&["sleep", "60"])])
        .await
        .unwrap()[0];
    running_on(&c, long).await;
    // A second lease of the same provider: its cluster waits for a worker.
    let user2 = key(2);
    env.leases.insert(gpunet_keeper::LeaseInfo {
        lease_id: "lease-2".into(),
        user: user2.verifying_key().to_bytes(),
        provider: PROVIDER.into(),
        gpus: 1,
    });
    let c2 = gpunet_task_client::Client::connect(&env.keeper.url(), "lease-2", &user2)
        .await
        .unwrap();
    assert!(c2.cluster().await.unwrap().workers.is_empty());

    assert!(env.leases.remove(LEASE));
    assert_eq!(env.keeper.core().end_lease(LEASE, "closed on chain"), 1);
    let st = c.status(&[long]).await.unwrap().remove(0);
    assert_eq!(st.state(), pb::TaskState::Failed);
    assert_eq!(st.error_kind(), pb::ErrorKind::LeaseEnded);
    assert!(st.error.contains("closed on chain"), "{}", st.error);
    let refused = c.submit(vec![task::process(&["true"])]).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("ended: closed on chain"),
        "{refused:?}"
    );

    // The worker serves lease-2 now.
    let deadline = tokio::time::Instant::now() + T;
    while c2.cluster().await.unwrap().workers.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never joined lease-2"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = c2
        .submit(vec![task::process(&["printf", "hi"])])
        .await
        .unwrap()[0];
    let got = c2.get(id, 0, T).await.unwrap();
    assert_eq!(&got.data[..], b"hi");
}
