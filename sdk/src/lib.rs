//! # gpunet-sdk
//!
//! What a client needs to talk to the gpunet program: PDAs derived from the program's own seed
//! constants ([`pda`]), an instruction builder per instruction ([`ix`]) whose result any
//! signer can sign, the program's errors by code ([`errors`]), its events ([`events`]) and a
//! JSON-RPC client ([`client`]) with typed fetch, filtered listings and time travel; and, with
//! the default cargo feature `task`, the task client ([`task`]: a signed session on a lease
//! with its keeper, over gRPC) — the crate `gpunet-task-client`, which links no keeper daemon;
//! with the default feature `audit`, [`audit`]: any lease's payouts re-verified from the proof
//! transcripts its keepers serve.

#[cfg(feature = "audit")]
pub mod audit;
pub mod client;
pub mod cluster;
pub mod committee;
pub mod cosign;
pub mod errors;
pub mod events;
pub mod ix;
pub mod pda;
pub mod plan;
pub mod resize;
pub mod setup;
pub mod token;
pub mod watch;

#[cfg(feature = "task")]
pub use gpunet_task_client as task;

pub use gpunet;
pub use gpunet::state::{
    Config, ConfigParams, GpuClass, GpuOffer, Keeper, KeeperStatus, Lease, LeaseStatus, Provider,
    ProviderStatus, Verdict,
};

pub use client::{GpunetClient, LeaseFilter, ProviderFilter, SdkError};

/// A region or zone label as text: the NUL-padded bytes `gpunet::state::encode_location` wrote.
pub fn location(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\0')
        .to_string()
}
