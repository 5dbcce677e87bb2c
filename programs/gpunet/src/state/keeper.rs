//! Keepers: staked off-chain daemons that verify providers and post checkpoints.

use anchor_lang::prelude::*;

use crate::error::GpunetError;

/// `Keeper::index` of a keeper outside the active set.
pub const NO_INDEX: u16 = u16::MAX;

/// Where a keeper is in its life.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum KeeperStatus {
    /// Bonded and serving; may be assigned leases and co-sign slashes.
    Active,
    /// Deregistered; the bond comes back after `unbonding_ends_at`.
    Unbonding,
}

/// One keeper, PDA `[KEEPER_SEED, authority]`. Its bond sits in the vault
/// `[KEEPER_VAULT_SEED, keeper]`, a token account whose authority is this PDA.
#[account]
#[derive(InitSpace, Debug)]
pub struct Keeper {
    /// The keeper's wallet; signs everything the keeper does.
    pub authority: Pubkey,
    /// Active or unbonding. Changed by `keeper_deregister`.
    pub status: KeeperStatus,
    /// Tokens bonded, base units; equals the vault's balance. Set at registration.
    pub bond: u64,
    /// Position in the active keeper set (0..config.active_keepers), used for round-robin
    /// lease assignment; [`NO_INDEX`] once deregistered. Kept dense by swap-remove.
    pub index: u16,
    /// Unix time after which `keeper_close` returns the bond; 0 while active.
    pub unbonding_ends_at: i64,
    /// Leases currently assigned to this keeper (maintained by the lease instructions).
    pub leases_assigned: u32,
    /// Leases this keeper has served to the end, ever.
    pub leases_served: u64,
    /// Keeper fees earned, ever, base units.
    pub fees_earned: u64,
    /// Unix time of registration.
    pub registered_at: i64,
    /// PDA bump of this account.
    pub bump: u8,
    /// PDA bump of the bond vault.
    pub vault_bump: u8,
    /// Reserved for growth.
    pub reserved: [u8; 64],
}

impl Keeper {
    /// Rules that hold after every instruction that writes a keeper.
    pub fn invariant(&self) -> Result<()> {
        match self.status {
            KeeperStatus::Active => {
                require!(self.unbonding_ends_at == 0, GpunetError::InvariantViolated);
                require!(self.index != NO_INDEX, GpunetError::InvariantViolated);
            }
            KeeperStatus::Unbonding => {
                require!(self.unbonding_ends_at > 0, GpunetError::InvariantViolated);
                require!(self.index == NO_INDEX, GpunetError::InvariantViolated);
                require!(self.leases_assigned == 0, GpunetError::InvariantViolated);
            }
        }
        require!(self.bond > 0, GpunetError::InvariantViolated);
        Ok(())
    }

    /// One more lease assigned to this keeper.
    pub fn assign_lease(&mut self) -> Result<()> {
        self.leases_assigned = self
            .leases_assigned
            .checked_add(1)
            .ok_or_else(|| error!(GpunetError::MathOverflow))?;
        Ok(())
    }

    /// One lease fewer assigned to this keeper.
    pub fn unassign_lease(&mut self) -> Result<()> {
        self.leases_assigned = self
            .leases_assigned
            .checked_sub(1)
            .ok_or_else(|| error!(GpunetError::MathOverflow))?;
        Ok(())
    }

    /// The bond vault must hold at least the bond (a gift of tokens must not freeze it; the
    /// surplus goes back with the bond).
    pub fn check_vault(&self, vault_amount: u64) -> Result<()> {
        require!(vault_amount >= self.bond, GpunetError::InvariantViolated);
        Ok(())
    }
}
