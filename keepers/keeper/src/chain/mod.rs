//! The keeper's chain side — the seam the next issue fills. Nothing lives here yet.
//!
//! What goes here: a watcher that reads provider and lease accounts (and follows the program's
//! CPI events) and implements the [`crate::directory`] traits — [`crate::WorkerRegistry`]
//! (which worker keys a provider's on-chain account lists) and [`crate::LeaseDirectory`]
//! (who owns which lease, its provider and GPUs) — from chain data instead of the in-memory
//! maps; the transaction submitter that turns recorded [`crate::store::Evidence`] (worker
//! deaths, benchmark-proof verdicts and their transcript digests) into `lease_checkpoint` and
//! `provider_slash` transactions, recorded before they are sent and idempotent on retry; and
//! committee co-signing.
//!
//! The rule that keeps this a seam: the dispatch core ([`crate::core`], `flow`,
//! `tasks`, `cluster`, [`crate::sched`]) imports nothing from this module.
//! The chain side feeds the core only through the `directory.rs` traits, handed to
//! [`crate::start`], and reads what the core produced from the store.
