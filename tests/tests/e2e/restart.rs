//! `--ledger DIR` keeps the chain across a stop and a start.

use gpunet_localnet::LocalnetConfig;
use gpunet_sdk::{GpunetClient, ix, pda};
use solana_sdk::signature::Signer;

use crate::harness::Net;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart_with_ledger_keeps_every_account_and_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let config = LocalnetConfig {
        ledger: Some(dir.path().to_path_buf()),
        ..LocalnetConfig::ephemeral()
    };
    let n = Net::start_with(config.clone()).await;
    let (p, ata) = n.wallet(777).await;
    let sig = n
        .client
        .send(
            &[ix::provider_register(
                &p.pubkey(),
                &n.mint,
                gpunet::instructions::ProviderRegisterArgs {
                    region: "eu-west".into(),
                    zone: "b".into(),
                    endpoint: "grpc://127.0.0.1:7000".into(),
                    gpu: gpunet::state::GpuOffer {
                        class: gpunet::state::GpuClass::H200,
                        count: 8,
                        vram_gib: 141,
                        price_per_gpu_second: 20,
                    },
                    workers: vec![p.pubkey()],
                },
            )],
            &p,
            &[],
        )
        .await
        .unwrap();
    let config_before = n.client.config().await.unwrap();
    let Net { net, .. } = n;
    tokio::task::spawn_blocking(move || net.stop())
        .await
        .unwrap()
        .unwrap();

    // A second start on the same directory, on other ports.
    let config = LocalnetConfig {
        ledger: config.ledger,
        ..LocalnetConfig::ephemeral()
    };
    let net = tokio::task::spawn_blocking(move || gpunet_localnet::Localnet::start(config))
        .await
        .unwrap()
        .unwrap();
    let client = GpunetClient::new(net.rpc_url());
    let provider = client.provider(&p.pubkey()).await.unwrap();
    assert_eq!((provider.gpu.count, provider.gpu.vram_gib), (8, 141));
    assert_eq!(client.config().await.unwrap().admin, config_before.admin);
    assert_eq!(client.token_balance(&ata).await.unwrap(), 777);
    assert!(
        client
            .rpc()
            .get_account(&pda::provider_vault(&pda::provider(&p.pubkey())))
            .await
            .is_ok()
    );
    let tx = client.events(&sig).await.unwrap();
    assert!(
        !tx.is_empty(),
        "the registration transaction and its event are still there"
    );
    tokio::task::spawn_blocking(move || net.stop())
        .await
        .unwrap()
        .unwrap();
}
