//! Keepers: staked off-chain daemons that verify providers and post checkpoints.

use anchor_lang::prelude::*;

use crate::error::GpunetError;

/// `Keeper::index` of a keeper outside the active set.
pub const NO_INDEX: u16 = u16::MAX;

/// Where a keeper is in its life.
///
/// ```text
/// keeper_register ──▶ Active ──keeper_drain / keeper_slash──▶ Draining ──(no leases) keeper_deregister──▶ Unbonding ──keeper_close──▶ closed
///                       └──────────(no leases) keeper_deregister──────────────────────────────────────────┘
/// ```
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum KeeperStatus {
    /// Bonded and serving: may be drawn onto committees, post checkpoints and co-sign slashes.
    Active,
    /// Deregistered; the bond comes back after `unbonding_ends_at`. Still slashable by
    /// `keeper_slash` until then.
    Unbonding,
    /// Out of the active set (it asked to leave, or was slashed): drawn onto no new committee,
    /// posts no checkpoint; its leases pass to their successors at once. Deregisters once it
    /// has no lease left.
    Draining,
}

/// One keeper, PDA `[KEEPER_SEED, authority]`. Its bond sits in the vault
/// `[KEEPER_VAULT_SEED, keeper]`, a token account whose authority is this PDA.
#[account]
#[derive(InitSpace, Debug)]
pub struct Keeper {
    /// The keeper's wallet; signs everything the keeper does.
    pub authority: Pubkey,
    /// Active, draining or unbonding.
    pub status: KeeperStatus,
    /// Tokens bonded, base units; the vault holds at least this. Set at registration,
    /// lowered by `keeper_slash`.
    pub bond: u64,
    /// Position in the active keeper set (0..config.active_keepers), used for committee draws;
    /// [`NO_INDEX`] once out of the set. Kept dense by swap-remove.
    pub index: u16,
    /// Unix time after which `keeper_close` returns the bond; 0 while active.
    pub unbonding_ends_at: i64,
    /// Leases whose checkpoints this keeper currently posts (maintained by the lease
    /// instructions).
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
    /// Tokens taken from the bond by `keeper_slash`, ever.
    pub slashed_total: u64,
    /// Reserved for growth.
    pub reserved: [u8; 64],
    /// The keeper's public gRPC endpoint (users and workers find it here), ASCII. Set at
    /// registration, changed by `keeper_update`.
    #[max_len(crate::state::provider::MAX_ENDPOINT_LEN)]
    pub endpoint: String,
}

impl Keeper {
    /// Rules that hold after every instruction that writes a keeper.
    pub fn invariant(&self) -> Result<()> {
        match self.status {
            KeeperStatus::Active => {
                require!(self.unbonding_ends_at == 0, GpunetError::InvariantViolated);
                require!(self.index != NO_INDEX, GpunetError::InvariantViolated);
            }
            KeeperStatus::Draining => {
                require!(self.unbonding_ends_at == 0, GpunetError::InvariantViolated);
                require!(self.index == NO_INDEX, GpunetError::InvariantViolated);
            }
            KeeperStatus::Unbonding => {
                require!(self.unbonding_ends_at > 0, GpunetError::InvariantViolated);
                require!(self.index == NO_INDEX, GpunetError::InvariantViolated);
                require!(self.leases_assigned == 0, GpunetError::InvariantViolated);
            }
        }
        // A slash may take the whole bond; otherwise a keeper always has one.
        require!(
            self.bond > 0 || self.slashed_total > 0,
            GpunetError::InvariantViolated
        );
        crate::state::provider::validate_endpoint(&self.endpoint)?;
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

    /// Reads a keeper account passed in `remaining_accounts`: owned by this program, of the
    /// keeper type, at the keeper PDA of its own authority. Fails with `err` otherwise.
    pub fn load<'info>(
        info: &'info AccountInfo<'info>,
        err: GpunetError,
    ) -> Result<Account<'info, Keeper>> {
        let keeper = Account::<Keeper>::try_from(info).map_err(|_| error!(err))?;
        let expected = Pubkey::create_program_address(
            &[
                crate::state::KEEPER_SEED,
                keeper.authority.as_ref(),
                &[keeper.bump],
            ],
            &crate::ID,
        )
        .map_err(|_| error!(err))?;
        require_keys_eq!(expected, *info.key, err);
        Ok(keeper)
    }

    /// Takes this keeper (account `self_key`) out of the active set at `slot`, keeping the set
    /// dense: `last` — the active keeper with the highest index, `None` when that is this
    /// keeper — moves into the freed index.
    pub fn leave_active_set(
        &mut self,
        self_key: &Pubkey,
        config: &mut crate::state::Config,
        last: Option<&mut Account<Keeper>>,
        slot: u64,
    ) -> Result<()> {
        require!(
            self.status == KeeperStatus::Active,
            GpunetError::KeeperNotActive
        );
        let last_index = config
            .active_keepers
            .checked_sub(1)
            .ok_or_else(|| error!(GpunetError::MathOverflow))?;
        match last {
            None => require!(self.index == last_index, GpunetError::WrongLastKeeper),
            Some(last) => {
                require!(
                    last.key() != *self_key
                        && last.status == KeeperStatus::Active
                        && last.index == last_index,
                    GpunetError::WrongLastKeeper
                );
                last.index = self.index;
                last.invariant()?;
            }
        }
        self.index = NO_INDEX;
        config.active_keepers = last_index;
        config.keeper_set_changed(slot);
        Ok(())
    }

    /// The bond vault must hold at least the bond (a gift of tokens must not freeze it; the
    /// surplus goes back with the bond).
    pub fn check_vault(&self, vault_amount: u64) -> Result<()> {
        require!(vault_amount >= self.bond, GpunetError::InvariantViolated);
        Ok(())
    }
}
