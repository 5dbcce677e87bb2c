//! Host-side entry point: lets solana-program-test, LiteSVM and the localnet run this program
//! as a native builtin (it cannot be compiled to SBF on our machines; see docs/toolchain.md).

use anchor_lang::prelude::*;
use anchor_lang::solana_program::entrypoint::ProgramResult;

/// Calls [`crate::entry`] with the `ProcessInstruction` signature that native harnesses expect.
///
/// Anchor's generated `entry` ties the program id, accounts and data to one lifetime, which the
/// builtin function type does not promise. The runtime keeps all three borrowed for the whole
/// call, so shortening their lifetimes to one common lifetime is sound for its duration.
pub fn process_instruction<'a, 'b, 'c, 'd>(
    program_id: &'a Pubkey,
    accounts: &'b [AccountInfo<'c>],
    data: &'d [u8],
) -> ProgramResult {
    // SAFETY: see the doc comment; the references outlive this call.
    let (program_id, accounts, data): (&'c Pubkey, &'c [AccountInfo<'c>], &'c [u8]) = unsafe {
        (
            std::mem::transmute::<&'a Pubkey, &'c Pubkey>(program_id),
            std::mem::transmute::<&'b [AccountInfo<'c>], &'c [AccountInfo<'c>]>(accounts),
            std::mem::transmute::<&'d [u8], &'c [u8]>(data),
        )
    };
    crate::entry(program_id, accounts, data)
}
