//! One localnet per test, bootstrapped like `migrations/`: a mint, the config, funded wallets.

use gpunet_localnet::{Localnet, LocalnetConfig};
use gpunet_sdk::setup;
use gpunet_sdk::{GpunetClient, token};
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

pub const DECIMALS: u8 = 6;
pub const TOKEN: u64 = 1_000_000;

/// A running localnet with gpunet initialised.
pub struct Net {
    pub net: Localnet,
    pub client: GpunetClient,
    pub admin: Keypair,
    pub mint: Pubkey,
    pub treasury: Pubkey,
}

impl Net {
    pub async fn start() -> Net {
        Self::start_with(LocalnetConfig::ephemeral()).await
    }

    pub async fn start_with(config: LocalnetConfig) -> Net {
        let net = tokio::task::spawn_blocking(move || Localnet::start(config))
            .await
            .expect("join")
            .expect("localnet starts");
        let client = GpunetClient::new(net.rpc_url());
        let admin = Keypair::new();
        airdrop(&client, &admin.pubkey(), 100).await;
        let mint = setup::create_mint(&client, &admin, &admin.pubkey(), DECIMALS)
            .await
            .expect("mint");
        let treasury = setup::init_config(
            &client,
            &admin,
            &mint,
            setup::default_params(DECIMALS),
            false,
        )
        .await
        .expect("config_init");
        Net {
            net,
            client,
            admin,
            mint,
            treasury,
        }
    }

    /// A wallet with 10 SOL and `tokens` base units in its associated token account.
    pub async fn wallet(&self, tokens: u64) -> (Keypair, Pubkey) {
        let w = Keypair::new();
        airdrop(&self.client, &w.pubkey(), 10).await;
        setup::mint_to_wallet(
            &self.client,
            &self.admin,
            &self.admin,
            &self.mint,
            &w.pubkey(),
            tokens,
        )
        .await
        .expect("mint_to");
        let ata = token::ata(&w.pubkey(), &self.mint);
        (w, ata)
    }

    pub async fn balance(&self, account: &Pubkey) -> u64 {
        self.client.token_balance(account).await.expect("balance")
    }
}

/// Airdrops `sol` SOL through the node's `requestAirdrop` and waits for it.
pub async fn airdrop(client: &GpunetClient, to: &Pubkey, sol: u64) {
    let sig = client
        .rpc()
        .request_airdrop(to, sol * LAMPORTS_PER_SOL)
        .await
        .expect("airdrop");
    for _ in 0..100 {
        if client
            .rpc()
            .confirm_transaction(&sig)
            .await
            .unwrap_or(false)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("airdrop to {to} not confirmed");
}
