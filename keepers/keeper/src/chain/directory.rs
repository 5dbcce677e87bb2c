//! The chain-backed directories: which worker keys each provider's account lists
//! ([`WorkerRegistry`]) and which leases this keeper serves ([`LeaseDirectory`]), kept from
//! the program's accounts by the watcher ([`super::watch`]). Ids are account addresses
//! (base58): a lease is its lease account, a provider its provider account.
//!
//! A lease is served while it is `Active`, names this keeper's account as its keeper, and has
//! not expired (escrow ran out plus the grace period, paused time added) on the chain's clock.
//! When a lease stops being served, [`ChainDirectory`] says why, so the core can tell the
//! lease's clients.

use std::collections::{HashMap, HashSet};

use gpunet_sdk::gpunet::state::{Lease, LeaseStatus, Provider};
use parking_lot::RwLock;
use solana_sdk::pubkey::Pubkey;

use crate::directory::{LeaseDirectory, LeaseInfo, WorkerRegistry};
use crate::liveness::ChainTime;
use crate::proofs::{Anchor, ChallengeAnchor};

/// Why a lease this keeper served is no longer served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The lease account is gone (`lease_close`).
    Closed,
    /// Ended by a slash of its provider.
    Slashed,
    /// `lease_reassign_keeper` gave it to another keeper account.
    Reassigned(Pubkey),
    /// Its escrow ran out and the grace period passed, at this chain time.
    Expired(i64),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Closed => write!(f, "closed on chain"),
            Ended::Slashed => write!(f, "its provider was slashed"),
            Ended::Reassigned(k) => write!(f, "reassigned to keeper {k}"),
            Ended::Expired(at) => write!(f, "escrow ran out (expired at unix time {at})"),
        }
    }
}

/// The chain's clock and pause state, as the last reconciliation read them.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChainClock {
    /// The Clock sysvar's `unix_timestamp`.
    pub now: i64,
    /// `config.paused_seconds_at(now)`.
    pub paused_now: i64,
}

#[derive(Default)]
struct State {
    /// The chain point challenges are bound to, from the last read.
    anchor: Option<Anchor>,
    /// Provider account → worker keys it lists.
    workers: HashMap<Pubkey, HashSet<[u8; 32]>>,
    /// Lease account → lease, for the leases known to name this keeper.
    leases: HashMap<Pubkey, Lease>,
    /// The leases served: what [`LeaseDirectory::lease`] answers for. A lease leaves this set
    /// exactly once, and that is when its end is reported.
    served: HashSet<Pubkey>,
    clock: ChainClock,
    /// When (this process's clock) `clock` was read; `None` before the first read.
    clock_read: Option<std::time::Instant>,
}

/// [`WorkerRegistry`] and [`LeaseDirectory`] from the program's accounts.
pub struct ChainDirectory {
    keeper: Pubkey,
    state: RwLock<State>,
}

impl ChainDirectory {
    /// An empty directory for the keeper account `keeper` (the PDA, not the wallet).
    pub fn new(keeper: Pubkey) -> Self {
        ChainDirectory {
            keeper,
            state: RwLock::new(State::default()),
        }
    }

    /// This keeper's account.
    pub fn keeper(&self) -> Pubkey {
        self.keeper
    }

    /// Why `lease` is not served at `clock`, or `None` when it is.
    pub fn not_served(&self, lease: &Lease, clock: ChainClock) -> Option<Ended> {
        if lease.status == LeaseStatus::Ended {
            return Some(Ended::Slashed);
        }
        // A pending lease has no keeper yet (`Pubkey::default()`).
        if lease.status != LeaseStatus::Active || lease.keeper != self.keeper {
            return Some(Ended::Reassigned(lease.keeper));
        }
        match lease.expires_at(clock.paused_now) {
            Ok(at) if clock.now > at => Some(Ended::Expired(at)),
            Ok(_) => None,
            // A lease whose arithmetic overflows cannot be billed: not served.
            Err(_) => Some(Ended::Expired(clock.now)),
        }
    }

    /// Replaces what a full read of the chain covers: every provider and the leases that
    /// name this keeper. Returns the listed leases that stopped being served (and why), and
    /// the served leases the read no longer lists: the caller looks each up and hands it to
    /// [`Self::update_lease`], which says why it went (closed, reassigned).
    pub fn reconcile(
        &self,
        providers: Vec<(Pubkey, Provider)>,
        leases: Vec<(Pubkey, Lease)>,
        clock: ChainClock,
    ) -> (Vec<(Pubkey, Ended)>, Vec<Pubkey>) {
        let mut guard = self.state.write();
        let s = &mut *guard;
        s.workers = providers
            .into_iter()
            .map(|(k, p)| (k, p.workers.iter().map(|w| w.to_bytes()).collect()))
            .collect();
        s.clock = clock;
        s.clock_read = Some(std::time::Instant::now());
        let listed: HashSet<Pubkey> = leases.iter().map(|(k, _)| *k).collect();
        let mut unlisted: Vec<Pubkey> = s
            .leases
            .keys()
            .filter(|k| !listed.contains(k))
            .copied()
            .collect();
        unlisted.sort();
        // Unlisted leases that were never served need no lookup.
        for k in &unlisted {
            if !s.served.contains(k) {
                s.leases.remove(k);
            }
        }
        unlisted.retain(|k| s.served.contains(k));
        let mut ended = Vec::new();
        for (k, l) in leases {
            match self.not_served(&l, clock) {
                None => {
                    s.served.insert(k);
                }
                Some(why) => {
                    if s.served.remove(&k) {
                        ended.push((k, why));
                    }
                }
            }
            s.leases.insert(k, l);
        }
        ended.sort_by_key(|(k, _)| *k);
        (ended, unlisted)
    }

    /// One lease account changed (a pubsub notification, or a lookup after a
    /// reconciliation); `None` when it no longer exists. Returns why the lease stopped being
    /// served, if this change ended it.
    pub fn update_lease(&self, address: Pubkey, lease: Option<Lease>) -> Option<Ended> {
        let mut guard = self.state.write();
        let s = &mut *guard;
        let why = match lease {
            Some(l) => {
                let why = self.not_served(&l, s.clock);
                // Only leases naming this keeper are kept (a notification shows every lease).
                if l.keeper == self.keeper {
                    s.leases.insert(address, l);
                } else {
                    s.leases.remove(&address);
                }
                why
            }
            None => {
                s.leases.remove(&address);
                Some(Ended::Closed)
            }
        };
        match why {
            None => {
                s.served.insert(address);
                None
            }
            Some(why) => s.served.remove(&address).then_some(why),
        }
    }

    /// The chain point the next challenges are bound to (the watcher's last read).
    pub fn set_anchor(&self, anchor: Anchor) {
        self.state.write().anchor = Some(anchor);
    }

    /// A provider account changed (`None`: closed).
    pub fn update_provider(&self, address: Pubkey, provider: Option<Provider>) {
        let mut s = self.state.write();
        match provider {
            Some(p) => {
                let keys = p.workers.iter().map(|w| w.to_bytes()).collect();
                s.workers.insert(address, keys);
            }
            None => {
                s.workers.remove(&address);
            }
        }
    }

    /// The last state of lease `address` the watcher saw (served or not).
    pub fn lease_state(&self, address: &Pubkey) -> Option<Lease> {
        self.state.read().leases.get(address).cloned()
    }

    /// Leases served now, by address.
    pub fn served_leases(&self) -> Vec<Pubkey> {
        let mut v: Vec<Pubkey> = self.state.read().served.iter().copied().collect();
        v.sort();
        v
    }

    fn info(address: &Pubkey, l: &Lease) -> LeaseInfo {
        LeaseInfo {
            lease_id: address.to_string(),
            user: l.user.to_bytes(),
            provider: l.provider.to_string(),
            gpus: u32::from(l.gpus),
        }
    }
}

impl ChallengeAnchor for ChainDirectory {
    fn anchor(&self) -> Option<Anchor> {
        self.state.read().anchor
    }
}

impl ChainTime for ChainDirectory {
    /// The last read of the chain's clock, moved on by the time since it was read.
    fn chain_now(&self) -> Option<i64> {
        let s = self.state.read();
        let read = s.clock_read?;
        let since = i64::try_from(read.elapsed().as_secs()).unwrap_or(i64::MAX);
        Some(s.clock.now.saturating_add(since))
    }
}

impl WorkerRegistry for ChainDirectory {
    fn is_allowed(&self, provider: &str, worker_key: &[u8; 32]) -> bool {
        let Ok(provider) = provider.parse::<Pubkey>() else {
            return false;
        };
        self.state
            .read()
            .workers
            .get(&provider)
            .is_some_and(|keys| keys.contains(worker_key))
    }
}

impl LeaseDirectory for ChainDirectory {
    fn lease(&self, lease_id: &str) -> Option<LeaseInfo> {
        let address = lease_id.parse::<Pubkey>().ok()?;
        let s = self.state.read();
        if !s.served.contains(&address) {
            return None;
        }
        s.leases.get(&address).map(|l| Self::info(&address, l))
    }

    fn leases_for_provider(&self, provider: &str) -> Vec<LeaseInfo> {
        let Ok(provider) = provider.parse::<Pubkey>() else {
            return Vec::new();
        };
        let s = self.state.read();
        let mut v: Vec<LeaseInfo> = s
            .served
            .iter()
            .filter_map(|k| s.leases.get(k).map(|l| (k, l)))
            .filter(|(_, l)| l.provider == provider)
            .map(|(k, l)| Self::info(k, l))
            .collect();
        v.sort_by(|a, b| a.lease_id.cmp(&b.lease_id));
        v
    }
}

#[cfg(test)]
mod tests {
    use anchor_lang::{AnchorDeserialize, Space};

    use super::*;

    /// An all-zero account of `T` (borsh: empty strings and vectors), to fill in.
    fn zeroed<T: AnchorDeserialize + Space>() -> T {
        T::deserialize(&mut &vec![0u8; T::INIT_SPACE][..]).expect("zeroed account")
    }

    /// 2 GPUs at 10 per GPU-second from t=1,000, 12,000 deposited: funded until 1,600, then
    /// 60 s of grace.
    fn lease(keeper: Pubkey, provider: Pubkey) -> Lease {
        let mut l: Lease = zeroed();
        l.user = Pubkey::new_unique();
        l.provider = provider;
        l.keeper = keeper;
        l.status = LeaseStatus::Active;
        l.gpus = 2;
        l.price_per_gpu_second = 10;
        l.funded = 12_000;
        l.start = 1_000;
        l.terms.grace_period = 60;
        l
    }

    fn at(now: i64) -> ChainClock {
        ChainClock { now, paused_now: 0 }
    }

    #[test]
    fn serves_active_funded_leases_that_name_this_keeper() {
        let me = Pubkey::new_unique();
        let d = ChainDirectory::new(me);
        let p = Pubkey::new_unique();
        let l = lease(me, p);
        assert_eq!(d.not_served(&l, at(1_660)), None);
        assert_eq!(d.not_served(&l, at(1_661)), Some(Ended::Expired(1_660)));
        let other = Pubkey::new_unique();
        assert_eq!(
            d.not_served(&lease(other, p), at(1_000)),
            Some(Ended::Reassigned(other))
        );
        let mut slashed = lease(me, p);
        slashed.status = LeaseStatus::Ended;
        assert_eq!(d.not_served(&slashed, at(1_000)), Some(Ended::Slashed));
        let mut pending = lease(Pubkey::default(), p);
        pending.status = LeaseStatus::Pending;
        assert!(d.not_served(&pending, at(1_000)).is_some());
        // Paused time extends the deadline.
        let paused = ChainClock {
            now: 1_700,
            paused_now: 100,
        };
        assert_eq!(d.not_served(&l, paused), None);
    }

    #[test]
    fn reconcile_reports_what_ended_and_what_to_look_up() {
        let me = Pubkey::new_unique();
        let d = ChainDirectory::new(me);
        let p = Pubkey::new_unique();
        let (a, b) = (Pubkey::new_unique(), Pubkey::new_unique());
        let (ended, unlisted) = d.reconcile(
            vec![],
            vec![(a, lease(me, p)), (b, lease(me, p))],
            at(1_000),
        );
        assert!(ended.is_empty() && unlisted.is_empty());
        assert_eq!(d.leases_for_provider(&p.to_string()).len(), 2);
        let info = d.lease(&a.to_string()).expect("served");
        assert_eq!((info.provider, info.gpus), (p.to_string(), 2));
        // Time passes: `a` expired; `b` is no longer listed (closed or reassigned).
        let (ended, unlisted) = d.reconcile(vec![], vec![(a, lease(me, p))], at(2_000));
        assert_eq!(ended, vec![(a, Ended::Expired(1_660))]);
        assert_eq!(unlisted, vec![b]);
        assert!(d.lease(&a.to_string()).is_none());
        // The lookup says why `b` went (even though it has expired meanwhile too); a second
        // report of the same end says nothing.
        assert_eq!(d.served_leases(), vec![b]);
        assert_eq!(d.update_lease(b, None), Some(Ended::Closed));
        assert_eq!(d.update_lease(b, None), None);
        assert!(d.served_leases().is_empty());
        // A lease served, then reassigned away between two reads, is named when looked up.
        let c = Pubkey::new_unique();
        d.reconcile(vec![], vec![(c, lease(me, p))], at(1_000));
        let (ended, unlisted) = d.reconcile(vec![], vec![], at(1_001));
        assert!(ended.is_empty());
        assert_eq!(unlisted, vec![c]);
        let moved = Pubkey::new_unique();
        assert_eq!(
            d.update_lease(c, Some(lease(moved, p))),
            Some(Ended::Reassigned(moved))
        );
    }

    #[test]
    fn notifications_end_served_leases_once() {
        let me = Pubkey::new_unique();
        let d = ChainDirectory::new(me);
        let p = Pubkey::new_unique();
        let a = Pubkey::new_unique();
        d.reconcile(vec![], vec![], at(1_000));
        // A new lease naming this keeper is served at once; one naming another is not kept.
        assert_eq!(d.update_lease(a, Some(lease(me, p))), None);
        assert_eq!(d.served_leases(), vec![a]);
        let elsewhere = Pubkey::new_unique();
        let other = Pubkey::new_unique();
        assert_eq!(d.update_lease(elsewhere, Some(lease(other, p))), None);
        assert_eq!(d.served_leases(), vec![a]);
        // Reassigned away, then closed: only the first ends it.
        assert_eq!(
            d.update_lease(a, Some(lease(other, p))),
            Some(Ended::Reassigned(other))
        );
        assert_eq!(d.update_lease(a, None), None);
        // Served again, then closed.
        d.update_lease(a, Some(lease(me, p)));
        assert_eq!(d.update_lease(a, None), Some(Ended::Closed));
    }

    #[test]
    fn only_listed_worker_keys_are_allowed() {
        let d = ChainDirectory::new(Pubkey::new_unique());
        let (p, q) = (Pubkey::new_unique(), Pubkey::new_unique());
        let w = Pubkey::new_unique();
        let mut provider: Provider = zeroed();
        provider.workers = vec![w];
        d.reconcile(vec![(p, provider)], vec![], at(0));
        assert!(d.is_allowed(&p.to_string(), &w.to_bytes()));
        assert!(!d.is_allowed(&q.to_string(), &w.to_bytes()));
        assert!(!d.is_allowed("not-an-address", &w.to_bytes()));
        assert!(!d.is_allowed(&p.to_string(), &[7; 32]));
        d.update_provider(p, None);
        assert!(!d.is_allowed(&p.to_string(), &w.to_bytes()));
    }
}
