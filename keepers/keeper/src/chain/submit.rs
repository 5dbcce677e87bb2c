//! The transaction submitter: every chain write of the keeper goes through [`Submitter`].
//!
//! - A fresh blockhash for each attempt (a transaction signed over a stale one would only
//!   expire), except for a co-signed slash, whose signatures cover its blockhash: that one is
//!   sent again as signed while the blockhash lives.
//! - Transport failures (the node unreachable, a timeout, a transaction not seen confirmed, a
//!   blockhash the node does not know yet) are retried with exponential backoff, up to
//!   [`RetryPolicy::attempts`]; a refusal by the program (or SPL Token, or the runtime) is never
//!   retried: sending the same thing again would be refused again. Each refusal is counted in
//!   `chain_tx_failed` by the program's error name.
//! - Retrying is safe because every write is idempotent on chain: a checkpoint carries its
//!   sequence (`SequenceNotNext` once it landed), a slash needs an active lease (or an unjudged
//!   checkpoint), a reassignment names the current keeper. A retry whose first attempt did land
//!   therefore ends in that program error, which its caller reads as "already done".
//!
//! What the keeper is about to write is recorded in its store before the submitter sends it
//! (the checkpoint transcript: [`crate::core::Core::record_checkpoint`]), so a keeper killed at
//! any moment serves what landed and resumes from the lease account.

use std::future::Future;
use std::time::Duration;

use gpunet_sdk::{GpunetClient, SdkError};
use solana_sdk::instruction::Instruction;
use solana_sdk::message::Message;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature};
use tracing::{debug, warn};

use crate::metrics::{Metrics, label};

/// How often and how patiently a transaction is retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The wait after the first failed attempt; it doubles after each.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `n` (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Whether sending again may succeed: the failure was on the way, not a refusal.
pub fn transient(e: &SdkError) -> bool {
    match e {
        SdkError::Rpc(_) | SdkError::NotConfirmed(_) => true,
        SdkError::Transaction(t) => matches!(
            t,
            solana_sdk::transaction::TransactionError::BlockhashNotFound
                | solana_sdk::transaction::TransactionError::ClusterMaintenance
                | solana_sdk::transaction::TransactionError::WouldExceedMaxBlockCostLimit
                | solana_sdk::transaction::TransactionError::WouldExceedAccountDataBlockLimit
        ),
        _ => false,
    }
}

/// The name a failure is counted under in `chain_tx_failed`.
pub fn failure_kind(e: &SdkError) -> String {
    match e {
        SdkError::Program { error, .. } => error.name.to_string(),
        SdkError::Anchor { name, .. } => name.to_string(),
        SdkError::Token { .. } => "token".into(),
        SdkError::Rpc(_) => "rpc".into(),
        SdkError::NotConfirmed(_) => "not_confirmed".into(),
        SdkError::Transaction(t) => format!("{t:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("transaction")
            .to_string(),
        _ => "other".into(),
    }
}

/// Sends the keeper's transactions (see the module docs).
pub struct Submitter {
    client: GpunetClient,
    metrics: Metrics,
    policy: RetryPolicy,
}

impl Submitter {
    /// A submitter over the JSON-RPC endpoint `rpc_url`, counting in `metrics`.
    pub fn new(rpc_url: &str, metrics: Metrics) -> Self {
        Submitter {
            client: GpunetClient::new(rpc_url.to_string()),
            metrics,
            policy: RetryPolicy::default(),
        }
    }

    /// The same with `policy`.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sends `instructions` paid and signed by `payer`, a fresh blockhash each attempt;
    /// `what` names it in logs and metrics (`checkpoint`, `reassign`, …).
    pub async fn send(
        &self,
        what: &'static str,
        instructions: &[Instruction],
        payer: &Keypair,
    ) -> Result<Signature, SdkError> {
        self.attempt(what, || self.client.send(instructions, payer, &[]))
            .await
    }

    /// Sends message `m`, already signed by `cosigned`, with `payer`'s signature added (a
    /// co-signed slash: the same message each attempt).
    pub async fn send_cosigned(
        &self,
        what: &'static str,
        m: &Message,
        payer: &Keypair,
        cosigned: &[(Pubkey, Signature)],
    ) -> Result<Signature, SdkError> {
        self.attempt(what, || {
            self.client.send_cosigned(m.clone(), payer, cosigned)
        })
        .await
    }

    async fn attempt<F, Fut>(&self, what: &'static str, mut send: F) -> Result<Signature, SdkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Signature, SdkError>>,
    {
        let attempts = self.policy.attempts.max(1);
        let mut n = 0;
        loop {
            n += 1;
            match send().await {
                Ok(sig) => {
                    self.metrics
                        .chain_tx_sent
                        .get_or_create(&label("what", what))
                        .inc();
                    return Ok(sig);
                }
                Err(e) if transient(&e) && n < attempts => {
                    let wait = self.policy.backoff(n);
                    self.metrics
                        .chain_tx_retries
                        .get_or_create(&label("what", what))
                        .inc();
                    debug!(what, attempt = n, error = %e, ?wait, "transaction not through; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    let kind = failure_kind(&e);
                    self.metrics
                        .chain_tx_failed
                        .get_or_create(&label("error", kind.clone()))
                        .inc();
                    warn!(what, attempts = n, error = %e, kind, "transaction failed");
                    return Err(e);
                }
            }
        }
    }

    /// The client it sends with (for reads that go with a write).
    pub fn client(&self) -> &GpunetClient {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (1..=7).map(|n| p.backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, vec![250, 500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(p.backoff(200), p.max_backoff);
    }

    #[test]
    fn refusals_are_final_and_transport_failures_are_not() {
        use solana_sdk::transaction::TransactionError;
        assert!(transient(&SdkError::NotConfirmed(Signature::default())));
        assert!(transient(&SdkError::Transaction(
            TransactionError::BlockhashNotFound
        )));
        assert!(!transient(&SdkError::Transaction(
            TransactionError::InsufficientFundsForFee
        )));
        let refused = SdkError::Token {
            instruction: 0,
            code: 1,
            message: "insufficient funds",
        };
        assert!(!transient(&refused));
        assert_eq!(failure_kind(&refused), "token");
        assert_eq!(
            failure_kind(&SdkError::Transaction(
                TransactionError::InsufficientFundsForFee
            )),
            "InsufficientFundsForFee"
        );
    }

    /// A node that is not there: every attempt fails on the way, each is retried after its
    /// backoff, and the last failure is counted once.
    #[tokio::test]
    async fn an_unreachable_node_is_retried_with_backoff_then_given_up() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // bound and dropped: nothing listens there now
        let metrics = Metrics::default();
        let policy = RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(150),
        };
        let s = Submitter::new(&format!("http://127.0.0.1:{port}"), metrics.clone())
            .with_policy(policy);
        let payer = Keypair::new();
        let ix = Instruction::new_with_bytes(Pubkey::new_unique(), &[], vec![]);
        let t = std::time::Instant::now();
        let e = s.send("test", &[ix], &payer).await.unwrap_err();
        assert!(matches!(e, SdkError::Rpc(_)), "{e}");
        assert!(t.elapsed() >= Duration::from_millis(250), "two backoffs");
        let text = metrics.render();
        assert!(
            text.contains("chain_tx_retries_total{what=\"test\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("chain_tx_failed_total{error=\"rpc\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("chain_tx_sent_total{what=\"test\"}"),
            "{text}"
        );
    }
}
