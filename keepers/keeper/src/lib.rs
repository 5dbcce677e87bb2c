//! `gpunet-keeper`: the keeper's dispatch core.
//!
//! ```text
//!  clients ──KeeperService (svc_client)──┐    ┌── workers: WorkerService.Join (svc_worker)
//!          auth::Gate: challenges, signed sessions, nonces (the gRPC layer's own state)
//!                                        ▼    ▼
//!   ┌──────────── Core (core.rs): one mutex, the public API ─────────────┐
//!   │  Flow (flow.rs): each event walked across the two managers          │
//!   │  TaskTable (tasks.rs)              Clusters (cluster.rs)            │──▶ Store (store/)
//!   │  tasks, deps, retries, lineage,    workers, clusters: lease →       │   WAL + redb
//!   │  object locations, retention       Scheduler (sched.rs), lanes      │
//!   └─────────────────────────────────────────────────────────────────────┘
//!        ▲ directory.rs traits (WorkerRegistry, LeaseDirectory) ◀── chain/ (accounts, pubsub)
//!   proofs.rs (Prover) ── proof_routes.rs (commits/openings from the worker stream)
//! ```
//!
//! - [`core`]: the coordinator — one lock, the public API, sending side effects.
//! - `flow` (private): the transitions that cross both managers (submit → ready → start →
//!   result → finish / retry / re-make), collected per operation.
//! - `tasks` (private): the task manager — tasks, dependencies, retries, lineage, retention,
//!   exactly-once completion as seen by clients (completion is visible only once durable).
//! - `cluster` (private): the cluster manager — connected workers, clusters per lease and
//!   their schedulers, placement groups, held resources, pipelining lanes, object pulls.
//! - [`sched`]: Ray-style scheduler (resources, strategies, placement groups), pure and fast.
//! - [`store`]: write-ahead log + redb persistence with a group-commit thread.
//! - [`directory`]: the chain-facing traits ([`WorkerRegistry`], [`LeaseDirectory`]) with
//!   in-memory implementations (offline mode, tests, benchmarks); [`chain`]: their
//!   chain-backed implementation and the watcher that keeps it current and ends leases.
//! - [`liveness`]: when each worker key was last heard from, on any connection (serving or
//!   standby): what a slash for a worker's silence rests on.
//! - [`auth`]: challenges, signed sessions and nonce windows ([`auth::Gate`]).
//! - [`proofs`]: benchmark proofs over the task stream — challenge a worker, time its rounds,
//!   request an opening, verify, record the verdict as evidence; [`proof_routes`] routes the
//!   worker's proof messages to it.
//! - [`server`]: wires it all to tonic (+ health, reflection v1 and v1alpha) and the
//!   Prometheus endpoint.
//! - [`explorer`]: the explorer web page — providers, keepers, leases with their checkpoints
//!   and slashes from the chain, and the live clusters of the leases a keeper in this process
//!   serves.
//!
//! The Rust client of the client ↔ keeper API is not here: it is `gpunet-task-client`
//! (`sdk/task-client`, re-exported as `gpunet_sdk::task`), so a dApp links no daemon code.
//!
//! No module imports one that imports it back (`docs/dispatch.md`, "Architecture").
//! `docs/dispatch.md` describes the protocol and the Ray semantics followed.

#![warn(missing_docs)]

pub mod auth;
pub mod chain;
mod cluster;
pub mod config;
pub mod core;
pub mod directory;
pub mod error;
pub mod explorer;
mod flow;
pub use gpunet_proto::labels;
pub mod liveness;
pub mod logs;
pub mod metrics;
pub mod proof_routes;
pub mod proofs;
pub mod sched;
pub mod server;
pub mod store;
mod svc_client;
mod svc_worker;
mod tasks;

pub use config::KeeperConfig;
pub use directory::{InMemoryLeases, InMemoryRegistry, LeaseDirectory, LeaseInfo, WorkerRegistry};
pub use error::KeeperError;
pub use server::{KeeperHandle, start, start_with};
