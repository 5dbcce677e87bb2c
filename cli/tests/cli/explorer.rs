//! The explorer page in a real browser: `gpunet localnet --demo` runs its narrated lease, and
//! headless Chromium (Debian's package; `.ci/run` installs it) loads the explorer the localnet
//! prints, runs the page's script, and finds the demo's lease with its checkpoints — passed and
//! failed, with digests — the slash that took the cheating worker's GPUs, the provider jailed,
//! and the keepers; a screenshot of the page is taken and checked to be a real picture.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Chromium's binary: `GPUNET_CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("GPUNET_CHROMIUM") {
        return p.into();
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "the explorer's browser test needs Chromium: `apt-get install chromium` (what .ci/run \
         does), or GPUNET_CHROMIUM=/path/to/chrome"
    );
}

/// Runs headless Chromium on `url` with `args` (the page's script gets 5 s of virtual time).
fn headless(url: &str, args: &[String], profile: &Path) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium")
}

#[test]
fn test_explorer_shows_the_demo_lease_its_checkpoints_and_the_slash_in_a_browser() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    let (rpc, ws) = (crate::free_port(), crate::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(["localnet", "--demo", "--output", "json"])
        .args(["--keeper-port", "0", "--explorer-port", "0"])
        .args(["--rpc-port", &rpc.to_string(), "--ws-port", &ws.to_string()])
        .arg("--dir")
        .arg(dir.path().join("wallets"))
        .arg("--keypair")
        .arg(dir.path().join("admin.json"))
        .env_remove("GPUNET_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the localnet");
    // Every line it prints, read as it comes (the summary first, then the demo's steps).
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let wait_for = |what: &str, limit: Duration| -> String {
        let t = Instant::now();
        loop {
            if let Some(l) = lines.lock().unwrap().iter().find(|l| l.contains(what)) {
                return l.clone();
            }
            assert!(
                t.elapsed() < limit,
                "no {what:?} in {limit:?}: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let summary: Value =
            serde_json::from_str(&wait_for("\"explorer\"", Duration::from_secs(240))).unwrap();
        let url = summary["explorer"]
            .as_str()
            .expect("explorer URL")
            .to_string();
        let opened = wait_for("demo 2/8", Duration::from_secs(120));
        let lease = opened
            .split_whitespace()
            .nth(3)
            .unwrap()
            .trim_end_matches(':')
            .to_string();
        let done = wait_for("demo 8/8", Duration::from_secs(240));
        assert!(done.contains("refunded"), "{done}");
        // Give the explorer a read after the close.
        std::thread::sleep(Duration::from_secs(2));

        let profile = dir.path().join("chromium");
        let out = headless(&url, &["--dump-dom".to_string()], &profile);
        let dom = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success() && dom.contains("gpunet explorer"),
            "chromium ({}): {}\n{dom}",
            browser.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // The leases table: closed, with the refund the demo printed and three checkpoints,
        // settled from the lease's history although the account is gone.
        let refund = done
            .split("lease closed: ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap();
        let row = dom
            .split(&format!("<a href=\"#lease-{lease}\">"))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row for lease {lease}: {dom}"));
        assert!(row.contains("<td>closed</td>"), "{row}");
        assert!(
            row.contains(&format!("<td class=\"n\">{refund}</td>")),
            "{row}"
        );
        assert!(
            row.contains("<td class=\"n\">3</td><td><span class=\"pass\">"),
            "{row}"
        );
        let section = dom
            .split(&format!("id=\"lease-{lease}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for lease {lease}: {dom}"));
        let section = section.split("</section>").next().unwrap();
        assert!(section.contains("(closed)"), "{section}");
        assert!(section.contains("Checkpoints (3)"), "{section}");
        assert_eq!(
            section.matches("class=\"pass\">pass").count(),
            2,
            "{section}"
        );
        assert_eq!(
            section.matches("class=\"fail\">fail").count(),
            1,
            "{section}"
        );
        assert!(section.contains("Slashes (1)"), "{section}");
        // The slash row: the provider, 2 GPUs slashed, 2 left.
        let slash = section.split("class=\"slashes\"").nth(1).unwrap();
        assert!(
            slash.contains("<td class=\"n\">2</td><td class=\"n\">2</td>"),
            "{slash}"
        );
        assert!(dom.contains("jailed"), "the provider is shown jailed");
        assert!(dom.contains("<h2>Keepers (3)</h2>"), "{dom}");
        assert!(dom.contains("<h2>Providers (1)</h2>"), "{dom}");
        // The page's own script replaced its body with /fragment (the read counter moved).
        assert!(dom.contains("read "), "{dom}");

        let shot = dir.path().join("explorer.png");
        let out = headless(
            &url,
            &[
                format!("--screenshot={}", shot.display()),
                "--window-size=1600,2400".to_string(),
            ],
            &profile,
        );
        assert!(
            shot.is_file(),
            "no screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let png = std::fs::read(&shot).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // A page of tables, not a blank or error page: blank 1600x2400 PNGs are a few KB.
        assert!(png.len() > 60_000, "screenshot of {} bytes", png.len());
        if let Some(keep) = std::env::var_os("GPUNET_KEEP_SCREENSHOT") {
            std::fs::copy(&shot, keep).unwrap();
        }
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
