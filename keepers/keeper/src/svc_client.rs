//! `KeeperService`: signed sessions and the task API.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use gpunet_proto::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{Instrument, info_span};

use crate::auth::Gate;
use crate::core::{Core, GetOutcome};
use crate::proofs::{ProveOptions, Prover};

/// Longest wait a request may ask for.
const MAX_WAIT: Duration = Duration::from_secs(600);

pub(crate) struct ClientSvc {
    pub core: Arc<Core>,
    pub gate: Arc<Gate>,
    pub prover: Arc<Prover>,
    pub cancel: CancellationToken,
}

impl ClientSvc {
    fn auth(&self, a: Option<&pb::RequestAuth>) -> Result<Arc<str>, Status> {
        let a = a.ok_or_else(|| Status::unauthenticated("missing auth"))?;
        self.gate.sessions.check(&a.session, a.nonce).map_err(|e| {
            self.core.metrics.auth_refused.inc();
            Status::from(e)
        })
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::TaskEvent, Status>> + Send>>;
type LogStream = Pin<Box<dyn Stream<Item = Result<pb::LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::keeper_service_server::KeeperService for ClientSvc {
    async fn get_challenge(
        &self,
        _req: Request<pb::ChallengeRequest>,
    ) -> Result<Response<pb::Challenge>, Status> {
        Ok(Response::new(self.gate.challenge()?))
    }

    async fn open_session(
        &self,
        req: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let r = req.into_inner();
        let msg = gpunet_proto::session_signing_bytes(
            &self.gate.keeper_id,
            &r.lease_id,
            &r.challenge,
            &r.user_key,
        );
        let key = self.gate.answer(
            &r.challenge,
            &r.user_key,
            &msg,
            &r.signature,
            &self.core.metrics.auth_refused,
        )?;
        let lease = self.core.lease_info(&r.lease_id).ok_or_else(|| {
            match self.core.lease_ended(&r.lease_id) {
                Some(why) => {
                    Status::failed_precondition(format!("lease {} ended: {why}", r.lease_id))
                }
                None => {
                    Status::permission_denied(format!("no lease {:?} for this key", r.lease_id))
                }
            }
        })?;
        if lease.user != key {
            self.core.metrics.auth_refused.inc();
            return Err(Status::permission_denied(format!(
                "key is not the user of lease {:?}",
                r.lease_id
            )));
        }
        let id = self.gate.sessions.open(r.lease_id.as_str().into(), key)?;
        Ok(Response::new(pb::Session {
            session: id.to_vec().into(),
            ttl_ms: self.gate.sessions.ttl().as_millis() as u64,
        }))
    }

    async fn submit(
        &self,
        req: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        let span = info_span!("submit", lease = %lease, tasks = r.tasks.len());
        async move {
            let (ids, ack) = self.core.submit_nowait(&lease, r.tasks, r.wait_ms > 0)?;
            let mut outcomes = Vec::new();
            if let Some(ack) = ack {
                Core::durable(ack).await?;
            } else {
                let wait = Duration::from_millis(r.wait_ms).min(MAX_WAIT);
                outcomes = self.core.wait_all(&lease, &ids, wait).await?;
                // Tasks still running at the deadline: persist their acceptance before answering.
                if let Some(ack) = self.core.make_durable(&ids) {
                    Core::durable(ack).await?;
                }
            }
            Ok(Response::new(pb::SubmitResponse {
                task_ids: ids,
                outcomes,
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        Ok(Response::new(pb::StatusResponse {
            statuses: self.core.statuses(&lease, &r.task_ids)?,
        }))
    }

    async fn cancel(
        &self,
        req: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        Ok(Response::new(pb::CancelResponse {
            cancelled: self.core.cancel(&lease, &r.task_ids)?,
        }))
    }

    async fn get_result(
        &self,
        req: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        let obj = r
            .object
            .ok_or_else(|| Status::invalid_argument("object is required"))?;
        let timeout = Duration::from_millis(r.timeout_ms).min(MAX_WAIT);
        let span = info_span!("get", lease = %lease, task = obj.task_id);
        match self.core.get(&lease, obj, timeout).instrument(span).await? {
            GetOutcome::Ready(st, data) => Ok(Response::new(pb::GetResponse {
                status: Some(st),
                data,
                ready: true,
            })),
            GetOutcome::NotReady(st) => Ok(Response::new(pb::GetResponse {
                status: Some(st),
                data: Default::default(),
                ready: false,
            })),
        }
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        let limit = if r.limit == 0 {
            1000
        } else {
            r.limit.min(10_000)
        } as usize;
        let state = pb::TaskState::try_from(r.state)
            .map_err(|_| Status::invalid_argument("unknown state"))?;
        Ok(Response::new(pb::ListResponse {
            tasks: self.core.list(&lease, state, r.after, limit),
        }))
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        let filter: HashSet<u64> = r.task_ids.iter().copied().collect();
        // Subscribe first, then send the current state, so nothing falls in between.
        let mut rx = self.core.subscribe();
        let snapshot = if filter.is_empty() {
            Vec::new()
        } else {
            self.core.statuses(&lease, &r.task_ids)?
        };
        let (tx, out) = tokio::sync::mpsc::channel::<Result<pb::TaskEvent, Status>>(1024);
        let cancel = self.cancel.child_token();
        tokio::spawn(async move {
            for st in snapshot {
                if tx
                    .send(Ok(pb::TaskEvent { status: Some(st) }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            loop {
                let ev = tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tx.closed() => return,
                    ev = rx.recv() => ev,
                };
                match ev {
                    Ok(e) => {
                        if e.lease != lease
                            || (!filter.is_empty() && !filter.contains(&e.status.task_id))
                        {
                            continue;
                        }
                        if tx
                            .send(Ok(pb::TaskEvent {
                                status: Some(e.status.clone()),
                            }))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "watch fell behind by {n} events; re-read statuses"
                            ))))
                            .await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    type LogsStream = LogStream;

    async fn logs(
        &self,
        req: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        // The task must be the session's lease's (NotFound otherwise).
        self.core.statuses(&lease, &[r.task_id])?;
        let (tx, out) = tokio::sync::mpsc::channel::<Result<pb::LogChunk, Status>>(64);
        let (core, cancel) = (self.core.clone(), self.cancel.child_token());
        tokio::spawn(async move {
            let mut changed = core.logs.subscribe();
            let mut offset = r.offset;
            loop {
                // The status first: output that arrived before the task ended is read below.
                let status = match core.statuses(&lease, &[r.task_id]) {
                    Ok(mut s) => s.pop(),
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                for p in core.logs.read(r.task_id, offset) {
                    offset = p.offset + p.data.len() as u64;
                    let chunk = pb::LogChunk {
                        offset: p.offset,
                        stream: p.stream,
                        data: p.data,
                        ..Default::default()
                    };
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                let ended = status.as_ref().is_some_and(|s| {
                    matches!(
                        pb::TaskState::try_from(s.state),
                        Ok(pb::TaskState::Finished
                            | pb::TaskState::Failed
                            | pb::TaskState::Cancelled)
                    )
                });
                if ended || !r.follow {
                    if ended {
                        let eof = pb::LogChunk {
                            offset,
                            eof: true,
                            status,
                            ..Default::default()
                        };
                        let _ = tx.send(Ok(eof)).await;
                    }
                    return;
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tx.closed() => return,
                    _ = changed.changed() => {}
                    // The end of a task is not a log event: look again now and then.
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn get_cluster(
        &self,
        req: Request<pb::ClusterRequest>,
    ) -> Result<Response<pb::ClusterInfo>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        Ok(Response::new(self.core.cluster(&lease)?))
    }

    async fn create_placement_group(
        &self,
        req: Request<pb::CreatePlacementGroupRequest>,
    ) -> Result<Response<pb::PlacementGroupInfo>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        let st = pb::PlacementStrategy::try_from(r.strategy)
            .map_err(|_| Status::invalid_argument("unknown placement strategy"))?;
        Ok(Response::new(
            self.core
                .create_placement_group(&lease, &r.bundles, st)
                .await?,
        ))
    }

    async fn remove_placement_group(
        &self,
        req: Request<pb::RemovePlacementGroupRequest>,
    ) -> Result<Response<pb::RemovePlacementGroupResponse>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        let cancelled = self
            .core
            .remove_placement_group(&lease, r.placement_group_id)?;
        Ok(Response::new(pb::RemovePlacementGroupResponse {
            cancelled,
        }))
    }

    async fn prove_worker(
        &self,
        req: Request<pb::ProveRequest>,
    ) -> Result<Response<pb::ProofVerdict>, Status> {
        let r = req.into_inner();
        let lease = self.auth(r.auth.as_ref())?;
        if !r.lease_id.is_empty() && r.lease_id != *lease {
            return Err(Status::permission_denied(format!(
                "this session is for lease {lease}, not {:?}",
                r.lease_id
            )));
        }
        let opts = ProveOptions {
            n: r.n,
            rounds: r.rounds,
        };
        Ok(Response::new(
            self.prover.prove(&lease, &r.worker_id, opts).await?,
        ))
    }

    async fn get_transcript(
        &self,
        req: Request<pb::TranscriptRequest>,
    ) -> Result<Response<pb::CheckpointTranscript>, Status> {
        let r = req.into_inner();
        self.core
            .checkpoint(&r.lease_id, r.sequence)
            .map(Response::new)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "this keeper posted no checkpoint {} of lease {}",
                    r.sequence, r.lease_id
                ))
            })
    }
}
