//! Which of a provider's workers owes which lease its GPUs: the layout every party computes
//! alike from the chain alone.
//!
//! The chain knows a provider's GPU count and its listed worker keys, not each machine's count,
//! so the provider's GPUs are split evenly over its workers in listed order (the first
//! `count % workers` get one more), and its active leases, oldest first (by the slot of their
//! open, then by address), are laid over those GPU slots worker by worker. An older lease keeps
//! its slots when a newer one opens.
//!
//! - A worker follows it ([`worker_plan`]): it offers each keeper only the GPUs of the leases
//!   that keeper serves, so that two keepers never put leases on the same GPU, and keeps a
//!   standby connection ([`standby_keepers`]) to the other committee members of those leases,
//!   so that they can tell for themselves whether it is alive.
//! - A committee weighs a worker silent past the grace period by it ([`share`]): the GPUs of
//!   the lease that worker owes are what a slash for its silence takes.

use std::collections::{BTreeMap, BTreeSet};

use solana_sdk::pubkey::Pubkey;

use crate::{Lease, LeaseStatus};

/// One GPU slot of a provider given to a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The lease account.
    pub lease: Pubkey,
    /// Its keeper account.
    pub keeper: Pubkey,
    /// The worker: its position in the provider's `workers`.
    pub worker: usize,
    /// The GPU: its position among that worker's GPUs.
    pub position: u32,
}

/// The active leases of `leases` that have a keeper, oldest first.
fn active(leases: &[(Pubkey, Lease)]) -> Vec<&(Pubkey, Lease)> {
    let mut v: Vec<&(Pubkey, Lease)> = leases
        .iter()
        .filter(|(_, l)| l.status == LeaseStatus::Active && l.keeper != Pubkey::default())
        .collect();
    v.sort_by_key(|(a, l)| (l.opened_slot, *a));
    v
}

/// The slots of a provider with `workers` listed and `provider_gpus` GPUs that its `leases`
/// (any: only the active ones count) hold, in the order they are laid.
pub fn layout(workers: &[Pubkey], provider_gpus: u16, leases: &[(Pubkey, Lease)]) -> Vec<Slot> {
    let n = workers.len() as u32;
    if n == 0 {
        return Vec::new();
    }
    let g = u32::from(provider_gpus);
    let share = |i: usize| g / n + u32::from((i as u32) < g % n);
    let mut free = (0..workers.len()).flat_map(|w| (0..share(w)).map(move |p| (w, p)));
    let mut out = Vec::new();
    for (address, l) in active(leases) {
        for _ in 0..l.gpus {
            let Some((worker, position)) = free.next() else {
                return out;
            };
            out.push(Slot {
                lease: *address,
                keeper: l.keeper,
                worker,
                position,
            });
        }
    }
    out
}

/// The GPUs each worker owes `lease` in the [`layout`]: only the workers that owe some.
pub fn owed(
    workers: &[Pubkey],
    provider_gpus: u16,
    leases: &[(Pubkey, Lease)],
    lease: &Pubkey,
) -> BTreeMap<Pubkey, u16> {
    let mut out = BTreeMap::new();
    for s in layout(workers, provider_gpus, leases) {
        if s.lease == *lease {
            *out.entry(workers[s.worker]).or_default() += 1;
        }
    }
    out
}

/// GPUs of `lease` that worker `worker` owes it in the [`layout`] (0: none, or not listed).
pub fn share(
    workers: &[Pubkey],
    provider_gpus: u16,
    leases: &[(Pubkey, Lease)],
    lease: &Pubkey,
    worker: &Pubkey,
) -> u16 {
    owed(workers, provider_gpus, leases, lease)
        .get(worker)
        .copied()
        .unwrap_or(0)
}

/// Which of worker `me`'s GPUs (positions in its list, `my_gpus` of them) each keeper account
/// gets: its slots in the [`layout`], those it has. A worker without GPUs serves a lease whole:
/// the keeper of the oldest active lease, with no positions. A worker the provider does not
/// list gets nothing.
pub fn worker_plan(
    workers: &[Pubkey],
    provider_gpus: u16,
    leases: &[(Pubkey, Lease)],
    me: &Pubkey,
    my_gpus: u32,
) -> BTreeMap<Pubkey, Vec<u32>> {
    let mut out: BTreeMap<Pubkey, Vec<u32>> = BTreeMap::new();
    let Some(mine) = workers.iter().position(|w| w == me) else {
        return out;
    };
    if my_gpus == 0 {
        if let Some((_, l)) = active(leases).first() {
            out.insert(l.keeper, Vec::new());
        }
        return out;
    }
    for s in layout(workers, provider_gpus, leases) {
        if s.worker == mine && s.position < my_gpus {
            out.entry(s.keeper).or_default().push(s.position);
        }
    }
    out
}

/// The keeper accounts worker `me` keeps a standby connection to: the committee members of
/// every lease it owes GPUs in the [`layout`] (for a worker without GPUs, of the lease it
/// serves whole), except the keepers its [`worker_plan`] already connects it to. A standby
/// connection carries no work; it lets those members see for themselves that the worker is
/// alive before they co-sign a slash for its silence.
pub fn standby_keepers(
    workers: &[Pubkey],
    provider_gpus: u16,
    leases: &[(Pubkey, Lease)],
    me: &Pubkey,
    my_gpus: u32,
) -> BTreeSet<Pubkey> {
    let Some(mine) = workers.iter().position(|w| w == me) else {
        return BTreeSet::new();
    };
    let serving = worker_plan(workers, provider_gpus, leases, me, my_gpus);
    let owed: BTreeSet<Pubkey> = if my_gpus == 0 {
        active(leases)
            .first()
            .map(|(a, _)| *a)
            .into_iter()
            .collect()
    } else {
        layout(workers, provider_gpus, leases)
            .iter()
            .filter(|s| s.worker == mine)
            .map(|s| s.lease)
            .collect()
    };
    leases
        .iter()
        .filter(|(a, _)| owed.contains(a))
        .flat_map(|(_, l)| l.committee().iter().copied())
        .filter(|k| *k != Pubkey::default() && !serving.contains_key(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpunet::state::LeaseTerms;
    use crate::gpunet::state::config::MAX_COMMITTEE;

    fn lease(keeper: Pubkey, gpus: u16, start: i64, committee: &[Pubkey]) -> Lease {
        let mut c = [Pubkey::default(); MAX_COMMITTEE];
        c[..committee.len()].copy_from_slice(committee);
        Lease {
            user: Pubkey::new_unique(),
            provider: Pubkey::default(),
            keeper,
            rent_payer: Pubkey::default(),
            nonce: 0,
            status: LeaseStatus::Active,
            gpus,
            price_per_gpu_second: 1,
            stake_locked: 0,
            funded: 0,
            paid_provider: 0,
            paid_protocol: 0,
            paid_keeper: 0,
            refunded: 0,
            compensation: 0,
            start,
            paid_until: start,
            last_checkpoint_at: start,
            last_sequence: 0,
            last_digest: [0; 32],
            last_verdict: crate::Verdict::None,
            last_score: 0,
            bump: 0,
            vault_bump: 0,
            opened_slot: start as u64,
            terms: LeaseTerms::from_params(&crate::setup::default_params(6)),
            committee: c,
            committee_len: committee.len() as u8,
            paused_mark: 0,
            judged_sequence: 0,
            rate_since: 0,
            spent_before_rate: 0,
            slashed_sequence: 0,
            pending_gpus: 0,
            resize_at: 0,
            pending_stake: 0,
            withdrawn: 0,
            reserved: [0; 14],
        }
    }

    #[test]
    fn leases_of_two_keepers_get_disjoint_gpus_oldest_first() {
        let (w1, w2) = (Pubkey::new_unique(), Pubkey::new_unique());
        let (a, b) = (Pubkey::new_unique(), Pubkey::new_unique());
        let workers = [w1, w2];
        // Keeper a's 1-GPU lease is older than keeper b's 2-GPU lease.
        let leases = vec![
            (Pubkey::new_unique(), lease(b, 2, 20, &[b])),
            (Pubkey::new_unique(), lease(a, 1, 10, &[a])),
        ];
        let p1 = worker_plan(&workers, 4, &leases, &w1, 2);
        let p2 = worker_plan(&workers, 4, &leases, &w2, 2);
        assert_eq!(p1, BTreeMap::from([(a, vec![0]), (b, vec![1])]));
        assert_eq!(p2, BTreeMap::from([(b, vec![0])]));
        // A newer lease does not move the older ones.
        let mut more = leases.clone();
        more.push((Pubkey::new_unique(), lease(a, 1, 30, &[a])));
        assert_eq!(worker_plan(&workers, 4, &more, &w1, 2), p1);
        assert_eq!(
            worker_plan(&workers, 4, &more, &w2, 2),
            BTreeMap::from([(b, vec![0]), (a, vec![1])])
        );
        // What each worker owes each lease.
        assert_eq!(share(&workers, 4, &leases, &leases[1].0, &w1), 1);
        assert_eq!(share(&workers, 4, &leases, &leases[0].0, &w1), 1);
        assert_eq!(share(&workers, 4, &leases, &leases[0].0, &w2), 1);
        assert_eq!(share(&workers, 4, &leases, &leases[1].0, &w2), 0);
        assert_eq!(
            share(&workers, 4, &leases, &leases[0].0, &Pubkey::new_unique()),
            0
        );
    }

    #[test]
    fn ended_pending_and_unlisted_get_nothing_and_gpuless_workers_serve_whole() {
        let w = Pubkey::new_unique();
        let k = Pubkey::new_unique();
        let mut ended = lease(k, 1, 1, &[k]);
        ended.status = LeaseStatus::Ended;
        let pending = lease(Pubkey::default(), 1, 2, &[]);
        let leases = vec![
            (Pubkey::new_unique(), ended),
            (Pubkey::new_unique(), pending),
        ];
        assert!(worker_plan(&[w], 2, &leases, &w, 2).is_empty());
        assert!(layout(&[w], 2, &leases).is_empty());
        let live = vec![(Pubkey::new_unique(), lease(k, 2, 3, &[k]))];
        assert!(worker_plan(&[w], 2, &live, &Pubkey::new_unique(), 2).is_empty());
        assert_eq!(
            worker_plan(&[w], 2, &live, &w, 0),
            BTreeMap::from([(k, vec![])])
        );
        // A machine with fewer GPUs than its share offers only those it has; it still owes
        // the lease its whole share.
        assert_eq!(
            worker_plan(&[w], 2, &live, &w, 1),
            BTreeMap::from([(k, vec![0])])
        );
        assert_eq!(share(&[w], 2, &live, &live[0].0, &w), 2);
        // More leased than the provider offers: the layout stops at its last GPU.
        let over = vec![(Pubkey::new_unique(), lease(k, 3, 3, &[k]))];
        assert_eq!(layout(&[w], 2, &over).len(), 2);
        assert!(layout(&[], 2, &live).is_empty());
    }

    #[test]
    fn standby_goes_to_the_other_committee_members_of_the_leases_a_worker_owes() {
        let (w1, w2) = (Pubkey::new_unique(), Pubkey::new_unique());
        let (a, b, c, d) = (
            Pubkey::new_unique(),
            Pubkey::new_unique(),
            Pubkey::new_unique(),
            Pubkey::new_unique(),
        );
        let workers = [w1, w2];
        // Lease 1 (keeper a, committee a b c) sits on w1; lease 2 (keeper b, committee b d)
        // on w2.
        let leases = vec![
            (Pubkey::new_unique(), lease(a, 2, 10, &[a, b, c])),
            (Pubkey::new_unique(), lease(b, 2, 20, &[b, d])),
        ];
        assert_eq!(
            standby_keepers(&workers, 4, &leases, &w1, 2),
            BTreeSet::from([b, c])
        );
        assert_eq!(
            standby_keepers(&workers, 4, &leases, &w2, 2),
            BTreeSet::from([d])
        );
        // A worker without GPUs serves the oldest lease whole and stands by for its others.
        assert_eq!(
            standby_keepers(&workers, 4, &leases, &w2, 0),
            BTreeSet::from([b, c])
        );
        assert!(standby_keepers(&workers, 4, &leases, &Pubkey::new_unique(), 2).is_empty());
    }
}
