//! Start a keeper: store, core, gRPC (+ health, reflection), heartbeat monitor, metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use gpunet_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tracing::{Instrument, info, info_span};

use crate::auth::Gate;
use crate::config::KeeperConfig;
use crate::core::{Core, CoreConfig};
use crate::directory::{LeaseDirectory, WorkerRegistry};
use crate::error::KeeperError;
use crate::proofs::Prover;
use crate::store::{Store, StoreOptions};
use crate::svc_client::ClientSvc;
use crate::svc_worker::WorkerSvc;

/// A running keeper.
pub struct KeeperHandle {
    /// gRPC address.
    pub addr: SocketAddr,
    /// Metrics address, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The keeper's id (base58 public key).
    pub keeper_id: String,
    /// Cancel to shut down gracefully.
    pub cancel: CancellationToken,
    core: Arc<Core>,
    prover: Arc<Prover>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<Result<(), KeeperError>>,
}

impl KeeperHandle {
    /// The core (for in-process inspection, and for the chain side).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The benchmark prover (the chain side's checkpointer proves through it).
    pub fn prover(&self) -> &Arc<Prover> {
        &self.prover
    }

    /// `http://addr` for clients and workers.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shut down gracefully: stop serving, end streams, flush the store, wait for every loop.
    pub async fn shutdown(self) -> Result<(), KeeperError> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Wait until the keeper has stopped (after its token is cancelled).
    pub async fn wait(self) -> Result<(), KeeperError> {
        let r = self
            .server
            .await
            .map_err(|e| KeeperError::Io(std::io::Error::other(e)))?;
        for t in self.tasks {
            let _ = t.await;
        }
        r
    }
}

/// The keeper's signing key: its on-chain keeper wallet (a Solana JSON keypair file, the
/// `keeper_key` setting); without one (in-process tests), a fresh key per start.
fn load_key(cfg: &KeeperConfig) -> Result<SigningKey, KeeperError> {
    match &cfg.keeper_key {
        Some(path) => gpunet_proto::keys::read_keypair_file(path)
            .map_err(|e| KeeperError::Config(format!("keeper_key: {e}"))),
        None => Ok(SigningKey::from_bytes(&crate::auth::random_bytes::<32>()?)),
    }
}

/// Start a keeper with the given registry and lease directory. It runs until `cancel` fires.
pub async fn start(
    cfg: KeeperConfig,
    registry: Arc<dyn WorkerRegistry>,
    leases: Arc<dyn LeaseDirectory>,
    cancel: CancellationToken,
) -> Result<KeeperHandle, KeeperError> {
    start_with(
        cfg,
        registry,
        leases,
        tonic::service::Routes::default(),
        cancel,
    )
    .await
}

/// [`start`], also serving `extra` gRPC services on the same address (the chain side's
/// keeper-to-keeper service: the dispatch core does not know it).
pub async fn start_with(
    cfg: KeeperConfig,
    registry: Arc<dyn WorkerRegistry>,
    leases: Arc<dyn LeaseDirectory>,
    extra: tonic::service::Routes,
    cancel: CancellationToken,
) -> Result<KeeperHandle, KeeperError> {
    let key = load_key(&cfg)?;
    let keeper_id = bs58::encode(key.verifying_key().as_bytes()).into_string();
    let sink = Arc::new(parking_lot::Mutex::new(None));
    let (store, loaded) = Store::open(
        &StoreOptions {
            path: cfg.db_path.clone(),
            durability: cfg.durability,
            sync_interval: cfg.sync_interval,
            checkpoint_interval: cfg.checkpoint_interval,
        },
        sink.clone(),
    )?;
    let core = Core::new(
        CoreConfig {
            keeper_id: keeper_id.clone(),
            inline_limit: cfg.inline_limit,
            default_max_retries: cfg.default_max_retries,
            heartbeat_interval: cfg.heartbeat_interval,
            dead_after: cfg.dead_after,
            pipeline_depth: cfg.pipeline_depth,
            pipeline_below: cfg.pipeline_below,
        },
        store,
        loaded,
        &sink,
        leases,
        registry,
    );
    let gate = Arc::new(Gate::new(keeper_id.clone(), cfg.session_ttl));

    let listener = TcpListener::bind(&cfg.listen).await?;
    let addr = listener.local_addr()?;
    let (health, health_svc) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::worker_service_server::WorkerServiceServer<WorkerSvc>>()
        .await;
    health
        .set_serving::<pb::keeper_service_server::KeeperServiceServer<ClientSvc>>()
        .await;
    // Reflection in both versions: `v1` for current tools (grpcurl), `v1alpha` for grpcio's
    // own reflection client and the tools built on it.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(gpunet_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| KeeperError::Config(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(gpunet_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| KeeperError::Config(format!("reflection: {e}")))?;
    let max = cfg.max_message_bytes;
    let worker_svc = pb::worker_service_server::WorkerServiceServer::new(WorkerSvc {
        core: core.clone(),
        gate: gate.clone(),
        cancel: cancel.clone(),
    })
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let prover = Arc::new(Prover::new(
        core.clone(),
        key.clone(),
        cfg.proof_settings(),
        cancel.clone(),
    ));
    let client_svc = pb::keeper_service_server::KeeperServiceServer::new(ClientSvc {
        core: core.clone(),
        gate,
        prover: prover.clone(),
        cancel: cancel.clone(),
    })
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let routes = extra
        .add_service(health_svc)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(worker_svc)
        .add_service(client_svc);
    let router = tonic::transport::Server::builder().add_routes(routes);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    let mut tasks = Vec::new();
    // Heartbeat monitor.
    {
        let core = core.clone();
        let cancel = cancel.clone();
        let every = (cfg.dead_after / 4).max(Duration::from_millis(20));
        tasks.push(tokio::spawn(
            periodic(every, cancel, move || {
                core.check_heartbeats();
            })
            .instrument(info_span!("heartbeat_monitor")),
        ));
    }
    // Retention: forget finished tasks (and drop their objects) once they are old enough.
    if !cfg.task_retention.is_zero() {
        let core = core.clone();
        let cancel = cancel.clone();
        let keep = cfg.task_retention;
        let every = (keep / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
        tasks.push(tokio::spawn(
            periodic(every, cancel, move || {
                core.collect_garbage(keep);
            })
            .instrument(info_span!("retention")),
        ));
    }
    // Periodic benchmark proofs of every cluster member (off unless proof_interval_s > 0).
    if cfg.proof_interval_s > 0 {
        let every = Duration::from_secs(cfg.proof_interval_s);
        tasks.push(tokio::spawn(
            prover
                .clone()
                .run_periodic(every)
                .instrument(info_span!("proof_loop")),
        ));
    }
    // Metrics.
    let mut metrics_addr = None;
    if !cfg.metrics_listen.is_empty() {
        let l = TcpListener::bind(&cfg.metrics_listen).await?;
        metrics_addr = Some(l.local_addr()?);
        let m = core.metrics.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let m = m.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.render(),
                    )
                }
            }),
        );
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(cancel.cancelled_owned())
                .await;
        }));
    }
    // On shutdown, end worker streams so the server can finish its connections.
    {
        let core = core.clone();
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            cancel.cancelled().await;
            core.shutdown();
        }));
    }
    info!(%addr, keeper = %keeper_id, "keeper serving");
    let server = {
        let cancel = cancel.clone();
        let core = core.clone();
        tokio::spawn(async move {
            let r = router
                .serve_with_incoming_shutdown(incoming, cancel.cancelled_owned())
                .await;
            core.shutdown();
            info!("keeper stopped");
            r.map_err(KeeperError::from)
        })
    };
    Ok(KeeperHandle {
        addr,
        metrics_addr,
        keeper_id,
        cancel,
        core,
        prover,
        tasks,
        server,
    })
}

/// Run `f` every `every` (late ticks are delayed, not bunched) until `cancel`.
async fn periodic(every: Duration, cancel: CancellationToken, mut f: impl FnMut()) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => f(),
        }
    }
}
