use super::*;
use crate::spec;

fn room(lease: LeaseIdx, worker: &str, zone: &str, gpus: u32) -> Room {
    Room {
        lease,
        worker: worker.into(),
        zone: zone.into(),
        labels: labels::of_worker(zone, &Default::default()),
        gpus,
        gpu_model: if gpus > 0 {
            "H100-sim".into()
        } else {
            String::new()
        },
        milli_cpus: 4000,
        memory: 16 << 30,
    }
}

/// Three leases in three zones: lease 0 has two 1-GPU workers in zone a, lease 1 one 2-GPU
/// worker in zone b, lease 2 one 1-GPU worker in zone c.
fn cluster() -> Vec<Room> {
    vec![
        room(0, "w0", "a", 1),
        room(0, "w1", "a", 1),
        room(1, "w2", "b", 2),
        room(2, "w3", "c", 1),
    ]
}

fn gpu_task(gpus: u32) -> pb::TaskSpec {
    let mut s = spec::builtin("noop", "");
    s.resources = Some(spec::resources(1000, gpus));
    s
}

fn spread(mut s: pb::TaskSpec) -> pb::TaskSpec {
    s.strategy = Some(spec::strategy(pb::scheduling_strategy::Kind::Spread(
        pb::SpreadStrategy {},
    )));
    s
}

fn bundle(gpus: u32) -> pb::Resources {
    spec::resources(1000, gpus)
}

#[test]
fn default_balances_by_capacity_and_prefers_where_the_arguments_are() {
    let rooms = cluster();
    let mut load = Load::default();
    let mut got = Vec::new();
    for _ in 0..8 {
        let c = choose_lease(&rooms, &gpu_task(1), &[], &[], &load).unwrap();
        load.record(c.lease, None);
        got.push(c.lease);
    }
    let count = |l| got.iter().filter(|x| **x == l).count() as f64;
    // Leases 0 and 1 have two GPUs each, lease 2 one: each gets its share of 8 tasks
    // (3.2, 3.2, 1.6) to within one task.
    for (l, share) in [(0, 3.2), (1, 3.2), (2, 1.6)] {
        assert!((count(l) - share).abs() < 1.0, "{got:?}");
    }
    // A task whose argument is on lease 2 goes there, though lease 2 is the most loaded.
    let c = choose_lease(&rooms, &gpu_task(1), &[2], &[], &load).unwrap();
    assert_eq!(c.lease, 2);
    // ... unless lease 2 cannot run it (two GPUs on one worker: only lease 1 can).
    let c = choose_lease(&rooms, &gpu_task(2), &[2], &[], &load).unwrap();
    assert_eq!(c.lease, 1);
    // An excluded (dark) lease is never chosen, even where the arguments are.
    let c = choose_lease(&rooms, &gpu_task(1), &[2], &[2], &load).unwrap();
    assert_ne!(c.lease, 2);
}

#[test]
fn spread_goes_over_zones_first() {
    let rooms = cluster();
    let mut load = Load::default();
    let mut zones = Vec::new();
    for _ in 0..6 {
        let c = choose_lease(&rooms, &spread(gpu_task(1)), &[], &[], &load).unwrap();
        load.record(c.lease, c.spread_zone.as_deref());
        zones.push(c.spread_zone.unwrap());
    }
    assert_eq!(zones, ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn selectors_affinity_and_what_fits_nowhere() {
    let rooms = cluster();
    let load = Load::default();
    let mut s = gpu_task(1);
    s.label_selector.insert("zone".into(), "in(b,c)".into());
    let mut seen: Vec<LeaseIdx> = (0..4)
        .map(|_| choose_lease(&rooms, &s, &[], &[], &load).unwrap().lease)
        .collect();
    seen.dedup();
    assert!(seen.iter().all(|l| *l == 1 || *l == 2), "{seen:?}");
    s.label_selector.insert("zone".into(), "d".into());
    let e = choose_lease(&rooms, &s, &[], &[], &load).unwrap_err();
    assert!(e.contains("no live worker") && e.contains("zone"), "{e}");
    let e = choose_lease(&rooms, &gpu_task(3), &[], &[], &load).unwrap_err();
    assert!(e.contains("3 GPUs"), "{e}");
    let mut m = gpu_task(1);
    m.resources.as_mut().unwrap().gpu_model = "A100".into();
    assert!(choose_lease(&rooms, &m, &[], &[], &load).is_err());

    let affinity = |worker: &str, soft| {
        let mut s = gpu_task(1);
        s.strategy = Some(spec::strategy(pb::scheduling_strategy::Kind::NodeAffinity(
            pb::NodeAffinity {
                worker_id: worker.into(),
                soft,
            },
        )));
        choose_lease(&rooms, &s, &[], &[], &load)
    };
    assert_eq!(affinity("w3", false).unwrap().lease, 2);
    assert!(affinity("gone", false).unwrap_err().contains("gone"));
    assert!(affinity("gone", true).is_ok(), "soft falls back");
    let mut bad = gpu_task(1);
    bad.label_selector.insert("zone".into(), "in(a,)".into());
    assert!(choose_lease(&rooms, &bad, &[], &[], &load).is_err());
}

#[test]
fn groups_split_over_leases_by_strategy() {
    use pb::PlacementStrategy as S;
    let rooms = cluster();
    // STRICT_SPREAD of three: one bundle in each zone, so one in each lease.
    let p = plan_group(&rooms, &[bundle(1), bundle(1), bundle(1)], S::StrictSpread).unwrap();
    assert_eq!(
        p,
        vec![
            Part {
                lease: 0,
                bundles: vec![0]
            },
            Part {
                lease: 1,
                bundles: vec![1]
            },
            Part {
                lease: 2,
                bundles: vec![2]
            },
        ]
    );
    // Four: the fourth on zone a's other worker; five: no worker left.
    let p = plan_group(&rooms, &vec![bundle(1); 4], S::StrictSpread).unwrap();
    assert_eq!(p[0].bundles, vec![0, 3]);
    let e = plan_group(&rooms, &vec![bundle(1); 5], S::StrictSpread).unwrap_err();
    assert!(e.contains("bundle 4"), "{e}");
    // SPREAD of five reuses lease 1's two-GPU worker.
    let p = plan_group(&rooms, &vec![bundle(1); 5], S::Spread).unwrap();
    let n: usize = p.iter().map(|p| p.bundles.len()).sum();
    assert_eq!(n, 5);
    assert_eq!(p.iter().find(|p| p.lease == 1).unwrap().bundles.len(), 2);
    // PACK of two GPUs fits one lease (0 or 1 by capacity order: both have two).
    let p = plan_group(&rooms, &[bundle(1), bundle(1)], S::Pack).unwrap();
    assert_eq!(p.len(), 1);
    // PACK of four GPUs spans leases.
    let p = plan_group(&rooms, &vec![bundle(1); 4], S::Pack).unwrap();
    assert!(p.len() > 1);
    // STRICT_PACK of two GPUs: only lease 1's worker holds both; of three: nobody.
    let p = plan_group(&rooms, &[bundle(1), bundle(1)], S::StrictPack).unwrap();
    assert_eq!(
        p,
        vec![Part {
            lease: 1,
            bundles: vec![0, 1]
        }]
    );
    assert!(plan_group(&rooms, &vec![bundle(1); 3], S::StrictPack).is_err());
    assert!(plan_group(&rooms, &[], S::Pack).is_err());
}

#[test]
fn strict_spread_counts_a_worker_shared_by_two_leases_once() {
    // One machine serving leases 0 and 1 of the cluster (a provider with two leases).
    let rooms = vec![room(0, "w", "a", 1), room(1, "w", "a", 1)];
    assert!(
        plan_group(
            &rooms,
            &[bundle(1), bundle(1)],
            pb::PlacementStrategy::StrictSpread
        )
        .is_err()
    );
}

#[test]
fn rooms_skip_dead_and_draining_workers() {
    let w = |id: &str, alive, draining| pb::WorkerInfo {
        worker_id: id.into(),
        zone: "a".into(),
        alive,
        draining,
        milli_cpus: 1000,
        ..Default::default()
    };
    let v = pb::ClusterInfo {
        workers: vec![
            w("x", true, false),
            w("y", false, false),
            w("z", true, true),
        ],
        ..Default::default()
    };
    let r = rooms([(3, &v)]);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].lease, r[0].worker.as_str()), (3, "x"));
    assert_eq!(r[0].labels.get("zone").map(String::as_str), Some("a"));
}
