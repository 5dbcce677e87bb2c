//! Open and fund a lease from a dApp: the user signs the lease (escrow from the user's tokens),
//! the dApp pays the rent and later tops the lease up from its own tokens.
//!
//! ```sh
//! cargo run -p gpunet-sdk --example dapp_lease -- http://127.0.0.1:8899 USER_KEYPAIR DAPP_KEYPAIR PROVIDER_WALLET
//! ```

use gpunet_sdk::gpunet::instructions::LeaseOpenArgs;
use gpunet_sdk::{GpunetClient, LeaseFilter, ix, pda, token};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Signer, read_keypair_file};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, user, dapp, provider] = args.as_slice() else {
        return Err("usage: dapp_lease URL USER_KEYPAIR DAPP_KEYPAIR PROVIDER_WALLET".into());
    };
    let client = GpunetClient::new(url.clone());
    let user = read_keypair_file(user)?;
    let dapp = read_keypair_file(dapp)?;
    let provider: Pubkey = provider.parse()?;
    let config = client.config().await?;

    let nonce = client.leases(LeaseFilter::User(user.pubkey())).await?.len() as u64;
    let open = ix::lease_open(
        &user.pubkey(),
        &dapp.pubkey(), // the dApp pays the rent and gets it back at close
        &token::ata(&user.pubkey(), &config.mint),
        &pda::provider(&provider),
        &config.mint,
        LeaseOpenArgs {
            nonce,
            gpus: 1,
            duration: 3_600,
            max_price_per_gpu_second: 10,
        },
    );
    client.send(&[open], &dapp, &[&user]).await?;
    let lease = pda::lease(&user.pubkey(), nonce);
    // Who verifies the lease is drawn from a slot hash after the open; anyone may send it.
    client.draw_committee(&dapp, &lease).await?;

    // Later: the dApp funds another hour for its user.
    let top_up = ix::lease_top_up(
        &dapp.pubkey(),
        &token::ata(&dapp.pubkey(), &config.mint),
        &lease,
        &config.mint,
        36_000,
    );
    let sig = client.send(&[top_up], &dapp, &[]).await?;
    for event in client.events(&sig).await? {
        println!("{event:?}");
    }
    let l = client.lease(&lease).await?;
    println!(
        "lease {lease}: funded {} until {}",
        l.funded,
        l.funded_until()?
    );
    Ok(())
}
