//! A keeper serving N live leases from its chain watcher: how long a full reconciliation takes
//! and how much memory the keeper holds for them.
//!
//! Against a localnet started separately (`bench/watch.sh` runs `gpunet localnet --bare`), so
//! this process's memory is the keeper side's alone: it writes N active, funded lease accounts
//! naming one keeper account straight into the chain with surfpool's `surfnet_setAccount`
//! cheat code (opening 10,000 leases by transaction would measure the program, not the
//! watcher), then runs what a chain-mode keeper runs — `Watcher::reconcile` (getProgramAccounts
//! filtered on the keeper, every provider, the clock, SlotHashes, the directory's bookkeeping) —
//! and forms each lease's cluster on a keeper core, as the watcher does for a lease it starts
//! to serve.
//!
//! Usage: gpunet-watch-bench --url RPC_URL --ws WS_URL [--leases N] [--rounds R]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anchor_lang::{AccountSerialize, Space};
use gpunet::state::{Lease, LeaseStatus, LeaseTerms, Verdict, config::MAX_COMMITTEE};
use gpunet_keeper::chain::{ChainDirectory, WatchConfig, Watcher};
use gpunet_keeper::{KeeperConfig, LeaseDirectory};
use gpunet_sdk::{GpunetClient, pda};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Keypair;
use solana_sdk::signer::Signer;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Resident memory of this process, bytes (`/proc/self/status` VmRSS).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

/// An active lease of `gpus` GPUs on `provider`, served by `keeper`, funded for a day from
/// `now`.
fn lease(i: u64, keeper: Pubkey, provider: Pubkey, terms: LeaseTerms, now: i64) -> (Pubkey, Lease) {
    let user = Pubkey::new_unique();
    let address = pda::lease(&user, i);
    let mut committee = [Pubkey::default(); MAX_COMMITTEE];
    committee[0] = keeper;
    let gpus = 2u16;
    let price = 10u64;
    let l = Lease {
        user,
        provider,
        keeper,
        rent_payer: user,
        nonce: i,
        status: LeaseStatus::Active,
        gpus,
        price_per_gpu_second: price,
        stake_locked: 2_000_000_000,
        funded: price * u64::from(gpus) * 86_400,
        paid_provider: 0,
        paid_protocol: 0,
        paid_keeper: 0,
        refunded: 0,
        compensation: 0,
        start: now,
        paid_until: now,
        last_checkpoint_at: now,
        last_sequence: 0,
        last_digest: [0; 32],
        last_verdict: Verdict::None,
        last_score: 0,
        bump: 255,
        vault_bump: 255,
        opened_slot: 1,
        terms,
        committee,
        committee_len: 1,
        paused_mark: 0,
        judged_sequence: 0,
        rate_since: 0,
        spent_before_rate: 0,
        slashed_sequence: 0,
        pending_gpus: 0,
        resize_at: 0,
        pending_stake: 0,
        withdrawn: 0,
        reserved: [0; 14],
    };
    (address, l)
}

async fn set_account(
    client: &GpunetClient,
    address: &Pubkey,
    data: Vec<u8>,
    lamports: u64,
) -> Result<(), Error> {
    // The cheat code takes the data as hex.
    let data: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let params = serde_json::json!([
        address.to_string(),
        { "lamports": lamports, "data": data, "owner": gpunet::ID.to_string() }
    ]);
    client
        .rpc()
        .send::<serde_json::Value>(
            solana_rpc_client_api::request::RpcRequest::Custom {
                method: "surfnet_setAccount",
            },
            params,
        )
        .await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let url = arg("--url").ok_or("--url RPC_URL is required")?;
    let ws = arg("--ws").ok_or("--ws WS_URL is required")?;
    let n: u64 = arg("--leases").map_or(Ok(10_000), |v| v.parse())?;
    let rounds: usize = arg("--rounds").map_or(Ok(5), |v| v.parse())?;
    let client = GpunetClient::new(url.clone());
    let config = client.config().await?;
    let now = client.chain_time().await?;
    let keeper_wallet = Keypair::new();
    let keeper = pda::keeper(&keeper_wallet.pubkey());
    let provider = Pubkey::new_unique();
    let terms = LeaseTerms::from_params(&config.params);
    let size = 8 + Lease::INIT_SPACE;
    let lamports = client
        .rpc()
        .get_minimum_balance_for_rent_exemption(size)
        .await?;

    let writer = Arc::new(GpunetClient::new(url.clone()));
    let t = Instant::now();
    let mut written = 0u64;
    let mut batch = Vec::new();
    for i in 0..n {
        let (address, l) = lease(i, keeper, provider, terms, now);
        let mut data = Vec::with_capacity(size);
        l.try_serialize(&mut data)?;
        data.resize(size, 0);
        batch.push((address, data));
        if batch.len() == 32 || i + 1 == n {
            let mut sends = tokio::task::JoinSet::new();
            for (a, d) in batch.drain(..) {
                let c = writer.clone();
                sends.spawn(async move { set_account(&c, &a, d, lamports).await });
            }
            while let Some(r) = sends.join_next().await {
                r??;
            }
            written = i + 1;
            if written.is_multiple_of(2_000) {
                eprintln!("{written}/{n} lease accounts written");
            }
        }
    }
    eprintln!(
        "{written} lease accounts ({size} bytes each) written in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let listed = client
        .leases(gpunet_sdk::LeaseFilter::Keeper(keeper))
        .await?
        .len() as u64;
    if listed != n {
        return Err(format!("the chain lists {listed} of the {n} leases written").into());
    }
    let base = rss();
    let dir = Arc::new(ChainDirectory::new(keeper));
    let watcher = Watcher::new(
        &WatchConfig {
            rpc_url: url.clone(),
            ws_url: Some(ws),
            reconcile_every: Duration::from_secs(5),
        },
        dir.clone(),
    );
    let mut times = Vec::new();
    for r in 0..rounds {
        let t = Instant::now();
        let ended = watcher.reconcile().await?;
        times.push(t.elapsed());
        assert!(ended.is_empty(), "round {r}: {} leases ended", ended.len());
    }
    let served = dir.served_leases();
    if served.len() as u64 != n {
        return Err(format!("{} of {n} leases served", served.len()).into());
    }
    let after_watch = rss();

    // The keeper's core forms each lease's (empty) cluster, as the watcher does.
    let cancel = tokio_util::sync::CancellationToken::new();
    let cfg = KeeperConfig {
        listen: "127.0.0.1:0".into(),
        metrics_listen: String::new(),
        db_path: String::new(),
        ..KeeperConfig::default()
    };
    let h = gpunet_keeper::start_with(
        cfg,
        dir.clone(),
        dir.clone(),
        tonic::service::Routes::default(),
        cancel.clone(),
    )
    .await?;
    let before_core = rss();
    let t = Instant::now();
    for lease in &served {
        let id: Arc<str> = lease.to_string().into();
        h.core().cluster(&id)?;
    }
    let form = t.elapsed();
    let first: Arc<str> = served[0].to_string().into();
    if h.core().cluster(&first)?.gpus_requested != 2 || dir.lease(&first).is_none() {
        return Err("the lease's cluster does not ask for its 2 GPUs".into());
    }
    let after_core = rss();
    cancel.cancel();
    let _ = h.wait().await;

    let mut sorted = times.clone();
    sorted.sort();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    println!("leases: {n}");
    println!("reconcile, first (cold directory): {}", ms(times[0]));
    println!(
        "reconcile, median of {} (warm): {}",
        rounds - 1,
        ms(sorted[sorted.len() / 2])
    );
    println!(
        "watcher + directory memory: {}",
        mib(after_watch.saturating_sub(base))
    );
    println!(
        "clusters formed on the core: {} ({:.1} µs per lease), memory {}",
        ms(form),
        form.as_secs_f64() * 1e6 / n as f64,
        mib(after_core.saturating_sub(before_core))
    );
    println!("process RSS at the end: {}", mib(after_core));
    Ok(())
}
