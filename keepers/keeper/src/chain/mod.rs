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
//! - [`evidence`] and [`slash`]: slashing with the lease's committee — the [`Committee`]
//!   checks evidence (failed proofs only the worker can have caused; a checkpoint its
//!   transcript does not support), gathers a quorum of co-signatures over keeper-to-keeper
//!   gRPC ([`PeerSvc`]: each co-signer re-checks on its own before it signs) and sends
//!   `provider_slash` or `keeper_slash`.
//! - [`submit`]: the [`Submitter`] every chain write goes through — fresh blockhashes,
//!   retries with backoff on transport failures only, every failure counted by its error.
//! - [`audit`]: the [`Auditor`] that re-verifies other members' checkpoints from their
//!   transcripts and slashes the keeper behind a false (or withheld) one.
//!
//! The rule that keeps this a seam: the dispatch core ([`crate::core`], `flow`, `tasks`,
//! `cluster`, [`crate::sched`]) imports nothing from this module. The chain side feeds the
//! core only through the `directory.rs` traits, handed to [`crate::start`], and
//! [`crate::core::Core::end_lease`].

pub mod audit;
pub mod checkpoint;
pub mod directory;
pub mod evidence;
pub mod reassign;
pub mod slash;
pub mod submit;
pub mod watch;

pub use audit::Auditor;
pub use checkpoint::{CheckpointError, Checkpointer, Posted};
pub use directory::{ChainClock, ChainDirectory, Ended};
pub use reassign::Reassigner;
pub use slash::{Committee, CommitteeSlot, Fault, PeerSvc, SlashError};
pub use submit::{RetryPolicy, Submitter};
pub use watch::{WatchConfig, Watcher};

/// Awaits `pass()` every `every` (a late pass delays the next, never bunches them) until
/// `cancel`: the loop of each of the chain side's timed services.
pub(crate) async fn every<F, Fut>(
    every: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        pass().await;
    }
}
