//! Creating PDA accounts in a way no one can block.
//!
//! Anchor 1.2's `init` creates a prefunded address with the system program's
//! `CreateAccountAllowPrefund`, which the runtimes we run on (solana-program-test 3.1,
//! surfpool 1.3) refuse with `InvalidInstructionData`. Anyone could then freeze a provider's,
//! keeper's or lease's registration by sending a few lamports to its future address (a test
//! shows it). So accounts are created here instead: `create_account` when the address is
//! empty, otherwise top up to rent exemption, `allocate` and `assign`, each signed with the
//! PDA's seeds — the classic pattern that every runtime supports.

use anchor_lang::prelude::*;
use anchor_lang::system_program::{self, Allocate, Assign, CreateAccount, Transfer};
use anchor_spl::token::{self, InitializeAccount3, Mint, Token};

use crate::error::GpunetError;

/// SPL token account size.
const TOKEN_ACCOUNT_LEN: usize = 165;

/// Creates the PDA `account` (seeds `signer_seeds`) with `space` bytes owned by `owner`,
/// paid by `payer`. Fails with [`GpunetError::AlreadyInitialized`] when it already holds data
/// or belongs to a program.
pub fn create_pda<'info>(
    payer: &Signer<'info>,
    account: &AccountInfo<'info>,
    system_program: &Program<'info, System>,
    space: usize,
    owner: &Pubkey,
    signer_seeds: &[&[u8]],
) -> Result<()> {
    require!(
        account.owner == &system_program::ID && account.data_is_empty(),
        GpunetError::AlreadyInitialized
    );
    let rent = Rent::get()?.minimum_balance(space);
    let current = account.lamports();
    let sys = system_program.key();
    if current == 0 {
        return system_program::create_account(
            CpiContext::new_with_signer(
                sys,
                CreateAccount {
                    from: payer.to_account_info(),
                    to: account.clone(),
                },
                &[signer_seeds],
            ),
            rent,
            space as u64,
            owner,
        );
    }
    let top_up = rent.saturating_sub(current);
    if top_up > 0 {
        system_program::transfer(
            CpiContext::new(
                sys,
                Transfer {
                    from: payer.to_account_info(),
                    to: account.clone(),
                },
            ),
            top_up,
        )?;
    }
    system_program::allocate(
        CpiContext::new_with_signer(
            sys,
            Allocate {
                account_to_allocate: account.clone(),
            },
            &[signer_seeds],
        ),
        space as u64,
    )?;
    system_program::assign(
        CpiContext::new_with_signer(
            sys,
            Assign {
                account_to_assign: account.clone(),
            },
            &[signer_seeds],
        ),
        owner,
    )
}

/// Creates a program account of type `T` at the PDA `account` and writes `value` into it
/// (discriminator first). `space` excludes the 8-byte discriminator.
pub fn create_program_account<'info, T: AccountSerialize>(
    payer: &Signer<'info>,
    account: &AccountInfo<'info>,
    system_program: &Program<'info, System>,
    space: usize,
    signer_seeds: &[&[u8]],
    value: &T,
) -> Result<()> {
    create_pda(
        payer,
        account,
        system_program,
        8 + space,
        &crate::ID,
        signer_seeds,
    )?;
    let mut data = account.try_borrow_mut_data()?;
    let mut writer: &mut [u8] = &mut data;
    value.try_serialize(&mut writer)
}

/// Creates an SPL token account of `mint` at the PDA `vault`, owned (as token authority) by
/// `authority`.
#[allow(clippy::too_many_arguments)]
pub fn create_vault<'info>(
    payer: &Signer<'info>,
    vault: &AccountInfo<'info>,
    mint: &Account<'info, Mint>,
    authority: &AccountInfo<'info>,
    system_program: &Program<'info, System>,
    token_program: &Program<'info, Token>,
    vault_seeds: &[&[u8]],
) -> Result<()> {
    create_pda(
        payer,
        vault,
        system_program,
        TOKEN_ACCOUNT_LEN,
        &token_program.key(),
        vault_seeds,
    )?;
    token::initialize_account3(CpiContext::new(
        token_program.key(),
        InitializeAccount3 {
            account: vault.clone(),
            mint: mint.to_account_info(),
            authority: authority.clone(),
        },
    ))
}
