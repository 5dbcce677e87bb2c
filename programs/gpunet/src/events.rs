//! Events, one per state change. Emitted with `emit_cpi!` so that they travel as inner
//! instructions (native mode drops log lines; on a cluster logs get truncated).

use anchor_lang::prelude::*;

use crate::state::{ConfigParams, GpuOffer};

#[event]
#[derive(Debug, Clone)]
pub struct ConfigInitialized {
    pub admin: Pubkey,
    pub mint: Pubkey,
    pub treasury: Pubkey,
    pub params: ConfigParams,
}

#[event]
#[derive(Debug, Clone)]
pub struct ConfigUpdated {
    pub admin: Pubkey,
    pub params: ConfigParams,
    /// Proposed parameters and when they may be applied (0: none pending).
    pub pending_params: ConfigParams,
    pub pending_params_at: i64,
    pub paused: bool,
    pub pending_admin: Pubkey,
}

#[event]
#[derive(Debug, Clone)]
pub struct ConfigParamsApplied {
    pub params: ConfigParams,
}

#[event]
#[derive(Debug, Clone)]
pub struct TreasuryWithdrawn {
    pub amount: u64,
    pub destination: Pubkey,
}

#[event]
#[derive(Debug, Clone)]
pub struct AdminChanged {
    pub old_admin: Pubkey,
    pub new_admin: Pubkey,
}

#[event]
#[derive(Debug, Clone)]
pub struct KeeperRegistered {
    pub keeper: Pubkey,
    pub authority: Pubkey,
    pub bond: u64,
    pub endpoint: String,
}

#[event]
#[derive(Debug, Clone)]
pub struct KeeperUpdated {
    pub keeper: Pubkey,
    pub endpoint: String,
}

#[event]
#[derive(Debug, Clone)]
pub struct KeeperDraining {
    pub keeper: Pubkey,
    pub leases_assigned: u32,
}

#[event]
#[derive(Debug, Clone)]
pub struct KeeperSlashed {
    pub keeper: Pubkey,
    pub lease: Pubkey,
    pub evidence_digest: [u8; 32],
    pub slashed: u64,
    pub to_user: u64,
    pub to_treasury: u64,
    pub keepers: Vec<Pubkey>,
}

#[event]
#[derive(Debug, Clone)]
pub struct KeeperDeregistered {
    pub keeper: Pubkey,
    pub authority: Pubkey,
    pub unbonding_ends_at: i64,
}

#[event]
#[derive(Debug, Clone)]
pub struct KeeperClosed {
    pub keeper: Pubkey,
    pub authority: Pubkey,
    pub bond_returned: u64,
}

#[event]
#[derive(Debug, Clone)]
pub struct ProviderRegistered {
    pub provider: Pubkey,
    pub authority: Pubkey,
    pub gpu: GpuOffer,
    pub region: [u8; 16],
    pub zone: [u8; 16],
}

#[event]
#[derive(Debug, Clone)]
pub struct ProviderUpdated {
    pub provider: Pubkey,
    pub gpu: GpuOffer,
    pub region: [u8; 16],
    pub zone: [u8; 16],
    pub workers: u8,
}

#[event]
#[derive(Debug, Clone)]
pub struct ProviderStaked {
    pub provider: Pubkey,
    pub amount: u64,
    pub staked: u64,
    /// The stake lifted the provider's jail.
    pub unjailed: bool,
}

#[event]
#[derive(Debug, Clone)]
pub struct ProviderUnstakeRequested {
    pub provider: Pubkey,
    pub amount: u64,
    pub unbonding: u64,
    pub unbonding_ends_at: i64,
}

#[event]
#[derive(Debug, Clone)]
pub struct ProviderWithdrawn {
    pub provider: Pubkey,
    pub amount: u64,
}

#[event]
#[derive(Debug, Clone)]
pub struct ProviderClosed {
    pub provider: Pubkey,
    pub authority: Pubkey,
}

#[event]
#[derive(Debug, Clone)]
pub struct LeaseOpened {
    pub lease: Pubkey,
    pub user: Pubkey,
    pub provider: Pubkey,
    pub gpus: u16,
    pub price_per_gpu_second: u64,
    pub deposit: u64,
    pub funded_until: i64,
    pub stake_locked: u64,
}

#[event]
#[derive(Debug, Clone)]
pub struct LeaseCommitteeDrawn {
    pub lease: Pubkey,
    pub slot: u64,
    pub slot_hash: [u8; 32],
    pub committee: Vec<Pubkey>,
    pub start: i64,
    pub funded_until: i64,
}

#[event]
#[derive(Debug, Clone)]
pub struct LeaseToppedUp {
    pub lease: Pubkey,
    pub funder: Pubkey,
    pub amount: u64,
    pub funded: u64,
    pub funded_until: i64,
}

#[event]
#[derive(Debug, Clone)]
pub struct LeaseResizeRequested {
    pub lease: Pubkey,
    pub gpus_from: u16,
    pub gpus_to: u16,
    /// The new count bills from here; checkpoints settle up to it first.
    pub resize_at: i64,
    /// Escrow taken from the user (a grow).
    pub deposit: u64,
    /// Unspent escrow returned to the user (a shrink).
    pub refund: u64,
    /// Provider stake locked for a grow's extra GPUs.
    pub stake_booked: u64,
    /// The lease's `funded_until` after the request.
    pub funded_until: i64,
    /// Applied at once (the lease was settled up to the request).
    pub applied: bool,
}

#[event]
#[derive(Debug, Clone)]
pub struct LeaseResized {
    pub lease: Pubkey,
    pub gpus_from: u16,
    pub gpus: u16,
    /// Unix time the new count bills from.
    pub rate_since: i64,
    pub stake_locked: u64,
    /// Stake and GPUs given back to the provider (a shrink), or released from a pending
    /// grow's booking (a cancel).
    pub stake_released: u64,
    pub gpus_released: u16,
    /// The resize was cancelled (a slash or the close), not applied.
    pub cancelled: bool,
}

#[event]
#[derive(Debug, Clone)]
pub struct CheckpointPosted {
    pub lease: Pubkey,
    pub keeper: Pubkey,
    pub sequence: u64,
    pub period_start: i64,
    pub period_end: i64,
    pub proof_digest: [u8; 32],
    pub verdict: crate::state::Verdict,
    pub score: u64,
    pub paid_provider: u64,
    pub protocol_fee: u64,
    pub keeper_fee: u64,
}

#[event]
#[derive(Debug, Clone)]
pub struct LeaseClosed {
    pub lease: Pubkey,
    pub closer: Pubkey,
    pub refunded: u64,
    pub paid_provider: u64,
    pub paid_protocol: u64,
    pub paid_keeper: u64,
    pub funded: u64,
}

#[event]
#[derive(Debug, Clone)]
pub struct ProviderSlashed {
    pub lease: Pubkey,
    pub provider: Pubkey,
    pub evidence_digest: [u8; 32],
    /// GPUs slashed.
    pub gpus: u16,
    /// GPUs the lease goes on with (0: it ended).
    pub gpus_left: u16,
    pub slashed: u64,
    pub to_user: u64,
    pub to_treasury: u64,
    pub keepers: Vec<Pubkey>,
    pub jailed_until: i64,
}

#[event]
#[derive(Debug, Clone)]
pub struct LeaseKeeperReassigned {
    pub lease: Pubkey,
    pub old_keeper: Pubkey,
    pub new_keeper: Pubkey,
}
