//! A JSON-RPC client for gpunet: typed account fetch, filtered listings through
//! `getProgramAccounts` filters, transactions signed by any [`Signer`], errors mapped back to the
//! program's names and messages, events decoded from transactions, and the localnet's time
//! travel. It speaks standard Solana JSON-RPC, so the same code runs against `gpunet localnet`,
//! devnet or mainnet.

use anchor_lang::{AccountDeserialize, Discriminator};
use gpunet::state::{Config, GpuClass, Keeper, Lease, Provider};
use solana_account_decoder_client_types::UiAccountEncoding;
use solana_commitment_config::CommitmentConfig;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::client_error::{Error as ClientError, ErrorKind};
use solana_rpc_client_api::request::{RpcError, RpcRequest, RpcResponseErrorData};
use solana_rpc_client_types::config::{
    RpcAccountInfoConfig, RpcProgramAccountsConfig, RpcTransactionConfig,
};
use solana_rpc_client_types::filter::{Memcmp, RpcFilterType};
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use solana_sdk::signer::Signer;
use solana_sdk::transaction::{Transaction, TransactionError};
use solana_transaction_status_client_types::{
    UiInstruction, UiTransactionEncoding, option_serializer::OptionSerializer,
};

use crate::errors::{ProgramError, program_error};
use crate::events::{GpunetEvent, decode_event};
use crate::pda;

/// SPL Token program id.
const TOKEN_PROGRAM: Pubkey = crate::ix::TOKEN_PROGRAM_ID;

/// Byte offsets used by the listing filters (after the 8-byte discriminator).
mod offsets {
    /// `Provider::status`.
    pub const PROVIDER_STATUS: usize = 40;
    /// `Provider::region`.
    pub const PROVIDER_REGION: usize = 41;
    /// `Provider::gpu.class`.
    pub const PROVIDER_CLASS: usize = 73;
    /// `Lease::user`.
    pub const LEASE_USER: usize = 8;
    /// `Lease::provider`.
    pub const LEASE_PROVIDER: usize = 40;
    /// `Lease::keeper`.
    pub const LEASE_KEEPER: usize = 72;
}

/// What went wrong talking to gpunet.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The gpunet program refused the transaction with one of its own errors.
    #[error("gpunet refused instruction {instruction}: {error}")]
    Program {
        /// Index of the failing instruction in the transaction.
        instruction: u8,
        /// The program's error name and message.
        error: ProgramError,
    },
    /// Anchor's framework refused an account (a constraint, a missing signature…).
    #[error("gpunet refused instruction {instruction}: Anchor error {code} ({name})")]
    Anchor {
        instruction: u8,
        code: u32,
        name: &'static str,
    },
    /// The SPL Token program refused a transfer.
    #[error("the token program refused instruction {instruction}: {message}")]
    Token {
        instruction: u8,
        code: u32,
        message: &'static str,
    },
    /// The transaction failed for another reason (fees, signatures, runtime).
    #[error("transaction failed: {0}")]
    Transaction(TransactionError),
    /// The account does not exist.
    #[error("no {kind} account at {address}")]
    NotFound { kind: &'static str, address: Pubkey },
    /// The account exists but is not what was asked for.
    #[error("account {address} is not a valid {kind}: {reason}")]
    Decode {
        kind: &'static str,
        address: Pubkey,
        reason: String,
    },
    /// The pubsub websocket failed or closed.
    #[error("pubsub: {0}")]
    Pubsub(String),
    /// The node could not be reached or answered with an RPC error.
    #[error("RPC: {0}")]
    Rpc(Box<ClientError>),
    /// A transaction was sent but not seen confirmed in time.
    #[error("transaction {0} not confirmed in time")]
    NotConfirmed(Signature),
    /// A co-signed transaction could not be assembled (`cosign`).
    #[error("co-signed transaction: {0}")]
    Cosign(String),
}

impl From<ClientError> for SdkError {
    fn from(e: ClientError) -> Self {
        SdkError::Rpc(Box::new(e))
    }
}

/// Names of the Anchor framework errors a client meets in practice.
fn anchor_error_name(code: u32) -> &'static str {
    match code {
        100 => "InstructionMissing",
        101 => "InstructionFallbackNotFound",
        102 => "InstructionDidNotDeserialize",
        2000 => "ConstraintMut",
        2001 => "ConstraintHasOne",
        2003 => "ConstraintRaw",
        2006 => "ConstraintSeeds",
        2012 => "ConstraintAddress",
        2040 => "ConstraintDuplicateMutableAccount",
        3001 => "AccountDiscriminatorNotFound",
        3002 => "AccountDiscriminatorMismatch",
        3003 => "AccountDidNotDeserialize",
        3005 => "AccountNotEnoughKeys",
        3007 => "AccountOwnedByWrongProgram",
        3008 => "InvalidProgramId",
        3010 => "AccountNotSigner",
        3012 => "AccountNotInitialized",
        _ => "unknown framework error",
    }
}

/// SPL Token's error messages by code.
fn token_error_message(code: u32) -> &'static str {
    match code {
        0 => "lamport balance below rent-exempt threshold",
        1 => "insufficient funds",
        3 => "account not associated with this mint",
        4 => "owner does not match",
        17 => "account is frozen",
        _ => "token program error",
    }
}

/// Where a list of providers should come from.
#[derive(Debug, Clone, Default)]
pub struct ProviderFilter {
    /// Only this region (exact, as registered).
    pub region: Option<String>,
    /// Only this GPU class.
    pub class: Option<GpuClass>,
    /// Only providers with at least this many free GPUs.
    pub min_free_gpus: Option<u16>,
    /// Only providers that are `Active` (not unbonding or jailed).
    pub active_only: bool,
}

/// Which leases to list.
#[derive(Debug, Clone, Copy)]
pub enum LeaseFilter {
    /// Every lease.
    All,
    /// Leases of this user wallet.
    User(Pubkey),
    /// Leases on this provider account.
    Provider(Pubkey),
    /// Leases assigned to this keeper account.
    Keeper(Pubkey),
}

/// The gpunet client.
pub struct GpunetClient {
    rpc: RpcClient,
}

impl GpunetClient {
    /// A client for the JSON-RPC endpoint at `url`, reading and confirming at `confirmed`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            rpc: RpcClient::new_with_commitment(url.into(), CommitmentConfig::confirmed()),
        }
    }

    /// The underlying solana-rpc-client, for everything gpunet-agnostic.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// Fetches and decodes the Anchor account `T` at `address`.
    pub async fn fetch<T: AccountDeserialize + Discriminator>(
        &self,
        kind: &'static str,
        address: &Pubkey,
    ) -> Result<T, SdkError> {
        let account = self
            .rpc
            .get_account_with_commitment(address, self.rpc.commitment())
            .await?
            .value
            .ok_or(SdkError::NotFound {
                kind,
                address: *address,
            })?;
        if account.owner != gpunet::ID {
            return Err(SdkError::Decode {
                kind,
                address: *address,
                reason: format!("owned by {}, not gpunet", account.owner),
            });
        }
        T::try_deserialize(&mut account.data.as_slice()).map_err(|e| SdkError::Decode {
            kind,
            address: *address,
            reason: e.to_string(),
        })
    }

    /// The config.
    pub async fn config(&self) -> Result<Config, SdkError> {
        self.fetch("config", &pda::config()).await
    }

    /// The keeper account of a keeper wallet.
    pub async fn keeper(&self, authority: &Pubkey) -> Result<Keeper, SdkError> {
        self.fetch("keeper", &pda::keeper(authority)).await
    }

    /// The provider account of a provider wallet.
    pub async fn provider(&self, authority: &Pubkey) -> Result<Provider, SdkError> {
        self.fetch("provider", &pda::provider(authority)).await
    }

    /// The lease at `address`.
    pub async fn lease(&self, address: &Pubkey) -> Result<Lease, SdkError> {
        self.fetch("lease", address).await
    }

    /// Token balance of a token account (0 when it does not exist).
    pub async fn token_balance(&self, token_account: &Pubkey) -> Result<u64, SdkError> {
        let account = self
            .rpc
            .get_account_with_commitment(token_account, self.rpc.commitment())
            .await?
            .value;
        Ok(match account {
            Some(a) if a.owner == TOKEN_PROGRAM && a.data.len() >= 72 => {
                u64::from_le_bytes(a.data[64..72].try_into().unwrap_or([0; 8]))
            }
            _ => 0,
        })
    }

    async fn list<T: AccountDeserialize + Discriminator>(
        &self,
        mut filters: Vec<RpcFilterType>,
    ) -> Result<Vec<(Pubkey, T)>, SdkError> {
        filters.insert(
            0,
            RpcFilterType::Memcmp(Memcmp::new_base58_encoded(0, T::DISCRIMINATOR)),
        );
        let config = RpcProgramAccountsConfig {
            filters: Some(filters),
            account_config: RpcAccountInfoConfig {
                encoding: Some(UiAccountEncoding::Base64),
                commitment: Some(self.rpc.commitment()),
                ..RpcAccountInfoConfig::default()
            },
            ..RpcProgramAccountsConfig::default()
        };
        let accounts = self
            .rpc
            .get_program_ui_accounts_with_config(&gpunet::ID, config)
            .await?;
        let mut out = Vec::with_capacity(accounts.len());
        for (address, ui) in accounts {
            let Some(data) = ui.data.decode() else {
                continue;
            };
            if let Ok(value) = T::try_deserialize(&mut data.as_slice()) {
                out.push((address, value));
            }
        }
        Ok(out)
    }

    /// Every keeper.
    pub async fn keepers(&self) -> Result<Vec<(Pubkey, Keeper)>, SdkError> {
        self.list(vec![]).await
    }

    /// Providers matching `filter`: region, class and status are filtered by the node
    /// (`memcmp`); free capacity, which no single field holds, here.
    pub async fn providers(
        &self,
        filter: &ProviderFilter,
    ) -> Result<Vec<(Pubkey, Provider)>, SdkError> {
        let mut filters = Vec::new();
        if let Some(region) = &filter.region {
            let encoded = gpunet::state::encode_location(region).map_err(|_| SdkError::Decode {
                kind: "region",
                address: Pubkey::default(),
                reason: format!("{region:?} is not 1-16 printable ASCII characters"),
            })?;
            filters.push(RpcFilterType::Memcmp(Memcmp::new_base58_encoded(
                offsets::PROVIDER_REGION,
                &encoded,
            )));
        }
        if let Some(class) = filter.class {
            filters.push(RpcFilterType::Memcmp(Memcmp::new_base58_encoded(
                offsets::PROVIDER_CLASS,
                &[class as u8],
            )));
        }
        if filter.active_only {
            filters.push(RpcFilterType::Memcmp(Memcmp::new_base58_encoded(
                offsets::PROVIDER_STATUS,
                &[gpunet::state::ProviderStatus::Active as u8],
            )));
        }
        let mut list: Vec<(Pubkey, Provider)> = self.list(filters).await?;
        if let Some(min) = filter.min_free_gpus {
            list.retain(|(_, p)| p.gpu.count.saturating_sub(p.gpus_leased) >= min);
        }
        Ok(list)
    }

    /// Leases matching `filter`, filtered by the node.
    pub async fn leases(&self, filter: LeaseFilter) -> Result<Vec<(Pubkey, Lease)>, SdkError> {
        let by = |offset: usize, key: Pubkey| {
            vec![RpcFilterType::Memcmp(Memcmp::new_base58_encoded(
                offset,
                key.as_ref(),
            ))]
        };
        let filters = match filter {
            LeaseFilter::All => vec![],
            LeaseFilter::User(k) => by(offsets::LEASE_USER, k),
            LeaseFilter::Provider(k) => by(offsets::LEASE_PROVIDER, k),
            LeaseFilter::Keeper(k) => by(offsets::LEASE_KEEPER, k),
        };
        self.list(filters).await
    }

    /// Signs `instructions` with `payer` (fee payer) and `signers`, sends them and waits for
    /// confirmation. A refusal comes back as the program's (or token program's) named error.
    /// Signers are `Sync` so that the future is `Send` (daemons send from spawned tasks).
    pub async fn send(
        &self,
        instructions: &[Instruction],
        payer: &(dyn Signer + Sync),
        signers: &[&(dyn Signer + Sync)],
    ) -> Result<Signature, SdkError> {
        let blockhash = self.rpc.get_latest_blockhash().await?;
        let tx = {
            let mut all: Vec<&dyn Signer> = vec![payer];
            for s in signers {
                if s.pubkey() != payer.pubkey() {
                    all.push(*s);
                }
            }
            Transaction::new_signed_with_payer(instructions, Some(&payer.pubkey()), &all, blockhash)
        };
        self.send_transaction(&tx, instructions).await
    }

    /// Sends a signed transaction of `instructions` and waits for confirmation; a refusal
    /// comes back as the program's (or token program's) named error.
    pub async fn send_transaction(
        &self,
        tx: &Transaction,
        instructions: &[Instruction],
    ) -> Result<Signature, SdkError> {
        self.rpc
            .send_and_confirm_transaction(tx)
            .await
            .map_err(|e| map_error(e, instructions))
    }

    /// Draws a pending lease's verification committee (`lease_draw_committee`), waiting for
    /// the slot after its open when needed; `payer` is any fee payer. Returns the signature.
    pub async fn draw_committee(
        &self,
        payer: &(dyn Signer + Sync),
        lease: &Pubkey,
    ) -> Result<Signature, SdkError> {
        let mut last_error = String::new();
        for _ in 0..60 {
            let l = self.lease(lease).await?;
            let config = self.config().await?;
            let slot_hashes = self
                .rpc
                .get_account(&gpunet::committee::SLOT_HASHES_ID)
                .await?
                .data;
            let keepers = self.keepers().await?;
            match crate::committee::expected(lease, &l, &config, &slot_hashes, &keepers) {
                Ok(members) => {
                    let ix = crate::ix::lease_draw_committee(lease, &members);
                    match self.send(&[ix], payer, &[]).await {
                        Err(SdkError::Program { error, .. }) if error.name == "DrawTooEarly" => {
                            last_error = error.to_string();
                        }
                        other => return other,
                    }
                }
                Err(e) if e.contains("DrawTooEarly") => last_error = e,
                Err(e) => {
                    return Err(SdkError::Decode {
                        kind: "committee draw",
                        address: *lease,
                        reason: e,
                    });
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Err(SdkError::Decode {
            kind: "committee draw",
            address: *lease,
            reason: format!("no slot after the lease's open in 12 s: {last_error}"),
        })
    }

    /// Asks the node's faucet (`requestAirdrop`: localnet, devnet) for `lamports` to `to` and
    /// waits until the airdrop is confirmed (at most 10 s).
    pub async fn airdrop(&self, to: &Pubkey, lamports: u64) -> Result<Signature, SdkError> {
        let sig = self.rpc.request_airdrop(to, lamports).await?;
        for _ in 0..200 {
            if self.rpc.confirm_transaction(&sig).await.unwrap_or(false) {
                return Ok(sig);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err(SdkError::NotConfirmed(sig))
    }

    /// The gpunet events a confirmed transaction emitted, in order.
    pub async fn events(&self, signature: &Signature) -> Result<Vec<GpunetEvent>, SdkError> {
        let tx = self
            .rpc
            .get_transaction_with_config(
                signature,
                RpcTransactionConfig {
                    encoding: Some(UiTransactionEncoding::Base64),
                    commitment: Some(self.rpc.commitment()),
                    max_supported_transaction_version: Some(0),
                },
            )
            .await?;
        let keys: Vec<Pubkey> = tx
            .transaction
            .transaction
            .decode()
            .map(|t| t.message.static_account_keys().to_vec())
            .unwrap_or_default();
        let Some(meta) = tx.transaction.meta else {
            return Ok(vec![]);
        };
        let OptionSerializer::Some(inner) = meta.inner_instructions else {
            return Ok(vec![]);
        };
        let mut events = Vec::new();
        for group in inner {
            for ix in group.instructions {
                let UiInstruction::Compiled(c) = ix else {
                    continue;
                };
                if keys.get(usize::from(c.program_id_index)) != Some(&gpunet::ID) {
                    continue;
                }
                let Ok(data) = bs58::decode(&c.data).into_vec() else {
                    continue;
                };
                if let Some(event) = decode_event(&data) {
                    events.push(event);
                }
            }
        }
        Ok(events)
    }

    /// The chain's clock (`unix_timestamp`), read from the Clock sysvar.
    pub async fn chain_time(&self) -> Result<i64, SdkError> {
        let clock = solana_sdk::sysvar::clock::ID;
        let account = self.rpc.get_account(&clock).await?;
        let bytes = account.data.get(32..40).ok_or(SdkError::Decode {
            kind: "clock",
            address: clock,
            reason: "short sysvar".into(),
        })?;
        Ok(i64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])))
    }

    /// The most recent entry of the SlotHashes sysvar (a slot and its bank hash) and the
    /// current epoch (Clock sysvar): what a keeper binds a benchmark challenge to.
    pub async fn recent_slot_hash(&self) -> Result<(u64, [u8; 32], u64), SdkError> {
        let ids = [
            gpunet::committee::SLOT_HASHES_ID,
            solana_sdk::sysvar::clock::ID,
        ];
        let accounts = self
            .rpc
            .get_multiple_accounts_with_commitment(&ids, self.rpc.commitment())
            .await?
            .value;
        let short = |address: Pubkey| SdkError::Decode {
            kind: "sysvar",
            address,
            reason: "missing or short".into(),
        };
        let hashes = accounts[0]
            .as_ref()
            .map(|a| a.data.as_slice())
            .unwrap_or(&[]);
        let clock = accounts[1]
            .as_ref()
            .map(|a| a.data.as_slice())
            .unwrap_or(&[]);
        // SlotHashes: u64 count, then (slot u64, hash [u8; 32]) entries, newest first.
        let (Some(slot), Some(hash), Some(epoch)) =
            (hashes.get(8..16), hashes.get(16..48), clock.get(16..24))
        else {
            return Err(short(if hashes.len() < 48 { ids[0] } else { ids[1] }));
        };
        Ok((
            u64::from_le_bytes(slot.try_into().unwrap_or([0; 8])),
            hash.try_into().unwrap_or([0; 32]),
            u64::from_le_bytes(epoch.try_into().unwrap_or([0; 8])),
        ))
    }

    /// Localnet only: moves the chain's clock to `unix_timestamp` (seconds) with surfpool's
    /// `surfnet_timeTravel` cheat code, so a 14-day unbonding can be tested in a second.
    pub async fn time_travel_to(&self, unix_timestamp: i64) -> Result<(), SdkError> {
        let params =
            serde_json::json!([{ "absoluteTimestamp": unix_timestamp.saturating_mul(1000) }]);
        self.rpc
            .send::<serde_json::Value>(
                RpcRequest::Custom {
                    method: "surfnet_timeTravel",
                },
                params,
            )
            .await?;
        Ok(())
    }

    /// Localnet only: moves the chain's clock `seconds` forward.
    pub async fn time_travel_by(&self, seconds: i64) -> Result<(), SdkError> {
        let now = self.chain_time().await?;
        self.time_travel_to(now.saturating_add(seconds)).await
    }
}

/// Turns a failed send into the named error of the program that refused it.
fn map_error(e: ClientError, instructions: &[Instruction]) -> SdkError {
    let tx_err = match e.kind() {
        ErrorKind::TransactionError(t) => Some(t.clone()),
        ErrorKind::RpcError(RpcError::RpcResponseError {
            data: RpcResponseErrorData::SendTransactionPreflightFailure(sim),
            ..
        }) => sim.err.clone().map(Into::into),
        _ => None,
    };
    let Some(tx_err) = tx_err else {
        return SdkError::from(e);
    };
    if let TransactionError::InstructionError(index, InstructionError::Custom(code)) = &tx_err {
        let program = instructions
            .get(usize::from(*index))
            .map(|ix| ix.program_id);
        match program {
            // A gpunet instruction whose CPI into SPL Token failed reports the token's code
            // (SPL Token's codes are below Anchor's, which start at 100).
            Some(p) if p == gpunet::ID && *code < 100 => {
                return SdkError::Token {
                    instruction: *index,
                    code: *code,
                    message: token_error_message(*code),
                };
            }
            Some(p) if p == gpunet::ID => {
                if let Some(error) = program_error(*code) {
                    return SdkError::Program {
                        instruction: *index,
                        error,
                    };
                }
                return SdkError::Anchor {
                    instruction: *index,
                    code: *code,
                    name: anchor_error_name(*code),
                };
            }
            Some(p) if p == TOKEN_PROGRAM => {
                return SdkError::Token {
                    instruction: *index,
                    code: *code,
                    message: token_error_message(*code),
                };
            }
            _ => {}
        }
    }
    SdkError::Transaction(tx_err)
}
