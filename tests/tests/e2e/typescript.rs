//! Anchor's TypeScript client (`@anchor-lang/core`, installed by `.ci/run` with `npm ci`)
//! against gpunet on the localnet, with the committed IDL.

use std::path::PathBuf;

use crate::harness::Net;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_anchor_ts_client_lists_sends_and_decodes_events() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ts");
    if !dir.join("node_modules").join("@anchor-lang").exists() {
        // CI installs them (.ci/run); anywhere else say how, and fail in CI.
        assert!(
            std::env::var_os("CI").is_none(),
            "tests/ts/node_modules missing: .ci/run must run `npm ci` in tests/ts"
        );
        eprintln!("skipping: run `npm ci --prefix tests/ts` to enable this test");
        return;
    }
    let n = Net::start().await;
    let out = tokio::process::Command::new("node")
        .arg(dir.join("client.mjs"))
        .arg(n.net.rpc_url())
        .arg(n.net.ws_url())
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node client failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["providersAfter"],
        v["providersBefore"].as_u64().unwrap() + 1
    );
    assert_eq!(v["gpus"], 2);
    assert_eq!(v["event"], "providerRegistered");
    assert_eq!(v["mint"], n.mint.to_string());
}
