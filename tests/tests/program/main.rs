//! The gpunet program, natively under solana-program-test with the real SPL Token program.
//! One binary for the whole suite (link time); one module per actor.

#![allow(deprecated)] // solana-program-test's API is marked unstable ahead of agave 4

mod attacks;
mod config;
mod keeper;
mod lease;
mod pause;
mod property;
mod provider;
mod resize;

use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;

/// `ix` with `key` no longer marked as a signer (the "missing signature" attack).
pub fn unsigned(mut ix: Instruction, key: &Pubkey) -> Instruction {
    for meta in ix.accounts.iter_mut().filter(|m| m.pubkey == *key) {
        meta.is_signer = false;
    }
    ix
}

/// `ix` with every occurrence of account `from` replaced by `to` (substitution attacks).
pub fn substitute(mut ix: Instruction, from: &Pubkey, to: &Pubkey) -> Instruction {
    let mut found = false;
    for meta in ix.accounts.iter_mut().filter(|m| m.pubkey == *from) {
        meta.pubkey = *to;
        found = true;
    }
    assert!(found, "account {from} not in instruction");
    ix
}
