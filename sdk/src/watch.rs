//! Following the program's accounts as they change: [`decode`] names any gpunet account by its
//! Anchor discriminator, and [`follow_program`] streams every change over the node's pubsub
//! websocket (`programSubscribe`), so a daemon learns of a new lease without polling. A
//! websocket can drop notifications: callers pair it with periodic full reads
//! ([`crate::GpunetClient::providers`], [`crate::GpunetClient::leases`]).

use anchor_lang::{AccountDeserialize, Discriminator};
use futures_util::StreamExt;
use gpunet::state::{Config, Keeper, Lease, Provider};
use solana_account_decoder_client_types::UiAccountEncoding;
use solana_commitment_config::CommitmentConfig;
use solana_pubsub_client::nonblocking::pubsub_client::PubsubClient;
use solana_rpc_client_types::config::{RpcAccountInfoConfig, RpcProgramAccountsConfig};
use solana_sdk::pubkey::Pubkey;

use crate::client::SdkError;

/// A gpunet account, decoded.
#[derive(Clone, Debug)]
pub enum ProgramAccount {
    /// The config singleton.
    Config(Box<Config>),
    /// A keeper.
    Keeper(Box<Keeper>),
    /// A provider.
    Provider(Box<Provider>),
    /// A lease.
    Lease(Box<Lease>),
    /// The account was closed (no data, or no longer owned by gpunet).
    Closed,
    /// Another kind (or a layout this SDK does not know).
    Other,
}

fn try_as<T: AccountDeserialize + Discriminator>(data: &[u8]) -> Option<T> {
    if !data.starts_with(T::DISCRIMINATOR) {
        return None;
    }
    T::try_deserialize(&mut &data[..]).ok()
}

/// Decodes an account's data by its discriminator.
pub fn decode(data: &[u8]) -> ProgramAccount {
    if data.is_empty() {
        return ProgramAccount::Closed;
    }
    if let Some(l) = try_as::<Lease>(data) {
        return ProgramAccount::Lease(Box::new(l));
    }
    if let Some(p) = try_as::<Provider>(data) {
        return ProgramAccount::Provider(Box::new(p));
    }
    if let Some(k) = try_as::<Keeper>(data) {
        return ProgramAccount::Keeper(Box::new(k));
    }
    if let Some(c) = try_as::<Config>(data) {
        return ProgramAccount::Config(Box::new(c));
    }
    ProgramAccount::Other
}

/// The websocket URL that goes with a JSON-RPC URL, as the Solana CLI computes it: same host,
/// `ws`/`wss`, port + 1 (8899 → 8900).
pub fn websocket_url(rpc_url: &str) -> String {
    let (scheme, rest) = match rpc_url.split_once("://") {
        Some(("https", rest)) => ("wss", rest),
        Some((_, rest)) => ("ws", rest),
        None => ("ws", rpc_url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let authority = match authority
        .rsplit_once(':')
        .map(|(h, p)| (h, p.parse::<u16>()))
    {
        Some((host, Ok(port))) => format!("{host}:{}", port.saturating_add(1)),
        _ => authority.to_string(),
    };
    format!("{scheme}://{authority}{path}")
}

/// Follows every change to a gpunet account over the pubsub websocket at `ws_url`, calling
/// `on_change` with the address and the decoded account, until the subscription ends (the
/// node closed it: an error, so the caller reconnects).
pub async fn follow_program(
    ws_url: &str,
    commitment: CommitmentConfig,
    mut on_change: impl FnMut(Pubkey, ProgramAccount),
) -> Result<(), SdkError> {
    let ws = PubsubClient::new(ws_url)
        .await
        .map_err(|e| SdkError::Pubsub(format!("{ws_url}: {e}")))?;
    let config = RpcProgramAccountsConfig {
        account_config: RpcAccountInfoConfig {
            encoding: Some(UiAccountEncoding::Base64),
            commitment: Some(commitment),
            ..RpcAccountInfoConfig::default()
        },
        ..RpcProgramAccountsConfig::default()
    };
    let (mut stream, unsubscribe) = ws
        .program_subscribe(&gpunet::ID, Some(config))
        .await
        .map_err(|e| SdkError::Pubsub(format!("programSubscribe: {e}")))?;
    while let Some(update) = stream.next().await {
        let Ok(address) = update.value.pubkey.parse::<Pubkey>() else {
            continue;
        };
        let account = &update.value.account;
        let owned = account.owner == gpunet::ID.to_string();
        let change = match account.data.decode() {
            Some(data) if owned && account.lamports > 0 => decode(&data),
            _ => ProgramAccount::Closed,
        };
        on_change(address, change);
    }
    unsubscribe().await;
    Err(SdkError::Pubsub(format!("{ws_url}: subscription ended")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_url_follows_the_solana_cli() {
        assert_eq!(
            websocket_url("http://127.0.0.1:8899"),
            "ws://127.0.0.1:8900"
        );
        assert_eq!(
            websocket_url("https://api.devnet.solana.com"),
            "wss://api.devnet.solana.com"
        );
        assert_eq!(websocket_url("http://[::1]:8899/x"), "ws://[::1]:8900/x");
    }

    #[test]
    fn decode_names_nothing_for_empty_or_foreign_data() {
        assert!(matches!(decode(&[]), ProgramAccount::Closed));
        assert!(matches!(
            decode(&[1, 2, 3, 4, 5, 6, 7, 8, 9]),
            ProgramAccount::Other
        ));
    }
}
