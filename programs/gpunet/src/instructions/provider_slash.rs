//! `provider_slash`: at least `slash_quorum` distinct active keepers, each signing the
//! transaction, take the configured fraction of the stake a lease locks. The user is
//! compensated (the treasury takes its configured share), the provider is jailed, and the
//! lease ends (the user then closes it for the refund of unspent escrow).
//!
//! Co-signers come in `remaining_accounts` as pairs `(keeper wallet [signer], keeper account)`.
//! The quorum is at least two (config validation), so one keeper alone can never slash.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::ProviderSlashed;
use crate::math::{safe_add, safe_sub, split_slash};
use crate::state::{
    CONFIG_SEED, Config, KEEPER_SEED, Keeper, KeeperStatus, LEASE_SEED, Lease, LeaseStatus,
    PROVIDER_SEED, PROVIDER_VAULT_SEED, Provider, ProviderStatus,
};
use crate::transfers::pay_out;

#[event_cpi]
#[derive(Accounts)]
pub struct ProviderSlash<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Account<'info, Config>,

    #[account(
        mut,
        seeds = [LEASE_SEED, lease.user.as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
        has_one = provider @ GpunetError::WrongProvider,
        has_one = keeper @ GpunetError::WrongKeeper,
    )]
    pub lease: Account<'info, Lease>,

    #[account(
        mut,
        seeds = [PROVIDER_SEED, provider.authority.as_ref()],
        bump = provider.bump,
    )]
    pub provider: Account<'info, Provider>,

    #[account(
        mut,
        seeds = [PROVIDER_VAULT_SEED, provider.key().as_ref()],
        bump = provider.vault_bump,
    )]
    pub provider_vault: Account<'info, TokenAccount>,

    /// The lease's assigned keeper (its assignment ends with the lease).
    #[account(
        mut,
        seeds = [KEEPER_SEED, keeper.authority.as_ref()],
        bump = keeper.bump,
    )]
    pub keeper: Account<'info, Keeper>,

    /// The user's token account: receives the compensation.
    #[account(
        mut,
        constraint = user_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = user_token.owner == lease.user @ GpunetError::WrongUser,
    )]
    pub user_token: Account<'info, TokenAccount>,

    #[account(mut, address = config.treasury @ GpunetError::WrongTreasury)]
    pub treasury: Account<'info, TokenAccount>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Account<'info, Mint>,

    pub token_program: Program<'info, Token>,
}

impl ProviderSlash<'_> {
    fn validate(&self) -> Result<()> {
        self.config.require_not_paused()?;
        require!(
            self.lease.status == LeaseStatus::Active,
            GpunetError::LeaseNotActive
        );
        self.provider.check_vault(self.provider_vault.amount)
    }
}

/// Checks the co-signers in `remaining` — pairs of (keeper wallet, keeper account) — and
/// returns the distinct active keeper accounts that signed. Fails unless there are at least
/// `quorum` of them.
pub fn check_quorum(remaining: &[AccountInfo], quorum: u8) -> Result<Vec<Pubkey>> {
    require!(remaining.len() % 2 == 0, GpunetError::SlashSignerNotKeeper);
    let mut signers: Vec<Pubkey> = Vec::with_capacity(remaining.len() / 2);
    for pair in remaining.chunks_exact(2) {
        let (wallet, account) = (&pair[0], &pair[1]);
        require!(wallet.is_signer, GpunetError::SlashSignerNotKeeper);
        require!(
            account.owner == &crate::ID,
            GpunetError::SlashSignerNotKeeper
        );
        let keeper = Keeper::try_deserialize(&mut &account.try_borrow_data()?[..])
            .map_err(|_| error!(GpunetError::SlashSignerNotKeeper))?;
        require!(
            keeper.authority == *wallet.key && keeper.status == KeeperStatus::Active,
            GpunetError::SlashSignerNotKeeper
        );
        let expected = Pubkey::create_program_address(
            &[KEEPER_SEED, wallet.key.as_ref(), &[keeper.bump]],
            &crate::ID,
        )
        .map_err(|_| error!(GpunetError::SlashSignerNotKeeper))?;
        require_keys_eq!(expected, *account.key, GpunetError::SlashSignerNotKeeper);
        require!(
            !signers.contains(account.key),
            GpunetError::DuplicateSlashSigner
        );
        signers.push(*account.key);
    }
    require!(
        signers.len() >= usize::from(quorum),
        GpunetError::SlashQuorumNotMet
    );
    Ok(signers)
}

#[access_control(ctx.accounts.validate())]
pub fn handler<'info>(
    ctx: Context<'info, ProviderSlash<'info>>,
    evidence_digest: [u8; 32],
) -> Result<()> {
    let params = &ctx.accounts.config.params;
    let signers = check_quorum(ctx.remaining_accounts, params.slash_quorum)?;
    let stake_locked = ctx.accounts.lease.stake_locked;
    let split = split_slash(
        stake_locked,
        params.slash_fraction_bps,
        params.slash_treasury_bps,
    )?;

    let authority = ctx.accounts.provider.authority;
    let seeds: &[&[u8]] = &[
        PROVIDER_SEED,
        authority.as_ref(),
        &[ctx.accounts.provider.bump],
    ];
    let provider_info = ctx.accounts.provider.to_account_info();
    let a = &ctx.accounts;
    for (to, amount) in [(&a.user_token, split.user), (&a.treasury, split.treasury)] {
        pay_out(
            &a.token_program,
            &a.provider_vault,
            to,
            &provider_info,
            &a.mint,
            amount,
            &[seeds],
        )?;
    }

    let lease = &mut ctx.accounts.lease;
    lease.status = LeaseStatus::Ended;
    lease.compensation = safe_add(lease.compensation, split.user)?;
    lease.invariant()?;
    let gpus = lease.gpus;

    let provider = &mut ctx.accounts.provider;
    provider.staked = safe_sub(provider.staked, split.total)?;
    provider.release_lease(gpus, stake_locked)?;
    provider.slashed_total = safe_add(provider.slashed_total, split.total)?;
    provider.status = ProviderStatus::Jailed;
    provider.invariant()?;

    let keeper = &mut ctx.accounts.keeper;
    keeper.unassign_lease()?;
    keeper.invariant()?;

    ctx.accounts.provider_vault.reload()?;
    ctx.accounts
        .provider
        .check_vault(ctx.accounts.provider_vault.amount)?;

    emit_cpi!(ProviderSlashed {
        lease: ctx.accounts.lease.key(),
        provider: ctx.accounts.provider.key(),
        evidence_digest,
        slashed: split.total,
        to_user: split.user,
        to_treasury: split.treasury,
        keepers: signers,
    });
    Ok(())
}
