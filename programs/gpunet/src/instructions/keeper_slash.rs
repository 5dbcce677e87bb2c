//! `keeper_slash`: keepers answer for what they sign. At least `slash_quorum` other members of
//! a lease's committee — having re-verified a checkpoint's transcript (its SHA-256 is on chain)
//! and found it false, or having failed to obtain it from the keeper within the transcript
//! window (`docs/program.md`) — take `keeper_slash_fraction_bps` of the accused member's bond.
//! The user is compensated up to what it paid out of escrow for the lease (less what it was
//! already compensated); the rest goes to the treasury. An active accused keeper leaves the
//! active set and drains (its leases pass to their successors); a draining or unbonding one
//! stays where it is with the smaller bond. Each checkpoint is judged once: the sequence must
//! be above the lease's `judged_sequence`, which the slash then raises. The program does not
//! know who posted a past checkpoint (the `CheckpointPosted` event does): the committee names
//! the accused.
//!
//! Co-signers come in `remaining_accounts` as pairs `(keeper wallet [signer], keeper account)`
//! (`quorum.rs`); the accused cannot co-sign.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::KeeperSlashed;
use crate::math::{bps_of, compensation, safe_add, safe_sub};
use crate::state::{
    CONFIG_SEED, Config, KEEPER_SEED, KEEPER_VAULT_SEED, Keeper, KeeperStatus, LEASE_SEED, Lease,
    LeaseStatus,
};
use crate::transfers::pay_out;

/// What the committee found.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug)]
pub struct KeeperSlashArgs {
    /// The checkpoint found false (or whose transcript was withheld), 1..=last sequence.
    pub sequence: u64,
    /// SHA-256 of the committee's evidence (the re-verification transcript).
    pub evidence_digest: [u8; 32],
}

#[event_cpi]
#[derive(Accounts)]
pub struct KeeperSlash<'info> {
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        seeds = [LEASE_SEED, lease.user.as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
    )]
    pub lease: Box<Account<'info, Lease>>,

    /// The accused keeper: a member of the lease's committee.
    #[account(
        mut,
        seeds = [KEEPER_SEED, keeper.authority.as_ref()],
        bump = keeper.bump,
    )]
    pub keeper: Box<Account<'info, Keeper>>,

    #[account(
        mut,
        seeds = [KEEPER_VAULT_SEED, keeper.key().as_ref()],
        bump = keeper.vault_bump,
    )]
    pub keeper_vault: Box<Account<'info, TokenAccount>>,

    /// The active keeper with the highest index, when the accused is active and is not it.
    #[account(mut)]
    pub last_keeper: Option<Account<'info, Keeper>>,

    /// The user's token account: receives the compensation.
    #[account(
        mut,
        constraint = user_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = user_token.owner == lease.user @ GpunetError::WrongUser,
    )]
    pub user_token: Box<Account<'info, TokenAccount>>,

    #[account(mut, address = config.treasury @ GpunetError::WrongTreasury)]
    pub treasury: Box<Account<'info, TokenAccount>>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Box<Account<'info, Mint>>,

    pub token_program: Program<'info, Token>,
}

impl KeeperSlash<'_> {
    fn validate(&self, args: &KeeperSlashArgs) -> Result<()> {
        self.config.require_not_paused()?;
        let lease = &self.lease;
        require!(
            lease.status != LeaseStatus::Pending,
            GpunetError::LeaseNotActive
        );
        require!(
            args.sequence >= 1 && args.sequence <= lease.last_sequence,
            GpunetError::SequenceNotNext
        );
        require!(
            args.sequence > lease.judged_sequence,
            GpunetError::AlreadyJudged
        );
        require!(
            lease.in_committee(&self.keeper.key()),
            GpunetError::NotCommitteeMember
        );
        self.keeper.check_vault(self.keeper_vault.amount)
    }
}

#[access_control(ctx.accounts.validate(&args))]
pub fn handler<'info>(
    ctx: Context<'info, KeeperSlash<'info>>,
    args: KeeperSlashArgs,
) -> Result<()> {
    let slot = Clock::get()?.slot;
    let keeper_key = ctx.accounts.keeper.key();
    let signers = crate::quorum::check(
        ctx.remaining_accounts,
        &ctx.accounts.lease,
        Some(&keeper_key),
    )?;
    let lease = &ctx.accounts.lease;
    let slashed = bps_of(
        ctx.accounts.keeper.bond,
        ctx.accounts.config.params.keeper_slash_fraction_bps,
    )?;
    let to_user = compensation(
        slashed,
        lease.paid_by_user()?,
        lease.compensation,
        lease.terms.slash_compensation_bps,
    )?;
    let to_treasury = safe_sub(slashed, to_user)?;

    let authority = ctx.accounts.keeper.authority;
    let seeds: &[&[u8]] = &[KEEPER_SEED, authority.as_ref(), &[ctx.accounts.keeper.bump]];
    let keeper_info = ctx.accounts.keeper.to_account_info();
    let a = &ctx.accounts;
    for (to, amount) in [(&a.user_token, to_user), (&a.treasury, to_treasury)] {
        pay_out(
            &a.token_program,
            &a.keeper_vault,
            to,
            &keeper_info,
            &a.mint,
            amount,
            &[seeds],
        )?;
    }

    let a = &mut *ctx.accounts;
    a.lease.compensation = safe_add(a.lease.compensation, to_user)?;
    a.lease.judged_sequence = args.sequence;
    a.lease.invariant()?;
    if a.keeper.status == KeeperStatus::Active {
        a.keeper
            .leave_active_set(&keeper_key, &mut a.config, a.last_keeper.as_mut(), slot)?;
        a.keeper.status = KeeperStatus::Draining;
    }
    a.keeper.bond = safe_sub(a.keeper.bond, slashed)?;
    a.keeper.slashed_total = safe_add(a.keeper.slashed_total, slashed)?;
    a.keeper.invariant()?;
    a.config.invariant()?;
    a.keeper_vault.reload()?;
    a.keeper.check_vault(a.keeper_vault.amount)?;

    emit_cpi!(KeeperSlashed {
        keeper: keeper_key,
        lease: ctx.accounts.lease.key(),
        evidence_digest: args.evidence_digest,
        slashed,
        to_user,
        to_treasury,
        keepers: signers,
    });
    Ok(())
}
