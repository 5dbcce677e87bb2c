//! `lease_checkpoint`: the lease's keeper settles one period with the evidence of a benchmark
//! proof. A passing verdict pays the provider for the period out of escrow, minus the protocol
//! fee (treasury) and the keeper fee (keeper); a failing one settles the period unpaid (its
//! escrow, less the keeper fee, goes back to the user at close). The keeper fee is the same for
//! both verdicts, so a keeper gains nothing by its choice. Fees are the lease's own terms, fixed
//! at open. Sequence numbers are consecutive and periods contiguous, so a keeper that crashes
//! and sends again can never pay twice. With a resize pending, periods end at its `resize_at`
//! at the latest, and the checkpoint that reaches it applies the new GPU count.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::{CheckpointPosted, LeaseResized};
use crate::math::{bps_of, cost, safe_add, split_payment};
use crate::state::{
    CONFIG_SEED, Config, KEEPER_SEED, Keeper, KeeperStatus, LEASE_SEED, LEASE_VAULT_SEED, Lease,
    LeaseStatus, PROVIDER_SEED, Provider, Verdict,
};
use crate::transfers::pay_out;

/// One checkpoint.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug)]
pub struct LeaseCheckpointArgs {
    /// Exactly `lease.last_sequence + 1`.
    pub sequence: u64,
    /// Must equal `lease.paid_until`.
    pub period_start: i64,
    /// After `period_start`, not in the future, not beyond what the escrow funds.
    pub period_end: i64,
    /// SHA-256 of the proof transcript (the evidence any keeper can recompute).
    pub proof_digest: [u8; 32],
    /// Pass pays the period; Fail settles it unpaid.
    pub verdict: Verdict,
    /// The measured benchmark score.
    pub score: u64,
}

#[event_cpi]
#[derive(Accounts)]
pub struct LeaseCheckpoint<'info> {
    /// The assigned keeper's wallet.
    pub keeper_authority: Signer<'info>,

    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        seeds = [KEEPER_SEED, keeper_authority.key().as_ref()],
        bump = keeper.bump,
    )]
    pub keeper: Box<Account<'info, Keeper>>,

    #[account(
        mut,
        seeds = [LEASE_SEED, lease.user.as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
        has_one = keeper @ GpunetError::WrongKeeper,
        has_one = provider @ GpunetError::WrongProvider,
    )]
    pub lease: Box<Account<'info, Lease>>,

    #[account(
        mut,
        seeds = [LEASE_VAULT_SEED, lease.key().as_ref()],
        bump = lease.vault_bump,
    )]
    pub vault: Box<Account<'info, TokenAccount>>,

    #[account(
        mut,
        seeds = [PROVIDER_SEED, provider.authority.as_ref()],
        bump = provider.bump,
    )]
    pub provider: Box<Account<'info, Provider>>,

    /// The provider's token account (owned by the provider's wallet).
    #[account(
        mut,
        constraint = provider_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = provider_token.owner == provider.authority @ GpunetError::WrongTokenOwner,
    )]
    pub provider_token: Box<Account<'info, TokenAccount>>,

    /// The keeper's token account (owned by the keeper's wallet). `dup`: one wallet may be
    /// both the provider and the keeper, and then both are paid into its one token account
    /// (a token account is never serialized by this program, so the same account twice is
    /// safe: the transfers are CPIs to SPL Token, and nothing here reads its balance).
    #[account(
        mut,
        dup,
        constraint = keeper_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = keeper_token.owner == keeper_authority.key() @ GpunetError::WrongTokenOwner,
    )]
    pub keeper_token: Box<Account<'info, TokenAccount>>,

    /// The treasury vault (a PDA of this program; nobody can close it).
    #[account(mut, address = config.treasury @ GpunetError::WrongTreasury)]
    pub treasury: Box<Account<'info, TokenAccount>>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Box<Account<'info, Mint>>,

    pub token_program: Program<'info, Token>,
}

impl LeaseCheckpoint<'_> {
    fn validate(&self, args: &LeaseCheckpointArgs) -> Result<()> {
        self.config.require_not_paused()?;
        require!(
            self.keeper.status == KeeperStatus::Active,
            GpunetError::KeeperNotActive
        );
        let lease = &self.lease;
        require!(
            lease.status == LeaseStatus::Active,
            GpunetError::LeaseNotActive
        );
        require!(
            Some(args.sequence) == lease.last_sequence.checked_add(1),
            GpunetError::SequenceNotNext
        );
        require!(
            args.period_start == lease.paid_until,
            GpunetError::PeriodStartMismatch
        );
        require!(
            args.period_end > args.period_start,
            GpunetError::EmptyPeriod
        );
        let now = Clock::get()?.unix_timestamp;
        require!(args.period_end <= now, GpunetError::PeriodInFuture);
        require!(
            args.period_end <= lease.funded_until()?,
            GpunetError::PeriodBeyondEscrow
        );
        require!(
            !lease.resize_pending() || args.period_end <= lease.resize_at,
            GpunetError::PeriodPastResize
        );
        require!(args.verdict != Verdict::None, GpunetError::InvalidVerdict);
        lease.check_vault(self.vault.amount)
    }
}

#[access_control(ctx.accounts.validate(&args))]
pub fn handler(ctx: Context<LeaseCheckpoint>, args: LeaseCheckpointArgs) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let terms = ctx.accounts.lease.terms;
    let period_cost = cost(
        ctx.accounts.lease.rate()?,
        args.period_end - args.period_start,
    )?;
    let split = match args.verdict {
        Verdict::Pass => split_payment(period_cost, terms.protocol_fee_bps, terms.keeper_fee_bps)?,
        // Verifying costs the same whatever the verdict; the rest of the period stays in escrow.
        _ => crate::math::PaymentSplit {
            provider: 0,
            protocol: 0,
            keeper: bps_of(period_cost, terms.keeper_fee_bps)?,
        },
    };
    let paused_now = ctx.accounts.config.paused_seconds_at(now)?;

    let lease_key = ctx.accounts.lease.key();
    let user = ctx.accounts.lease.user;
    let nonce = ctx.accounts.lease.nonce.to_le_bytes();
    let seeds: &[&[u8]] = &[
        LEASE_SEED,
        user.as_ref(),
        &nonce,
        &[ctx.accounts.lease.bump],
    ];
    let lease_info = ctx.accounts.lease.to_account_info();
    let a = &ctx.accounts;
    for (to, amount) in [
        (&a.provider_token, split.provider),
        (&a.treasury, split.protocol),
        (&a.keeper_token, split.keeper),
    ] {
        pay_out(
            &a.token_program,
            &a.vault,
            to,
            &lease_info,
            &a.mint,
            amount,
            &[seeds],
        )?;
    }

    let lease = &mut ctx.accounts.lease;
    lease.paid_provider = safe_add(lease.paid_provider, split.provider)?;
    lease.paid_protocol = safe_add(lease.paid_protocol, split.protocol)?;
    lease.paid_keeper = safe_add(lease.paid_keeper, split.keeper)?;
    lease.paid_until = args.period_end;
    lease.last_checkpoint_at = now;
    lease.last_sequence = args.sequence;
    lease.last_digest = args.proof_digest;
    lease.last_verdict = args.verdict;
    lease.last_score = args.score;
    lease.paused_mark = paused_now;
    // The checkpoint that reaches a pending resize applies it: the new count bills from here.
    let resized = if lease.resize_pending() && lease.paid_until == lease.resize_at {
        let from = lease.gpus;
        let (gpus, stake) = lease.apply_resize()?;
        Some(LeaseResized {
            lease: lease_key,
            gpus_from: from,
            gpus: lease.gpus,
            rate_since: lease.rate_since,
            stake_locked: lease.stake_locked,
            stake_released: stake,
            gpus_released: gpus,
            cancelled: false,
        })
    } else {
        None
    };
    lease.invariant()?;

    let provider = &mut ctx.accounts.provider;
    if let Some(r) = &resized {
        provider.release_gpus(r.gpus_released, r.stake_released)?;
    }
    provider.checkpoints_total = safe_add(provider.checkpoints_total, 1)?;
    if args.verdict == Verdict::Pass {
        provider.score = args.score;
    }
    provider.invariant()?;

    let keeper = &mut ctx.accounts.keeper;
    keeper.fees_earned = safe_add(keeper.fees_earned, split.keeper)?;
    keeper.invariant()?;

    ctx.accounts.vault.reload()?;
    ctx.accounts.lease.check_vault(ctx.accounts.vault.amount)?;

    emit_cpi!(CheckpointPosted {
        lease: lease_key,
        keeper: ctx.accounts.keeper.key(),
        sequence: args.sequence,
        period_start: args.period_start,
        period_end: args.period_end,
        proof_digest: args.proof_digest,
        verdict: args.verdict,
        score: args.score,
        paid_provider: split.provider,
        protocol_fee: split.protocol,
        keeper_fee: split.keeper,
    });
    if let Some(r) = resized {
        emit_cpi!(r);
    }
    Ok(())
}
