//! Verification committees: who verifies a lease, drawn from data neither its user nor its
//! provider controls. Pure functions, unit-tested; the SDK uses the same ones to know which
//! keeper accounts to pass to `lease_draw_committee`.
//!
//! **The seed.** The hash of the first slot after both the lease's open and the last change to
//! the active keeper set (`SlotHashes` holds the last 512). Nobody knows it when the lease is
//! opened; registering or removing a keeper after seeing it only moves the draw to a later,
//! equally unknown hash, at the price of a bond locked for the unbonding period. A slot's
//! leader can still influence its own hash: that is the limit of this source (a VRF oracle
//! would remove it; docs/program.md, threat model).
//!
//! **The draw.** `committee_size` distinct indices of the active set (dense, 0..active), by a
//! partial Fisher-Yates shuffle keyed by SHA-256 of the seed. Every active keeper bonded the
//! same configured amount, so a uniform draw over keepers is a draw weighted by bond: a party
//! with a share `s` of the active keepers holds on average a share `s` of every committee.

use anchor_lang::prelude::*;
use solana_sha256_hasher::hashv;

use crate::error::GpunetError;

/// The SlotHashes sysvar's address.
pub const SLOT_HASHES_ID: Pubkey = pubkey!("SysvarS1otHashes111111111111111111111111111");
/// Entries the SlotHashes sysvar keeps.
pub const SLOT_HASHES_MAX_ENTRIES: usize = 512;
/// Domain separator of the committee seed.
const SEED_DOMAIN: &[u8] = b"gpunet-committee-v1";

/// Finds, in raw SlotHashes sysvar data (u64 count, then `(slot u64, hash [u8; 32])` newest
/// first), the earliest slot strictly after `floor` and its hash.
///
/// Errors: [`GpunetError::DrawTooEarly`] when no such slot exists yet;
/// [`GpunetError::DrawWindowPassed`] when the window no longer reaches back to `floor` (the
/// earliest slot after it may have been evicted, so the draw could be chosen).
pub fn seed_slot(slot_hashes: &[u8], floor: u64) -> Result<(u64, [u8; 32])> {
    let count_bytes: [u8; 8] = slot_hashes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| error!(GpunetError::WrongSlotHashes))?;
    let count = usize::try_from(u64::from_le_bytes(count_bytes))
        .map_err(|_| error!(GpunetError::WrongSlotHashes))?;
    let mut candidate: Option<(u64, [u8; 32])> = None;
    for i in 0..count {
        let at = 8 + i * 40;
        let entry = slot_hashes
            .get(at..at + 40)
            .ok_or_else(|| error!(GpunetError::WrongSlotHashes))?;
        let slot = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
        if slot <= floor {
            return candidate.ok_or_else(|| error!(GpunetError::DrawTooEarly));
        }
        candidate = Some((slot, entry[8..40].try_into().expect("32 bytes")));
    }
    // Every entry is after `floor`. Unless the sysvar is still filling up (a young chain), the
    // earliest slot after `floor` may have been evicted.
    match candidate {
        Some(c) if count < SLOT_HASHES_MAX_ENTRIES => Ok(c),
        Some(_) => err!(GpunetError::DrawWindowPassed),
        None => err!(GpunetError::DrawTooEarly),
    }
}

/// The seed of a lease's draw: SHA-256 of a domain separator, the lease address and the slot
/// and hash from [`seed_slot`].
pub fn seed(lease: &Pubkey, slot: u64, slot_hash: &[u8; 32]) -> [u8; 32] {
    hashv(&[SEED_DOMAIN, lease.as_ref(), &slot.to_le_bytes(), slot_hash]).to_bytes()
}

/// `min(size, active)` distinct indices in `0..active`, in draw order (the first posts the
/// checkpoints). A partial Fisher-Yates shuffle over a virtual `[0, active)` whose swaps are
/// kept in a short list, so it costs O(size²) whatever the set's size.
pub fn draw(seed: &[u8; 32], active: u16, size: u8) -> Vec<u16> {
    let n = u64::from(active);
    let k = u64::from(size).min(n);
    // (position, value) pairs that differ from the identity.
    let mut moved: Vec<(u64, u64)> = Vec::with_capacity(2 * k as usize);
    let value_at = |moved: &Vec<(u64, u64)>, pos: u64| {
        moved
            .iter()
            .rev()
            .find(|(p, _)| *p == pos)
            .map(|(_, v)| *v)
            .unwrap_or(pos)
    };
    let mut out = Vec::with_capacity(k as usize);
    for j in 0..k {
        let h = hashv(&[seed.as_ref(), &j.to_le_bytes()[..]]).to_bytes();
        let r = j + u64::from_le_bytes(h[..8].try_into().expect("8 bytes")) % (n - j);
        let (vj, vr) = (value_at(&moved, j), value_at(&moved, r));
        moved.push((j, vr));
        moved.push((r, vj));
        // Indices come from a u16 count, so they fit.
        out.push(vr as u16);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysvar(entries: &[(u64, u8)]) -> Vec<u8> {
        let mut d = (entries.len() as u64).to_le_bytes().to_vec();
        for (slot, fill) in entries {
            d.extend_from_slice(&slot.to_le_bytes());
            d.extend_from_slice(&[*fill; 32]);
        }
        d
    }

    #[test]
    fn seed_slot_is_the_first_slot_after_the_floor() {
        let d = sysvar(&[(20, 4), (17, 3), (12, 2), (10, 1)]);
        assert_eq!(seed_slot(&d, 10).unwrap(), (12, [2; 32]));
        assert_eq!(seed_slot(&d, 12).unwrap(), (17, [3; 32]));
        assert_eq!(seed_slot(&d, 13).unwrap(), (17, [3; 32]));
        assert!(
            seed_slot(&d, 20).is_err(),
            "nothing after the newest slot yet"
        );
        // A young chain: every entry is after the floor and nothing was evicted.
        assert_eq!(seed_slot(&d, 5).unwrap(), (10, [1; 32]));
    }

    #[test]
    fn seed_slot_refuses_a_window_that_no_longer_reaches_the_floor() {
        let entries: Vec<(u64, u8)> = (0..SLOT_HASHES_MAX_ENTRIES as u64)
            .map(|i| (1_000 - i, 1))
            .collect();
        let d = sysvar(&entries);
        assert!(seed_slot(&d, 400).is_err());
        assert_eq!(seed_slot(&d, 600).unwrap().0, 601);
        assert!(seed_slot(&[1, 2], 0).is_err(), "truncated data");
    }

    #[test]
    fn draw_gives_distinct_indices_in_range() {
        for active in 1..40u16 {
            for size in 1..=7u8 {
                let s = seed(&Pubkey::new_unique(), u64::from(active), &[size; 32]);
                let d = draw(&s, active, size);
                assert_eq!(d.len(), usize::from(size).min(usize::from(active)));
                let mut sorted = d.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(sorted.len(), d.len(), "distinct");
                assert!(d.iter().all(|i| *i < active));
            }
        }
        assert!(draw(&[0; 32], 0, 3).is_empty());
    }

    #[test]
    fn draw_is_deterministic_and_spreads_over_the_set() {
        let lease = Pubkey::new_unique();
        let s = seed(&lease, 7, &[9; 32]);
        assert_eq!(draw(&s, 10, 3), draw(&s, 10, 3));
        // Over many seeds every keeper of 10 is drawn first about a tenth of the time.
        let mut first = [0u32; 10];
        for i in 0..5_000u64 {
            let s = seed(&lease, i, &[1; 32]);
            first[usize::from(draw(&s, 10, 3)[0])] += 1;
        }
        assert!(first.iter().all(|c| (400..600).contains(c)), "{first:?}");
    }
}
