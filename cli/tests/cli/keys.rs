//! One key format: Solana JSON keypair files. A key file of gpunet's old format (base58 text)
//! is refused by every command that signs, with the command that converts it.

use std::path::Path;
use std::process::{Command, Output};

use crate::*;

fn gpunet(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(args)
        .current_dir(dir)
        .env("GPUNET_LOG", "warn")
        .env("HOME", dir)
        .env_remove("GPUNET_KEYPAIR")
        .output()
        .expect("run gpunet")
}

#[test]
fn test_cli_old_format_key_file_gets_conversion_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let k = key(7);
    std::fs::write(d.join("old.key"), bs58::encode(k.to_bytes()).into_string()).unwrap();
    let hint = "gpunet key convert old.key NEW.json";
    for args in [
        &["task", "--lease", "L", "status", "1"][..],
        &["worker", "run", "--provider", "p"][..],
        &["keeper", "run"][..],
        &["lease", "list"][..],
    ] {
        let out = gpunet(d, &[&["--keypair", "old.key"][..], args].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted an old key file");
        assert!(
            err.contains("old format") && err.contains(hint),
            "{args:?}: {err}"
        );
    }

    // The conversion keeps the key.
    let out = gpunet(d, &["key", "convert", "old.key", "new.json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), b58(&k));
    let out = gpunet(d, &["--keypair", "new.json", "key", "pubkey"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), b58(&k));
}

#[test]
fn test_cli_key_generate_writes_a_solana_keypair_file_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = gpunet(d, &["key", "generate", "user.json"]);
    assert!(out.status.success());
    let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bytes: Vec<u8> =
        serde_json::from_slice(&std::fs::read(d.join("user.json")).unwrap()).unwrap();
    assert_eq!(bytes.len(), 64);
    let secret: [u8; 32] = bytes[..32].try_into().unwrap();
    let k = ed25519_dalek::SigningKey::from_bytes(&secret);
    assert_eq!(&bytes[32..], k.verifying_key().as_bytes());
    assert_eq!(b58(&k), address);

    let out = gpunet(d, &["key", "generate", "user.json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = gpunet(d, &["--output", "json", "key", "pubkey", "user.json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pubkey"], address.as_str());

    // Without a path: the default keypair, ~/.config/solana/id.json, as solana-keygen.
    let out = gpunet(d, &["key", "generate"]);
    assert!(out.status.success());
    assert!(d.join(".config/solana/id.json").exists());
}
