//! One instruction builder per program instruction. Each takes the wallets involved and the
//! arguments, derives every PDA, and returns an [`Instruction`] for any signer to sign.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::{InstructionData, ToAccountMetas};
use gpunet::instructions::{ConfigUpdateArgs, ProviderRegisterArgs, ProviderUpdateArgs};
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

/// `keeper_deregister`: `authority` signs.
pub fn keeper_deregister(authority: &Pubkey) -> Instruction {
    build(
        gpunet::accounts::KeeperDeregister {
            authority: *authority,
            config: pda::config(),
            keeper: pda::keeper(authority),
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
