//! `WorkerService`: registration, the per-worker stream, object fetch.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use gpunet_proto::v1 as pb;
use gpunet_proto::v1::worker_message::Msg as Up;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span, warn};

use crate::auth::Gate;
use crate::core::Core;

/// Streams one worker key may hold open at once before a standby connection is refused.
const MAX_STREAMS_PER_KEY: u32 = 4;

/// How long a new stream may take to send `Register`.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct WorkerSvc {
    pub core: Arc<Core>,
    pub gate: Arc<Gate>,
    pub cancel: CancellationToken,
}

type KeeperStream = Pin<Box<dyn Stream<Item = Result<pb::KeeperMessage, Status>> + Send>>;

/// The worker's stream of keeper messages: queued assignment batches fold into one frame
/// ([`gpunet_proto::coalesce`]); it ends when the keeper shuts down.
fn merged(
    rx: tokio::sync::mpsc::UnboundedReceiver<pb::KeeperMessage>,
    cancel: CancellationToken,
) -> KeeperStream {
    Box::pin(
        gpunet_proto::coalesce::coalesced(rx)
            .take_until(cancel.cancelled_owned())
            .map(Ok),
    )
}

#[tonic::async_trait]
impl pb::worker_service_server::WorkerService for WorkerSvc {
    async fn get_challenge(
        &self,
        _req: Request<pb::ChallengeRequest>,
    ) -> Result<Response<pb::Challenge>, Status> {
        Ok(Response::new(self.gate.challenge()?))
    }

    type JoinStream = KeeperStream;

    async fn join(
        &self,
        req: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::JoinStream>, Status> {
        let mut inbound = req.into_inner();
        let first = match tokio::time::timeout(REGISTER_TIMEOUT, inbound.message()).await {
            Err(_) => return Err(Status::deadline_exceeded("no Register message in time")),
            Ok(Err(s)) => return Err(s),
            Ok(Ok(None)) => return Err(Status::invalid_argument("stream closed before Register")),
            Ok(Ok(Some(m))) => m,
        };
        let Some(Up::Register(reg)) = first.msg else {
            return Err(Status::invalid_argument(
                "the first message on Join must be Register",
            ));
        };
        let msg = gpunet_proto::worker_signing_bytes(
            &self.gate.keeper_id,
            &reg.provider,
            &reg.challenge,
            &reg.worker_key,
        );
        let key = self.gate.answer(
            &reg.challenge,
            &reg.worker_key,
            &msg,
            &reg.signature,
            &self.core.metrics.workers_refused,
        )?;
        if !self.core.worker_allowed(&reg.provider, &key) {
            self.core.metrics.workers_refused.inc();
            return Err(Status::permission_denied(format!(
                "worker key {} is not listed for provider {:?}",
                bs58::encode(key).into_string(),
                reg.provider
            )));
        }
        if reg.gpus.len() > 64 {
            return Err(Status::invalid_argument("at most 64 GPUs per worker"));
        }
        let key: Arc<str> = bs58::encode(key).into_string().into();
        // A worker needs one standby connection per keeper; a few allow for reconnects
        // overlapping the stream they replace. More is a listed key flooding this keeper.
        if reg.standby && self.core.liveness.open_streams(&key) >= MAX_STREAMS_PER_KEY {
            return Err(Status::resource_exhausted(format!(
                "worker {key} already has {MAX_STREAMS_PER_KEY} streams open to this keeper"
            )));
        }
        let live = self.core.liveness.connected(&key);
        if reg.standby {
            return Ok(Response::new(self.standby(key, inbound, live)));
        }
        let (conn_id, _session, rx) = self.core.register_worker(key.clone(), reg)?;
        let core = self.core.clone();
        let cancel = self.cancel.child_token();
        let span = info_span!("worker_stream", worker = %key, conn = conn_id);
        let reader_cancel = cancel.clone();
        tokio::spawn(
            async move {
                let _live = live;
                let reason = loop {
                    let m = tokio::select! {
                        _ = reader_cancel.cancelled() => break "keeper shutting down".to_string(),
                        m = inbound.message() => m,
                    };
                    if let Ok(Some(_)) = &m {
                        core.liveness.heard(&key);
                    }
                    match m {
                        Ok(Some(pb::WorkerMessage { msg: Some(msg) })) => match msg {
                            Up::Heartbeat(_) => core.touch(&key, conn_id),
                            Up::Results(r) => core.on_results(&key, conn_id, r.results),
                            Up::Object(o) => {
                                core.touch(&key, conn_id);
                                core.on_object_reply(&key, o)
                            }
                            Up::Draining(_) => core.worker_draining(&key, conn_id),
                            Up::Register(_) => warn!("duplicate Register ignored"),
                            Up::ProofCommit(c) => {
                                core.touch(&key, conn_id);
                                core.proofs.commit(&key, c)
                            }
                            Up::ProofOpening(o) => {
                                core.touch(&key, conn_id);
                                core.proofs.opening(&key, o)
                            }
                            Up::Progress(p) => core.on_progress(&key, conn_id, p),
                            Up::Log(l) => core.on_log(&key, conn_id, l),
                        },
                        Ok(Some(_)) => {}
                        Ok(None) => break "stream closed".to_string(),
                        Err(s) => break format!("stream error: {}", s.message()),
                    }
                };
                info!(%reason, "worker stream ended");
                core.worker_lost(&key, conn_id, reason);
            }
            .instrument(span),
        );
        Ok(Response::new(merged(rx, cancel)))
    }

    async fn fetch_object(
        &self,
        req: Request<pb::FetchObjectRequest>,
    ) -> Result<Response<pb::ObjectData>, Status> {
        let session = req
            .metadata()
            .get(gpunet_proto::WORKER_SESSION_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(decode_hex)
            .ok_or_else(|| Status::unauthenticated("missing worker session"))?;
        if !self.core.worker_session_ok(&session) {
            return Err(Status::unauthenticated("unknown worker session"));
        }
        let r = req
            .into_inner()
            .object
            .ok_or_else(|| Status::invalid_argument("object is required"))?;
        let data = self.core.object(None, r, Duration::from_secs(30)).await?;
        Ok(Response::new(pb::ObjectData { data }))
    }
}

impl WorkerSvc {
    /// A standby connection (see `Register.standby`): the worker is heard from on every
    /// message it sends, and gets no work (a drain is acknowledged at once). Its stream carries `Registered` and ends when the
    /// worker's does or the keeper shuts down.
    fn standby(
        &self,
        key: Arc<str>,
        mut inbound: Streaming<pb::WorkerMessage>,
        live: crate::liveness::Connected,
    ) -> KeeperStream {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = tx.send(pb::KeeperMessage {
            msg: Some(pb::keeper_message::Msg::Registered(pb::Registered {
                worker_id: key.to_string(),
                session: Default::default(),
                heartbeat_interval_ms: self.core.cfg.heartbeat_interval.as_millis() as u64,
                inline_limit_bytes: 0,
            })),
        });
        let core = self.core.clone();
        let cancel = self.cancel.child_token();
        let reader_cancel = cancel.clone();
        self.core.metrics.workers_standby.inc();
        info!(worker = %key, "worker standing by");
        tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    _ = reader_cancel.cancelled() => break,
                    m = inbound.message() => m,
                };
                match m {
                    Ok(Some(m)) => {
                        core.liveness.heard(&key);
                        // Nothing to drain: a standby connection holds no work.
                        if let Some(Up::Draining(_)) = m.msg {
                            let _ = tx.send(pb::KeeperMessage {
                                msg: Some(pb::keeper_message::Msg::DrainAck(pb::DrainAck {})),
                            });
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            core.metrics.workers_standby.dec();
            info!(worker = %key, "standby connection ended");
            drop((tx, live));
        });
        merged(rx, cancel)
    }
}

/// Decode lowercase/uppercase hex.
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
