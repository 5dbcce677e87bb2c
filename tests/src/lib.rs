//! Test harness: the gpunet program runs natively under solana-program-test beside the real
//! SPL Token program. One [`Fixture`] per test: no shared state, no order dependence.

// solana-program-test 3.1 marks its whole API as "unstable" (deprecated) ahead of agave 4;
// it is still the supported native harness for our pinned 3.x stack.
#![allow(deprecated)]

use anchor_lang::AccountDeserialize;
use anchor_lang::prelude::Pubkey;
use gpunet::error::GpunetError;
use gpunet::state::{ConfigParams, GPU_CLASS_COUNT, GpuClass, GpuOffer};
use gpunet_sdk::{ix, pda};
use solana_program_test::{BanksClientError, ProgramTest, ProgramTestContext, processor};
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};

/// Decimals of the test mint.
pub const DECIMALS: u8 = 6;
/// One whole token in base units.
pub const TOKEN: u64 = 1_000_000;
/// SPL token account size.
const TOKEN_ACCOUNT_LEN: usize = 165;
/// SPL mint size.
const MINT_LEN: usize = 82;
/// Compute budget program (used only to make otherwise identical transactions distinct).
const COMPUTE_BUDGET_ID: Pubkey =
    anchor_lang::pubkey!("ComputeBudget111111111111111111111111111111");

/// Parameters every fixture starts with; tests change what they need.
pub fn default_params() -> ConfigParams {
    let mut min_stake_per_gpu = [0u64; GPU_CLASS_COUNT];
    for (i, class) in GpuClass::ALL.iter().enumerate() {
        min_stake_per_gpu[i] = match class {
            GpuClass::H200 | GpuClass::H100 => 1_000 * TOKEN,
            _ => 100 * TOKEN,
        };
    }
    ConfigParams {
        protocol_fee_bps: 500,
        keeper_fee_bps: 200,
        min_stake_per_gpu,
        keeper_bond: 5_000 * TOKEN,
        unbonding_period: 14 * 24 * 3600,
        checkpoint_interval: 300,
        grace_period: 3600,
        slash_fraction_bps: 5_000,
        slash_treasury_bps: 1_000,
        slash_quorum: 2,
        max_keepers: 16,
        committee_size: 3,
        slash_compensation_bps: 10_000,
        keeper_slash_fraction_bps: 5_000,
        jail_period: 7 * 24 * 3600,
        // Tests change parameters at once; the delay has tests of its own.
        param_change_delay: 0,
    }
}

/// The endpoint test keepers publish.
pub const KEEPER_ENDPOINT: &str = "grpc://keeper.example:7100";

/// A GPU offer of `count` H100s at 10 base units per GPU-second.
pub fn h100s(count: u16) -> GpuOffer {
    GpuOffer {
        class: GpuClass::H100,
        count,
        vram_gib: 80,
        price_per_gpu_second: 10,
    }
}

/// Registration arguments for a provider in eu-west/a with `count` H100s and one worker.
pub fn provider_args(count: u16) -> gpunet::instructions::ProviderRegisterArgs {
    gpunet::instructions::ProviderRegisterArgs {
        region: "eu-west".into(),
        zone: "a".into(),
        endpoint: "https://gpu.example:7443".into(),
        gpu: h100s(count),
        workers: vec![Keypair::new().pubkey()],
    }
}

/// A wallet with SOL for fees and rent and a token account of the fixture's mint.
pub struct Wallet {
    pub keypair: Keypair,
    pub token: Pubkey,
}

impl Wallet {
    pub fn pubkey(&self) -> Pubkey {
        self.keypair.pubkey()
    }

    /// A second handle on the same wallet (tests hold several while the fixture is borrowed).
    pub fn insecure_clone(&self) -> Wallet {
        Wallet {
            keypair: self.keypair.insecure_clone(),
            token: self.token,
        }
    }
}

/// One running program-test bank with the gpunet program, a mint and (usually) a config.
pub struct Fixture {
    pub ctx: ProgramTestContext,
    pub admin: Keypair,
    pub mint_authority: Keypair,
    pub mint: Pubkey,
    pub treasury: Pubkey,
    /// Wallets of the keepers registered through [`Fixture::keeper_wallet`].
    pub keepers: Vec<Pubkey>,
    uniq: u32,
}

impl Fixture {
    /// A bank with the program, a mint and a treasury, but no config yet.
    pub async fn bare() -> Self {
        let mut pt = ProgramTest::new(
            "gpunet",
            gpunet::ID,
            processor!(gpunet::native::process_instruction),
        );
        pt.prefer_bpf(false);
        let ctx = pt.start_with_context().await;
        let mut f = Fixture {
            ctx,
            admin: Keypair::new(),
            mint_authority: Keypair::new(),
            mint: Pubkey::default(),
            treasury: Pubkey::default(),
            keepers: Vec::new(),
            uniq: 0,
        };
        let admin = f.admin.pubkey();
        f.airdrop(&admin, 10_000_000_000).await;
        let mint_authority = f.mint_authority.pubkey();
        f.mint = f.create_mint(&mint_authority).await;
        f.treasury = pda::treasury();
        f
    }

    /// A bank with the config initialised with [`default_params`].
    pub async fn new() -> Self {
        Self::with_params(default_params()).await
    }

    /// A bank with the config initialised with `params`.
    pub async fn with_params(params: ConfigParams) -> Self {
        let mut f = Self::bare().await;
        let ix = ix::config_init(&f.admin.pubkey(), &f.mint, None, params, false);
        let admin = f.admin.insecure_clone();
        f.send(&[ix], &[&admin]).await.expect("config_init");
        f
    }

    /// Sends one transaction paid by the context payer and signed by `signers` too.
    pub async fn send(
        &mut self,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> Result<(), BanksClientError> {
        // A distinct compute-unit limit makes every transaction unique, so that repeating the
        // same instruction (a replay test) is not swallowed as "already processed".
        self.uniq += 1;
        let mut data = vec![2u8];
        data.extend_from_slice(&(1_400_000 - self.uniq).to_le_bytes());
        let mut all = vec![Instruction {
            program_id: COMPUTE_BUDGET_ID,
            accounts: vec![],
            data,
        }];
        all.extend_from_slice(ixs);
        let payer = self.ctx.payer.insecure_clone();
        let mut keys: Vec<&Keypair> = vec![&payer];
        keys.extend_from_slice(signers);
        let blockhash = self.ctx.banks_client.get_latest_blockhash().await?;
        let tx = Transaction::new_signed_with_payer(&all, Some(&payer.pubkey()), &keys, blockhash);
        self.ctx.banks_client.process_transaction(tx).await
    }

    /// Gives `to` lamports from the payer.
    pub async fn airdrop(&mut self, to: &Pubkey, lamports: u64) {
        let ix =
            solana_system_interface::instruction::transfer(&self.ctx.payer.pubkey(), to, lamports);
        self.send(&[ix], &[]).await.expect("airdrop");
    }

    /// Creates a classic SPL mint with `DECIMALS`.
    pub async fn create_mint(&mut self, authority: &Pubkey) -> Pubkey {
        let mint = Keypair::new();
        let rent = self.rent(MINT_LEN).await;
        let ixs = [
            solana_system_interface::instruction::create_account(
                &self.ctx.payer.pubkey(),
                &mint.pubkey(),
                rent,
                MINT_LEN as u64,
                &spl_token_interface::ID,
            ),
            spl_token_interface::instruction::initialize_mint2(
                &spl_token_interface::ID,
                &mint.pubkey(),
                authority,
                None,
                DECIMALS,
            )
            .expect("initialize_mint2"),
        ];
        self.send(&ixs, &[&mint]).await.expect("create mint");
        mint.pubkey()
    }

    /// Creates a token account of `mint` owned by `owner`.
    pub async fn token_account(&mut self, owner: &Pubkey, mint: &Pubkey) -> Pubkey {
        let account = Keypair::new();
        let rent = self.rent(TOKEN_ACCOUNT_LEN).await;
        let ixs = [
            solana_system_interface::instruction::create_account(
                &self.ctx.payer.pubkey(),
                &account.pubkey(),
                rent,
                TOKEN_ACCOUNT_LEN as u64,
                &spl_token_interface::ID,
            ),
            spl_token_interface::instruction::initialize_account3(
                &spl_token_interface::ID,
                &account.pubkey(),
                mint,
                owner,
            )
            .expect("initialize_account3"),
        ];
        self.send(&ixs, &[&account])
            .await
            .expect("create token account");
        account.pubkey()
    }

    /// Mints `amount` of the fixture mint to `to`.
    pub async fn mint_to(&mut self, to: &Pubkey, amount: u64) {
        let ix = spl_token_interface::instruction::mint_to(
            &spl_token_interface::ID,
            &self.mint,
            to,
            &self.mint_authority.pubkey(),
            &[],
            amount,
        )
        .expect("mint_to");
        let auth = self.mint_authority.insecure_clone();
        self.send(&[ix], &[&auth]).await.expect("mint_to");
    }

    /// A new wallet with 10 SOL and `tokens` base units in a fresh token account.
    pub async fn wallet(&mut self, tokens: u64) -> Wallet {
        let keypair = Keypair::new();
        self.airdrop(&keypair.pubkey(), 10_000_000_000).await;
        let mint = self.mint;
        let token = self.token_account(&keypair.pubkey(), &mint).await;
        if tokens > 0 {
            self.mint_to(&token, tokens).await;
        }
        Wallet { keypair, token }
    }

    /// Rent-exempt minimum for `len` bytes.
    pub async fn rent(&mut self, len: usize) -> u64 {
        let rent = self.ctx.banks_client.get_rent().await.expect("rent");
        rent.minimum_balance(len)
    }

    /// The raw account at `address`, if any.
    pub async fn raw(&mut self, address: &Pubkey) -> Option<Account> {
        self.ctx
            .banks_client
            .get_account(*address)
            .await
            .expect("get_account")
    }

    /// Lamports at `address` (0 when the account does not exist).
    pub async fn lamports(&mut self, address: &Pubkey) -> u64 {
        self.raw(address).await.map(|a| a.lamports).unwrap_or(0)
    }

    /// Token balance of a token account (0 when it does not exist).
    pub async fn balance(&mut self, token_account: &Pubkey) -> u64 {
        match self.raw(token_account).await {
            Some(a) if a.data.len() >= 72 => {
                u64::from_le_bytes(a.data[64..72].try_into().expect("8 bytes"))
            }
            _ => 0,
        }
    }

    /// Total supply of the fixture mint.
    pub async fn supply(&mut self) -> u64 {
        let mint = self.mint;
        let a = self.raw(&mint).await.expect("mint exists");
        u64::from_le_bytes(a.data[36..44].try_into().expect("8 bytes"))
    }

    /// An Anchor account of type `T` at `address`; panics when absent.
    pub async fn account<T: AccountDeserialize>(&mut self, address: &Pubkey) -> T {
        let a = self.raw(address).await.expect("account exists");
        T::try_deserialize(&mut a.data.as_slice()).expect("deserialize")
    }

    /// The config account.
    pub async fn config(&mut self) -> gpunet::state::Config {
        self.account(&pda::config()).await
    }

    /// The provider account of `authority`.
    pub async fn provider(&mut self, authority: &Pubkey) -> gpunet::state::Provider {
        self.account(&pda::provider(authority)).await
    }

    /// The keeper account of `authority`.
    pub async fn keeper(&mut self, authority: &Pubkey) -> gpunet::state::Keeper {
        self.account(&pda::keeper(authority)).await
    }

    /// The bank's clock.
    pub async fn clock(&mut self) -> Clock {
        self.ctx
            .banks_client
            .get_sysvar::<Clock>()
            .await
            .expect("clock")
    }

    /// Moves the clock `seconds` forward.
    pub async fn warp(&mut self, seconds: i64) {
        let mut clock = self.clock().await;
        clock.unix_timestamp += seconds;
        self.ctx.set_sysvar(&clock);
    }

    /// Admin-signed `config_update`.
    pub async fn update_config(
        &mut self,
        args: gpunet::instructions::ConfigUpdateArgs,
    ) -> Result<(), BanksClientError> {
        let admin = self.admin.insecure_clone();
        let ix = ix::config_update(&admin.pubkey(), args);
        self.send(&[ix], &[&admin]).await
    }

    /// Pauses or unpauses the protocol.
    pub async fn set_paused(&mut self, paused: bool) {
        self.update_config(gpunet::instructions::ConfigUpdateArgs {
            paused: Some(paused),
            ..Default::default()
        })
        .await
        .expect("pause");
    }

    /// A registered, bonded keeper.
    pub async fn keeper_wallet(&mut self) -> Wallet {
        let bond = self.config().await.params.keeper_bond;
        let w = self.wallet(bond).await;
        let mint = self.mint;
        let ix = ix::keeper_register(&w.pubkey(), &w.token, &mint, KEEPER_ENDPOINT);
        self.send(&[ix], &[&w.keypair])
            .await
            .expect("keeper_register");
        self.keepers.push(w.pubkey());
        w
    }

    /// Opens a lease for `user` on the provider of `provider_authority` (the user pays the
    /// rent) and draws its committee from the next slots' hash: the lease is active.
    pub async fn open_lease(
        &mut self,
        user: &Wallet,
        provider_authority: &Pubkey,
        args: gpunet::instructions::LeaseOpenArgs,
    ) -> Result<ix::LeaseParties, BanksClientError> {
        let lease = self
            .open_pending_lease(user, provider_authority, args)
            .await?;
        self.advance_slots(2).await;
        self.draw_committee(&lease).await?;
        Ok(self.parties(&lease).await)
    }

    /// Opens a lease and leaves it pending (no committee yet). Returns its address.
    pub async fn open_pending_lease(
        &mut self,
        user: &Wallet,
        provider_authority: &Pubkey,
        args: gpunet::instructions::LeaseOpenArgs,
    ) -> Result<Pubkey, BanksClientError> {
        let provider = pda::provider(provider_authority);
        let lease = pda::lease(&user.pubkey(), args.nonce);
        let mint = self.mint;
        let ix = ix::lease_open(
            &user.pubkey(),
            &user.pubkey(),
            &user.token,
            &provider,
            &mint,
            args,
        );
        self.send(&[ix], &[&user.keypair]).await?;
        Ok(lease)
    }

    /// Moves the bank `n` slots forward (real slots: the SlotHashes sysvar gains the hashes of
    /// the slots left behind; the clock never goes back).
    pub async fn advance_slots(&mut self, n: u64) {
        for _ in 0..n {
            let slot = self.clock().await.slot;
            self.ctx.warp_to_slot(slot + 1).expect("warp_to_slot");
        }
    }

    /// Every keeper account registered through this fixture that still exists.
    pub async fn keeper_accounts(&mut self) -> Vec<(Pubkey, gpunet::state::Keeper)> {
        let mut out = Vec::new();
        for authority in self.keepers.clone() {
            let address = pda::keeper(&authority);
            if self.raw(&address).await.is_some() {
                out.push((address, self.keeper(&authority).await));
            }
        }
        out
    }

    /// The committee `lease_draw_committee` expects for `lease` now, as the SDK computes it.
    pub async fn expected_committee(&mut self, lease: &Pubkey) -> Result<Vec<Pubkey>, String> {
        let l = self.lease(lease).await;
        let config = self.config().await;
        let slot_hashes = self
            .raw(&gpunet::committee::SLOT_HASHES_ID)
            .await
            .map(|a| a.data)
            .unwrap_or_default();
        let keepers = self.keeper_accounts().await;
        gpunet_sdk::committee::expected(lease, &l, &config, &slot_hashes, &keepers)
    }

    /// Draws `lease`'s committee with the keeper accounts the SDK computes. When the SDK
    /// cannot compute them (too early), sends an empty list so that the program names the
    /// error.
    pub async fn draw_committee(&mut self, lease: &Pubkey) -> Result<(), BanksClientError> {
        let members = self.expected_committee(lease).await.unwrap_or_default();
        let ix = ix::lease_draw_committee(lease, &members);
        self.send(&[ix], &[]).await
    }

    /// Replaces the SlotHashes sysvar with one entry after the current slot carrying `hash`
    /// (and one at the current slot), so that a test can choose what a draw sees.
    pub async fn set_slot_hash(&mut self, hash: [u8; 32]) {
        let slot = self.clock().await.slot;
        let hashes = solana_sdk::slot_hashes::SlotHashes::new(&[
            (slot + 1, solana_sdk::hash::Hash::new_from_array(hash)),
            (slot, solana_sdk::hash::Hash::default()),
        ]);
        self.ctx.set_sysvar(&hashes);
    }

    /// The accounts around an existing lease.
    pub async fn parties(&mut self, lease: &Pubkey) -> ix::LeaseParties {
        let l = self.lease(lease).await;
        ix::LeaseParties {
            lease: *lease,
            provider: l.provider,
            keeper: l.keeper,
            mint: self.mint,
            treasury: self.treasury,
        }
    }

    /// The lease account at `address`.
    pub async fn lease(&mut self, address: &Pubkey) -> gpunet::state::Lease {
        self.account(address).await
    }

    /// Rewrites an Anchor account in place (for states no instruction can reach yet).
    pub async fn rewrite<T: AccountDeserialize + anchor_lang::AccountSerialize>(
        &mut self,
        address: &Pubkey,
        edit: impl FnOnce(&mut T),
    ) {
        let raw = self.raw(address).await.expect("account exists");
        let mut value: T = self.account(address).await;
        edit(&mut value);
        let mut data = Vec::with_capacity(raw.data.len());
        value.try_serialize(&mut data).expect("serialize");
        data.resize(raw.data.len(), 0);
        let mut acct = solana_sdk::account::AccountSharedData::from(raw);
        solana_sdk::account::WritableAccount::data_as_mut_slice(&mut acct).copy_from_slice(&data);
        self.ctx.set_account(address, &acct);
    }

    /// A registered provider offering `gpus` H100s, with `stake` staked and `spare` more tokens
    /// left in its wallet.
    pub async fn provider_wallet(&mut self, gpus: u16, stake: u64, spare: u64) -> Wallet {
        let w = self.wallet(stake + spare).await;
        let mint = self.mint;
        let ix = ix::provider_register(&w.pubkey(), &mint, provider_args(gpus));
        self.send(&[ix], &[&w.keypair])
            .await
            .expect("provider_register");
        if stake > 0 {
            let ix = ix::provider_stake(&w.pubkey(), &w.token, &mint, stake);
            self.send(&[ix], &[&w.keypair])
                .await
                .expect("provider_stake");
        }
        w
    }
}

/// The custom error code of a failed transaction, if it failed with one.
pub fn custom_code(err: &BanksClientError) -> Option<u32> {
    let tx_err = match err {
        BanksClientError::TransactionError(e) => e,
        BanksClientError::SimulationError { err, .. } => err,
        _ => return None,
    };
    match tx_err {
        TransactionError::InstructionError(_, InstructionError::Custom(code)) => Some(*code),
        _ => None,
    }
}

/// Asserts that `res` failed with the gpunet error `expected`.
#[track_caller]
pub fn assert_gpunet_err(res: Result<(), BanksClientError>, expected: GpunetError) {
    let code = u32::from(expected);
    match res {
        Ok(()) => panic!(
            "expected {} ({code}), but the transaction succeeded",
            expected.name()
        ),
        Err(e) => assert_eq!(
            custom_code(&e),
            Some(code),
            "expected {} ({code}), got {e:?}",
            expected.name()
        ),
    }
}

/// Asserts that `res` failed with Anchor's framework error `expected`.
#[track_caller]
pub fn assert_anchor_err(
    res: Result<(), BanksClientError>,
    expected: anchor_lang::error::ErrorCode,
) {
    let code = expected as u32;
    match res {
        Ok(()) => panic!("expected {expected:?} ({code}), but the transaction succeeded"),
        Err(e) => assert_eq!(
            custom_code(&e),
            Some(code),
            "expected {expected:?} ({code}), got {e:?}"
        ),
    }
}

/// Asserts that `res` failed with the given runtime instruction error (not a custom code).
#[track_caller]
pub fn assert_instruction_err(res: Result<(), BanksClientError>, expected: InstructionError) {
    match res {
        Ok(()) => panic!("expected {expected:?}, but the transaction succeeded"),
        Err(BanksClientError::TransactionError(TransactionError::InstructionError(_, e)))
        | Err(BanksClientError::SimulationError {
            err: TransactionError::InstructionError(_, e),
            ..
        }) => assert_eq!(e, expected),
        Err(e) => panic!("expected {expected:?}, got {e:?}"),
    }
}
