//! Retention of finished tasks and persistence of placement groups.

use std::time::Duration;

use gpunet_proto::v1 as pb;
use gpunet_task_client::spec as task;
use pb::scheduling_strategy::Kind;

use crate::common::*;

const T: Duration = Duration::from_secs(20);

/// Finished tasks are forgotten `task_retention` after they end: their results become a clear
/// NotFound, the worker drops the objects it held for them, and a finished task that a
/// waiting task still needs as input is kept until that task is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_finished_tasks_are_forgotten_after_retention_unless_still_needed() {
    let mut cfg = test_config();
    cfg.task_retention = Duration::from_millis(300);
    cfg.inline_limit = 1024;
    let mut env = Env::start(cfg, 2).await;
    let w = env.add_worker(2, 4).await;
    let c = env.client().await;
    let small = c.submit(vec![task::builtin("echo", "bye")]).await.unwrap()[0];
    // A result above the inline limit stays on the worker.
    let big = c.submit(vec![task::builtin("fill", "4096")]).await.unwrap()[0];
    assert_eq!(&c.get(small, 0, T).await.unwrap().data[..], b"bye");
    assert_eq!(c.get(big, 0, T).await.unwrap().data.len(), 4096);
    assert_eq!(env.workers[w].held_objects(), 1);
    // `input` finishes at once; `consumer` also waits on a slow task, well past retention.
    let input = c
        .submit(vec![task::builtin("echo", "needed")])
        .await
        .unwrap()[0];
    assert!(c.get(input, 0, T).await.unwrap().ready);
    let mut consumer = task::builtin("echo", "");
    let slow = c.submit(vec![task::builtin("sleep", "900")]).await.unwrap()[0];
    consumer.args = vec![task::arg_ref(input, 0), task::arg_ref(slow, 0)];
    let consumer = c.submit(vec![consumer]).await.unwrap()[0];

    let core = env.keeper.core();
    wait_until(Duration::from_secs(5), || {
        env.workers[w].held_objects() == 0
    })
    .await;
    let err = c.get(small, 0, Duration::ZERO).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(
        err.message().contains("task_retention"),
        "{}",
        err.message()
    );
    assert_eq!(
        c.get(big, 0, Duration::ZERO).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    // The consumer still gets its input although it finished long before.
    let r = c.get(consumer, 0, T).await.unwrap();
    assert!(r.ready);
    assert_eq!(
        r.status.unwrap().state,
        pb::TaskState::Finished as i32,
        "input kept while needed"
    );
    // Then everything goes but the newest task (kept so that ids are never reused after a
    // restart).
    wait_until(Duration::from_secs(5), || listed(core) == vec![consumer]).await;
    // Forgotten tasks cannot be used as inputs any more: a clear error at submit.
    let mut late = task::builtin("echo", "");
    late.args = vec![task::arg_ref(input, 0)];
    let err = c.submit(vec![late]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
}

fn listed(core: &gpunet_keeper::core::Core) -> Vec<u64> {
    core.list(&LEASE.into(), pb::TaskState::Unspecified, 0, 100)
        .iter()
        .map(|s| s.task_id)
        .collect()
}

/// Placement groups survive a restart with their ids: a task submitted before the restart
/// that targets one still runs, and new groups get new ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_placement_groups_survive_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.db_path = tmp.path().join("k.redb").to_string_lossy().into_owned();
    let mut env = Env::start(cfg.clone(), 4).await;
    env.add_worker(2, 2).await;
    env.add_worker(2, 2).await;
    let c = env.client().await;
    let b = task::resources(1000, 1);
    let pg = c
        .create_placement_group(
            vec![b.clone(), b.clone()],
            pb::PlacementStrategy::StrictSpread,
        )
        .await
        .unwrap();
    let env = env.restart(cfg).await;
    let c = env.client().await;
    let info = c.cluster().await.unwrap();
    let again = info
        .placement_groups
        .iter()
        .find(|g| g.placement_group_id == pg.placement_group_id)
        .expect("placement group restored");
    assert_eq!(again.strategy, pb::PlacementStrategy::StrictSpread as i32);
    assert_eq!(again.bundle_workers.len(), 2);
    // Tasks on each bundle land on distinct workers once they reconnect.
    let specs = (0..2)
        .map(|i| {
            let mut t = task::builtin("sleep", "50");
            t.resources = Some(b.clone());
            t.strategy = Some(task::strategy(Kind::PlacementGroup(
                pb::PlacementGroupTarget {
                    placement_group_id: pg.placement_group_id,
                    bundle_index: i,
                },
            )));
            t
        })
        .collect();
    let ids = c.submit(specs).await.unwrap();
    let mut on = Vec::new();
    for id in ids {
        let st = c.get(id, 0, T).await.unwrap().status.unwrap();
        assert_eq!(st.state, pb::TaskState::Finished as i32, "{st:?}");
        on.push(st.worker_id);
    }
    assert_ne!(on[0], on[1], "strict spread after restart");
    let next = c
        .create_placement_group(vec![b], pb::PlacementStrategy::Pack)
        .await
        .unwrap();
    assert!(next.placement_group_id > pg.placement_group_id);
    env.keeper.shutdown().await.unwrap();
}

/// Retention never lets an id be given out twice: after everything old is forgotten and the
/// keeper restarts, new tasks get ids above every id handed out before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_ids_are_not_reused_after_retention_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.db_path = tmp.path().join("k.redb").to_string_lossy().into_owned();
    cfg.task_retention = Duration::from_millis(200);
    let mut env = Env::start(cfg.clone(), 2).await;
    env.add_worker(2, 2).await;
    let c = env.client().await;
    let ids = c
        .submit(vec![task::builtin("noop", ""), task::builtin("noop", "")])
        .await
        .unwrap();
    for id in &ids {
        assert!(c.get(*id, 0, T).await.unwrap().ready);
    }
    let newest = *ids.iter().max().unwrap();
    wait_until(Duration::from_secs(5), || {
        listed(env.keeper.core()) == vec![newest]
    })
    .await;
    let env = env.restart(cfg).await;
    let c = env.client().await;
    let next = c.submit(vec![task::builtin("noop", "")]).await.unwrap()[0];
    assert!(
        next > newest,
        "id {next} reused (newest before restart {newest})"
    );
    env.keeper.shutdown().await.unwrap();
}
