//! Stake as a provider: register 4 H100s in eu-west and stake the minimum.
//!
//! Against a running `gpunet localnet` (which made `~/.config/solana/id.json` its admin and
//! gave it tokens):
//!
//! ```sh
//! cargo run -p gpunet-sdk --example provider_stake -- http://127.0.0.1:8899 ~/.config/solana/id.json
//! ```

use gpunet_sdk::gpunet::instructions::ProviderRegisterArgs;
use gpunet_sdk::{GpuClass, GpuOffer, GpunetClient, ix, token};
use solana_sdk::signature::{Signer, read_keypair_file};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8899".into());
    let keypair = args.next().ok_or("usage: provider_stake URL KEYPAIR")?;
    let wallet = read_keypair_file(&keypair)?;
    let client = GpunetClient::new(url);

    let config = client.config().await?;
    let gpu = GpuOffer {
        class: GpuClass::H100,
        count: 4,
        vram_gib: 80,
        price_per_gpu_second: 10,
    };
    let register = ix::provider_register(
        &wallet.pubkey(),
        &config.mint,
        ProviderRegisterArgs {
            region: "eu-west".into(),
            zone: "a".into(),
            endpoint: "grpc://gpu.example:7443".into(),
            gpu,
            workers: vec![wallet.pubkey()],
        },
    );
    let minimum = config.min_stake(gpu.class, gpu.count)?;
    let from = token::ata(&wallet.pubkey(), &config.mint);
    let stake = ix::provider_stake(&wallet.pubkey(), &from, &config.mint, minimum);
    // One transaction, signed by the provider's wallet (any Signer works).
    let sig = client.send(&[register, stake], &wallet, &[]).await?;
    let provider = client.provider(&wallet.pubkey()).await?;
    println!(
        "registered and staked {} ({sig}); can take leases: {}",
        provider.staked,
        provider.can_take_leases(&config)?
    );
    Ok(())
}
