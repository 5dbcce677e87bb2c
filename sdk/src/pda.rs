//! Program-derived addresses, from the program's own seed constants.

use anchor_lang::prelude::Pubkey;
use gpunet::state::{
    CONFIG_SEED, KEEPER_SEED, KEEPER_VAULT_SEED, LEASE_SEED, LEASE_VAULT_SEED, PROVIDER_SEED,
    PROVIDER_VAULT_SEED, TREASURY_SEED,
};

/// The singleton config.
pub fn config() -> Pubkey {
    Pubkey::find_program_address(&[CONFIG_SEED], &gpunet::ID).0
}

/// The treasury vault (a token account of the config mint owned by the config PDA).
pub fn treasury() -> Pubkey {
    Pubkey::find_program_address(&[TREASURY_SEED], &gpunet::ID).0
}

/// The keeper account of a keeper wallet.
pub fn keeper(authority: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[KEEPER_SEED, authority.as_ref()], &gpunet::ID).0
}

/// The bond vault of a keeper account.
pub fn keeper_vault(keeper: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[KEEPER_VAULT_SEED, keeper.as_ref()], &gpunet::ID).0
}

/// The provider account of a provider wallet.
pub fn provider(authority: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[PROVIDER_SEED, authority.as_ref()], &gpunet::ID).0
}

/// The stake vault of a provider account.
pub fn provider_vault(provider: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[PROVIDER_VAULT_SEED, provider.as_ref()], &gpunet::ID).0
}

/// The lease a user opened with `nonce`.
pub fn lease(user: &Pubkey, nonce: u64) -> Pubkey {
    Pubkey::find_program_address(
        &[LEASE_SEED, user.as_ref(), &nonce.to_le_bytes()],
        &gpunet::ID,
    )
    .0
}

/// The escrow vault of a lease account.
pub fn lease_vault(lease: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[LEASE_VAULT_SEED, lease.as_ref()], &gpunet::ID).0
}

/// The event authority that signs the program's `emit_cpi!` self-invocations.
pub fn event_authority() -> Pubkey {
    Pubkey::find_program_address(&[b"__event_authority"], &gpunet::ID).0
}
