use std::process::{Command, Stdio};

use crate::*;

fn gpunet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(args)
        .env("GPUNET_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .expect("run gpunet")
}

/// `gpunet key generate`, `keeper run`, `worker run`, `task submit --wait --output json`,
/// `task list`, `task cluster` end to end with real processes. The user's and the worker's
/// keys are Solana JSON keypair files written by the CLI's own `key generate`, and `task
/// submit` signs its session with the user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_cli_keeper_worker_and_task_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ukey = d.join("user.key");
    let wkey = d.join("worker.key");
    let out = gpunet(&["key", "generate", "--out", ukey.to_str().unwrap()]);
    assert!(out.status.success());
    let user_pub = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = gpunet(&["key", "generate", "--out", wkey.to_str().unwrap()]);
    let worker_pub = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // Solana's format: a JSON array of 64 bytes, secret ‖ public (the printed address).
    let bytes: Vec<u8> = serde_json::from_slice(&std::fs::read(&ukey).unwrap()).unwrap();
    assert_eq!(bytes.len(), 64);
    assert_eq!(bs58::encode(&bytes[32..]).into_string(), user_pub);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = d.join("k.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\nmetrics_listen = \"\"\ndb_path = \"{}\"\n[[providers]]\nid = \"p\"\nworker_keys = [\"{worker_pub}\"]\n[[leases]]\nid = \"L\"\nuser = \"{user_pub}\"\nprovider = \"p\"\ngpus = 2\n",
            d.join("k.redb").display()
        ),
    )
    .unwrap();
    let mut keeper = spawn_keeper(&cfg);
    let mut worker = Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args([
            "worker",
            "run",
            "--keeper",
            &url,
            "--provider",
            "p",
            "--keypair",
            wkey.to_str().unwrap(),
            "--gpus",
            "2",
            "--work-dir",
        ])
        .arg(d.join("work"))
        .env("GPUNET_LOG", "warn")
        .spawn()
        .unwrap();
    let common = [
        "--keeper",
        url.as_str(),
        "--lease",
        "L",
        "--keypair",
        ukey.to_str().unwrap(),
    ];
    // Wait for the cluster to be ready.
    let mut ready = false;
    for _ in 0..200 {
        let mut a = vec!["task"];
        a.extend_from_slice(&common);
        a.extend_from_slice(&["--output", "json", "cluster"]);
        let o = gpunet(&a);
        if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("\"state\":\"ready\"")
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "cluster became ready");
    let mut a = vec!["task"];
    a.extend_from_slice(&common);
    a.extend_from_slice(&[
        "--output",
        "json",
        "submit",
        "--wait",
        "--gpus",
        "1",
        "--",
        "sh",
        "-c",
        "printf %s \"$CUDA_VISIBLE_DEVICES\"",
    ]);
    let o = gpunet(&a);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["state"], "finished");
    assert_eq!(v["output"], "0");
    let mut a = vec!["task"];
    a.extend_from_slice(&common);
    a.extend_from_slice(&["list"]);
    let o = gpunet(&a);
    assert!(String::from_utf8_lossy(&o.stdout).contains("finished"));
    // Graceful shutdown on SIGTERM.
    unsafe {
        libc_kill(worker.id() as i32, 15);
        libc_kill(keeper.id() as i32, 15);
    }
    assert!(worker.wait().unwrap().success());
    assert!(keeper.wait().unwrap().success());
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
