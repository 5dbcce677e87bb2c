//! The explorer: a web page of what the chain says about gpunet — providers (region, zone, GPUs,
//! stake, status, score), keepers, leases (escrow, payments, each checkpoint with its verdict
//! and digest, each slash) — and, for the leases a keeper in this process serves, the live
//! cluster: its workers and tasks. It updates while you watch.
//!
//! [`Explorer`] keeps a view of the chain fresh with a read every `every` (the program's
//! accounts, and each lease's history of events from its transactions, re-read only when the
//! lease changed), and remembers leases after they close (their history stays readable by
//! address). [`Explorer::serve`] answers over HTTP: `/` the whole page, server-rendered (usable
//! without script), and `/fragment` its body, which the page's few lines of script fetch every
//! two seconds. The localnet serves one over every lease; a keeper in chain mode serves one over
//! its own (`explorer_listen`).
//!
//! Plain HTML, no framework: a page of tables is what the issue asks for, and it keeps the
//! build as it is (axum is already here for `/metrics`).

mod page;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gpunet_proto::v1 as pb;
use gpunet_sdk::audit::lease_events;
use gpunet_sdk::events::GpunetEvent;
use gpunet_sdk::{
    Config, GpunetClient, Keeper, Lease, LeaseFilter, Provider, ProviderFilter, SdkError,
};
use parking_lot::RwLock;
use solana_sdk::pubkey::Pubkey;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::core::Core;
use pb::TaskState;

/// Which leases an explorer shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every lease (the localnet's explorer).
    All,
    /// The leases naming this keeper account (a keeper's own explorer).
    Keeper(Pubkey),
}

/// One lease as last seen.
#[derive(Clone, Debug)]
pub struct LeaseView {
    /// Its address.
    pub address: Pubkey,
    /// The account as last read.
    pub lease: Lease,
    /// Its account is gone (closed); `lease` is its last state.
    pub closed: bool,
    /// Events of its transactions with their slots, oldest first.
    pub history: Vec<(GpunetEvent, u64)>,
    /// The live cluster, when a keeper in this process serves it.
    pub live: Option<Live>,
}

/// A lease's cluster as its keeper sees it now.
#[derive(Clone, Debug)]
pub struct Live {
    /// Workers, GPUs, state.
    pub cluster: pb::ClusterInfo,
    /// Its most recent tasks (newest last).
    pub tasks: Vec<pb::TaskStatus>,
}

/// Everything the page shows.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The program's config (None before it is initialised).
    pub config: Option<Config>,
    /// Providers by account.
    pub providers: Vec<(Pubkey, Provider)>,
    /// Keepers by account.
    pub keepers: Vec<(Pubkey, Keeper)>,
    /// Leases, newest first.
    pub leases: Vec<LeaseView>,
    /// The chain's clock at the last read.
    pub chain_time: i64,
    /// Why the last read failed, if it did (the view is then the one before).
    pub error: Option<String>,
    /// Reads done so far.
    pub reads: u64,
}

/// Tasks shown per lease.
const TASKS_SHOWN: usize = 50;

/// The explorer of one scope (see the module docs).
pub struct Explorer {
    client: GpunetClient,
    rpc_url: String,
    scope: Scope,
    cores: Vec<Arc<Core>>,
    view: RwLock<View>,
}

impl Explorer {
    /// An explorer reading the chain at `rpc_url`; `cores`: the keepers in this process whose
    /// live clusters it shows.
    pub fn new(rpc_url: &str, scope: Scope, cores: Vec<Arc<Core>>) -> Self {
        Explorer {
            client: GpunetClient::new(rpc_url.to_string()),
            rpc_url: rpc_url.to_string(),
            scope,
            cores,
            view: RwLock::new(View::default()),
        }
    }

    /// The view as of the last read.
    pub fn view(&self) -> View {
        self.view.read().clone()
    }

    /// One read of the chain into the view (also what the poller does every tick).
    pub async fn refresh(&self) -> Result<(), SdkError> {
        let result = self.read().await;
        let mut v = self.view.write();
        match result {
            Ok(mut next) => {
                next.reads = v.reads + 1;
                *v = next;
                Ok(())
            }
            Err(e) => {
                v.error = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn read(&self) -> Result<View, SdkError> {
        let config = match self.client.config().await {
            Ok(c) => Some(c),
            Err(SdkError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let chain_time = self.client.chain_time().await?;
        let mut providers = self.client.providers(&ProviderFilter::default()).await?;
        providers.sort_by_key(|(k, _)| *k);
        let mut keepers = self.client.keepers().await?;
        keepers.sort_by_key(|(k, _)| *k);
        let filter = match self.scope {
            Scope::All => LeaseFilter::All,
            Scope::Keeper(k) => LeaseFilter::Keeper(k),
        };
        let listed: BTreeMap<Pubkey, Lease> =
            self.client.leases(filter).await?.into_iter().collect();
        let before: BTreeMap<Pubkey, LeaseView> = self
            .view
            .read()
            .leases
            .iter()
            .map(|l| (l.address, l.clone()))
            .collect();
        let mut leases = Vec::new();
        for (address, lease) in &listed {
            let old = before.get(address);
            let history = match old {
                Some(o) if !o.closed && same_books(&o.lease, lease) => o.history.clone(),
                _ => lease_events(&self.client, address).await?,
            };
            leases.push(LeaseView {
                address: *address,
                lease: lease.clone(),
                closed: false,
                history,
                live: self.live(address),
            });
        }
        // Seen before, not listed now: closed, or (for a keeper's scope) moved to another
        // keeper. Its history stays readable by address.
        for (address, old) in before {
            if listed.contains_key(&address) {
                continue;
            }
            let mut old = old;
            if !old.closed {
                match self.client.lease(&address).await {
                    Ok(l) => old.lease = l,
                    Err(SdkError::NotFound { .. }) => old.closed = true,
                    Err(e) => return Err(e),
                }
                old.history = lease_events(&self.client, &address).await?;
                if old.closed {
                    // What happened between the last read and the close is in the history.
                    settle(&mut old.lease, &old.history);
                }
            }
            old.live = None;
            leases.push(old);
        }
        leases.sort_by(|a, b| {
            b.lease
                .start
                .cmp(&a.lease.start)
                .then(a.address.cmp(&b.address))
        });
        Ok(View {
            config,
            providers,
            keepers,
            leases,
            chain_time,
            error: None,
            reads: 0,
        })
    }

    fn live(&self, lease: &Pubkey) -> Option<Live> {
        let id: Arc<str> = lease.to_string().into();
        let core = self
            .cores
            .iter()
            .find(|c| c.cluster_leases().contains(&id))?;
        let cluster = core.cluster(&id).ok()?;
        let mut tasks = core.list(&id, TaskState::Unspecified, 0, usize::MAX);
        if tasks.len() > TASKS_SHOWN {
            tasks.drain(..tasks.len() - TASKS_SHOWN);
        }
        Some(Live { cluster, tasks })
    }

    /// Reads the chain every `every` until `cancel`.
    pub fn spawn(self: &Arc<Self>, every: Duration, cancel: CancellationToken) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            crate::chain::every(every, cancel, || async {
                if let Err(e) = this.refresh().await {
                    debug!(error = %e, "explorer: chain read failed; the page keeps the last view");
                }
            })
            .await;
        })
    }

    /// Serves the page on `listen` until `cancel`; the address it listens on.
    pub async fn serve(
        self: &Arc<Self>,
        listen: &str,
        cancel: CancellationToken,
    ) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let page_of = self.clone();
        let fragment_of = self.clone();
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(move || {
                    let e = page_of.clone();
                    async move { html(page::page(&e.view(), &e.rpc_url, e.scope)) }
                }),
            )
            .route(
                "/fragment",
                axum::routing::get(move || {
                    let e = fragment_of.clone();
                    async move { html(page::body(&e.view(), &e.rpc_url, e.scope)) }
                }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(cancel.cancelled_owned())
                .await;
        });
        info!(%addr, "explorer serving");
        Ok(addr)
    }
}

/// A closed lease's last state from its history (the account is gone; a read every second
/// may have missed its last checkpoints): the books as its events left them.
fn settle(lease: &mut Lease, history: &[(GpunetEvent, u64)]) {
    for (e, _) in history {
        match e {
            GpunetEvent::CheckpointPosted(c) => {
                lease.last_sequence = lease.last_sequence.max(c.sequence);
                lease.last_verdict = c.verdict;
                lease.paid_until = lease.paid_until.max(c.period_end);
            }
            GpunetEvent::ProviderSlashed(x) if x.gpus_left > 0 => lease.gpus = x.gpus_left,
            GpunetEvent::LeaseResized(x) if !x.cancelled => lease.gpus = x.gpus,
            GpunetEvent::LeaseResizeRequested(x) if x.applied => lease.gpus = x.gpus_to,
            GpunetEvent::LeaseClosed(c) => {
                lease.funded = c.funded;
                lease.paid_provider = c.paid_provider;
                lease.paid_protocol = c.paid_protocol;
                lease.paid_keeper = c.paid_keeper;
                lease.refunded = c.refunded;
            }
            _ => {}
        }
    }
    let compensation = history.iter().map(|(e, _)| match e {
        GpunetEvent::ProviderSlashed(x) => x.to_user,
        GpunetEvent::KeeperSlashed(x) => x.to_user,
        _ => 0,
    });
    lease.compensation = compensation.sum();
    let withdrawn = history.iter().map(|(e, _)| match e {
        GpunetEvent::LeaseResizeRequested(x) => x.refund,
        _ => 0,
    });
    lease.withdrawn = lease.withdrawn.max(withdrawn.sum());
}

/// Whether nothing the page shows of a lease's history can have changed.
fn same_books(a: &Lease, b: &Lease) -> bool {
    (
        a.status,
        a.last_sequence,
        a.compensation,
        a.funded,
        a.keeper,
        a.gpus,
    ) == (
        b.status,
        b.last_sequence,
        b.compensation,
        b.funded,
        b.keeper,
        b.gpus,
    )
}

fn html(body: String) -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}
