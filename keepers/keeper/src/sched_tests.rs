//! The scheduler's unit tests.
use super::*;

fn spec(key: &str, cpus: u32, gpus: u32) -> WorkerSpec {
    WorkerSpec {
        key: key.into(),
        res: Res {
            milli_cpus: cpus * 1000,
            gpus,
            memory: 1 << 30,
        },
        gpu_model: "H100".into(),
        labels: Default::default(),
    }
}

fn in_zone(key: &str, cpus: u32, zone: &str) -> WorkerSpec {
    WorkerSpec {
        labels: gpunet_proto::labels::of_worker(zone, &Default::default()),
        ..spec(key, cpus, 0)
    }
}

fn selecting(r: Request, pairs: &[(&str, &str)]) -> Request {
    let m = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Request {
        labels: gpunet_proto::labels::Selector::parse(&m)
            .unwrap()
            .map(Arc::new),
        ..r
    }
}

#[test]
fn spread_takes_the_least_used_zone_first() {
    let mut s = Scheduler::new();
    // Two workers in zone a, one in b: spreading 3 tasks uses both zones before doubling up.
    let a1 = s.add_worker(in_zone("a1", 4, "a"));
    let a2 = s.add_worker(in_zone("a2", 4, "a"));
    let b1 = s.add_worker(in_zone("b1", 4, "b"));
    let r = req(1, 0, Strategy::Spread);
    let placed: Vec<WorkerIdx> = (0..4)
        .map(|t| match s.submit(t, &r) {
            Decision::Run(g) => g.worker,
            d => panic!("{d:?}"),
        })
        .collect();
    let zone = |w: WorkerIdx| if w == b1 { "b" } else { "a" };
    assert_ne!(zone(placed[0]), zone(placed[1]), "{placed:?}");
    assert_ne!(zone(placed[2]), zone(placed[3]), "{placed:?}");
    assert!(placed.contains(&a1) && placed.contains(&a2), "{placed:?}");
}

#[test]
fn label_selectors_restrict_workers_and_wait_when_none_match() {
    let mut s = Scheduler::new();
    let a = s.add_worker(in_zone("a", 1, "eu-west-1a"));
    let b = s.add_worker(in_zone("b", 1, "eu-west-1b"));
    let only_b = selecting(req(1, 0, Strategy::Default), &[("zone", "eu-west-1b")]);
    let Decision::Run(g) = s.submit(1, &only_b) else {
        panic!("should run")
    };
    assert_eq!(g.worker, b);
    // b is full: the next one waits rather than run in another zone.
    assert_eq!(s.submit(2, &only_b), Decision::Queued);
    let not_b = selecting(req(1, 0, Strategy::Spread), &[("zone", "!eu-west-1b")]);
    let Decision::Run(g2) = s.submit(3, &not_b) else {
        panic!("should run")
    };
    assert_eq!(g2.worker, a);
    let nowhere = selecting(req(1, 0, Strategy::Default), &[("region", "us-east")]);
    s.release(&g2);
    assert_eq!(s.submit(4, &nowhere), Decision::Queued);
}

fn req(cpus: u32, gpus: u32, strategy: Strategy) -> Request {
    Request {
        res: Res {
            milli_cpus: cpus * 1000,
            gpus,
            memory: 0,
        },
        gpu_model: None,
        labels: None,
        strategy,
    }
}

#[test]
fn queues_when_full_and_dispatches_on_release() {
    let mut s = Scheduler::new();
    let w = s.add_worker(spec("a", 1, 0));
    let r = req(1, 0, Strategy::Default);
    let Decision::Run(g) = s.submit(1, &r) else {
        panic!("should run")
    };
    assert_eq!(g.worker, w);
    assert_eq!(s.submit(2, &r), Decision::Queued);
    s.release(&g);
    let mut out = Vec::new();
    s.dispatch_queued(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 2);
    assert_eq!(s.queued(), 0);
}

#[test]
fn classes_take_turns_at_freed_resources() {
    let mut s = Scheduler::new();
    s.add_worker(spec("a", 1, 0));
    let (a, b) = (req(1, 0, Strategy::Default), req(1, 0, Strategy::Spread));
    let Decision::Run(mut g) = s.submit(1, &a) else {
        panic!("should run")
    };
    for i in 0..100 {
        assert_eq!(s.submit(10 + i, &a), Decision::Queued);
    }
    assert_eq!(s.submit(1000, &b), Decision::Queued);
    // One slot frees at a time: class b gets it within two releases, not after 100.
    let mut order = Vec::new();
    for _ in 0..4 {
        s.release(&g);
        let mut out = Vec::new();
        s.dispatch_queued(&mut out);
        assert_eq!(out.len(), 1);
        order.push(out[0].0);
        g = out.remove(0).1;
    }
    assert!(order[..2].contains(&1000), "{order:?}");
}

#[test]
fn pop_queued_takes_the_oldest_live_task_of_a_class() {
    let mut s = Scheduler::new();
    s.add_worker(spec("a", 1, 0));
    let r = req(1, 0, Strategy::Default);
    let Decision::Run(g) = s.submit(1, &r) else {
        panic!("should run")
    };
    for id in 2..6 {
        assert_eq!(s.submit(id, &r), Decision::Queued);
    }
    s.cancel_queued(2);
    assert_eq!(s.peek_queued(g.class), Some(3));
    assert_eq!(s.pop_queued(g.class), Some(3));
    assert_eq!(s.queued(), 2);
    assert!(!s.others_waiting(g.class, g.worker));
    // A class that can never run on the worker does not count.
    assert_eq!(s.submit(8, &req(1, 4, Strategy::Default)), Decision::Queued);
    assert!(!s.others_waiting(g.class, g.worker));
    assert_eq!(s.submit(9, &req(1, 0, Strategy::Spread)), Decision::Queued);
    assert!(s.others_waiting(g.class, g.worker));
    assert_eq!(s.pop_queued(g.class), Some(4));
    assert_eq!(s.pop_queued(g.class), Some(5));
    assert_eq!(s.pop_queued(g.class), None);
    // The emptied class left the dispatch list; the other class still gets the slot.
    s.release(&g);
    let mut out = Vec::new();
    s.dispatch_queued(&mut out);
    assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), vec![9]);
    assert_eq!(s.queued(), 1, "the 4-GPU task stays queued");
}

#[test]
fn gpu_ids_are_distinct() {
    let mut s = Scheduler::new();
    s.add_worker(spec("a", 8, 4));
    let r = req(1, 2, Strategy::Default);
    let Decision::Run(g1) = s.submit(1, &r) else {
        panic!()
    };
    let Decision::Run(g2) = s.submit(2, &r) else {
        panic!()
    };
    assert_eq!(g1.gpu_ids(), vec![0, 1]);
    assert_eq!(g2.gpu_ids(), vec![2, 3]);
    assert_eq!(s.submit(3, &r), Decision::Queued);
}

#[test]
fn strict_spread_needs_distinct_workers() {
    let mut s = Scheduler::new();
    s.add_worker(spec("a", 4, 0));
    s.add_worker(spec("b", 4, 0));
    let b = Res {
        milli_cpus: 1000,
        gpus: 0,
        memory: 0,
    };
    let pg = s.create_group(vec![b, b, b], PgStrategy::StrictSpread);
    assert!(!s.group_info(pg).unwrap().created);
    s.add_worker(spec("c", 4, 0));
    let mut out = Vec::new();
    s.dispatch_queued(&mut out);
    let info = s.group_info(pg).unwrap();
    assert!(info.created);
    let set: HashSet<_> = info.bundle_workers.iter().flatten().collect();
    assert_eq!(set.len(), 3);
}

#[test]
fn strict_spread_groups_spread_over_zones_first() {
    let mut s = Scheduler::new();
    // Two workers in zone a (listed first), two in b: two bundles land in both zones, four
    // take every worker.
    for (key, zone) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")] {
        s.add_worker(in_zone(key, 4, zone));
    }
    let b = Res {
        milli_cpus: 1000,
        gpus: 0,
        memory: 0,
    };
    let two = s.create_group(vec![b, b], PgStrategy::StrictSpread);
    let zones: HashSet<char> = s
        .group_info(two)
        .unwrap()
        .bundle_workers
        .iter()
        .flatten()
        .map(|w| w.chars().next().unwrap())
        .collect();
    assert_eq!(zones, HashSet::from(['a', 'b']));
    let four = s.create_group(vec![b, b, b, b], PgStrategy::Spread);
    let workers: HashSet<Arc<str>> = s
        .group_info(four)
        .unwrap()
        .bundle_workers
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(workers.len(), 4);
}

#[test]
fn strict_pack_on_one_worker() {
    let mut s = Scheduler::new();
    s.add_worker(spec("a", 2, 0));
    s.add_worker(spec("b", 4, 0));
    let b = Res {
        milli_cpus: 1000,
        gpus: 0,
        memory: 0,
    };
    let pg = s.create_group(vec![b, b, b], PgStrategy::StrictPack);
    let info = s.group_info(pg).unwrap();
    assert!(info.created);
    assert!(
        info.bundle_workers
            .iter()
            .all(|w| w.as_deref() == Some("b"))
    );
}

#[test]
fn hard_affinity_to_dead_worker_fails_queued_tasks() {
    let mut s = Scheduler::new();
    let a = s.add_worker(spec("a", 1, 0));
    let st = s
        .affinity(
            "a",
            false,
            &Res {
                milli_cpus: 1000,
                ..Default::default()
            },
        )
        .unwrap();
    let r = req(1, 0, st);
    assert!(matches!(s.submit(1, &r), Decision::Run(_)));
    assert_eq!(s.submit(2, &r), Decision::Queued);
    let failed = s.remove_worker(a);
    assert_eq!(failed.len(), 1);
    assert!(s.affinity("a", false, &Res::default()).is_err());
    assert_eq!(
        s.affinity("a", true, &Res::default()),
        Ok(Strategy::Default)
    );
}
