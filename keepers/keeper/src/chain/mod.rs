//! The keeper's chain side.
//!
//! - [`directory`]: [`ChainDirectory`], the chain-backed [`crate::WorkerRegistry`] (which worker
//!   keys a provider's account lists) and [`crate::LeaseDirectory`] (the leases whose account
//!   names this keeper, while active and funded). Ids are account addresses.
//! - [`watch`]: the [`Watcher`] that keeps it in step — program pubsub for speed, a full read
//!   every few seconds for what pubsub missed and for expiry — and ends on the core the leases
//!   that stop being served (closed, expired, slashed, reassigned away).
//!
//! - [`checkpoint`]: the [`Checkpointer`] that proves every worker of a due lease at once and
//!   posts the verdict as `lease_checkpoint` (exactly once: the program's sequence rule).
//!
//! - [`reassign`]: the [`Reassigner`] that takes over a silent (or inactive) keeper's lease
//!   when this keeper is its deterministic successor.
//!
//! Still to come here: slashing from failed proofs and silent workers with committee
//! co-signing, and `keeper_slash` of a lying keeper.
//!
//! The rule that keeps this a seam: the dispatch core ([`crate::core`], `flow`, `tasks`,
//! `cluster`, [`crate::sched`]) imports nothing from this module. The chain side feeds the
//! core only through the `directory.rs` traits, handed to [`crate::start`], and
//! [`crate::core::Core::end_lease`].

pub mod checkpoint;
pub mod directory;
pub mod reassign;
pub mod watch;

pub use checkpoint::{CheckpointError, Checkpointer, Posted};
pub use directory::{ChainClock, ChainDirectory, Ended};
pub use reassign::Reassigner;
pub use watch::{WatchConfig, Watcher};

/// Counts a transaction the chain refused or that was not sent, by the program's error name
/// (or the kind of failure), in `chain_tx_failed`.
pub(crate) fn count_tx_failure(core: &crate::core::Core, e: &gpunet_sdk::SdkError) {
    use gpunet_sdk::SdkError;
    let kind = match e {
        SdkError::Program { error, .. } => error.name.to_string(),
        SdkError::Anchor { name, .. } => name.to_string(),
        SdkError::Token { .. } => "token".into(),
        SdkError::Rpc(_) => "rpc".into(),
        _ => "other".into(),
    };
    core.metrics
        .chain_tx_failed
        .get_or_create(&crate::metrics::label("error", kind))
        .inc();
}
