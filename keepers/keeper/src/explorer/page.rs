//! The explorer's HTML: [`page`] is the whole document, [`body`] what its script swaps in every
//! two seconds. Every value from the chain is escaped.

use std::fmt::Write;

use gpunet_proto::v1 as pb;
use gpunet_sdk::events::GpunetEvent;
use gpunet_sdk::gpunet::state::{KeeperStatus, LeaseStatus, ProviderStatus, Verdict};
use gpunet_sdk::location;

use super::{LeaseView, Scope, View};

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .4em}
h3{font-size:1em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.2em 0 .8em}
th,td{border:1px solid #d0d7de;padding:.2em .6em;text-align:left;white-space:nowrap}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.muted{color:#656d76}section.lease{border-top:2px solid #d0d7de;margin-top:1em}
code{font-size:.95em}
";

const SCRIPT: &str = "
setInterval(async () => {
  try {
    const r = await fetch('/fragment', {cache: 'no-store'});
    if (r.ok) document.getElementById('view').innerHTML = await r.text();
  } catch (e) {}
}, 2000);
";

/// The whole page.
pub fn page(v: &View, rpc_url: &str, scope: Scope) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>gpunet explorer</title><style>{STYLE}</style></head><body>\
         <div id=\"view\">{}</div><script>{SCRIPT}</script></body></html>",
        body(v, rpc_url, scope)
    )
}

/// What the page shows, without the document around it.
pub fn body(v: &View, rpc_url: &str, scope: Scope) -> String {
    let mut h = String::new();
    let scope = match scope {
        Scope::All => "every lease".to_string(),
        Scope::Keeper(k) => format!("the leases of keeper {k}"),
    };
    let _ = write!(
        h,
        "<h1>gpunet explorer</h1><p class=\"muted\">chain {} · {} · chain time {} · read {} \
         time(s), every second</p>",
        esc(rpc_url),
        esc(&scope),
        v.chain_time,
        v.reads
    );
    if let Some(e) = &v.error {
        let _ = write!(h, "<p class=\"fail\">last read failed: {}</p>", esc(e));
    }
    match &v.config {
        Some(c) => {
            let _ = write!(
                h,
                "<p>mint <code>{}</code> · checkpoint every {} s · slash quorum {} of {} · {}</p>",
                c.mint,
                c.params.checkpoint_interval,
                c.params.slash_quorum,
                c.params.committee_size,
                if c.paused { "<b>paused</b>" } else { "running" }
            );
        }
        None => h.push_str("<p class=\"muted\">gpunet is not initialised on this chain yet</p>"),
    }
    providers(&mut h, v);
    keepers(&mut h, v);
    leases(&mut h, v);
    for l in &v.leases {
        lease(&mut h, l);
    }
    h
}

fn providers(h: &mut String, v: &View) {
    let _ = write!(h, "<h2>Providers ({})</h2>", v.providers.len());
    if v.providers.is_empty() {
        h.push_str("<p class=\"muted\">none registered</p>");
        return;
    }
    h.push_str(
        "<table id=\"providers\"><tr><th>provider</th><th>region</th><th>zone</th><th>GPUs \
         leased / offered</th><th>class</th><th>price / GPU·s</th><th>staked</th><th>locked</th>\
         <th>slashed</th><th>status</th><th>score</th><th>workers</th></tr>",
    );
    for (k, p) in &v.providers {
        let status = match p.status {
            ProviderStatus::Active => "active".to_string(),
            ProviderStatus::Unbonding => "unbonding".to_string(),
            ProviderStatus::Jailed => format!(
                "<span class=\"fail\">jailed</span> until {}",
                p.jailed_until
            ),
        };
        let _ = write!(
            h,
            "<tr><td><code>{k}</code></td><td>{}</td><td>{}</td><td class=\"n\">{} / {}</td>\
             <td>{:?}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{status}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&location(&p.region)),
            esc(&location(&p.zone)),
            p.gpus_leased,
            p.gpu.count,
            p.gpu.class,
            p.gpu.price_per_gpu_second,
            p.staked,
            p.locked,
            p.slashed_total,
            p.score,
            p.workers.len()
        );
    }
    h.push_str("</table>");
}

fn keepers(h: &mut String, v: &View) {
    let _ = write!(h, "<h2>Keepers ({})</h2>", v.keepers.len());
    if v.keepers.is_empty() {
        h.push_str("<p class=\"muted\">none registered</p>");
        return;
    }
    h.push_str(
        "<table id=\"keepers\"><tr><th>keeper</th><th>endpoint</th><th>status</th><th>bond</th>\
         <th>slashed</th><th>leases now</th><th>leases served</th><th>fees earned</th></tr>",
    );
    for (k, kp) in &v.keepers {
        let status = match kp.status {
            KeeperStatus::Active => "active",
            KeeperStatus::Draining => "draining",
            KeeperStatus::Unbonding => "unbonding",
        };
        let _ = write!(
            h,
            "<tr><td><code>{k}</code></td><td>{}</td><td>{status}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&kp.endpoint),
            kp.bond,
            kp.slashed_total,
            kp.leases_assigned,
            kp.leases_served,
            kp.fees_earned
        );
    }
    h.push_str("</table>");
}

fn status(l: &LeaseView) -> &'static str {
    if l.closed {
        return "closed";
    }
    match l.lease.status {
        LeaseStatus::Pending => "pending",
        LeaseStatus::Active => "active",
        LeaseStatus::Ended => "ended",
    }
}

fn leases(h: &mut String, v: &View) {
    let _ = write!(h, "<h2>Leases ({})</h2>", v.leases.len());
    if v.leases.is_empty() {
        h.push_str("<p class=\"muted\">none yet</p>");
        return;
    }
    h.push_str(
        "<table id=\"leases\"><tr><th>lease</th><th>status</th><th>GPUs</th><th>funded</th>\
         <th>escrow left</th><th>refunded</th><th>paid to provider</th><th>fees</th><th>compensation</th>\
         <th>checkpoints</th><th>last verdict</th><th>paid until</th></tr>",
    );
    for l in &v.leases {
        let x = &l.lease;
        let escrow = x.escrow_due().unwrap_or(0);
        let _ = write!(
            h,
            "<tr><td><a href=\"#lease-{a}\"><code>{a}</code></a></td><td>{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td>{}</td><td class=\"n\">{}</td></tr>",
            status(l),
            x.gpus,
            x.funded,
            if l.closed { 0 } else { escrow },
            x.refunded,
            x.paid_provider,
            x.paid_protocol.saturating_add(x.paid_keeper),
            x.compensation,
            x.last_sequence,
            if x.last_sequence == 0 {
                "—".to_string()
            } else {
                verdict(x.last_verdict).to_string()
            },
            x.paid_until,
            a = l.address
        );
    }
    h.push_str("</table>");
}

fn lease(h: &mut String, l: &LeaseView) {
    let x = &l.lease;
    let _ = write!(
        h,
        "<section class=\"lease\" id=\"lease-{a}\"><h2>Lease <code>{a}</code> ({})</h2>\
         <p>user <code>{}</code> · provider <code>{}</code> · keeper <code>{}</code> · committee {} \
         · {} GPU(s) at {} per GPU·s · stake locked {}</p>",
        status(l),
        x.user,
        x.provider,
        x.keeper,
        x.committee()
            .iter()
            .map(|k| format!("<code>{k}</code>"))
            .collect::<Vec<_>>()
            .join(", "),
        x.gpus,
        x.price_per_gpu_second,
        x.stake_locked,
        a = l.address
    );
    let checkpoints: Vec<_> = l
        .history
        .iter()
        .filter_map(|(e, slot)| match e {
            GpunetEvent::CheckpointPosted(c) => Some((c, slot)),
            _ => None,
        })
        .collect();
    let _ = write!(h, "<h3>Checkpoints ({})</h3>", checkpoints.len());
    if !checkpoints.is_empty() {
        h.push_str(
            "<table class=\"checkpoints\"><tr><th>#</th><th>period</th><th>seconds</th>\
             <th>verdict</th><th>score</th><th>paid to provider</th><th>digest</th><th>keeper</th>\
             <th>slot</th></tr>",
        );
        for (c, slot) in checkpoints {
            let _ = write!(
                h,
                "<tr><td class=\"n\">{}</td><td>{} → {}</td><td class=\"n\">{}</td><td>{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td><code>{}</code></td>\
                 <td><code>{}</code></td><td class=\"n\">{slot}</td></tr>",
                c.sequence,
                c.period_start,
                c.period_end,
                c.period_end - c.period_start,
                verdict(c.verdict),
                c.score,
                c.paid_provider,
                hex(&c.proof_digest[..8]),
                c.keeper
            );
        }
        h.push_str("</table>");
    }
    slashes(h, l);
    match &l.live {
        Some(live) => cluster(h, &live.cluster, &live.tasks),
        None if !l.closed && x.status == LeaseStatus::Active => h.push_str(
            "<p class=\"muted\">its cluster is served by a keeper outside this process</p>",
        ),
        None => {}
    }
    h.push_str("</section>");
}

fn slashes(h: &mut String, l: &LeaseView) {
    let mut rows = String::new();
    let mut n = 0;
    for (e, slot) in &l.history {
        let row = match e {
            GpunetEvent::ProviderSlashed(s) => format!(
                "<tr><td class=\"fail\">provider</td><td><code>{}</code></td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td><code>{}</code></td><td class=\"n\">{slot}</td></tr>",
                s.provider,
                s.gpus,
                s.gpus_left,
                s.slashed,
                s.to_user,
                s.to_treasury,
                hex(&s.evidence_digest[..8])
            ),
            GpunetEvent::KeeperSlashed(s) => format!(
                "<tr><td class=\"fail\">keeper</td><td><code>{}</code></td><td class=\"n\">—</td>\
                 <td class=\"n\">—</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td><code>{}</code></td><td class=\"n\">{slot}</td></tr>",
                s.keeper,
                s.slashed,
                s.to_user,
                s.to_treasury,
                hex(&s.evidence_digest[..8])
            ),
            _ => continue,
        };
        n += 1;
        rows.push_str(&row);
    }
    let _ = write!(h, "<h3>Slashes ({n})</h3>");
    if n > 0 {
        let _ = write!(
            h,
            "<table class=\"slashes\"><tr><th>who</th><th>account</th><th>GPUs slashed</th>\
             <th>GPUs left</th><th>slashed</th><th>to user</th><th>to treasury</th>\
             <th>evidence</th><th>slot</th></tr>{rows}</table>"
        );
    }
}

fn cluster(h: &mut String, c: &pb::ClusterInfo, tasks: &[pb::TaskStatus]) {
    let state = pb::ClusterState::try_from(c.state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("CLUSTER_STATE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let _ = write!(
        h,
        "<h3>Cluster: {state}, {} of {} GPU(s) ready</h3>",
        c.gpus_ready, c.gpus_requested
    );
    if !c.workers.is_empty() {
        h.push_str(
            "<table class=\"workers\"><tr><th>worker</th><th>zone</th><th>GPUs</th><th>model</th>\
             <th>running tasks</th><th>draining</th></tr>",
        );
        for w in &c.workers {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td>{}</td>\
                 <td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&w.worker_id),
                esc(&w.zone),
                w.gpus.len(),
                esc(&w.gpus.first().map(|g| g.model.clone()).unwrap_or_default()),
                w.running_tasks,
                if w.draining { "yes" } else { "no" }
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(h, "<h3>Tasks ({} most recent)</h3>", tasks.len());
    if !tasks.is_empty() {
        h.push_str(
            "<table class=\"tasks\"><tr><th>task</th><th>name</th><th>state</th><th>attempts</th>\
             <th>worker</th><th>error</th></tr>",
        );
        for t in tasks {
            let state = pb::TaskState::try_from(t.state)
                .map(|s| {
                    s.as_str_name()
                        .trim_start_matches("TASK_STATE_")
                        .to_lowercase()
                })
                .unwrap_or_default();
            let _ = write!(
                h,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{state}</td><td class=\"n\">{}</td>\
                 <td><code>{}</code></td><td>{}</td></tr>",
                t.task_id,
                esc(&t.name),
                t.attempts,
                esc(&t.worker_id),
                esc(&t.error)
            );
        }
        h.push_str("</table>");
    }
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "<span class=\"pass\">pass</span>",
        Verdict::Fail => "<span class=\"fail\">fail</span>",
        _ => "—",
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_chain_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert_eq!(location(b"eu-west\0\0\0"), "eu-west");
    }

    #[test]
    fn an_empty_view_renders_a_page_that_says_so() {
        let p = page(&View::default(), "http://127.0.0.1:8899", Scope::All);
        assert!(p.starts_with("<!doctype html>"));
        assert!(p.contains("not initialised"));
        assert!(p.contains("<h2>Providers (0)</h2>"));
        assert!(p.contains("fetch('/fragment'"));
    }
}
