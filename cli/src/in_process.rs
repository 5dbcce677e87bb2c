//! For tests: all of the localnet in the test's own process — the chain, gpunet initialised,
//! three keepers and the demo provider's workers — as `gpunet localnet` starts it.

use gpunet_localnet::{Localnet, LocalnetConfig};
use gpunet_sdk::GpunetClient;
use solana_sdk::signature::Keypair;
use tokio_util::sync::CancellationToken;

use crate::Global;
use crate::localnet_system::System;
use crate::output::Output;

pub struct InProcess {
    pub net: Localnet,
    pub client: GpunetClient,
    pub admin: Keypair,
    pub sys: System,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

impl InProcess {
    pub async fn start() -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let net = tokio::task::spawn_blocking(|| Localnet::start(LocalnetConfig::ephemeral()))
            .await
            .unwrap()
            .expect("the localnet starts");
        let g = Global {
            url: net.rpc_url().to_string(),
            keypair: Some(dir.path().join("admin.json")),
            output: Output::Json,
        };
        let client = GpunetClient::new(net.rpc_url());
        let (admin, created) = crate::localnet::admin_keypair(&g).unwrap();
        assert!(created);
        crate::localnet::initialise(&client, &admin).await.unwrap();
        let cancel = CancellationToken::new();
        let args = crate::localnet_system::SystemArgs {
            dir: dir.path().join("wallets"),
            persist: false,
            keeper_port: 0,
            ws_url: net.ws_url().to_string(),
            decimals: crate::localnet::DECIMALS,
        };
        let sys = crate::localnet_system::start(&g, &admin, &args, &cancel)
            .await
            .unwrap();
        InProcess {
            net,
            client,
            admin,
            sys,
            cancel,
            _dir: dir,
        }
    }

    /// Stops the workers, the keepers, then the chain.
    pub async fn stop(self) {
        self.cancel.cancel();
        crate::localnet_system::stop(self.sys).await;
        let net = self.net;
        tokio::task::spawn_blocking(move || net.stop())
            .await
            .unwrap()
            .unwrap();
    }
}
