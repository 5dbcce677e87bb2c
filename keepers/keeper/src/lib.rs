//! `gpunet-keeper`: the keeper's dispatch core.
//!
//! ```text
//!  clients ──KeeperService (signed session + nonce)──┐
//!                                                   ▼
//!                 ┌────────────── Core (one mutex) ──────────────┐
//!                 │ tasks, object locations, dependency graph     │
//!                 │ clusters: lease → Scheduler (sched.rs)        │──▶ Store (redb, group commit)
//!                 │ connected workers, pulls, watch events        │
//!                 └───────────────────────────────────────────────┘
//!                                                   ▲
//!  workers ───WorkerService.Join (one stream each)──┘   heartbeat monitor ─ marks dead, retries
//! ```
//!
//! - [`sched`]: Ray-style scheduler (resources, strategies, placement groups), pure and fast.
//! - [`core`]: task lifecycle — dependencies, retries, cancellation, lineage re-execution,
//!   exactly-once completion as seen by clients (completion is visible only once durable).
//! - [`store`]: redb persistence with a group-commit thread.
//! - [`directory`]: the chain-facing traits ([`WorkerRegistry`], [`LeaseDirectory`]) with
//!   in-memory implementations.
//! - [`auth`]: challenges, signed sessions and nonce windows.
//! - [`proofs`]: benchmark proofs over the task stream — challenge a worker, time its rounds,
//!   request an opening, verify, record the verdict as evidence.
//! - [`server`]: wires it all to tonic (+ health, reflection) and the Prometheus endpoint.
//!
//! The Rust client of the client ↔ keeper API is not here: it is `gpunet-task-client`
//! (`sdk/task-client`, re-exported as `gpunet_sdk::task`), so a dApp links no daemon code.
//!
//! `docs/dispatch.md` describes the protocol and the Ray semantics followed.

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod core;
pub mod directory;
pub mod error;
pub mod metrics;
pub mod proofs;
pub mod sched;
pub mod server;
pub mod store;
mod svc_client;
mod svc_worker;

pub use config::KeeperConfig;
pub use directory::{InMemoryLeases, InMemoryRegistry, LeaseDirectory, LeaseInfo, WorkerRegistry};
pub use error::KeeperError;
pub use server::{KeeperHandle, start};
