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

pub mod create;
pub mod error;
pub mod events;
pub mod instructions;
pub mod math;
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

    /// Creates the singleton config (the upgrade authority on a cluster; the deployer natively).
    pub fn config_init(ctx: Context<ConfigInit>, params: ConfigParams) -> Result<()> {
        instructions::config_init::handler(ctx, params)
    }

    /// Admin: change parameters, pause, move the treasury, propose a new admin.
    pub fn config_update(ctx: Context<ConfigUpdate>, args: ConfigUpdateArgs) -> Result<()> {
        instructions::config_update::handler(ctx, args)
    }

    /// The proposed admin takes over.
    pub fn config_accept_admin(ctx: Context<ConfigAcceptAdmin>) -> Result<()> {
        instructions::config_accept_admin::handler(ctx)
    }

    /// A wallet bonds the configured amount and becomes an active keeper.
    pub fn keeper_register(ctx: Context<KeeperRegister>) -> Result<()> {
        instructions::keeper_register::handler(ctx)
    }

    /// An active keeper without leases starts unbonding its bond.
    pub fn keeper_deregister(ctx: Context<KeeperDeregister>) -> Result<()> {
        instructions::keeper_deregister::handler(ctx)
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

    /// A user reserves GPUs and deposits escrow; a keeper is assigned round-robin.
    pub fn lease_open(ctx: Context<LeaseOpen>, args: LeaseOpenArgs) -> Result<()> {
        instructions::lease_open::handler(ctx, args)
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

    /// Final settlement: refund, stake lock released, accounts closed.
    pub fn lease_close(ctx: Context<LeaseClose>) -> Result<()> {
        instructions::lease_close::handler(ctx)
    }

    /// Another active keeper takes over a lease whose keeper stopped checkpointing.
    pub fn lease_reassign_keeper(ctx: Context<LeaseReassignKeeper>) -> Result<()> {
        instructions::lease_reassign_keeper::handler(ctx)
    }

    /// A quorum of keepers slashes the stake a lease locks and ends the lease.
    pub fn provider_slash<'info>(
        ctx: Context<'info, ProviderSlash<'info>>,
        evidence_digest: [u8; 32],
    ) -> Result<()> {
        instructions::provider_slash::handler(ctx, evidence_digest)
    }

    /// An empty provider closes its account and vault.
    pub fn provider_close(ctx: Context<ProviderClose>) -> Result<()> {
        instructions::provider_close::handler(ctx)
    }
}
