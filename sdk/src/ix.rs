//! One instruction builder per program instruction. Each takes the wallets involved and the
//! arguments, derives every PDA, and returns an [`Instruction`] for any signer to sign.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::AccountMeta;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::{InstructionData, ToAccountMetas};
use gpunet::instructions::{
    ConfigUpdateArgs, KeeperSlashArgs, LeaseCheckpointArgs, LeaseOpenArgs, ProviderRegisterArgs,
    ProviderUpdateArgs,
};
use gpunet::state::ConfigParams;

use crate::pda;

/// SPL Token (classic) program id.
pub const TOKEN_PROGRAM_ID: Pubkey =
    anchor_lang::pubkey!("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");
/// System program id.
pub const SYSTEM_PROGRAM_ID: Pubkey = anchor_lang::pubkey!("11111111111111111111111111111111");

fn build(accounts: impl ToAccountMetas, data: impl InstructionData) -> Instruction {
    Instruction {
        program_id: gpunet::ID,
        accounts: accounts.to_account_metas(None),
        data: data.data(),
    }
}

/// `config_init`: `admin` signs and pays; the treasury vault ([`pda::treasury`]) is created.
/// A mint with a freeze authority is refused unless `allow_freeze_authority`.
pub fn config_init(
    admin: &Pubkey,
    mint: &Pubkey,
    program_data: Option<Pubkey>,
    params: ConfigParams,
    allow_freeze_authority: bool,
) -> Instruction {
    build(
        gpunet::accounts::ConfigInit {
            admin: *admin,
            config: pda::config(),
            mint: *mint,
            treasury: pda::treasury(),
            this_program: gpunet::ID,
            program_data,
            token_program: TOKEN_PROGRAM_ID,
            system_program: SYSTEM_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ConfigInit {
            params,
            allow_freeze_authority,
        },
    )
}

/// `config_update`: `admin` signs.
pub fn config_update(admin: &Pubkey, args: ConfigUpdateArgs) -> Instruction {
    build(
        gpunet::accounts::ConfigUpdate {
            admin: *admin,
            config: pda::config(),
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ConfigUpdate { args },
    )
}

/// `config_apply`: anyone, once a pending parameter change is due.
pub fn config_apply() -> Instruction {
    build(
        gpunet::accounts::ConfigApply {
            config: pda::config(),
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ConfigApply {},
    )
}

/// `treasury_withdraw`: `admin` signs; `amount` goes to `destination`.
pub fn treasury_withdraw(
    admin: &Pubkey,
    destination: &Pubkey,
    mint: &Pubkey,
    amount: u64,
) -> Instruction {
    build(
        gpunet::accounts::TreasuryWithdraw {
            admin: *admin,
            config: pda::config(),
            treasury: pda::treasury(),
            destination: *destination,
            mint: *mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::TreasuryWithdraw { amount },
    )
}

/// `config_accept_admin`: the pending admin signs.
pub fn config_accept_admin(new_admin: &Pubkey) -> Instruction {
    build(
        gpunet::accounts::ConfigAcceptAdmin {
            new_admin: *new_admin,
            config: pda::config(),
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ConfigAcceptAdmin {},
    )
}

/// `keeper_register`: `authority` signs and pays the bond from `authority_token`; `endpoint`
/// is the keeper's public gRPC URL.
pub fn keeper_register(
    authority: &Pubkey,
    authority_token: &Pubkey,
    mint: &Pubkey,
    endpoint: &str,
) -> Instruction {
    let keeper = pda::keeper(authority);
    build(
        gpunet::accounts::KeeperRegister {
            authority: *authority,
            config: pda::config(),
            keeper,
            vault: pda::keeper_vault(&keeper),
            authority_token: *authority_token,
            mint: *mint,
            token_program: TOKEN_PROGRAM_ID,
            system_program: SYSTEM_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::KeeperRegister {
            endpoint: endpoint.to_string(),
        },
    )
}

/// `keeper_update`: `authority` signs; publishes a new endpoint.
pub fn keeper_update(authority: &Pubkey, endpoint: &str) -> Instruction {
    build(
        gpunet::accounts::KeeperUpdate {
            authority: *authority,
            keeper: pda::keeper(authority),
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::KeeperUpdate {
            endpoint: endpoint.to_string(),
        },
    )
}

/// `keeper_drain`: `authority` signs. `last_keeper` as for [`keeper_deregister`].
pub fn keeper_drain(authority: &Pubkey, last_keeper: Option<Pubkey>) -> Instruction {
    build(
        gpunet::accounts::KeeperDrain {
            authority: *authority,
            config: pda::config(),
            keeper: pda::keeper(authority),
            last_keeper,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::KeeperDrain {},
    )
}

/// `keeper_deregister`: `authority` signs. `last_keeper` is the keeper account with the
/// highest index in the active set (it moves into the freed index), or `None` when that is the
/// caller's own keeper.
pub fn keeper_deregister(authority: &Pubkey, last_keeper: Option<Pubkey>) -> Instruction {
    build(
        gpunet::accounts::KeeperDeregister {
            authority: *authority,
            config: pda::config(),
            keeper: pda::keeper(authority),
            last_keeper,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::KeeperDeregister {},
    )
}

/// `keeper_close`: `authority` signs; the bond goes to `destination`.
pub fn keeper_close(authority: &Pubkey, destination: &Pubkey, mint: &Pubkey) -> Instruction {
    let keeper = pda::keeper(authority);
    build(
        gpunet::accounts::KeeperClose {
            authority: *authority,
            config: pda::config(),
            keeper,
            vault: pda::keeper_vault(&keeper),
            destination: *destination,
            mint: *mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::KeeperClose {},
    )
}

/// `provider_register`: `authority` signs and pays rent.
pub fn provider_register(
    authority: &Pubkey,
    mint: &Pubkey,
    args: ProviderRegisterArgs,
) -> Instruction {
    let provider = pda::provider(authority);
    build(
        gpunet::accounts::ProviderRegister {
            authority: *authority,
            config: pda::config(),
            provider,
            vault: pda::provider_vault(&provider),
            mint: *mint,
            token_program: TOKEN_PROGRAM_ID,
            system_program: SYSTEM_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ProviderRegister { args },
    )
}

/// `provider_update`: `authority` signs.
pub fn provider_update(authority: &Pubkey, args: ProviderUpdateArgs) -> Instruction {
    build(
        gpunet::accounts::ProviderUpdate {
            authority: *authority,
            config: pda::config(),
            provider: pda::provider(authority),
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ProviderUpdate { args },
    )
}

/// `provider_stake`: `authority` signs; tokens come from `authority_token`.
pub fn provider_stake(
    authority: &Pubkey,
    authority_token: &Pubkey,
    mint: &Pubkey,
    amount: u64,
) -> Instruction {
    let provider = pda::provider(authority);
    build(
        gpunet::accounts::ProviderStake {
            authority: *authority,
            config: pda::config(),
            provider,
            vault: pda::provider_vault(&provider),
            authority_token: *authority_token,
            mint: *mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ProviderStake { amount },
    )
}

/// `provider_unstake_request`: `authority` signs.
pub fn provider_unstake_request(authority: &Pubkey, amount: u64) -> Instruction {
    build(
        gpunet::accounts::ProviderUnstakeRequest {
            authority: *authority,
            config: pda::config(),
            provider: pda::provider(authority),
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ProviderUnstakeRequest { amount },
    )
}

/// `provider_withdraw`: `authority` signs; the unbonded stake goes to `destination`.
pub fn provider_withdraw(authority: &Pubkey, destination: &Pubkey, mint: &Pubkey) -> Instruction {
    let provider = pda::provider(authority);
    build(
        gpunet::accounts::ProviderWithdraw {
            authority: *authority,
            config: pda::config(),
            provider,
            vault: pda::provider_vault(&provider),
            destination: *destination,
            mint: *mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ProviderWithdraw {},
    )
}

/// `provider_close`: `authority` signs; any vault balance goes to `destination`.
pub fn provider_close(authority: &Pubkey, destination: &Pubkey, mint: &Pubkey) -> Instruction {
    let provider = pda::provider(authority);
    build(
        gpunet::accounts::ProviderClose {
            authority: *authority,
            config: pda::config(),
            provider,
            vault: pda::provider_vault(&provider),
            destination: *destination,
            mint: *mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ProviderClose {},
    )
}

/// `lease_open`: `user` signs and pays the escrow from `user_token`; `rent_payer` signs and
/// pays the rent (may be the user). `provider` is the provider account (not its wallet). The
/// lease starts pending: follow with [`lease_draw_committee`] from the next slot on.
pub fn lease_open(
    user: &Pubkey,
    rent_payer: &Pubkey,
    user_token: &Pubkey,
    provider: &Pubkey,
    mint: &Pubkey,
    args: LeaseOpenArgs,
) -> Instruction {
    let lease = pda::lease(user, args.nonce);
    build(
        gpunet::accounts::LeaseOpen {
            user: *user,
            rent_payer: *rent_payer,
            config: pda::config(),
            provider: *provider,
            lease,
            vault: pda::lease_vault(&lease),
            user_token: *user_token,
            mint: *mint,
            token_program: TOKEN_PROGRAM_ID,
            system_program: SYSTEM_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::LeaseOpen { args },
    )
}

/// `lease_draw_committee`: anyone; `committee` are the keeper accounts drawn, in draw order
/// ([`crate::committee::expected`] computes them).
pub fn lease_draw_committee(lease: &Pubkey, committee: &[Pubkey]) -> Instruction {
    let mut ix = build(
        gpunet::accounts::LeaseDrawCommittee {
            config: pda::config(),
            lease: *lease,
            slot_hashes: gpunet::committee::SLOT_HASHES_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::LeaseDrawCommittee {},
    );
    for (i, keeper) in committee.iter().enumerate() {
        // The first member is assigned the lease (its counter changes).
        ix.accounts.push(if i == 0 {
            AccountMeta::new(*keeper, false)
        } else {
            AccountMeta::new_readonly(*keeper, false)
        });
    }
    ix
}

/// `lease_top_up`: `funder` signs and pays from `funder_token`.
pub fn lease_top_up(
    funder: &Pubkey,
    funder_token: &Pubkey,
    lease: &Pubkey,
    mint: &Pubkey,
    amount: u64,
) -> Instruction {
    build(
        gpunet::accounts::LeaseTopUp {
            funder: *funder,
            config: pda::config(),
            lease: *lease,
            vault: pda::lease_vault(lease),
            funder_token: *funder_token,
            mint: *mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::LeaseTopUp { amount },
    )
}

/// `lease_resize`: the user changes its lease's GPU count to `gpus`; a grow takes at most
/// `max_deposit` more escrow from `user_token`, a shrink refunds to it.
pub fn lease_resize(
    user: &Pubkey,
    user_token: &Pubkey,
    lease: &Pubkey,
    provider: &Pubkey,
    mint: &Pubkey,
    gpus: u16,
    max_deposit: u64,
) -> Instruction {
    build(
        gpunet::accounts::LeaseResize {
            user: *user,
            config: pda::config(),
            lease: *lease,
            vault: pda::lease_vault(lease),
            provider: *provider,
            user_token: *user_token,
            mint: *mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::LeaseResize {
            args: gpunet::instructions::LeaseResizeArgs { gpus, max_deposit },
        },
    )
}

impl LeaseParties {
    /// The parties of a lease that a slash ended: closing it needs neither provider nor keeper.
    pub fn ended(self) -> Self {
        LeaseParties {
            provider: Pubkey::default(),
            keeper: Pubkey::default(),
            ..self
        }
    }
}

/// Accounts of a lease that several builders need.
#[derive(Debug, Clone, Copy)]
pub struct LeaseParties {
    /// The lease account.
    pub lease: Pubkey,
    /// The provider account.
    pub provider: Pubkey,
    /// The keeper account posting checkpoints (`Pubkey::default()` while the lease is pending).
    pub keeper: Pubkey,
    /// The config mint.
    pub mint: Pubkey,
    /// The config treasury.
    pub treasury: Pubkey,
}

/// `Some(key)` unless `key` is the default key.
fn present(key: Pubkey) -> Option<Pubkey> {
    (key != Pubkey::default()).then_some(key)
}

/// `lease_checkpoint`: the assigned keeper's wallet signs; the provider is paid into
/// `provider_token` (owned by the provider's wallet), the keeper fee into `keeper_token`.
pub fn lease_checkpoint(
    keeper_authority: &Pubkey,
    parties: &LeaseParties,
    provider_token: &Pubkey,
    keeper_token: &Pubkey,
    args: LeaseCheckpointArgs,
) -> Instruction {
    build(
        gpunet::accounts::LeaseCheckpoint {
            keeper_authority: *keeper_authority,
            config: pda::config(),
            keeper: pda::keeper(keeper_authority),
            lease: parties.lease,
            vault: pda::lease_vault(&parties.lease),
            provider: parties.provider,
            provider_token: *provider_token,
            keeper_token: *keeper_token,
            treasury: parties.treasury,
            mint: parties.mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::LeaseCheckpoint { args },
    )
}

/// `lease_close`: `closer` signs (the user, or anyone once the lease may be closed by anyone);
/// the refund goes to `user_token`, the rent to `rent_payer`. A provider or keeper left as
/// `Pubkey::default()` in `parties` is omitted: an `Ended` lease needs neither (use
/// [`LeaseParties::ended`]), a pending one no keeper.
pub fn lease_close(
    closer: &Pubkey,
    parties: &LeaseParties,
    user_token: &Pubkey,
    rent_payer: &Pubkey,
) -> Instruction {
    build(
        gpunet::accounts::LeaseClose {
            closer: *closer,
            config: pda::config(),
            lease: parties.lease,
            vault: pda::lease_vault(&parties.lease),
            user_token: *user_token,
            rent_payer: *rent_payer,
            provider: present(parties.provider),
            keeper: present(parties.keeper),
            mint: parties.mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::LeaseClose {},
    )
}

/// `lease_reassign_keeper`: the new keeper's wallet signs; it must be the next active member
/// of the lease's committee after `old_keeper`, and `skipped` the members between them, in
/// committee order.
pub fn lease_reassign_keeper(
    new_keeper_authority: &Pubkey,
    lease: &Pubkey,
    old_keeper: &Pubkey,
    skipped: &[Pubkey],
) -> Instruction {
    let mut ix = build(
        gpunet::accounts::LeaseReassignKeeper {
            new_keeper_authority: *new_keeper_authority,
            config: pda::config(),
            lease: *lease,
            old_keeper: *old_keeper,
            new_keeper: pda::keeper(new_keeper_authority),
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::LeaseReassignKeeper {},
    );
    ix.accounts
        .extend(skipped.iter().map(|k| AccountMeta::new_readonly(*k, false)));
    ix
}

/// `provider_slash` of `gpus` of the lease's GPUs (all of them: the lease ends; fewer: it goes
/// on with the rest): each wallet in `keeper_wallets` must sign the transaction (at least the
/// lease's slash quorum of distinct active members of its committee); compensation goes to
/// `user_token`.
pub fn provider_slash(
    parties: &LeaseParties,
    user_token: &Pubkey,
    keeper_wallets: &[Pubkey],
    evidence_digest: [u8; 32],
    gpus: u16,
) -> Instruction {
    let mut ix = build(
        gpunet::accounts::ProviderSlash {
            config: pda::config(),
            lease: parties.lease,
            provider: parties.provider,
            provider_vault: pda::provider_vault(&parties.provider),
            keeper: parties.keeper,
            user_token: *user_token,
            treasury: parties.treasury,
            mint: parties.mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ProviderSlash {
            evidence_digest,
            gpus,
        },
    );
    push_cosigners(&mut ix, keeper_wallets);
    ix
}

/// Appends `(wallet [signer], keeper account)` pairs for slash co-signers (what
/// [`provider_slash`] and [`keeper_slash`] do with their `keeper_wallets`).
pub fn push_cosigners(ix: &mut Instruction, keeper_wallets: &[Pubkey]) {
    for wallet in keeper_wallets {
        ix.accounts.push(AccountMeta::new_readonly(*wallet, true));
        ix.accounts
            .push(AccountMeta::new_readonly(pda::keeper(wallet), false));
    }
}

/// `keeper_slash`: each wallet in `keeper_wallets` signs (a quorum of the lease's committee
/// other than the accused); `accused` is a keeper account on the committee; `last_keeper` as
/// for [`keeper_deregister`] when the accused is active (else `None`).
pub fn keeper_slash(
    parties: &LeaseParties,
    accused: &Pubkey,
    last_keeper: Option<Pubkey>,
    user_token: &Pubkey,
    keeper_wallets: &[Pubkey],
    args: KeeperSlashArgs,
) -> Instruction {
    let mut ix = build(
        gpunet::accounts::KeeperSlash {
            config: pda::config(),
            lease: parties.lease,
            keeper: *accused,
            keeper_vault: pda::keeper_vault(accused),
            last_keeper,
            user_token: *user_token,
            treasury: parties.treasury,
            mint: parties.mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::KeeperSlash { args },
    );
    push_cosigners(&mut ix, keeper_wallets);
    ix
}
