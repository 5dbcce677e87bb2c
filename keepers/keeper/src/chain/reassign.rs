//! Taking over a silent keeper's leases: for every active lease whose committee includes this
//! keeper but whose keeper is another, if that keeper is no longer active, or has posted no
//! checkpoint for longer than the lease's interval + grace (paused time not counted), and this
//! keeper is its successor — the first active member after it in committee order, which the
//! program checks too — this keeper sends `lease_reassign_keeper`. The watcher's next read then
//! finds the lease naming this keeper, and serves it; the old keeper, if it comes back, reads
//! that it no longer owns the lease and lets it go. Only the successor sends, so two keepers
//! never race for one lease.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gpunet_sdk::ix;
use gpunet_sdk::{GpunetClient, Keeper, KeeperStatus, Lease, LeaseFilter, LeaseStatus, SdkError};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Keypair;
use solana_sdk::signer::Signer;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::submit::Submitter;

use crate::core::Core;

/// The successor of `keeper` on a committee: the first member after it (cyclically) for which
/// `active` holds, and the members skipped on the way. `None` when no other member is active
/// or `keeper` is not a member.
pub fn successor(
    committee: &[Pubkey],
    keeper: &Pubkey,
    active: impl Fn(&Pubkey) -> bool,
) -> Option<(Pubkey, Vec<Pubkey>)> {
    let n = committee.len();
    let from = committee.iter().position(|m| m == keeper)?;
    let mut skipped = Vec::new();
    for d in 1..n {
        let m = committee[(from + d) % n];
        if active(&m) {
            return Some((m, skipped));
        }
        skipped.push(m);
    }
    None
}

/// Whether `lease`'s keeper may be replaced at chain time `now`: it is not active, or it is
/// late past interval + grace (+ paused time, `paused_now` = `config.paused_seconds_at(now)`).
pub fn replaceable(lease: &Lease, keeper_active: bool, now: i64, paused_now: i64) -> bool {
    if !keeper_active {
        return true;
    }
    let deadline = lease
        .last_checkpoint_at
        .saturating_add(lease.terms.checkpoint_interval)
        .saturating_add(lease.terms.grace_period)
        .saturating_add(lease.paused_since_mark(paused_now));
    now > deadline
}

/// Sends `lease_reassign_keeper` for the leases this keeper is the successor of.
pub struct Reassigner {
    client: GpunetClient,
    submit: Submitter,
    wallet: Keypair,
    me: Pubkey,
    core: Arc<Core>,
}

impl Reassigner {
    /// A reassigner for the keeper whose wallet is `wallet`.
    pub fn new(rpc_url: &str, wallet: Keypair, core: Arc<Core>) -> Self {
        let me = gpunet_sdk::pda::keeper(&wallet.pubkey());
        Reassigner {
            client: GpunetClient::new(rpc_url.to_string()),
            submit: Submitter::new(rpc_url, core.metrics.clone()),
            wallet,
            me,
            core,
        }
    }

    /// One pass: returns the leases taken over.
    pub async fn tick(&self) -> Result<Vec<Pubkey>, SdkError> {
        let config = self.client.config().await?;
        if config.paused {
            return Ok(Vec::new());
        }
        let now = self.client.chain_time().await?;
        let paused_now = config.paused_seconds_at(now).unwrap_or(i64::MAX);
        let keepers: HashMap<Pubkey, Keeper> = self.client.keepers().await?.into_iter().collect();
        let active = |k: &Pubkey| {
            keepers
                .get(k)
                .is_some_and(|k| k.status == KeeperStatus::Active)
        };
        let mut taken = Vec::new();
        for (address, lease) in self.client.leases(LeaseFilter::All).await? {
            if lease.status != LeaseStatus::Active
                || lease.keeper == self.me
                || !lease.committee().contains(&self.me)
                || !replaceable(&lease, active(&lease.keeper), now, paused_now)
            {
                continue;
            }
            let Some((next, skipped)) = successor(lease.committee(), &lease.keeper, active) else {
                continue;
            };
            if next != self.me {
                continue;
            }
            let ixn =
                ix::lease_reassign_keeper(&self.wallet.pubkey(), &address, &lease.keeper, &skipped);
            match self.submit.send("reassign", &[ixn], &self.wallet).await {
                Ok(sig) => {
                    self.core.metrics.reassignments.inc();
                    info!(lease = %address, from = %lease.keeper, %sig, "took over a silent keeper's lease");
                    taken.push(address);
                }
                Err(e) => warn!(lease = %address, error = %e, "reassignment not sent"),
            }
        }
        Ok(taken)
    }

    /// Runs until `cancel`, one pass every `every`.
    pub async fn run(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        super::every(every, cancel, || async {
            if let Err(e) = self.tick().await {
                self.core.metrics.chain_read_errors.inc();
                warn!(error = %e, "reassignment pass failed; retrying next tick");
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use anchor_lang::{AnchorDeserialize, Space};

    use super::*;

    #[test]
    fn a_keeper_is_replaceable_when_inactive_or_late_past_interval_and_grace() {
        let mut l = Lease::deserialize(&mut &vec![0u8; Lease::INIT_SPACE][..]).unwrap();
        l.last_checkpoint_at = 1_000;
        l.terms.checkpoint_interval = 300;
        l.terms.grace_period = 60;
        assert!(!replaceable(&l, true, 1_360, 0));
        assert!(replaceable(&l, true, 1_361, 0));
        assert!(
            replaceable(&l, false, 1_000, 0),
            "an inactive keeper at once"
        );
        // Paused time since the lease's mark does not count against the keeper.
        assert!(!replaceable(&l, true, 1_400, 40));
    }

    #[test]
    fn the_successor_is_the_next_active_member_cyclically() {
        let [a, b, c] = [
            Pubkey::new_unique(),
            Pubkey::new_unique(),
            Pubkey::new_unique(),
        ];
        let committee = [a, b, c];
        let all = |_: &Pubkey| true;
        assert_eq!(successor(&committee, &a, all), Some((b, vec![])));
        assert_eq!(successor(&committee, &c, all), Some((a, vec![])));
        // b is gone: a's successor is c, and b is named as skipped.
        assert_eq!(successor(&committee, &a, |k| *k != b), Some((c, vec![b])));
        // Nobody else active: nobody takes over.
        assert_eq!(successor(&committee, &a, |k| *k == a), None);
        assert_eq!(successor(&committee, &Pubkey::new_unique(), all), None);
    }
}
