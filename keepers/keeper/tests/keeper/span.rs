//! One cluster over three leases of three providers in three zones, served by two keepers
//! (keeper A serves leases 0 and 1, keeper B lease 2), addressed as one cluster through
//! `gpunet_task_client::cluster::ClusterClient`: a STRICT_SPREAD placement group over the three
//! zones, object refs passed between leases of different keepers, SPREAD over zones, and a
//! lease whose every worker dies (its zone going dark) losing no task: the client submits
//! them again on the other leases, re-making the lost lease's arguments from lineage and the
//! lost lease's part of a placement group on another worker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gpunet_keeper::{InMemoryLeases, InMemoryRegistry, KeeperHandle, LeaseInfo};
use gpunet_proto::v1 as pb;
use gpunet_task_client::cluster::{ClusterClient, ClusterError, Member, TaskRef};
use gpunet_task_client::{Client, spec};
use gpunet_worker::{DeclaredGpus, WorkerConfig, WorkerHandle};
use tokio_util::sync::CancellationToken;

use crate::common::{key, test_config};

const T: Duration = Duration::from_secs(30);

async fn start_keeper(
    leases: &[(&str, &str, u32)],
    user: [u8; 32],
) -> (KeeperHandle, Arc<InMemoryRegistry>) {
    let registry = Arc::new(InMemoryRegistry::new());
    let dir = Arc::new(InMemoryLeases::new());
    for (lease, provider, gpus) in leases {
        dir.insert(LeaseInfo {
            lease_id: lease.to_string(),
            user,
            provider: provider.to_string(),
            gpus: *gpus,
        });
    }
    let k = gpunet_keeper::start(
        test_config(),
        registry.clone(),
        dir,
        CancellationToken::new(),
    )
    .await
    .expect("keeper starts");
    (k, registry)
}

struct Scene {
    keepers: Vec<KeeperHandle>,
    workers: Vec<WorkerHandle>,
    /// Worker id → zone.
    zone_of: HashMap<String, String>,
    user: gpunet_task_client::SigningKey,
    _tmp: tempfile::TempDir,
}

/// Keeper A: lease-0 (provider p0: two 1-GPU workers in zone a), lease-1 (p1: one 2-GPU worker
/// in zone b); keeper B: lease-2 (p2: one 1-GPU worker in zone c).
async fn scene() -> Scene {
    let user = key(1);
    let pk = user.verifying_key().to_bytes();
    let (ka, ra) = start_keeper(&[("lease-0", "p0", 2), ("lease-1", "p1", 2)], pk).await;
    let (kb, rb) = start_keeper(&[("lease-2", "p2", 1)], pk).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Scene {
        keepers: vec![ka, kb],
        workers: Vec::new(),
        zone_of: HashMap::new(),
        user,
        _tmp: tmp,
    };
    for (seed, k, reg, provider, zone, gpus) in [
        (11, 0, &ra, "p0", "a", 1),
        (12, 0, &ra, "p0", "a", 1),
        (13, 0, &ra, "p1", "b", 2),
        (14, 1, &rb, "p2", "c", 1),
    ] {
        let wk = key(seed);
        reg.allow(provider, wk.verifying_key().to_bytes());
        let mut c = WorkerConfig::new(&s.keepers[k].url(), provider, wk);
        c.declared_gpus = Some(DeclaredGpus {
            count: gpus,
            model: "H100-sim".into(),
            memory_bytes: 80 << 30,
        });
        c.milli_cpus = 2000 * gpus;
        c.zone = zone.into();
        c.work_dir = s._tmp.path().join(format!("w{seed}"));
        c.backoff_max = Duration::from_millis(200);
        let h = gpunet_worker::spawn(c);
        s.zone_of.insert(h.id().to_string(), zone.into());
        s.workers.push(h);
    }
    s
}

impl Scene {
    async fn client(&self) -> ClusterClient {
        let mut members = Vec::new();
        for (index, k) in [(0u16, 0usize), (1, 0), (2, 1)] {
            let c = Client::connect(
                &self.keepers[k].url(),
                &format!("lease-{index}"),
                &self.user,
            )
            .await
            .expect("session");
            for _ in 0..400 {
                let v = c.cluster().await.unwrap();
                if v.gpus_ready == v.gpus_requested {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            members.push(Member { index, client: c });
        }
        ClusterClient::new(members)
    }

    async fn zone_ran(&self, c: &ClusterClient, r: TaskRef) -> String {
        let g = c.get(r, 0, T).await.unwrap();
        let st = g.status.unwrap();
        assert_eq!(st.state, pb::TaskState::Finished as i32, "{r}: {st:?}");
        self.zone_of[&st.worker_id].clone()
    }
}

/// The group's bundle workers, once every part is placed.
async fn created(c: &ClusterClient, id: u64) -> Vec<Option<String>> {
    for _ in 0..400 {
        let st = c.group_state(id).await.unwrap();
        if st.created {
            return st.bundle_workers;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("placement group {id} never placed");
}

/// `t` in bundle `bundle` of group `pg`.
fn in_bundle(mut t: pb::TaskSpec, pg: u64, bundle: usize) -> pb::TaskSpec {
    t.strategy = Some(spec::strategy(
        pb::scheduling_strategy::Kind::PlacementGroup(pb::PlacementGroupTarget {
            placement_group_id: pg,
            bundle_index: bundle as i32,
        }),
    ));
    t
}

fn echo(payload: &str) -> pb::TaskSpec {
    spec::builtin("echo", payload.to_string())
}

fn select_zone(mut s: pb::TaskSpec, zone: &str) -> pb::TaskSpec {
    s.label_selector.insert("zone".into(), zone.into());
    s
}

fn gpu(mut s: pb::TaskSpec) -> pb::TaskSpec {
    s.resources = Some(spec::resources(1000, 1));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_one_cluster_over_three_leases_and_two_keepers() {
    let s = scene().await;
    let c = s.client().await;
    let view = c.view().await;
    assert_eq!(view.totals(), (5, 4), "{view:?}");

    // A STRICT_SPREAD group of three GPUs: one bundle per zone, hence one per lease, and the
    // tasks of bundle i run in bundle i's zone.
    let g = c
        .create_placement_group(
            vec![spec::resources(1000, 1); 3],
            pb::PlacementStrategy::StrictSpread,
        )
        .await
        .unwrap();
    let mut leases: Vec<u16> = g.parts.iter().map(|(p, _)| p.lease).collect();
    leases.sort();
    assert_eq!(leases, vec![0, 1, 2]);
    let placed = created(&c, g.id).await;
    let bundle_zones: Vec<String> = placed
        .iter()
        .map(|w| s.zone_of[w.as_ref().unwrap()].clone())
        .collect();
    let mut distinct = bundle_zones.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{bundle_zones:?}");
    for (b, zone) in bundle_zones.iter().enumerate() {
        let t = in_bundle(gpu(echo("in-bundle")), g.id, b);
        let r = c.submit(vec![t]).await.unwrap()[0];
        assert_eq!(&s.zone_ran(&c, r).await, zone, "bundle {b}");
    }
    let bad = in_bundle(echo("x"), g.id, 3);
    assert!(
        matches!(c.submit(vec![bad]).await, Err(ClusterError::Invalid(e)) if e.contains("no bundle 3"))
    );
    // Removed from all three leases at once.
    c.remove_placement_group(g.id).await.unwrap();
    let v = c.view().await;
    for (l, info) in &v.leases {
        assert!(
            info.as_ref().unwrap().placement_groups.is_empty(),
            "lease {l}"
        );
    }
    let gone = in_bundle(echo("x"), g.id, 0);
    assert!(
        matches!(c.submit(vec![gone]).await, Err(ClusterError::Invalid(e)) if e.contains("no placement group"))
    );

    // An object made on keeper A's lease 0 is an argument of a task on keeper B's lease 2.
    let x = c.submit(vec![select_zone(echo("x"), "a")]).await.unwrap()[0];
    assert_eq!(x.lease, 0);
    let mut y = select_zone(echo("y"), "c");
    y.args.push(x.arg(0));
    let y = c.submit(vec![y]).await.unwrap()[0];
    assert_eq!(y.lease, 2);
    let out = c.get(y, 0, T).await.unwrap();
    assert_eq!(&out.data[..], b"yx");
    // A batch: the second task refers to the first and goes where it is.
    let mut q = echo("q");
    q.args.push(spec::arg_batch(0));
    let b = c
        .submit(vec![select_zone(echo("p"), "b"), q])
        .await
        .unwrap();
    assert_eq!((b[0].lease, b[1].lease), (1, 1));
    assert_eq!(&c.get(b[1], 0, T).await.unwrap().data[..], b"qp");

    // SPREAD: three copies, one per zone.
    let mut sp = echo("s");
    sp.strategy = Some(spec::strategy(pb::scheduling_strategy::Kind::Spread(
        pb::SpreadStrategy {},
    )));
    let refs = c.submit(vec![sp; 3]).await.unwrap();
    let mut zones = Vec::new();
    for r in refs {
        zones.push(s.zone_ran(&c, r).await);
    }
    zones.sort();
    assert_eq!(zones, ["a", "b", "c"]);
    // Nothing matches zone d: refused before anything is sent.
    let e = c
        .submit(vec![select_zone(echo("d"), "d")])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClusterError::Unschedulable(m) if m.contains("zone")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_lease_going_dark_loses_no_task_of_the_cluster() {
    let s = scene().await;
    let mut c = s.client().await;
    c.failover_after = Duration::from_millis(800);
    let c = c;
    let worker_c = s
        .zone_of
        .iter()
        .find(|(_, z)| *z == "c")
        .map(|(w, _)| w.clone())
        .unwrap();
    let on_c = |mut t: pb::TaskSpec| {
        // Soft affinity: on lease 2's worker while it lives, anywhere after.
        t.strategy = Some(spec::strategy(pb::scheduling_strategy::Kind::NodeAffinity(
            pb::NodeAffinity {
                worker_id: worker_c.clone(),
                soft: true,
            },
        )));
        t
    };
    // A long task on zone c, a task that needs its output, and one elsewhere.
    let long = c
        .submit(vec![on_c(spec::builtin("sleep", "3000"))])
        .await
        .unwrap()[0];
    assert_eq!(long.lease, 2);
    let mut dep = on_c(echo("dep"));
    dep.args.push(long.arg(0));
    let dep = c.submit(vec![dep]).await.unwrap()[0];
    assert_eq!(dep.lease, 2, "with its argument");
    let other = c
        .submit(vec![select_zone(spec::builtin("sleep", "500"), "b")])
        .await
        .unwrap()[0];
    let st = loop {
        let st = c.status(&[long]).await.unwrap().remove(0);
        if st.state == pb::TaskState::Running as i32 {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(st.worker_id, worker_c);
    // A STRICT_SPREAD group over the three zones, and a GPU task in its zone-c bundle.
    let g = c
        .create_placement_group(
            vec![spec::resources(1000, 1); 3],
            pb::PlacementStrategy::StrictSpread,
        )
        .await
        .unwrap();
    let placed = created(&c, g.id).await;
    let bundle_c = placed
        .iter()
        .position(|w| w.as_deref() == Some(worker_c.as_str()))
        .unwrap();
    let in_c = in_bundle(gpu(spec::builtin("sleep", "3000")), g.id, bundle_c);
    let in_c = c.submit(vec![in_c]).await.unwrap()[0];
    assert_eq!(in_c.lease, 2);
    // A second one queued behind it in the same bundle.
    let in_c2 = c
        .submit(vec![in_bundle(gpu(echo("second")), g.id, bundle_c)])
        .await
        .unwrap()[0];

    // Zone c goes dark: lease 2's only worker dies.
    for h in &s.workers {
        if h.id() == worker_c {
            h.kill();
        }
    }
    for r in [long, dep, other, in_c, in_c2] {
        let g = c.get(r, 0, Duration::from_secs(60)).await.unwrap();
        let st = g.status.unwrap();
        assert_eq!(st.state, pb::TaskState::Finished as i32, "{r}: {st:?}");
        assert_ne!(s.zone_of[&st.worker_id], "c", "{r}");
        if r == dep {
            assert_eq!(&g.data[..], b"dep", "the sleep's output is empty");
        }
    }
    assert_ne!(c.locate(long).lease, 2, "the ref follows the task");
    assert_ne!(c.locate(dep).lease, 2);
    assert_eq!(c.locate(other), other, "the task on a live lease stayed");
    // The group's zone-c bundle was made again on a live lease, on a worker none of its other
    // bundles holds (STRICT_SPREAD), and the bundle's task ran there.
    let healed = created(&c, g.id).await;
    let mut workers: Vec<&String> = healed.iter().map(|w| w.as_ref().unwrap()).collect();
    assert!(!workers.contains(&&worker_c), "{healed:?}");
    workers.sort();
    workers.dedup();
    assert_eq!(workers.len(), 3, "{healed:?}");
    for r in [in_c, in_c2] {
        let st = c.status(&[r]).await.unwrap().remove(0);
        assert_eq!(Some(&st.worker_id), healed[bundle_c].as_ref());
    }
    // The old part was removed from lease 2's keeper (it still answers: only its worker died).
    let v = c.view().await;
    let on_2 = v
        .leases
        .iter()
        .find(|(l, _)| *l == 2)
        .unwrap()
        .1
        .as_ref()
        .unwrap();
    assert!(
        on_2.placement_groups.is_empty(),
        "{:?}",
        on_2.placement_groups
    );
    // Its status is read where it is now.
    let st = c.status(&[long]).await.unwrap().remove(0);
    assert_eq!(st.state, pb::TaskState::Finished as i32);
    // New work goes to the live leases only.
    let r = c.submit(vec![gpu(echo("after"))]).await.unwrap()[0];
    assert_ne!(r.lease, 2);
    // What was left on lease 2's keeper was cancelled there (the task behind the moved one
    // failed with its cancelled dependency): nothing waits there to run twice.
    let left = c.list(pb::TaskState::Unspecified, 100).await.unwrap();
    let on_2: Vec<_> = left.iter().filter(|(t, _)| t.lease == 2).collect();
    assert_eq!(on_2.len(), 4);
    for (t, st) in on_2 {
        assert!(
            st.state == pb::TaskState::Cancelled as i32
                || st.error_kind == pb::ErrorKind::DependencyFailed as i32,
            "{t}: {st:?}"
        );
    }
}
