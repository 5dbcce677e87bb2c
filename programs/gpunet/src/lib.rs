//! # gpunet — the on-chain program
//!
//! Providers register GPUs and stake SPL tokens; keepers bond tokens and verify providers;
//! users open leases that escrow payment (see `docs/program.md` for every instruction, its
//! signers, accounts, rules and errors, and the state machines).
//!
//! Layout: `state/` (accounts, seeds), `instructions/` (one file per instruction), `math`
//! (checked money math), `transfers` (the token moves), `create` (accounts
//! created so that no one can block them), `events`, `error`. This file only
//! lists the entry points.

use anchor_lang::prelude::*;

pub mod committee;
pub mod create;
pub mod error;
pub mod events;
pub mod instructions;
pub mod math;
pub mod quorum;
pub mod state;
pub mod transfers;

#[cfg(not(target_os = "solana"))]
pub mod native;

use instructions::*;
use state::ConfigParams;

declare_id!("6qgJhWP95XMTP1tgucTnF4r9FKZ3Bpk2jfbgUxEQgtqA");

#[program]
pub mod gpunet {
    use super::*;

    /// Creates the singleton config and the treasury vault (the upgrade authority on a
    /// cluster; the deployer natively).
    pub fn config_init(
        ctx: Context<ConfigInit>,
        params: ConfigParams,
        allow_freeze_authority: bool,
    ) -> Result<()> {
        instructions::config_init::handler(ctx, params, allow_freeze_authority)
    }

    /// Admin: propose parameters (current after the configured delay), pause, propose a new
    /// admin.
    pub fn config_update(ctx: Context<ConfigUpdate>, args: ConfigUpdateArgs) -> Result<()> {
        instructions::config_update::handler(ctx, args)
    }

    /// Anyone: makes a pending parameter change current once its delay has passed.
    pub fn config_apply(ctx: Context<ConfigApply>) -> Result<()> {
        instructions::config_apply::handler(ctx)
    }

    /// Admin: moves tokens out of the treasury vault.
    pub fn treasury_withdraw(ctx: Context<TreasuryWithdraw>, amount: u64) -> Result<()> {
        instructions::treasury_withdraw::handler(ctx, amount)
    }

    /// The proposed admin takes over.
    pub fn config_accept_admin(ctx: Context<ConfigAcceptAdmin>) -> Result<()> {
        instructions::config_accept_admin::handler(ctx)
    }

    /// A wallet bonds the configured amount, publishes its endpoint and becomes an active
    /// keeper.
    pub fn keeper_register(ctx: Context<KeeperRegister>, endpoint: String) -> Result<()> {
        instructions::keeper_register::handler(ctx, endpoint)
    }

    /// A keeper changes its published gRPC endpoint.
    pub fn keeper_update(ctx: Context<KeeperUpdate>, endpoint: String) -> Result<()> {
        instructions::keeper_update::handler(ctx, endpoint)
    }

    /// An active keeper stops taking new leases; its leases pass to their successors.
    pub fn keeper_drain(ctx: Context<KeeperDrain>) -> Result<()> {
        instructions::keeper_drain::handler(ctx)
    }

    /// A keeper without leases (active or draining) starts unbonding its bond.
    pub fn keeper_deregister(ctx: Context<KeeperDeregister>) -> Result<()> {
        instructions::keeper_deregister::handler(ctx)
    }

    /// A quorum of a lease's committee slashes a member's bond for a false or withheld
    /// checkpoint transcript.
    pub fn keeper_slash<'info>(
        ctx: Context<'info, KeeperSlash<'info>>,
        args: KeeperSlashArgs,
    ) -> Result<()> {
        instructions::keeper_slash::handler(ctx, args)
    }

    /// After unbonding: bond back, keeper account and vault closed.
    pub fn keeper_close(ctx: Context<KeeperClose>) -> Result<()> {
        instructions::keeper_close::handler(ctx)
    }

    /// A wallet registers as a GPU provider.
    pub fn provider_register(
        ctx: Context<ProviderRegister>,
        args: ProviderRegisterArgs,
    ) -> Result<()> {
        instructions::provider_register::handler(ctx, args)
    }

    /// The provider changes its location, endpoint, offer or workers.
    pub fn provider_update(ctx: Context<ProviderUpdate>, args: ProviderUpdateArgs) -> Result<()> {
        instructions::provider_update::handler(ctx, args)
    }

    /// The provider adds stake.
    pub fn provider_stake(ctx: Context<ProviderStake>, amount: u64) -> Result<()> {
        instructions::provider_stake::handler(ctx, amount)
    }

    /// The provider starts unbonding free stake.
    pub fn provider_unstake_request(
        ctx: Context<ProviderUnstakeRequest>,
        amount: u64,
    ) -> Result<()> {
        instructions::provider_unstake_request::handler(ctx, amount)
    }

    /// After unbonding: the unbonding stake goes back to the provider.
    pub fn provider_withdraw(ctx: Context<ProviderWithdraw>) -> Result<()> {
        instructions::provider_withdraw::handler(ctx)
    }

    /// A user reserves GPUs and deposits escrow; the lease waits for its committee draw.
    pub fn lease_open(ctx: Context<LeaseOpen>, args: LeaseOpenArgs) -> Result<()> {
        instructions::lease_open::handler(ctx, args)
    }

    /// Anyone: draws a pending lease's verification committee from a slot hash after its open.
    pub fn lease_draw_committee<'info>(
        ctx: Context<'info, LeaseDrawCommittee<'info>>,
    ) -> Result<()> {
        instructions::lease_draw_committee::handler(ctx)
    }

    /// Anyone adds funds to a lease's escrow.
    pub fn lease_top_up(ctx: Context<LeaseTopUp>, amount: u64) -> Result<()> {
        instructions::lease_top_up::handler(ctx, amount)
    }

    /// The lease's keeper settles one period with proof evidence.
    pub fn lease_checkpoint(
        ctx: Context<LeaseCheckpoint>,
        args: LeaseCheckpointArgs,
    ) -> Result<()> {
        instructions::lease_checkpoint::handler(ctx, args)
    }

    /// The user changes an active lease's GPU count from now on; escrow moves so that it
    /// stays funded until the same time. Applies when checkpoints reach the request.
    pub fn lease_resize(ctx: Context<LeaseResize>, args: LeaseResizeArgs) -> Result<()> {
        instructions::lease_resize::handler(ctx, args)
    }

    /// Final settlement: refund, stake lock released, accounts closed.
    pub fn lease_close(ctx: Context<LeaseClose>) -> Result<()> {
        instructions::lease_close::handler(ctx)
    }

    /// The lease's successor keeper takes over from a late or departing keeper.
    pub fn lease_reassign_keeper<'info>(
        ctx: Context<'info, LeaseReassignKeeper<'info>>,
    ) -> Result<()> {
        instructions::lease_reassign_keeper::handler(ctx)
    }

    /// A quorum of the lease's committee slashes `gpus` of the lease's GPUs: the stake they
    /// lock is slashed and the lease goes on with the others (or ends, when all failed).
    pub fn provider_slash<'info>(
        ctx: Context<'info, ProviderSlash<'info>>,
        evidence_digest: [u8; 32],
        gpus: u16,
    ) -> Result<()> {
        instructions::provider_slash::handler(ctx, evidence_digest, gpus)
    }

    /// An empty provider closes its account and vault.
    pub fn provider_close(ctx: Context<ProviderClose>) -> Result<()> {
        instructions::provider_close::handler(ctx)
    }
}
