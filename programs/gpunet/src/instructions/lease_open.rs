//! `lease_open`: a user reserves GPUs on a provider and deposits price × GPUs × duration into
//! the lease's escrow, and a share of the provider's stake (the per-GPU minimum for the GPUs
//! leased) is locked for the lease's life. The lease starts `Pending`: who verifies it is drawn
//! afterwards by `lease_draw_committee` from a slot hash nobody knows yet, so neither the user
//! nor the provider chooses its judge. The terms it depends on are copied from the config now.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::create::{create_program_account, create_vault};
use crate::error::GpunetError;
use crate::events::LeaseOpened;
use crate::math::{cost, lease_rate};
use crate::state::config::MAX_PERIOD_SECONDS;
use crate::state::{
    CONFIG_SEED, Config, LEASE_SEED, LEASE_VAULT_SEED, Lease, LeaseStatus, LeaseTerms,
    MAX_COMMITTEE, PROVIDER_SEED, Provider, Verdict,
};
use crate::transfers::pay_in;

/// What the user signs for.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug)]
pub struct LeaseOpenArgs {
    /// Any number the user has not used for another open lease (part of the lease's address).
    pub nonce: u64,
    /// GPUs to reserve, at most the provider's free GPUs.
    pub gpus: u16,
    /// Seconds to pay for up front (1 s … 365 days); top-ups extend it.
    pub duration: i64,
    /// The most the user pays per GPU-second; the lease takes the provider's current price,
    /// which must not be higher.
    pub max_price_per_gpu_second: u64,
}

#[event_cpi]
#[derive(Accounts)]
#[instruction(args: LeaseOpenArgs)]
pub struct LeaseOpen<'info> {
    /// The user's wallet: signs, and pays the escrow from `user_token`.
    pub user: Signer<'info>,

    /// Pays the rent of the lease and its vault (the user or a dApp); gets it back at close.
    #[account(mut)]
    pub rent_payer: Signer<'info>,

    /// Read only: opening a lease writes nothing shared, so leases open in parallel.
    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        seeds = [PROVIDER_SEED, provider.authority.as_ref()],
        bump = provider.bump,
    )]
    pub provider: Box<Account<'info, Provider>>,

    /// CHECK: the lease PDA (address fixed by its seeds), created in the handler; reusing a
    /// nonce of a lease still open is refused there (`AlreadyInitialized`).
    #[account(
        mut,
        seeds = [LEASE_SEED, user.key().as_ref(), &args.nonce.to_le_bytes()],
        bump,
    )]
    pub lease: UncheckedAccount<'info>,

    /// CHECK: the escrow vault PDA, created in the handler as a token account of `mint` whose
    /// authority is the lease PDA.
    #[account(mut, seeds = [LEASE_VAULT_SEED, lease.key().as_ref()], bump)]
    pub vault: UncheckedAccount<'info>,

    /// The user's token account the escrow comes from.
    #[account(
        mut,
        constraint = user_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = user_token.owner == user.key() @ GpunetError::WrongTokenOwner,
    )]
    pub user_token: Box<Account<'info, TokenAccount>>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Box<Account<'info, Mint>>,

    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

impl LeaseOpen<'_> {
    fn validate(&self, args: &LeaseOpenArgs) -> Result<()> {
        self.config.require_not_paused()?;
        require!(args.gpus > 0, GpunetError::ZeroGpus);
        require!(
            args.duration > 0 && args.duration <= MAX_PERIOD_SECONDS,
            GpunetError::InvalidDuration
        );
        self.provider.check_can_lease(
            &self.config,
            args.gpus,
            args.max_price_per_gpu_second,
            self.stake_to_lock(args.gpus)?,
        )?;
        require!(self.config.active_keepers > 0, GpunetError::NoActiveKeeper);
        Ok(())
    }

    /// Stake locked for `gpus` GPUs: the per-GPU minimum of the provider's class.
    fn stake_to_lock(&self, gpus: u16) -> Result<u64> {
        self.config.min_stake(self.provider.gpu.class, gpus)
    }
}

#[access_control(ctx.accounts.validate(&args))]
pub fn handler(ctx: Context<LeaseOpen>, args: LeaseOpenArgs) -> Result<()> {
    let clock = Clock::get()?;
    let now = clock.unix_timestamp;
    let price = ctx.accounts.provider.gpu.price_per_gpu_second;
    let deposit = cost(lease_rate(price, args.gpus)?, args.duration)?;
    require!(deposit > 0, GpunetError::ZeroAmount);
    let stake_locked = ctx.accounts.stake_to_lock(args.gpus)?;
    let user_key = ctx.accounts.user.key();
    let lease_key = ctx.accounts.lease.key();
    let (lease_bump, vault_bump) = (ctx.bumps.lease, ctx.bumps.vault);

    let lease = Lease {
        user: user_key,
        provider: ctx.accounts.provider.key(),
        keeper: Pubkey::default(),
        rent_payer: ctx.accounts.rent_payer.key(),
        nonce: args.nonce,
        status: LeaseStatus::Pending,
        gpus: args.gpus,
        price_per_gpu_second: price,
        stake_locked,
        funded: deposit,
        paid_provider: 0,
        paid_protocol: 0,
        paid_keeper: 0,
        refunded: 0,
        compensation: 0,
        start: now,
        paid_until: now,
        last_checkpoint_at: now,
        last_sequence: 0,
        last_digest: [0; 32],
        last_verdict: Verdict::None,
        last_score: 0,
        bump: lease_bump,
        vault_bump,
        opened_slot: clock.slot,
        terms: LeaseTerms::from_params(&ctx.accounts.config.params),
        committee: [Pubkey::default(); MAX_COMMITTEE],
        committee_len: 0,
        paused_mark: ctx.accounts.config.paused_seconds_at(now)?,
        judged_sequence: 0,
        rate_since: 0,
        spent_before_rate: 0,
        slashed_sequence: 0,
        pending_gpus: 0,
        resize_at: 0,
        pending_stake: 0,
        withdrawn: 0,
        reserved: [0; 14],
    };
    lease.invariant()?;

    let a = &ctx.accounts;
    let lease_info = a.lease.to_account_info();
    let vault_info = a.vault.to_account_info();
    create_program_account(
        &a.rent_payer,
        &lease_info,
        &a.system_program,
        Lease::INIT_SPACE,
        &[
            LEASE_SEED,
            user_key.as_ref(),
            &args.nonce.to_le_bytes(),
            &[lease_bump],
        ],
        &lease,
    )?;
    create_vault(
        &a.rent_payer,
        &vault_info,
        &a.mint,
        &lease_info,
        &a.system_program,
        &a.token_program,
        &[LEASE_VAULT_SEED, lease_key.as_ref(), &[vault_bump]],
    )?;
    pay_in(
        &a.token_program,
        &a.user_token,
        &vault_info,
        &a.user,
        &a.mint,
        deposit,
    )?;

    let provider = &mut ctx.accounts.provider;
    provider.hold_lease(args.gpus, stake_locked)?;
    provider.invariant()?;

    emit_cpi!(LeaseOpened {
        lease: lease_key,
        user: user_key,
        provider: ctx.accounts.provider.key(),
        gpus: args.gpus,
        price_per_gpu_second: price,
        deposit,
        funded_until: lease.funded_until()?,
        stake_locked,
    });
    Ok(())
}
