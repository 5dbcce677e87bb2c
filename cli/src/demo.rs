//! `gpunet localnet --demo`: one whole lease on the localnet's demo provider, narrated as it
//! happens. A user opens a lease through the SDK as a dApp would; the cluster comes up; a
//! small DAG of tasks runs; a checkpoint backed by benchmark proofs pays the provider; one
//! worker starts skipping its proof work and the committee slashes the provider for that
//! worker's GPUs; the lease goes on with the healthy GPUs, whose next period is paid at their
//! smaller price; the user closes the lease and is refunded. It ends with every party's balance before and after,
//! adding up to the token supply.
//!
//! The chain's clock is moved forward by each checkpoint interval (surfpool's time travel), so
//! the demo takes seconds, not the interval.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gpunet_sdk::gpunet::instructions::LeaseOpenArgs;
use gpunet_sdk::gpunet::state::{LeaseStatus, Verdict};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::task::{Client, SigningKey, pb, spec};
use gpunet_sdk::{GpunetClient, SdkError, pda, token};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use crate::localnet_system::System;

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`.
async fn until<T, F: std::future::Future<Output = Result<Option<T>>>>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> F,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn balance(client: &GpunetClient, account: &Pubkey) -> Result<u64> {
    match client.token_balance(account).await {
        Ok(b) => Ok(b),
        Err(SdkError::NotFound { .. }) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Every party's token accounts, by name.
fn accounts(
    sys: &System,
    admin: &Pubkey,
    mint: &Pubkey,
    treasury: &Pubkey,
    lease: &Pubkey,
) -> Vec<(String, Pubkey)> {
    let mut v = vec![
        (
            "admin (mint authority)".to_string(),
            token::ata(admin, mint),
        ),
        ("user".to_string(), token::ata(&sys.user.pubkey(), mint)),
        ("lease escrow".to_string(), pda::lease_vault(lease)),
        (
            "provider".to_string(),
            token::ata(&sys.provider_wallet, mint),
        ),
        (
            "provider stake".to_string(),
            pda::provider_vault(&pda::provider(&sys.provider_wallet)),
        ),
    ];
    for (i, k) in sys.keeper_wallets.iter().enumerate() {
        v.push((format!("keeper-{}", i + 1), token::ata(k, mint)));
        v.push((
            format!("keeper-{} bond", i + 1),
            pda::keeper_vault(&pda::keeper(k)),
        ));
    }
    v.push(("treasury".to_string(), *treasury));
    v
}

async fn snapshot(client: &GpunetClient, accounts: &[(String, Pubkey)]) -> Result<Vec<u64>> {
    let mut v = Vec::with_capacity(accounts.len());
    for (_, a) in accounts {
        v.push(balance(client, a).await?);
    }
    Ok(v)
}

async fn supply(client: &GpunetClient, mint: &Pubkey) -> Result<u64> {
    let s = client
        .rpc()
        .get_token_supply(mint)
        .await
        .map_err(SdkError::from)?;
    s.amount.parse().context("token supply")
}

/// What a demo did: its lease, and every party's balance before and after (the table it
/// printed; the in-process test checks each change against the lease's history).
pub struct Demo {
    pub lease: Pubkey,
    #[cfg_attr(not(test), allow(dead_code))]
    pub accounts: Vec<(String, Pubkey)>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub before: Vec<u64>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub after: Vec<u64>,
}

/// Runs the demo on the localnet at `client` (admin: the mint authority's wallet).
pub async fn run(
    client: &GpunetClient,
    admin: &Pubkey,
    sys: &System,
    out: &mut dyn Write,
) -> Result<Demo> {
    let say = |out: &mut dyn Write, s: String| -> Result<()> {
        writeln!(out, "{s}")?;
        Ok(out.flush()?)
    };
    let config = client.config().await?;
    let (mint, treasury) = (config.mint, config.treasury);
    let user = &sys.user;
    let provider = pda::provider(&sys.provider_wallet);
    let p = client.provider(&sys.provider_wallet).await?;
    say(out, String::new())?;
    say(
        out,
        format!(
            "demo 1/8  provider {provider}: {} GPU(s) at {} per GPU-second, {} staked, {} worker key(s) listed",
            p.gpu.count,
            p.gpu.price_per_gpu_second,
            p.staked,
            p.workers.len()
        ),
    )?;

    // A lease, opened as a dApp would: the SDK's instruction builder, the user's signature.
    let nonce = client.chain_time().await? as u64;
    let lease = pda::lease(&user.pubkey(), nonce);
    let gpus = p.gpu.count;
    let args = LeaseOpenArgs {
        nonce,
        gpus,
        duration: 3 * config.params.checkpoint_interval,
        max_price_per_gpu_second: p.gpu.price_per_gpu_second,
    };
    let user_token = token::ata(&user.pubkey(), &mint);
    let names = accounts(sys, admin, &mint, &treasury, &lease);
    let before = snapshot(client, &names).await?;
    let open = ix::lease_open(
        &user.pubkey(),
        &user.pubkey(),
        &user_token,
        &provider,
        &mint,
        args,
    );
    client
        .send(&[open], user, &[])
        .await
        .context("lease_open")?;
    let opened = Instant::now();
    client
        .draw_committee(user, &lease)
        .await
        .context("committee draw")?;
    let l = client.lease(&lease).await?;
    let keeper = client
        .fetch::<gpunet_sdk::Keeper>("keeper", &l.keeper)
        .await?;
    say(
        out,
        format!(
            "demo 2/8  lease {lease}: {gpus} GPU(s), {} escrowed; committee of {} drawn, served by keeper {} ({})",
            l.funded,
            l.committee().len(),
            l.keeper,
            keeper.endpoint
        ),
    )?;

    // The cluster: the provider's workers join the lease's keeper.
    let key = SigningKey::from_bytes(user.secret_bytes());
    let c = until(
        Duration::from_secs(30),
        "a session with the lease's keeper",
        || async {
            Ok(Client::connect(&keeper.endpoint, &lease.to_string(), &key)
                .await
                .ok())
        },
    )
    .await?;
    let info = until(Duration::from_secs(60), "the cluster ready", || async {
        let i = c.cluster().await.map_err(|e| anyhow!("{e}"))?;
        Ok((i.state() == pb::ClusterState::Ready).then_some(i))
    })
    .await?;
    say(
        out,
        format!(
            "demo 3/8  cluster ready {} ms after the lease transaction: {} worker(s), {} GPU(s)",
            opened.elapsed().as_millis(),
            info.workers.len(),
            info.gpus_ready
        ),
    )?;

    // A small DAG: two values, their product as an expression, evaluated by a process.
    let t = Instant::now();
    let mut times = spec::builtin("echo", "");
    times.args = vec![spec::arg_batch(0), spec::arg_value("*"), spec::arg_batch(1)];
    let ids = c
        .submit(vec![
            spec::builtin("echo", "6"),
            spec::builtin("echo", "7"),
            times,
        ])
        .await
        .map_err(|e| anyhow!("submit: {e}"))?;
    // Its stdin is the expression's object (a reference to a task already submitted).
    let mut eval = spec::process(&["sh", "-c", "read e; echo $(($e))"]);
    if let Some(pb::task_spec::Executor::Process(p)) = eval.executor.as_mut() {
        p.stdin = Some(spec::arg_ref(ids[2], 0));
    }
    let ids = c
        .submit(vec![eval])
        .await
        .map_err(|e| anyhow!("submit: {e}"))?;
    let got = c
        .get(ids[0], 0, Duration::from_secs(60))
        .await
        .map_err(|e| anyhow!("result: {e}"))?;
    let answer = String::from_utf8_lossy(&got.data).trim().to_string();
    if answer != "42" {
        bail!("the DAG answered {answer:?}, not 42");
    }
    say(
        out,
        format!(
            "demo 4/8  DAG of 4 tasks (6, 7, their product as \"6*7\", evaluated by sh) → {} in {} ms",
            answer,
            t.elapsed().as_millis()
        ),
    )?;

    // A period passes on the chain's clock: the keeper proves every worker and is paid.
    // The clock jumps past the period's end at once, so the wall time from the jump to the
    // confirmed checkpoint is the checkpoint lag: the keeper noticing, proving every worker,
    // and the transaction landing.
    let interval = l.terms.checkpoint_interval;
    client.time_travel_by(interval + 1).await?;
    let due = Instant::now();
    let l1 = until(Duration::from_secs(60), "the first checkpoint", || async {
        let l = client.lease(&lease).await?;
        Ok((l.last_sequence >= 1).then_some(l))
    })
    .await?;
    say(
        out,
        format!(
            "demo 5/8  checkpoint 1 ({}) confirmed {} ms after its period ended: {} s verified, provider paid {}, digest {}",
            if l1.last_verdict == Verdict::Pass {
                "pass"
            } else {
                "fail"
            },
            due.elapsed().as_millis(),
            l1.paid_until - l1.start,
            l1.paid_provider,
            hex::encode(&l1.last_digest[..8])
        ),
    )?;

    // One worker starts skipping the work: its next proof fails on its own signed tiles and
    // the committee slashes the provider for that worker's GPUs.
    if let Some(s) = sys.shirk.last() {
        s.store(true, Ordering::SeqCst);
    }
    client.time_travel_by(interval + 1).await?;
    let slashed = until(Duration::from_secs(90), "the slash", || async {
        let l = client.lease(&lease).await?;
        Ok((l.status == LeaseStatus::Ended || l.compensation > l1.compensation).then_some(l))
    })
    .await?;
    let p2 = client.provider(&sys.provider_wallet).await?;
    let goes_on = slashed.status == LeaseStatus::Active;
    say(
        out,
        format!(
            "demo 6/8  worker skipped its proof work → period {} posted Fail, provider slashed {} for {} GPU(s) by the \
         committee ({} to the user, the rest to the treasury), provider jailed; {}",
            slashed.last_sequence,
            p.staked.saturating_sub(p2.staked),
            l1.gpus - if goes_on { slashed.gpus } else { 0 },
            slashed.compensation,
            if goes_on {
                format!("lease goes on with {} healthy GPU(s)", slashed.gpus)
            } else {
                "lease ended".to_string()
            }
        ),
    )?;
    if let Some(s) = sys.shirk.last() {
        s.store(false, Ordering::SeqCst);
    }

    // The healthy GPUs work another period: it is paid at their (smaller) price.
    let ended = if goes_on {
        let seq = slashed.last_sequence + 1;
        client.time_travel_by(interval + 1).await?;
        let due = Instant::now();
        let l3 = until(Duration::from_secs(60), "the next checkpoint", || async {
            let l = client.lease(&lease).await?;
            Ok((l.last_sequence >= seq).then_some(l))
        })
        .await?;
        say(
            out,
            format!(
                "demo 7/8  checkpoint {} ({}) on {} GPU(s) confirmed {} ms after its period ended: {} s verified, provider paid {} more ({} per second)",
                l3.last_sequence,
                if l3.last_verdict == Verdict::Pass {
                    "pass"
                } else {
                    "fail"
                },
                l3.gpus,
                due.elapsed().as_millis(),
                l3.paid_until - slashed.paid_until,
                l3.paid_provider - slashed.paid_provider,
                l3.price_per_gpu_second * u64::from(l3.gpus),
            ),
        )?;
        l3
    } else {
        say(out, "demo 7/8  (no GPU left to go on with)".to_string())?;
        slashed
    };

    // The user closes the lease: the unspent escrow comes back.
    let escrow = balance(client, &pda::lease_vault(&lease)).await?;
    let parties = LeaseParties {
        lease,
        provider,
        keeper: ended.keeper,
        mint,
        treasury,
    };
    let close = ix::lease_close(&user.pubkey(), &parties, &user_token, &user.pubkey());
    client
        .send(&[close], user, &[])
        .await
        .context("lease_close")?;
    say(
        out,
        format!("demo 8/8  lease closed: {escrow} refunded to the user"),
    )?;

    // Every party, before and after.
    let after = snapshot(client, &names).await?;
    let total = supply(client, &mint).await?;
    let (sum_before, sum_after): (u64, u64) = (before.iter().sum(), after.iter().sum());
    say(
        out,
        format!(
            "\n{:<24} {:>18} {:>18} {:>14}",
            "party", "before", "after", "change"
        ),
    )?;
    for ((name, _), (b, a)) in names.iter().zip(before.iter().zip(&after)) {
        say(
            out,
            format!(
                "{name:<24} {b:>18} {a:>18} {:>+14}",
                *a as i128 - *b as i128
            ),
        )?;
    }
    let others = (
        total.saturating_sub(sum_before),
        total.saturating_sub(sum_after),
    );
    say(
        out,
        format!(
            "{:<24} {:>18} {:>18} {:>+14}",
            "other accounts",
            others.0,
            others.1,
            others.1 as i128 - others.0 as i128
        ),
    )?;
    say(
        out,
        format!("{:<24} {:>18} {:>18}", "total = token supply", total, total),
    )?;
    if sum_before + others.0 != total || sum_after + others.1 != total || others.0 != others.1 {
        bail!("the balances do not add up to the supply");
    }
    Ok(Demo {
        lease,
        accounts: names,
        before,
        after,
    })
}

#[cfg(test)]
#[path = "demo_tests.rs"]
mod tests;
