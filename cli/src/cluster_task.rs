//! `gpunet task --cluster ID …`: the tasks of a cluster opened from a spec (`gpunet cluster
//! open`), addressed as one cluster over its leases (`gpunet_sdk::task::cluster`): a task goes
//! to a lease that can run it, tasks are named `LEASE.TASK` (`2.17`), an argument made on one
//! lease reaches a task on another, and while this command waits for a task, one on a lease
//! that lost every worker is submitted again on the others.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use gpunet_sdk::task::cluster::{ClusterClient, TaskRef};
use gpunet_sdk::task::{pb, spec};
use serde_json::json;

use crate::Global;
use crate::output::{Output, Spinner};
use crate::task::{SubmitArgs, TaskCmd, build_spec, print_status_as, status_json};

/// Sessions on every reachable lease of the user's cluster `id`, and the leases left out.
async fn sessions(
    g: &Global,
    id: u32,
) -> Result<(ClusterClient, Vec<gpunet_sdk::cluster::LeftOut>)> {
    let key = g.signing_key()?;
    gpunet_sdk::cluster::connect(&g.client(), &key, id)
        .await
        .with_context(|| format!("connecting to cluster {id}"))
}

/// Sessions on every reachable lease of the user's cluster `id` (the others named on stderr).
pub async fn connect(g: &Global, id: u32) -> Result<ClusterClient> {
    let (c, left) = sessions(g, id).await?;
    for l in left {
        eprintln!(
            "warning: lease {} ({}) of cluster {id} left out: {}",
            l.index, l.lease, l.why
        );
    }
    Ok(c)
}

fn parse_refs(ids: &[String]) -> Result<Vec<TaskRef>> {
    ids.iter()
        .map(|s| s.parse::<TaskRef>().map_err(anyhow::Error::msg))
        .collect()
}

/// `gpunet task --cluster ID …`
pub async fn run(g: &Global, id: u32, failover_after: Duration, cmd: TaskCmd) -> Result<()> {
    let out = g.output;
    if matches!(cmd, TaskCmd::Watch { .. } | TaskCmd::Prove { .. }) {
        bail!("`task watch` and `task prove` work on one lease: give --lease instead of --cluster");
    }
    let mut c = connect(g, id).await?;
    c.failover_after = failover_after;
    let c = c;
    match cmd {
        TaskCmd::Submit(a) => submit(&c, out, *a).await,
        TaskCmd::Status { ids } => {
            let refs = parse_refs(&ids)?;
            for (r, s) in refs.iter().zip(c.status(&refs).await?) {
                print_status_as(out, &r.to_string(), &s);
            }
            Ok(())
        }
        TaskCmd::Cancel { ids } => {
            let refs = parse_refs(&ids)?;
            for (r, ok) in refs.iter().zip(c.cancel(&refs).await?) {
                match out {
                    Output::Json => {
                        println!("{}", json!({ "task": r.to_string(), "cancelled": ok }))
                    }
                    Output::Table => {
                        println!("{r}: {}", if ok { "cancelled" } else { "already done" })
                    }
                }
            }
            Ok(())
        }
        TaskCmd::Get { id, index, timeout } => {
            let r = parse_refs(&[id])?[0];
            let sp = Spinner::start(out, format!("waiting for task {r}"));
            let got = c.get(r, index, Duration::from_secs_f64(timeout)).await;
            sp.stop();
            let got = got?;
            let st = got.status.unwrap_or_default();
            let finished = got.ready && st.state == pb::TaskState::Finished as i32;
            match out {
                Output::Json => {
                    let mut v = status_json(&st);
                    v["task"] = json!(r.to_string());
                    v["ready"] = json!(got.ready);
                    v["output"] = json!(String::from_utf8_lossy(&got.data));
                    println!("{v}");
                }
                Output::Table if finished => {
                    use std::io::Write;
                    std::io::stdout().write_all(&got.data)?;
                }
                Output::Table => print_status_as(out, &r.to_string(), &st),
            }
            if !finished {
                std::process::exit(1);
            }
            Ok(())
        }
        TaskCmd::List { state, limit, .. } => {
            let st = crate::task::parse_state(state.as_deref())?;
            for (r, s) in c.list(st, limit).await? {
                print_status_as(out, &r.to_string(), &s);
            }
            Ok(())
        }
        TaskCmd::Cluster => show(&c, out, id).await,
        TaskCmd::Watch { .. } | TaskCmd::Prove { .. } => unreachable!("refused above"),
    }
}

async fn submit(c: &ClusterClient, out: Output, a: SubmitArgs) -> Result<()> {
    let spec = build_spec(&a)?;
    let refs = c.submit(vec![spec; a.count.max(1) as usize]).await?;
    if !a.wait {
        match out {
            Output::Json => {
                let ids: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
                println!("{}", json!({ "tasks": ids }))
            }
            Output::Table => refs.iter().for_each(|r| println!("{r}")),
        }
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(refs.len() as u64);
    bar.set_message("running");
    let mut failed = false;
    for r in &refs {
        let got = c.get(*r, 0, Duration::from_secs_f64(a.timeout)).await?;
        bar.inc(1);
        let st = got.status.unwrap_or_default();
        failed |= st.state != pb::TaskState::Finished as i32;
        let now = c.locate(*r);
        bar.suspend(|| match out {
            Output::Json => {
                let mut v = status_json(&st);
                v["task"] = json!(r.to_string());
                v["ran_as"] = json!(now.to_string());
                v["output"] = json!(String::from_utf8_lossy(&got.data));
                println!("{v}");
            }
            Output::Table => {
                let name = if now == *r {
                    r.to_string()
                } else {
                    format!("{r}→{now}")
                };
                print_status_as(out, &name, &st);
                if !got.data.is_empty() {
                    print!("{}", String::from_utf8_lossy(&got.data));
                }
            }
        });
    }
    bar.finish_and_clear();
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Every lease's cluster, and the totals.
async fn show(c: &ClusterClient, out: Output, id: u32) -> Result<()> {
    let view = c.view().await;
    let (gpus, workers) = view.totals();
    match out {
        Output::Json => {
            let leases: Vec<_> = view
                .leases
                .iter()
                .map(|(i, v)| match v {
                    Ok(v) => json!({
                        "index": i, "lease": v.lease_id, "provider": v.provider,
                        "state": v.state().label(), "gpus_requested": v.gpus_requested,
                        "gpus_ready": v.gpus_ready,
                        "workers": v.workers.iter().map(|w| json!({
                            "id": w.worker_id, "zone": w.zone, "gpus": w.gpus.len(),
                            "running": w.running_tasks, "draining": w.draining,
                        })).collect::<Vec<_>>(),
                    }),
                    Err(e) => json!({ "index": i, "error": e.message() }),
                })
                .collect();
            println!(
                "{}",
                json!({ "cluster": id, "gpus_ready": gpus, "workers": workers, "leases": leases })
            );
        }
        Output::Table => {
            println!(
                "cluster {id}: {} leases, {gpus} GPUs ready on {workers} workers",
                view.leases.len()
            );
            for (i, v) in &view.leases {
                match v {
                    Ok(v) => {
                        println!(
                            "  {i}: lease {} ({}): {} — {}/{} GPUs",
                            v.lease_id,
                            v.provider,
                            v.state().label(),
                            v.gpus_ready,
                            v.gpus_requested
                        );
                        for w in &v.workers {
                            println!(
                                "       {}  zone={}  gpus={}  running={}",
                                w.worker_id,
                                w.zone,
                                w.gpus.len(),
                                w.running_tasks
                            );
                        }
                    }
                    Err(e) => println!("  {i}: unreachable: {}", e.message()),
                }
            }
        }
    }
    Ok(())
}

/// What building a cluster's runtime env on its workers came to.
pub struct Built {
    /// Workers it was built on (or tried).
    pub workers: usize,
    /// Per worker: (lease index, worker id, seconds it took).
    pub ok: Vec<(u16, String, f64)>,
    /// Per worker that failed: (lease index, worker id, the installer's error).
    pub failed: Vec<(u16, String, String)>,
}

impl Built {
    pub fn json(&self) -> serde_json::Value {
        json!({
            "workers": self.workers,
            "built": self.ok.iter().map(|(l, w, s)| json!({"lease": l, "worker": w, "seconds": s})).collect::<Vec<_>>(),
            "failed": self.failed.iter().map(|(l, w, e)| json!({"lease": l, "worker": w, "error": e})).collect::<Vec<_>>(),
        })
    }

    pub fn print(&self) {
        println!(
            "runtime env built on {} of {} workers",
            self.ok.len(),
            self.workers
        );
        for (l, w, e) in &self.failed {
            println!("  lease {l}, worker {w}: {e}");
        }
    }
}

/// Waits until every lease of cluster `id` has all its GPUs, then builds `env` on each of
/// their workers (one no-op task with the env pinned to each), showing progress.
pub async fn build_env(
    g: &Global,
    id: u32,
    env: pb::RuntimeEnv,
    timeout: Duration,
) -> Result<Built> {
    let deadline = tokio::time::Instant::now() + timeout;
    let sp = Spinner::start(g.output, format!("cluster {id}: waiting for its workers"));
    // Every lease's keeper must know the lease (it learns it from the chain, just opened).
    let c = loop {
        let why = match sessions(g, id).await {
            Ok((c, left)) if left.is_empty() => break c,
            Ok((_, left)) => left
                .iter()
                .map(|l| format!("lease {}: {}", l.index, l.why))
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => format!("{e:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("not every lease's keeper could be reached within {timeout:?}: {why}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let view = loop {
        let v = c.view().await;
        let ready = v.leases.iter().all(|(_, l)| {
            l.as_ref()
                .is_ok_and(|l| l.gpus_requested > 0 && l.gpus_ready >= l.gpus_requested)
        });
        if ready {
            break v;
        }
        let (gpus, _) = v.totals();
        sp.set(format!(
            "cluster {id}: waiting for its workers ({gpus} GPUs ready)"
        ));
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the cluster's workers were not all there within {timeout:?} ({gpus} GPUs ready)"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut pinned = Vec::new();
    for (lease, info) in &view.leases {
        for w in info.as_ref().map(|i| i.workers.clone()).unwrap_or_default() {
            let mut t = spec::process(&["true"]);
            t.name = "runtime-env build".into();
            if let Some(pb::task_spec::Executor::Process(p)) = t.executor.as_mut() {
                p.runtime_env = Some(env.clone());
            }
            t.resources = Some(spec::resources(0, 0));
            t.max_retries = Some(0);
            t.strategy = Some(spec::strategy(pb::scheduling_strategy::Kind::NodeAffinity(
                pb::NodeAffinity {
                    worker_id: w.worker_id.clone(),
                    soft: false,
                },
            )));
            pinned.push((*lease, w.worker_id, t));
        }
    }
    let workers = pinned.len();
    let started = std::time::Instant::now();
    let refs = c
        .submit(pinned.iter().map(|(_, _, t)| t.clone()).collect())
        .await?;
    let mut built = Built {
        workers,
        ok: Vec::new(),
        failed: Vec::new(),
    };
    for (r, (lease, worker, _)) in refs.iter().zip(pinned) {
        sp.set(format!(
            "cluster {id}: building its runtime env on {workers} workers ({} done)",
            built.ok.len() + built.failed.len()
        ));
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let got = c.get(*r, 0, left).await?;
        let st = got.status.unwrap_or_default();
        if got.ready && st.state == pb::TaskState::Finished as i32 {
            built
                .ok
                .push((lease, worker, started.elapsed().as_secs_f64()));
        } else {
            let why = if st.error.is_empty() {
                format!("not built within {timeout:?}")
            } else {
                st.error
            };
            built.failed.push((lease, worker, why));
        }
    }
    sp.stop();
    Ok(built)
}
