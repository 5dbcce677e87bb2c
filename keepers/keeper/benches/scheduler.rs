//! Scheduler benchmark (criterion): time per scheduling decision with 1,000 → 100,000
//! simulated workers, with and without a backlog of up to 1,000,000 queued tasks, and memory
//! per queued task (counted by a global allocator wrapper, printed once).
//!
//! Run: `cargo bench -p gpunet-keeper --bench scheduler`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gpunet_keeper::sched::{Decision, Request, Res, Scheduler, Strategy, WorkerSpec};

struct Counting;
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        ALLOCATED.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCATED.fetch_add(n, Ordering::Relaxed);
        ALLOCATED.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn cluster(n: usize) -> Scheduler {
    let mut s = Scheduler::new();
    for i in 0..n {
        s.add_worker(WorkerSpec {
            key: format!("w{i}").into(),
            res: Res {
                milli_cpus: 8000,
                gpus: 8,
                memory: 64 << 30,
            },
            gpu_model: "H100".into(),
            labels: Default::default(),
        });
    }
    s
}

fn req(strategy: Strategy) -> Request {
    Request {
        res: Res {
            milli_cpus: 1000,
            gpus: 1,
            memory: 0,
        },
        gpu_model: None,
        labels: None,
        strategy,
    }
}

fn decisions(c: &mut Criterion) {
    let mut g = c.benchmark_group("decision");
    for &n in &[1_000usize, 10_000, 100_000] {
        for (name, st) in [("default", Strategy::Default), ("spread", Strategy::Spread)] {
            // Half-loaded cluster: each iteration places one task and releases the oldest one.
            let mut s = cluster(n);
            let r = req(st);
            let mut live = std::collections::VecDeque::new();
            let mut id = 0u64;
            for _ in 0..n * 4 {
                id += 1;
                if let Decision::Run(gr) = s.submit(id, &r) {
                    live.push_back(gr);
                }
            }
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    id += 1;
                    if let Decision::Run(gr) = s.submit(black_box(id), &r) {
                        live.push_back(gr);
                    }
                    if let Some(old) = live.pop_front() {
                        s.release(&old);
                    }
                })
            });
        }
    }
    g.finish();
}

fn backlog(c: &mut Criterion) {
    let mut g = c.benchmark_group("full_cluster_backlog");
    g.sample_size(20);
    for &(n, queued) in &[(1_000usize, 100_000usize), (100_000, 1_000_000)] {
        // Full cluster plus a backlog: each iteration frees one slot and dispatches the head.
        let mut s = cluster(n);
        let r = req(Strategy::Default);
        let mut live = std::collections::VecDeque::new();
        let mut id = 0u64;
        while let Decision::Run(gr) = {
            id += 1;
            s.submit(id, &r)
        } {
            live.push_back(gr);
        }
        let before = ALLOCATED.load(Ordering::Relaxed);
        for _ in 1..queued {
            id += 1;
            let _ = s.submit(id, &r);
        }
        let bytes = ALLOCATED.load(Ordering::Relaxed).saturating_sub(before);
        println!(
            "memory: {queued} queued tasks on {n} workers: scheduler queues {:.1} B/task; keeper task record {} B + spec",
            bytes as f64 / queued as f64,
            gpunet_keeper::core::task_struct_bytes()
        );
        let mut out = Vec::new();
        g.bench_function(
            BenchmarkId::new("release_and_dispatch", format!("{n}w_{queued}q")),
            |b| {
                b.iter(|| {
                    if let Some(old) = live.pop_front() {
                        s.release(&old);
                    }
                    out.clear();
                    s.dispatch_queued(&mut out);
                    for (_, gr) in out.drain(..) {
                        live.push_back(gr);
                    }
                    // Keep the backlog topped up.
                    id += 1;
                    let _ = s.submit(id, &r);
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, decisions, backlog);
criterion_main!(benches);
