//! One instruction builder per program instruction. Each takes the wallets involved and the
//! arguments, derives every PDA, and returns an [`Instruction`] for any signer to sign.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::{InstructionData, ToAccountMetas};
use gpunet::instructions::{
    ConfigUpdateArgs, LeaseCheckpointArgs, LeaseOpenArgs, ProviderRegisterArgs, ProviderUpdateArgs,
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

/// `config_init`: `admin` signs and pays; `treasury` is a token account of `mint`.
pub fn config_init(
    admin: &Pubkey,
    mint: &Pubkey,
    treasury: &Pubkey,
    program_data: Option<Pubkey>,
    params: ConfigParams,
) -> Instruction {
    build(
        gpunet::accounts::ConfigInit {
            admin: *admin,
            config: pda::config(),
            mint: *mint,
            treasury: *treasury,
            this_program: gpunet::ID,
            program_data,
            token_program: TOKEN_PROGRAM_ID,
            system_program: SYSTEM_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ConfigInit { params },
    )
}

/// `config_update`: `admin` signs; `new_treasury` moves the treasury.
pub fn config_update(
    admin: &Pubkey,
    new_treasury: Option<Pubkey>,
    args: ConfigUpdateArgs,
) -> Instruction {
    build(
        gpunet::accounts::ConfigUpdate {
            admin: *admin,
            config: pda::config(),
            new_treasury,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::ConfigUpdate { args },
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

/// `keeper_register`: `authority` signs and pays the bond from `authority_token`.
pub fn keeper_register(authority: &Pubkey, authority_token: &Pubkey, mint: &Pubkey) -> Instruction {
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
        gpunet::instruction::KeeperRegister {},
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
/// pays the rent (may be the user). `provider` and `keeper` are accounts (not wallets); the
/// keeper must be the one whose turn it is ([`crate::Config::next_keeper_index`]).
pub fn lease_open(
    user: &Pubkey,
    rent_payer: &Pubkey,
    user_token: &Pubkey,
    provider: &Pubkey,
    keeper: &Pubkey,
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
            keeper: *keeper,
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

/// Accounts of a lease that several builders need.
#[derive(Debug, Clone, Copy)]
pub struct LeaseParties {
    /// The lease account.
    pub lease: Pubkey,
    /// The provider account.
    pub provider: Pubkey,
    /// The assigned keeper account.
    pub keeper: Pubkey,
    /// The config mint.
    pub mint: Pubkey,
    /// The config treasury.
    pub treasury: Pubkey,
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
/// the refund goes to `user_token`, the rent to `rent_payer`.
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
            provider: parties.provider,
            keeper: parties.keeper,
            mint: parties.mint,
            token_program: TOKEN_PROGRAM_ID,
            event_authority: pda::event_authority(),
            program: gpunet::ID,
        },
        gpunet::instruction::LeaseClose {},
    )
}

/// `lease_reassign_keeper`: the new keeper's wallet signs.
pub fn lease_reassign_keeper(
    new_keeper_authority: &Pubkey,
    lease: &Pubkey,
    old_keeper: &Pubkey,
) -> Instruction {
    build(
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
    )
}

/// `provider_slash`: each wallet in `keeper_wallets` must sign the transaction (at least the
/// config's slash quorum of distinct active keepers); compensation goes to `user_token`.
pub fn provider_slash(
    parties: &LeaseParties,
    user_token: &Pubkey,
    keeper_wallets: &[Pubkey],
    evidence_digest: [u8; 32],
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
        gpunet::instruction::ProviderSlash { evidence_digest },
    );
    for wallet in keeper_wallets {
        ix.accounts.push(
            anchor_lang::solana_program::instruction::AccountMeta::new_readonly(*wallet, true),
        );
        ix.accounts.push(
            anchor_lang::solana_program::instruction::AccountMeta::new_readonly(
                pda::keeper(wallet),
                false,
            ),
        );
    }
    ix
}
