//! The two token moves every instruction uses: a wallet paying into a PDA vault, and a PDA
//! vault paying out with the PDA's signature. Both use `transfer_checked` (mint and decimals
//! verified by the token program), and closing an emptied vault returns its rent.

use anchor_lang::prelude::*;
use anchor_spl::token::{self, CloseAccount, Mint, Token, TokenAccount, TransferChecked};

/// Moves `amount` from a wallet's token account, signed by the wallet.
pub fn pay_in<'info>(
    token_program: &Program<'info, Token>,
    from: &Account<'info, TokenAccount>,
    to: &AccountInfo<'info>,
    authority: &Signer<'info>,
    mint: &Account<'info, Mint>,
    amount: u64,
) -> Result<()> {
    token::transfer_checked(
        CpiContext::new(
            token_program.key(),
            TransferChecked {
                from: from.to_account_info(),
                mint: mint.to_account_info(),
                to: to.clone(),
                authority: authority.to_account_info(),
            },
        ),
        amount,
        mint.decimals,
    )
}

/// Moves `amount` out of a PDA-owned vault; `signer_seeds` are the vault authority's seeds.
pub fn pay_out<'info>(
    token_program: &Program<'info, Token>,
    vault: &Account<'info, TokenAccount>,
    to: &Account<'info, TokenAccount>,
    vault_authority: &AccountInfo<'info>,
    mint: &Account<'info, Mint>,
    amount: u64,
    signer_seeds: &[&[&[u8]]],
) -> Result<()> {
    if amount == 0 {
        return Ok(());
    }
    token::transfer_checked(
        CpiContext::new_with_signer(
            token_program.key(),
            TransferChecked {
                from: vault.to_account_info(),
                mint: mint.to_account_info(),
                to: to.to_account_info(),
                authority: vault_authority.clone(),
            },
            signer_seeds,
        ),
        amount,
        mint.decimals,
    )
}

/// Closes an empty PDA-owned vault, sending its rent to `rent_to`.
pub fn close_vault<'info>(
    token_program: &Program<'info, Token>,
    vault: &Account<'info, TokenAccount>,
    rent_to: &AccountInfo<'info>,
    vault_authority: &AccountInfo<'info>,
    signer_seeds: &[&[&[u8]]],
) -> Result<()> {
    token::close_account(CpiContext::new_with_signer(
        token_program.key(),
        CloseAccount {
            account: vault.to_account_info(),
            destination: rent_to.clone(),
            authority: vault_authority.clone(),
        },
        signer_seeds,
    ))
}
