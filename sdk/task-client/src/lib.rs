//! # gpunet-task-client
//!
//! A Rust client for a keeper's `KeeperService`: [`Client`] opens a signed session on a lease
//! (the lease's user key signs a fresh keeper challenge once) and numbers every request of the
//! session with a fresh nonce. [`spec`] builds task specs; [`pb`] re-exports the `gpunet.v1`
//! types the client takes and returns; [`keys`] reads and writes Solana JSON keypair files, the
//! one key format of gpunet. [`cluster::ClusterClient`] addresses the leases of a cluster
//! (one lease per provider, each with its keeper) as one cluster: tasks, object refs and
//! placement groups span them, and a lease gone dark loses no task ([`route`] decides where
//! each goes).
//!
//! The crate depends on the generated gRPC code, tonic and ed25519 only — not on the keeper
//! daemon (no redb, axum, prometheus-client or scheduler) nor on the on-chain program. The SDK
//! re-exports it as `gpunet_sdk::task` (cargo feature `task`, on by default).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gpunet_task_client::{Client, keys, spec};
//! let user = keys::read_keypair_file(keys::default_keypair_path())?;
//! let client = Client::connect("http://127.0.0.1:7400", "lease-1", &user).await?;
//! let ids = client.submit(vec![spec::process(&["nvidia-smi"])]).await?;
//! let out = client.get(ids[0], 0, std::time::Duration::from_secs(60)).await?;
//! println!("{}", String::from_utf8_lossy(&out.data));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod cluster;
pub mod route;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::Signer;
use pb::keeper_service_client::KeeperServiceClient;
use tonic::transport::Endpoint;

/// The ed25519 key a lease's user signs with (read one with [`keys::read_keypair_file`]).
pub use ed25519_dalek::SigningKey;
pub use gpunet_proto::keys;
/// The `gpunet.v1` messages and services (generated), as the client takes and returns them.
pub use gpunet_proto::v1 as pb;
/// The gRPC status codes a [`Status`] carries (e.g. `FailedPrecondition` for a lease that ended).
pub use tonic::Code;
/// A gRPC status: what the keeper answers when it refuses a request.
pub use tonic::Status;
/// A stream of messages from the keeper (`watch`).
pub use tonic::Streaming;
/// A connection to a keeper; many sessions share one.
pub use tonic::transport::Channel;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The keeper refused.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] Status),
}

/// A session on one lease.
#[derive(Clone)]
pub struct Client {
    rpc: KeeperServiceClient<Channel>,
    session: Bytes,
    lease: String,
    nonce: Arc<AtomicU64>,
}

/// Connect a channel to a keeper URL (`http://127.0.0.1:7400`).
pub async fn channel(url: &str) -> Result<Channel, ClientError> {
    Ok(Endpoint::from_shared(url.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// What a keeper posted for checkpoint `sequence` of `lease`, with the proofs behind it (no
/// session: anyone may audit a payout).
pub async fn transcript(
    url: &str,
    lease: &str,
    sequence: u64,
) -> Result<pb::CheckpointTranscript, ClientError> {
    let mut rpc =
        KeeperServiceClient::new(channel(url).await?).max_decoding_message_size(256 << 20);
    Ok(rpc
        .get_transcript(pb::TranscriptRequest {
            lease_id: lease.to_string(),
            sequence,
        })
        .await?
        .into_inner())
}

impl Client {
    /// Connect and open a session on `lease` with the user's key.
    pub async fn connect(url: &str, lease: &str, key: &SigningKey) -> Result<Self, ClientError> {
        Self::on_channel(channel(url).await?, lease, key).await
    }

    /// Open a session over an existing channel (channels multiplex many sessions).
    pub async fn on_channel(
        ch: Channel,
        lease: &str,
        key: &SigningKey,
    ) -> Result<Self, ClientError> {
        let mut rpc = KeeperServiceClient::new(ch)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        let c = rpc
            .get_challenge(pb::ChallengeRequest {})
            .await?
            .into_inner();
        let user_key = key.verifying_key().to_bytes();
        let msg = gpunet_proto::session_signing_bytes(&c.keeper_id, lease, &c.challenge, &user_key);
        let sig = key.sign(&msg);
        let s = rpc
            .open_session(pb::OpenSessionRequest {
                lease_id: lease.to_string(),
                user_key: user_key.to_vec().into(),
                challenge: c.challenge,
                signature: sig.to_bytes().to_vec().into(),
            })
            .await?
            .into_inner();
        Ok(Self {
            rpc,
            session: s.session,
            lease: lease.to_string(),
            nonce: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The lease.
    pub fn lease(&self) -> &str {
        &self.lease
    }

    /// A fresh auth block (session + next nonce).
    pub fn next_auth(&self) -> pb::RequestAuth {
        pb::RequestAuth {
            session: self.session.clone(),
            nonce: self.nonce.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    /// The raw gRPC client (for custom requests).
    pub fn raw(&self) -> KeeperServiceClient<Channel> {
        self.rpc.clone()
    }

    /// Submit a batch; returns ids once durably accepted.
    pub async fn submit(&self, tasks: Vec<pb::TaskSpec>) -> Result<Vec<u64>, Status> {
        let r = self
            .rpc
            .clone()
            .submit(pb::SubmitRequest {
                auth: Some(self.next_auth()),
                tasks,
                wait_ms: 0,
            })
            .await?;
        Ok(r.into_inner().task_ids)
    }

    /// Submit and wait for the outcomes (one round trip).
    pub async fn submit_wait(
        &self,
        tasks: Vec<pb::TaskSpec>,
        wait: Duration,
    ) -> Result<pb::SubmitResponse, Status> {
        let r = self
            .rpc
            .clone()
            .submit(pb::SubmitRequest {
                auth: Some(self.next_auth()),
                tasks,
                wait_ms: wait.as_millis().max(1) as u64,
            })
            .await?;
        Ok(r.into_inner())
    }

    /// Statuses.
    pub async fn status(&self, ids: &[u64]) -> Result<Vec<pb::TaskStatus>, Status> {
        let r = self
            .rpc
            .clone()
            .get_status(pb::StatusRequest {
                auth: Some(self.next_auth()),
                task_ids: ids.to_vec(),
            })
            .await?;
        Ok(r.into_inner().statuses)
    }

    /// Cancel.
    pub async fn cancel(&self, ids: &[u64]) -> Result<Vec<bool>, Status> {
        let r = self
            .rpc
            .clone()
            .cancel(pb::CancelRequest {
                auth: Some(self.next_auth()),
                task_ids: ids.to_vec(),
            })
            .await?;
        Ok(r.into_inner().cancelled)
    }

    /// Wait for output `index` of a task.
    pub async fn get(
        &self,
        task: u64,
        index: u32,
        timeout: Duration,
    ) -> Result<pb::GetResponse, Status> {
        let r = self
            .rpc
            .clone()
            .get_result(pb::GetRequest {
                auth: Some(self.next_auth()),
                object: Some(pb::ObjectRef {
                    task_id: task,
                    index,
                }),
                timeout_ms: timeout.as_millis() as u64,
            })
            .await?;
        Ok(r.into_inner())
    }

    /// List tasks.
    pub async fn list(
        &self,
        state: pb::TaskState,
        after: u64,
        limit: u32,
    ) -> Result<Vec<pb::TaskStatus>, Status> {
        let r = self
            .rpc
            .clone()
            .list(pb::ListRequest {
                auth: Some(self.next_auth()),
                state: state as i32,
                after,
                limit,
            })
            .await?;
        Ok(r.into_inner().tasks)
    }

    /// Watch (all tasks of the lease when `ids` is empty).
    pub async fn watch(&self, ids: &[u64]) -> Result<Streaming<pb::TaskEvent>, Status> {
        let r = self
            .rpc
            .clone()
            .watch(pb::WatchRequest {
                auth: Some(self.next_auth()),
                task_ids: ids.to_vec(),
            })
            .await?;
        Ok(r.into_inner())
    }

    /// A task's log (tasks that stream theirs, like a job's driver) from `offset`; with
    /// `follow`, new output as it comes until the task ends (the last chunk has `eof` and the
    /// task's status).
    pub async fn logs(
        &self,
        task_id: u64,
        offset: u64,
        follow: bool,
    ) -> Result<Streaming<pb::LogChunk>, Status> {
        let r = self
            .rpc
            .clone()
            .logs(pb::LogsRequest {
                auth: Some(self.next_auth()),
                task_id,
                offset,
                follow,
            })
            .await?;
        Ok(r.into_inner())
    }

    /// The lease's cluster.
    pub async fn cluster(&self) -> Result<pb::ClusterInfo, Status> {
        Ok(self
            .rpc
            .clone()
            .get_cluster(pb::ClusterRequest {
                auth: Some(self.next_auth()),
            })
            .await?
            .into_inner())
    }

    /// Create a placement group.
    pub async fn create_placement_group(
        &self,
        bundles: Vec<pb::Resources>,
        strategy: pb::PlacementStrategy,
    ) -> Result<pb::PlacementGroupInfo, Status> {
        let r = self
            .rpc
            .clone()
            .create_placement_group(pb::CreatePlacementGroupRequest {
                auth: Some(self.next_auth()),
                bundles,
                strategy: strategy as i32,
            })
            .await?;
        Ok(r.into_inner())
    }

    /// Remove a placement group (its unfinished tasks cancelled, its reservations freed);
    /// returns the cancelled tasks.
    pub async fn remove_placement_group(&self, pg: u64) -> Result<Vec<u64>, Status> {
        let r = self
            .rpc
            .clone()
            .remove_placement_group(pb::RemovePlacementGroupRequest {
                auth: Some(self.next_auth()),
                placement_group_id: pg,
            })
            .await?;
        Ok(r.into_inner().cancelled)
    }

    /// Run a benchmark proof on `worker` (a member of the lease's cluster) and wait for the
    /// keeper's verdict. `n` / `rounds` override the keeper's default size.
    pub async fn prove(
        &self,
        worker: &str,
        n: Option<u32>,
        rounds: Option<u32>,
    ) -> Result<pb::ProofVerdict, Status> {
        let r = self
            .rpc
            .clone()
            .prove_worker(pb::ProveRequest {
                auth: Some(self.next_auth()),
                lease_id: self.lease.clone(),
                worker_id: worker.to_string(),
                n,
                rounds,
            })
            .await?;
        Ok(r.into_inner())
    }
}

/// Task-spec helpers.
pub mod spec {
    use super::pb;
    use bytes::Bytes;

    /// A built-in task (`noop`, `echo`, `fill`, `sleep`, `fail`).
    pub fn builtin(name: &str, payload: impl Into<Bytes>) -> pb::TaskSpec {
        pb::TaskSpec {
            name: name.to_string(),
            executor: Some(pb::task_spec::Executor::Builtin(pb::BuiltinTask {
                name: name.to_string(),
                payload: payload.into(),
            })),
            ..Default::default()
        }
    }

    /// A process task.
    pub fn process(argv: &[&str]) -> pb::TaskSpec {
        pb::TaskSpec {
            name: argv.first().copied().unwrap_or("").to_string(),
            executor: Some(pb::task_spec::Executor::Process(pb::ProcessTask {
                argv: argv.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// An argument referring to output `index` of task `id`.
    pub fn arg_ref(id: u64, index: u32) -> pb::TaskArg {
        pb::TaskArg {
            kind: Some(pb::task_arg::Kind::Ref(pb::ObjectRef {
                task_id: id,
                index,
            })),
        }
    }

    /// An argument referring to output 0 of an earlier task in the same batch.
    pub fn arg_batch(pos: u32) -> pb::TaskArg {
        pb::TaskArg {
            kind: Some(pb::task_arg::Kind::BatchRef(pos)),
        }
    }

    /// A literal argument.
    pub fn arg_value(v: impl Into<Bytes>) -> pb::TaskArg {
        pb::TaskArg {
            kind: Some(pb::task_arg::Kind::Value(v.into())),
        }
    }

    /// Resources.
    pub fn resources(milli_cpus: u32, gpus: u32) -> pb::Resources {
        pb::Resources {
            milli_cpus,
            gpus,
            memory_bytes: 0,
            gpu_model: String::new(),
        }
    }

    /// A strategy.
    pub fn strategy(kind: pb::scheduling_strategy::Kind) -> pb::SchedulingStrategy {
        pb::SchedulingStrategy { kind: Some(kind) }
    }
}
