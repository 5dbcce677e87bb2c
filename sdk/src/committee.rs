//! Which keeper accounts `lease_draw_committee` expects, computed with the program's own draw
//! (`gpunet::committee`) from the same chain data the program reads.

use anchor_lang::prelude::Pubkey;
use gpunet::committee;
use gpunet::state::{Config, Keeper, KeeperStatus, Lease};

/// The committee a pending lease will get if drawn now: keeper accounts in draw order.
///
/// `slot_hashes` is the raw data of the SlotHashes sysvar account, `keepers` every keeper
/// account (active ones are picked by index). Errors name the program's error
/// (`DrawTooEarly`: try again next slot).
pub fn expected(
    lease_key: &Pubkey,
    lease: &Lease,
    config: &Config,
    slot_hashes: &[u8],
    keepers: &[(Pubkey, Keeper)],
) -> Result<Vec<Pubkey>, String> {
    let floor = lease.opened_slot.max(config.keeper_set_changed_slot);
    let (slot, hash) = committee::seed_slot(slot_hashes, floor).map_err(|e| e.to_string())?;
    let seed = committee::seed(lease_key, slot, &hash);
    committee::draw(&seed, config.active_keepers, lease.terms.committee_size)
        .into_iter()
        .map(|index| {
            keepers
                .iter()
                .find(|(_, k)| k.status == KeeperStatus::Active && k.index == index)
                .map(|(address, _)| *address)
                .ok_or_else(|| format!("no active keeper with index {index}"))
        })
        .collect()
}
