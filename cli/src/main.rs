//! `gpunet`: the one command users type.
//!
//! - `gpunet localnet [--ledger DIR]` — the whole chain on this machine (embedded surfpool with
//!   gpunet loaded), initialised on first start ([`localnet`]).
//! - `gpunet config init|show`, `gpunet keeper register|show|list`,
//!   `gpunet provider register|update|stake|unstake|withdraw|show|list`,
//!   `gpunet lease open|top-up|close|show|list`, `gpunet faucet` — the chain ([`chain`]).
//! - `gpunet keeper run [--config keeper.toml]`, `gpunet worker run --keeper URL --provider P`
//!   — the daemons ([`daemon`]); the keeper signs with its on-chain keeper wallet.
//! - `gpunet task submit|status|cancel|get|list|watch|cluster|prove` — talk to a keeper as a
//!   lease's user ([`task`], through the SDK's task client).
//! - `gpunet key generate|pubkey|convert` — Solana JSON keypair files ([`key`]).
//!
//! Global flags, accepted before or after the subcommand, with the Solana CLI's conventions:
//! `--url` (JSON-RPC URL or moniker), `--keypair` (default `~/.config/solana/id.json`; the one
//! key format, for users, workers and keepers alike) and `--output table|json` ([`output`]).

mod bench;
mod chain;
mod cluster_task;
mod daemon;
mod demo;
#[cfg(test)]
mod in_process;
mod job;
mod key;
mod localnet;
mod localnet_system;
mod output;
mod runtime_env_file;
mod task;
mod worker_follow;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use gpunet_sdk::GpunetClient;
use gpunet_sdk::task::SigningKey;
use solana_sdk::signature::Keypair;

use crate::output::Output;

#[derive(Parser)]
#[command(
    name = "gpunet",
    version,
    about = "gpunet: permissionless GPU cloud settled on Solana"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options every command takes, before or after its subcommand (the Solana CLI's conventions).
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// JSON-RPC URL or moniker: localhost, devnet, mainnet-beta, testnet.
    #[arg(
        long,
        short = 'u',
        global = true,
        default_value = "localhost",
        env = "GPUNET_URL"
    )]
    pub url: String,
    /// Keypair file (Solana JSON) that signs: the wallet, the worker's or the keeper's key
    /// [default: ~/.config/solana/id.json].
    #[arg(long, short = 'k', global = true, env = "GPUNET_KEYPAIR")]
    pub keypair: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

impl Global {
    /// The keypair file: `--keypair`, or the Solana CLI's default.
    pub fn keypair_path(&self) -> PathBuf {
        self.keypair
            .clone()
            .unwrap_or_else(gpunet_sdk::task::keys::default_keypair_path)
    }

    /// The signer's ed25519 key (task sessions, workers, keepers).
    pub fn signing_key(&self) -> Result<SigningKey> {
        key::load(&self.keypair_path())
    }

    /// The signer as a Solana keypair (transactions).
    pub fn signer(&self) -> Result<Keypair> {
        Ok(key::to_solana(&self.signing_key()?))
    }

    /// A JSON-RPC client for `--url`.
    pub fn client(&self) -> GpunetClient {
        GpunetClient::new(chain::resolve_url(&self.url))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole chain on this machine: JSON-RPC on 8899, pubsub on 8900.
    Localnet(localnet::LocalnetArgs),
    /// Protocol config (admin).
    Config {
        #[command(subcommand)]
        cmd: chain::config::ConfigCmd,
    },
    /// GPU providers: register, stake, unstake, withdraw.
    Provider {
        #[command(subcommand)]
        cmd: chain::provider::ProviderCmd,
    },
    /// Leases: open, top up, close.
    Lease {
        #[command(subcommand)]
        cmd: chain::lease::LeaseCmd,
    },
    /// Clusters: a spec (GPUs, class, regions, zones, price) matched across providers and
    /// opened as one lease per provider.
    Cluster {
        #[command(subcommand)]
        cmd: chain::cluster::ClusterCmd,
    },
    /// Localnet faucet: SOL by airdrop, tokens from the mint authority (the signer).
    Faucet(chain::faucet::FaucetArgs),
    /// Keepers: on-chain registration, and the keeper daemon.
    Keeper {
        #[command(subcommand)]
        cmd: chain::keeper::KeeperCmd,
    },
    /// Worker agent.
    Worker {
        #[command(subcommand)]
        cmd: daemon::WorkerCmd,
    },
    /// Tasks on a lease's cluster, or (`--cluster ID`) on a cluster of several leases.
    Task {
        #[command(flatten)]
        conn: task::Conn,
        /// A cluster opened from a spec (`gpunet cluster open`): its leases as one cluster,
        /// tasks named LEASE.TASK.
        #[arg(long, global = true, env = "GPUNET_CLUSTER")]
        cluster: Option<u32>,
        /// With --cluster: seconds a lease may have no live worker before the tasks this
        /// command waits on move to the other leases.
        #[arg(long, global = true, default_value_t = 30.0)]
        failover_after: f64,
        #[command(subcommand)]
        cmd: task::TaskCmd,
    },
    /// Jobs on a lease's cluster: a driver process with its runtime env and live logs (Ray's
    /// Jobs CLI).
    Job {
        #[command(flatten)]
        conn: task::Conn,
        /// A cluster opened from a spec: the job goes to one of its leases (ids LEASE.TASK).
        #[arg(long, global = true, env = "GPUNET_CLUSTER")]
        cluster: Option<u32>,
        #[command(subcommand)]
        cmd: job::JobCmd,
    },
    /// Side-by-side benchmark client (used by bench/run.sh).
    #[command(hide = true)]
    Bench {
        #[command(flatten)]
        conn: task::Conn,
        /// Scale the task counts.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Clients in the multi-client workload.
        #[arg(long, default_value_t = 4)]
        clients: usize,
    },
    /// Keypair files (Solana JSON).
    Key {
        #[command(subcommand)]
        cmd: key::KeyCmd,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // `gpunet localnet` keeps its terminal for people: the validator's, the keepers' and the
    // program's log lines go to a log file it names, unless `-v` or GPUNET_LOG asks for them.
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("GPUNET_LOG").unwrap_or_else(|_| "info".into())
    };
    match &cli.cmd {
        Cmd::Localnet(a) if localnet::quiet(a) => {
            let file = localnet::open_log(a)?;
            tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        _ => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init(),
    }
    // The keeper serves many connections: a multi-threaded runtime. Workers, clients and the
    // bench client are mostly waiting on one stream: a single-threaded runtime avoids
    // cross-thread wake-ups (measurably lower round-trip latency on a 2-core machine).
    let rt = match cli.cmd {
        Cmd::Keeper {
            cmd: chain::keeper::KeeperCmd::Run(_),
        }
        | Cmd::Localnet(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    match cli.cmd {
        Cmd::Localnet(args) => localnet::run(g, args).await,
        Cmd::Config { cmd } => chain::config::run(g, cmd).await,
        Cmd::Provider { cmd } => chain::provider::run(g, cmd).await,
        Cmd::Lease { cmd } => chain::lease::run(g, cmd).await,
        Cmd::Cluster { cmd } => chain::cluster::run(g, cmd).await,
        Cmd::Faucet(args) => chain::faucet::run(g, args).await,
        Cmd::Keeper { cmd } => chain::keeper::run(g, cmd).await,
        Cmd::Worker { cmd } => daemon::run_worker(g, cmd).await,
        Cmd::Task {
            conn,
            cluster,
            failover_after,
            cmd,
        } => match cluster {
            Some(_) if !conn.lease.is_empty() => bail!("give --lease or --cluster, not both"),
            Some(id) => {
                let failover_after = Duration::from_secs_f64(failover_after.max(0.0));
                cluster_task::run(g, id, failover_after, cmd).await
            }
            None => task::run(g, conn, cmd).await,
        },
        Cmd::Job { conn, cluster, cmd } => job::run(g, conn, cluster, cmd).await,
        Cmd::Bench {
            conn,
            scale,
            clients,
        } => {
            let key = g.signing_key()?;
            let keeper = task::keeper_of(g, &conn).await?;
            bench::run(&keeper, &conn.lease, &key, scale, clients).await
        }
        Cmd::Key { cmd } => key::run(g, cmd),
    }
}
