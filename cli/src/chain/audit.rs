//! `gpunet lease audit <LEASE>`: every checkpoint of a lease re-verified from the transcript
//! its keeper serves (`gpunet_sdk::audit`). Exits non-zero unless every checkpoint verifies.

use anyhow::{Result, bail};
use gpunet_sdk::audit::{AuditOutcome, audit_lease};
use gpunet_sdk::gpunet::state::Verdict;
use serde_json::json;
use solana_sdk::pubkey::Pubkey;

use super::explain;
use crate::Global;
use crate::output::{Spinner, print, table};

/// `gpunet lease audit`
pub async fn run(g: &Global, lease: Pubkey) -> Result<()> {
    let client = g.client();
    let sp = Spinner::start(g.output, format!("auditing lease {lease}"));
    let audits = audit_lease(&client, &lease).await;
    sp.stop();
    let audits = audits.map_err(|e| explain(e, "lease audit"))?;
    let label = |o: &AuditOutcome| match o {
        AuditOutcome::Verified { proofs } => format!("verified ({proofs} proof(s))"),
        AuditOutcome::Unavailable(why) => format!("unavailable: {why}"),
        AuditOutcome::Mismatch(why) => format!("MISMATCH: {why}"),
    };
    let verdict = |v: Verdict| match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::None => "none",
    };
    let rows: Vec<serde_json::Value> = audits
        .iter()
        .map(|a| {
            json!({
                "sequence": a.posted.sequence,
                "period_start": a.posted.period_start,
                "period_end": a.posted.period_end,
                "verdict": verdict(a.posted.verdict),
                "keeper": a.posted.keeper.to_string(),
                "paid_provider": a.posted.paid_provider,
                "digest": hex::encode(a.posted.proof_digest),
                "verified": matches!(a.outcome, AuditOutcome::Verified { .. }),
                "outcome": label(&a.outcome),
            })
        })
        .collect();
    let bad = audits
        .iter()
        .filter(|a| !matches!(a.outcome, AuditOutcome::Verified { .. }))
        .count();
    print(g.output, json!(rows), || {
        if audits.is_empty() {
            println!("lease {lease}: no checkpoint posted yet");
            return;
        }
        table(
            &["seq", "period", "verdict", "paid", "audit"],
            audits
                .iter()
                .map(|a| {
                    vec![
                        a.posted.sequence.to_string(),
                        format!("{}..{}", a.posted.period_start, a.posted.period_end),
                        verdict(a.posted.verdict).to_string(),
                        a.posted.paid_provider.to_string(),
                        label(&a.outcome),
                    ]
                })
                .collect(),
        );
    });
    if bad > 0 {
        bail!(
            "{bad} of {} checkpoint(s) of lease {lease} did not verify",
            audits.len()
        );
    }
    Ok(())
}
