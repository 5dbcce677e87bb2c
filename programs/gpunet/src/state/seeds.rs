//! PDA seed prefixes. The SDK derives addresses from these same constants.

/// `[CONFIG_SEED]` → the singleton [`crate::state::Config`].
pub const CONFIG_SEED: &[u8] = b"config";
/// `[KEEPER_SEED, authority]` → [`crate::state::Keeper`].
pub const KEEPER_SEED: &[u8] = b"keeper";
/// `[KEEPER_VAULT_SEED, keeper]` → the keeper's bond vault (SPL token account, authority = keeper PDA).
pub const KEEPER_VAULT_SEED: &[u8] = b"keeper_vault";
/// `[PROVIDER_SEED, authority]` → [`crate::state::Provider`].
pub const PROVIDER_SEED: &[u8] = b"provider";
/// `[PROVIDER_VAULT_SEED, provider]` → the provider's stake vault (authority = provider PDA).
pub const PROVIDER_VAULT_SEED: &[u8] = b"provider_vault";
/// `[LEASE_SEED, user, nonce (u64 little-endian)]` → [`crate::state::Lease`].
pub const LEASE_SEED: &[u8] = b"lease";
/// `[LEASE_VAULT_SEED, lease]` → the lease's escrow vault (authority = lease PDA).
pub const LEASE_VAULT_SEED: &[u8] = b"lease_vault";
/// `[TREASURY_SEED]` → the treasury vault (SPL token account, authority = config PDA).
pub const TREASURY_SEED: &[u8] = b"treasury";
