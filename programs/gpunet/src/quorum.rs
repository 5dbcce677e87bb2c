//! Co-signers of a slash: members of the lease's committee, each signing with its keeper
//! wallet. A committee is drawn at random from the active set (`committee.rs`), so counting
//! signatures here counts a random sample's judgement, not how many keeper accounts one party
//! registered.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::state::{Keeper, KeeperStatus, Lease};

/// Checks the co-signers in `remaining` — pairs of (keeper wallet \[signer\], keeper account)
/// — against `lease`'s committee and returns the keeper accounts that signed. Each must be an
/// active committee member, signed by its wallet, appear once and not be `accused`; at least
/// `lease.terms.slash_quorum` of them.
pub fn check<'info>(
    remaining: &'info [AccountInfo<'info>],
    lease: &Lease,
    accused: Option<&Pubkey>,
) -> Result<Vec<Pubkey>> {
    require!(
        remaining.len().is_multiple_of(2),
        GpunetError::SlashSignerNotKeeper
    );
    let mut signers: Vec<Pubkey> = Vec::with_capacity(remaining.len() / 2);
    for pair in remaining.chunks_exact(2) {
        let (wallet, account) = (&pair[0], &pair[1]);
        require!(wallet.is_signer, GpunetError::SlashSignerNotKeeper);
        let keeper = Keeper::load(account, GpunetError::SlashSignerNotKeeper)?;
        require!(
            keeper.authority == *wallet.key && keeper.status == KeeperStatus::Active,
            GpunetError::SlashSignerNotKeeper
        );
        require!(
            lease.in_committee(account.key),
            GpunetError::NotCommitteeMember
        );
        require!(accused != Some(account.key), GpunetError::SelfSlash);
        require!(
            !signers.contains(account.key),
            GpunetError::DuplicateSlashSigner
        );
        signers.push(*account.key);
    }
    require!(
        signers.len() >= usize::from(lease.terms.slash_quorum),
        GpunetError::SlashQuorumNotMet
    );
    Ok(signers)
}
