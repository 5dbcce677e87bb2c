//! The SPL Token moves a gpunet client needs around the program: associated token accounts
//! (where wallets keep the stake/payment token), and — for localnets and tests — creating a
//! mint and minting to a wallet.

use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;

use crate::ix::TOKEN_PROGRAM_ID;

/// SPL mint account size.
pub const MINT_LEN: u64 = 82;

/// The associated token account of `wallet` for `mint`.
pub fn ata(wallet: &Pubkey, mint: &Pubkey) -> Pubkey {
    spl_associated_token_account_interface::address::get_associated_token_address(wallet, mint)
}

/// Creates `wallet`'s associated token account for `mint` unless it exists; `payer` pays rent.
pub fn create_ata(payer: &Pubkey, wallet: &Pubkey, mint: &Pubkey) -> Instruction {
    spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
        payer,
        wallet,
        mint,
        &TOKEN_PROGRAM_ID,
    )
}

/// Creates and initialises the mint at `mint` (a fresh keypair's address that must sign)
/// with `rent` lamports.
pub fn create_mint(
    payer: &Pubkey,
    mint: &Pubkey,
    authority: &Pubkey,
    decimals: u8,
    rent: u64,
) -> Result<Vec<Instruction>, solana_sdk::program_error::ProgramError> {
    Ok(vec![
        solana_system_interface::instruction::create_account(
            payer,
            mint,
            rent,
            MINT_LEN,
            &TOKEN_PROGRAM_ID,
        ),
        spl_token_interface::instruction::initialize_mint2(
            &TOKEN_PROGRAM_ID,
            mint,
            authority,
            None,
            decimals,
        )?,
    ])
}

/// Mints `amount` of `mint` to `to`, signed by the mint `authority`.
pub fn mint_to(
    mint: &Pubkey,
    to: &Pubkey,
    authority: &Pubkey,
    amount: u64,
) -> Result<Instruction, solana_sdk::program_error::ProgramError> {
    spl_token_interface::instruction::mint_to(&TOKEN_PROGRAM_ID, mint, to, authority, &[], amount)
}
