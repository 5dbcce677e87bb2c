//! Events, one per state change. Emitted with `emit_cpi!` so that they travel as inner
//! instructions (native mode drops log lines; on a cluster logs get truncated).

use anchor_lang::prelude::*;

use crate::state::{ConfigParams, GpuOffer};

#[event]
pub struct ConfigInitialized {
    pub admin: Pubkey,
    pub mint: Pubkey,
    pub treasury: Pubkey,
    pub params: ConfigParams,
}

#[event]
pub struct ConfigUpdated {
    pub admin: Pubkey,
    pub treasury: Pubkey,
    pub params: ConfigParams,
    pub paused: bool,
    pub pending_admin: Pubkey,
}

#[event]
pub struct AdminChanged {
    pub old_admin: Pubkey,
    pub new_admin: Pubkey,
}

#[event]
pub struct KeeperRegistered {
    pub keeper: Pubkey,
    pub authority: Pubkey,
    pub bond: u64,
}

#[event]
pub struct KeeperDeregistered {
    pub keeper: Pubkey,
    pub authority: Pubkey,
    pub unbonding_ends_at: i64,
}

#[event]
pub struct KeeperClosed {
    pub keeper: Pubkey,
    pub authority: Pubkey,
    pub bond_returned: u64,
}

#[event]
pub struct ProviderRegistered {
    pub provider: Pubkey,
    pub authority: Pubkey,
    pub gpu: GpuOffer,
    pub region: [u8; 16],
    pub zone: [u8; 16],
}

#[event]
pub struct ProviderUpdated {
    pub provider: Pubkey,
    pub gpu: GpuOffer,
    pub region: [u8; 16],
    pub zone: [u8; 16],
    pub workers: u8,
}

#[event]
pub struct ProviderStaked {
    pub provider: Pubkey,
    pub amount: u64,
    pub staked: u64,
}

#[event]
pub struct ProviderUnstakeRequested {
    pub provider: Pubkey,
    pub amount: u64,
    pub unbonding: u64,
    pub unbonding_ends_at: i64,
}

#[event]
pub struct ProviderWithdrawn {
    pub provider: Pubkey,
    pub amount: u64,
}

#[event]
pub struct ProviderClosed {
    pub provider: Pubkey,
    pub authority: Pubkey,
}
