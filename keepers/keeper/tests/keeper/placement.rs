use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gpunet_proto::v1 as pb;
use gpunet_task_client::spec as task;
use pb::scheduling_strategy::Kind;

use crate::common::*;

const T: Duration = Duration::from_secs(20);

async fn workers_of(c: &gpunet_task_client::Client, ids: &[u64]) -> Vec<String> {
    let mut out = Vec::new();
    for &id in ids {
        let r = c.get(id, 0, T).await.unwrap();
        let st = r.status.unwrap();
        assert_eq!(st.state, pb::TaskState::Finished as i32, "{st:?}");
        out.push(st.worker_id);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_placement_group_strategies() {
    let mut env = Env::start(test_config(), 8).await;
    for _ in 0..4 {
        env.add_worker(2, 4).await;
    }
    let c = env.client().await;
    let b = task::resources(1000, 1);
    // STRICT_SPREAD: 4 bundles on 4 distinct workers.
    let pg = c
        .create_placement_group(vec![b.clone(); 4], pb::PlacementStrategy::StrictSpread)
        .await
        .unwrap();
    assert_eq!(pg.state(), pb::PlacementGroupState::Created);
    let set: HashSet<_> = pg.bundle_workers.iter().collect();
    assert_eq!(set.len(), 4, "strict spread: distinct workers");
    // Tasks in bundle i run on bundle i's worker, with the bundle's GPU.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut t = task::builtin("sleep", "50");
        t.resources = Some(b.clone());
        t.strategy = Some(task::strategy(Kind::PlacementGroup(
            pb::PlacementGroupTarget {
                placement_group_id: pg.placement_group_id,
                bundle_index: i,
            },
        )));
        tasks.push(t);
    }
    let ids = c.submit(tasks).await.unwrap();
    assert_eq!(workers_of(&c, &ids).await, pg.bundle_workers);
    // A fifth STRICT_SPREAD bundle cannot fit (4 workers): pending.
    let pg5 = c
        .create_placement_group(
            vec![task::resources(1000, 0); 5],
            pb::PlacementStrategy::StrictSpread,
        )
        .await
        .unwrap();
    assert_eq!(pg5.state(), pb::PlacementGroupState::Pending);
    // STRICT_PACK: all on one worker.
    let pk = c
        .create_placement_group(
            vec![task::resources(1000, 0); 2],
            pb::PlacementStrategy::StrictPack,
        )
        .await
        .unwrap();
    assert_eq!(pk.state(), pb::PlacementGroupState::Created);
    assert_eq!(pk.bundle_workers[0], pk.bundle_workers[1]);
    // PACK: fits on one worker → one worker. SPREAD: distinct where possible.
    let p = c
        .create_placement_group(
            vec![task::resources(500, 0); 2],
            pb::PlacementStrategy::Pack,
        )
        .await
        .unwrap();
    assert_eq!(p.bundle_workers[0], p.bundle_workers[1]);
    let s = c
        .create_placement_group(
            vec![task::resources(500, 0); 2],
            pb::PlacementStrategy::Spread,
        )
        .await
        .unwrap();
    assert_ne!(s.bundle_workers[0], s.bundle_workers[1]);
    // A task that fits no bundle fails clearly.
    let mut t = task::builtin("noop", "");
    t.resources = Some(task::resources(1000, 2));
    t.strategy = Some(task::strategy(Kind::PlacementGroup(
        pb::PlacementGroupTarget {
            placement_group_id: pg.placement_group_id,
            bundle_index: -1,
        },
    )));
    let id = c.submit(vec![t]).await.unwrap()[0];
    let st = c.get(id, 0, T).await.unwrap().status.unwrap();
    assert_eq!(st.error_kind, pb::ErrorKind::Unschedulable as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_spread_and_node_affinity() {
    let mut env = Env::start(test_config(), 8).await;
    for _ in 0..3 {
        env.add_worker(2, 4).await;
    }
    let c = env.client().await;
    // SPREAD: 3 one-CPU tasks land on 3 workers.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let mut t = task::builtin("sleep", "100");
        t.strategy = Some(task::strategy(Kind::Spread(pb::SpreadStrategy {})));
        tasks.push(t);
    }
    let ids = c.submit(tasks).await.unwrap();
    let ws: HashSet<_> = workers_of(&c, &ids).await.into_iter().collect();
    assert_eq!(ws.len(), 3);
    // Hard affinity runs on the named worker.
    let target = env.workers[1].id().to_string();
    let mut t = task::builtin("noop", "");
    t.strategy = Some(task::strategy(Kind::NodeAffinity(pb::NodeAffinity {
        worker_id: target.clone(),
        soft: false,
    })));
    let id = c.submit(vec![t.clone()]).await.unwrap()[0];
    assert_eq!(workers_of(&c, &[id]).await[0], target);
    // Kill that worker: hard affinity fails clearly, soft falls back.
    env.workers[1].kill();
    wait_until(Duration::from_secs(10), || {
        env.keeper.core().connected_workers() == 2
    })
    .await;
    let id = c.submit(vec![t.clone()]).await.unwrap()[0];
    let st = c.get(id, 0, T).await.unwrap().status.unwrap();
    assert_eq!(st.state, pb::TaskState::Failed as i32);
    assert_eq!(st.error_kind, pb::ErrorKind::Unschedulable as i32);
    assert!(st.error.contains("dead"), "{}", st.error);
    let mut soft = t.clone();
    soft.strategy = Some(task::strategy(Kind::NodeAffinity(pb::NodeAffinity {
        worker_id: target.clone(),
        soft: true,
    })));
    let id = c.submit(vec![soft]).await.unwrap()[0];
    let w = workers_of(&c, &[id]).await;
    assert_ne!(w[0], target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_gpu_requests_get_exactly_their_gpus() {
    let mut env = Env::start(test_config(), 4).await;
    env.add_worker(4, 8).await;
    let c = env.client().await;
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let mut t = task::process(&["sh", "-c", "printf %s \"$CUDA_VISIBLE_DEVICES\"; sleep 0.2"]);
        t.resources = Some(task::resources(1000, 2));
        tasks.push(t);
    }
    // A third 2-GPU task must queue (only 4 GPUs).
    let mut third = task::process(&["sh", "-c", "printf %s \"$CUDA_VISIBLE_DEVICES\""]);
    third.resources = Some(task::resources(1000, 2));
    tasks.push(third);
    let ids = c.submit(tasks).await.unwrap();
    let mut seen = Vec::new();
    for id in &ids {
        let r = c.get(*id, 0, T).await.unwrap();
        seen.push(String::from_utf8(r.data.to_vec()).unwrap());
    }
    let first_two: HashSet<_> = seen[..2].iter().cloned().collect();
    assert_eq!(
        first_two,
        ["0,1".to_string(), "2,3".to_string()].into_iter().collect()
    );
    assert!(seen[2] == "0,1" || seen[2] == "2,3");
    // A model the cluster does not have queues (Ray keeps infeasible tasks pending).
    let mut t = task::builtin("noop", "");
    t.resources = Some(pb::Resources {
        milli_cpus: 0,
        gpus: 1,
        memory_bytes: 0,
        gpu_model: "B200".into(),
    });
    let id = c.submit(vec![t]).await.unwrap()[0];
    let r = c.get(id, 0, Duration::from_millis(200)).await.unwrap();
    assert!(!r.ready);
    assert_eq!(r.status.unwrap().state, pb::TaskState::Queued as i32);
}

/// Leases get exactly their GPU count: a 2-GPU and a 4-GPU lease share one 8-GPU worker, each
/// task pinned to its own lease's GPUs (`CUDA_VISIBLE_DEVICES`), each cluster seeing only its
/// share (GPUs, and CPUs in proportion); a third lease gets only what is left, never a GPU
/// another lease holds (on chain, the program refuses a lease beyond the provider's GPUs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_leases_share_a_worker_on_disjoint_gpus() {
    let mut env = Env::start(test_config(), 2).await;
    let user = env.user.verifying_key().to_bytes();
    for (id, gpus) in [("lease-four", 4), ("lease-late", 4)] {
        env.leases.insert(gpunet_keeper::LeaseInfo {
            lease_id: id.into(),
            user,
            provider: PROVIDER.into(),
            gpus,
        });
    }
    env.add_worker(8, 8).await;
    let url = env.keeper.url();
    let two = env.client().await;
    let four = gpunet_task_client::Client::connect(&url, "lease-four", &env.user)
        .await
        .unwrap();
    let late = gpunet_task_client::Client::connect(&url, "lease-late", &env.user)
        .await
        .unwrap();
    let mut infos = Vec::new();
    for c in [&two, &four, &late] {
        let mut info = c.cluster().await.unwrap();
        for _ in 0..500 {
            if !info.workers.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            info = c.cluster().await.unwrap();
        }
        infos.push(info);
    }
    let shares: Vec<(u32, usize, u32)> = infos
        .iter()
        .map(|i| {
            (
                i.gpus_ready,
                i.workers[0].gpus.len(),
                i.workers[0].milli_cpus,
            )
        })
        .collect();
    assert_eq!(shares, vec![(2, 2, 2000), (4, 4, 4000), (2, 2, 2000)]);
    assert_eq!(infos[0].state(), pb::ClusterState::Ready);
    assert_eq!(infos[1].state(), pb::ClusterState::Ready);
    assert_eq!(
        infos[2].state(),
        pb::ClusterState::Forming,
        "2 of its 4 GPUs"
    );
    // Each lease's task takes all its GPUs and sees only those.
    let visible = |c: &gpunet_task_client::Client, gpus: u32| {
        let mut t = task::process(&["sh", "-c", "printf %s \"$CUDA_VISIBLE_DEVICES\""]);
        t.resources = Some(task::resources(1000, gpus));
        let c = c.clone();
        async move {
            let id = c.submit(vec![t]).await.unwrap()[0];
            String::from_utf8(c.get(id, 0, T).await.unwrap().data.to_vec()).unwrap()
        }
    };
    let (a, b, l) = tokio::join!(visible(&two, 2), visible(&four, 4), visible(&late, 2));
    let mut all: Vec<&str> = [a.as_str(), b.as_str(), l.as_str()]
        .iter()
        .flat_map(|s| s.split(','))
        .collect();
    assert_eq!(
        (a.split(',').count(), b.split(',').count()),
        (2, 4),
        "{a} / {b}"
    );
    all.sort_unstable();
    assert_eq!(
        all,
        ["0", "1", "2", "3", "4", "5", "6", "7"],
        "{a} / {b} / {l}"
    );
    // A lease cannot take more GPUs than its share of the worker.
    let mut greedy = task::process(&["true"]);
    greedy.resources = Some(task::resources(1000, 3));
    let id = two.submit(vec![greedy]).await.unwrap()[0];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = two.status(&[id]).await.unwrap();
    assert_ne!(
        st[0].state(),
        pb::TaskState::Finished,
        "ran on GPUs it does not hold"
    );
}

/// Zones: six workers in three zones. A task selecting a zone runs only there; SPREAD puts
/// tasks in every zone; killing every worker of one zone while its tasks run loses no task —
/// they run again in the other zones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_zones_select_spread_and_a_dark_zone_loses_no_task() {
    let mut env = Env::start(test_config(), 6).await;
    let mut zone_of: HashMap<String, &str> = HashMap::new();
    for zone in ["z-a", "z-a", "z-b", "z-b", "z-c", "z-c"] {
        let mut c = env.worker_config(1, 2);
        c.zone = zone.into();
        let h = gpunet_worker::spawn(c);
        zone_of.insert(h.id().to_string(), zone);
        env.workers.push(h);
    }
    wait_until(T, || env.keeper.core().connected_workers() == 6).await;
    let c = env.client().await;
    for _ in 0..200 {
        if c.cluster().await.unwrap().gpus_ready == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.cluster().await.unwrap().gpus_ready, 6);

    // Selected: only z-b's workers.
    let mut only_b = task::builtin("echo", "b");
    only_b.label_selector.insert("zone".into(), "z-b".into());
    let ids = c.submit(vec![only_b; 4]).await.unwrap();
    for id in ids {
        let st = c.get(id, 0, T).await.unwrap().status.unwrap();
        assert_eq!(zone_of[&st.worker_id], "z-b");
    }

    // Spread: six long tasks, two per zone.
    let mut long = task::builtin("sleep", "1500");
    long.strategy = Some(pb::SchedulingStrategy {
        kind: Some(Kind::Spread(pb::SpreadStrategy {})),
    });
    let ids = c.submit(vec![long; 6]).await.unwrap();
    let mut first: HashMap<u64, String> = HashMap::new();
    for &id in &ids {
        first.insert(id, running_on(&c, id).await);
    }
    let mut per_zone: HashMap<&str, usize> = HashMap::new();
    for w in first.values() {
        *per_zone.entry(zone_of[w]).or_default() += 1;
    }
    assert_eq!(per_zone.len(), 3, "{per_zone:?}");

    // Zone z-a goes dark.
    for h in &env.workers {
        if zone_of[h.id()] == "z-a" {
            h.kill();
        }
    }
    for &id in &ids {
        let st = c
            .get(id, 0, Duration::from_secs(60))
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(st.state, pb::TaskState::Finished as i32, "{st:?}");
        assert_ne!(zone_of[&st.worker_id], "z-a", "{st:?}");
        if zone_of[&first[&id]] == "z-a" {
            // Ran again elsewhere (a third time when its retry landed on the zone's other
            // worker before that one died too).
            assert!(st.attempts >= 2, "ran again elsewhere: {st:?}");
        }
    }
}

/// Removing a placement group (Ray's `remove_placement_group`): its running and queued tasks
/// are cancelled, its reservation goes back to the worker (a task needing the worker's only GPU
/// runs), it is gone from the cluster, and a restart on the same database neither brings it
/// back nor hands its id out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_removing_a_placement_group_cancels_its_tasks_and_frees_its_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.db_path = tmp.path().join("k.redb").to_string_lossy().into_owned();
    let mut env = Env::start(cfg.clone(), 1).await;
    env.add_worker(1, 4).await;
    let c = env.client().await;
    let gpu = task::resources(1000, 1);
    let pg = c
        .create_placement_group(vec![gpu.clone()], pb::PlacementStrategy::Pack)
        .await
        .unwrap();
    assert_eq!(pg.state(), pb::PlacementGroupState::Created);
    let in_group = |ms: &'static str| {
        let mut t = task::builtin("sleep", ms);
        t.resources = Some(gpu.clone());
        t.strategy = Some(task::strategy(Kind::PlacementGroup(
            pb::PlacementGroupTarget {
                placement_group_id: pg.placement_group_id,
                bundle_index: 0,
            },
        )));
        t
    };
    let ids = c
        .submit(vec![in_group("30000"), in_group("30000")])
        .await
        .unwrap();
    running_on(&c, ids[0]).await;
    // The worker's only GPU is the group's: a plain GPU task waits.
    let mut plain = task::builtin("echo", "freed");
    plain.resources = Some(gpu.clone());
    let plain = c.submit(vec![plain]).await.unwrap()[0];
    assert!(
        !c.get(plain, 0, Duration::from_millis(300))
            .await
            .unwrap()
            .ready
    );

    let mut cancelled = c
        .remove_placement_group(pg.placement_group_id)
        .await
        .unwrap();
    cancelled.sort();
    assert_eq!(cancelled, ids);
    for id in &ids {
        let st = c.get(*id, 0, T).await.unwrap().status.unwrap();
        assert_eq!(st.state, pb::TaskState::Cancelled as i32, "{st:?}");
    }
    let r = c.get(plain, 0, T).await.unwrap();
    assert_eq!(&r.data[..], b"freed", "the GPU went back to the worker");
    assert!(c.cluster().await.unwrap().placement_groups.is_empty());
    let again = c
        .remove_placement_group(pg.placement_group_id)
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound, "{again}");
    // A task naming the removed group is refused at once.
    let refused = c.submit_wait(vec![in_group("1")], T).await.unwrap();
    let st = refused.outcomes[0].status.clone().unwrap();
    assert_eq!(st.error_kind, pb::ErrorKind::Unschedulable as i32, "{st:?}");

    let env = env.restart(cfg).await;
    let c = env.client().await;
    assert!(c.cluster().await.unwrap().placement_groups.is_empty());
    let next = c
        .create_placement_group(vec![gpu.clone()], pb::PlacementStrategy::Pack)
        .await
        .unwrap();
    assert!(next.placement_group_id > pg.placement_group_id);
}
