//! A cluster over three providers in three zones on the localnet, each provider with real
//! worker processes, opened with its ML stack (a runtime env built on every worker before
//! `cluster open` returns) and addressed as one cluster (`gpunet task --cluster`); then a zone
//! goes dark mid-run (its only worker process SIGKILLed) and no task of the cluster is lost:
//! the client waiting on them submits the dark lease's task again on the other leases.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::chain::{Localnet, start_localnet_with};

/// Kills the worker processes a failing test leaves.
struct Workers(Vec<(String, Child)>);

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `gpunet … --output json ARGS`, one JSON value per line.
fn json_lines(net: &Localnet, user: &Path, args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(["--url", &net.url, "--output", "json", "--keypair"])
        .arg(user)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn cluster_view(net: &Localnet, user: &Path, id: &str) -> Value {
    net.ok(user, &["task", "--cluster", id, "cluster"])
}

#[test]
fn test_cli_a_cluster_over_three_zones_loses_no_task_when_one_goes_dark() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.json");
    // The localnet's demo provider (region local, zone a) and its in-process workers.
    let (net, _) = start_localnet_with(
        dir.path(),
        &admin,
        &["--keeper-port", "0", "--explorer-port", "0"],
        &[],
    );
    // Two more providers, zones b and c, each with one worker process of two GPUs.
    let mut workers = Workers(Vec::new());
    for zone in ["b", "c"] {
        let p = net.wallet(&admin, dir.path(), &format!("p-{zone}"), "2000000000");
        net.provider(&p, "local", zone, "10");
        let child = Command::new(env!("CARGO_BIN_EXE_gpunet"))
            .args(["--url", &net.url, "--keypair"])
            .arg(&p)
            .args(["worker", "run", "--gpus", "2", "--zone"])
            .arg(format!("local-{zone}"))
            .args(["--sandbox", "auto", "--work-dir"])
            .arg(dir.path().join(format!("work-{zone}")))
            .env("GPUNET_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        workers.0.push((format!("local-{zone}"), child));
    }
    let user = net.wallet(&admin, dir.path(), "user", "100000000");
    // The cluster's ML stack: a package from a local wheel and an environment variable.
    let job = dir.path().join("job");
    gpunet_worker::runtime_env::demo_wheel(&job.join("wheels")).unwrap();
    let env_file = dir.path().join("env.toml");
    std::fs::write(
        &env_file,
        "working_dir = \"job\"\npip = [\"wheels/gpunet_hello-0.1-py3-none-any.whl\"]\n\
         pip_no_index = true\n[env_vars]\nSTACK = \"mine\"\n",
    )
    .unwrap();
    let env_arg = env_file.display().to_string();
    let opened = net.ok(
        &user,
        &[
            "cluster",
            "open",
            "--gpus",
            "6",
            "--regions",
            "local",
            "--spread-zones",
            "--duration",
            "600",
            "--runtime-env",
            &env_arg,
        ],
    );
    assert_eq!(opened["leases"].as_array().unwrap().len(), 3, "{opened}");
    let id = opened["cluster"].to_string();
    // Built on every worker of the three leases before the command returned.
    let built = &opened["runtime_env"];
    let on = built["workers"].as_u64().unwrap();
    assert!(on >= 3, "{built}");
    assert_eq!(
        built["built"].as_array().unwrap().len() as u64,
        on,
        "{built}"
    );
    assert!(built["failed"].as_array().unwrap().is_empty(), "{built}");

    // Ready: six GPUs on the three leases; find the lease of zone c.
    let deadline = Instant::now() + Duration::from_secs(60);
    let view = loop {
        let v = cluster_view(&net, &user, &id);
        if v["gpus_ready"] == 6 {
            break v;
        }
        assert!(Instant::now() < deadline, "cluster never ready: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let zone_of_lease = |zone: &str| {
        view["leases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| {
                l["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w["zone"] == zone)
            })
            .map(|l| l["index"].as_u64().unwrap())
            .unwrap_or_else(|| panic!("no lease in {zone}: {view}"))
    };
    let (lease_b, lease_c) = (zone_of_lease("local-b"), zone_of_lease("local-c"));
    assert_ne!(lease_b, lease_c);

    // Three copies spread over the zones, waited on by one client that moves the tasks of a
    // lease dark for 3 s.
    let waiter = Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(["--url", &net.url, "--output", "json", "--keypair"])
        .arg(&user)
        .args(["task", "--cluster", &id, "--failover-after", "3", "submit"])
        .args(["--spread", "--count", "3", "--wait", "--timeout", "120"])
        .args(["--runtime-env", &env_arg])
        .args([
            "--",
            "sh",
            "-c",
            "sleep 4; python -c 'import gpunet_hello, os; print(gpunet_hello.GREETING, os.environ[\"STACK\"])'",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once a task runs in zone c, its only worker dies.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = json_lines(
            &net,
            &user,
            &["task", "--cluster", &id, "list", "--state", "running"],
        );
        let on_c = listed.iter().any(|t| {
            t["task"]
                .as_str()
                .is_some_and(|r| r.starts_with(&format!("{lease_c}.")))
        });
        if on_c {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing ran in zone c: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, c) = workers.0.iter_mut().find(|(z, _)| z == "local-c").unwrap();
    c.kill().unwrap();
    c.wait().unwrap();

    let out = waiter.wait_with_output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{so}\n{se}");
    let results: Vec<Value> = so
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 3, "{so}");
    let mut moved = 0;
    for r in &results {
        assert_eq!(r["state"], "finished", "{r}");
        assert_eq!(r["output"], "hello from a wheel mine\n", "{r}");
        let ran = r["ran_as"].as_str().unwrap();
        assert!(
            !ran.starts_with(&format!("{lease_c}.")),
            "finished in the dark zone: {r}"
        );
        if r["task"] != r["ran_as"] {
            assert!(
                r["task"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{lease_c}."))
            );
            moved += 1;
        }
    }
    assert_eq!(moved, 1, "the one task of zone c moved: {so}");
    drop(workers);
    net.stop();
}
