//! Runtime envs: a Python task whose env installs a package from a wheel in its working
//! directory and imports it, sandboxed; the second task with the same env reuses it; a failed
//! install fails with pip's error; archives that try to leave their folder are refused.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::exec::{ProcessLimits, RunWith, process};
use crate::sandbox::SandboxMode;
use crate::sandbox::escape_tests::work_root;

fn recorder() -> (Arc<Mutex<Vec<String>>>, impl Fn(String) + Send + Sync) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, move |m: String| s.lock().push(m))
}

#[tokio::test]
async fn test_a_python_task_imports_a_package_its_env_installed_from_a_local_wheel() {
    let sandbox = SandboxMode::Required
        .resolve()
        .expect("bubblewrap works here")
        .expect("a sandbox");
    let (_t, root) = work_root();
    let src = root.join("src");
    demo_wheel(&src.join("wheels")).unwrap();
    std::fs::write(
        src.join("main.py"),
        "import os, gpunet_hello\nprint(gpunet_hello.GREETING, os.environ['MODE'], open('data.txt').read())\n",
    )
    .unwrap();
    std::fs::write(src.join("data.txt"), "and its data").unwrap();
    let env = pb::RuntimeEnv {
        env_vars: [("MODE".to_string(), "test".to_string())].into(),
        working_dir: pack_dir(&src).unwrap().into(),
        pip: vec!["wheels/gpunet_hello-0.1-py3-none-any.whl".into()],
        pip_no_index: true,
        ..Default::default()
    };
    let envs = RuntimeEnvs::new(root.join("runtime-envs"), find_python());
    let task = pb::ProcessTask {
        argv: vec!["python".into(), "main.py".into()],
        ..Default::default()
    };
    let limits = ProcessLimits {
        time: Duration::from_secs(60),
        memory: 0,
    };
    let mut venvs = Vec::new();
    for n in 0..2 {
        let dir = root.join(format!("task-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (seen, progress) = recorder();
        let prepared = envs.prepare(&env, &dir, &progress).await.unwrap();
        let steps = seen.lock().clone();
        if n == 0 {
            // Cold: unpacked, venv created, package installed; each step told.
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("creating a virtual environment")),
                "{steps:?}"
            );
            assert!(steps.iter().any(|s| s.contains("installing")), "{steps:?}");
        } else {
            // Warm: nothing built again.
            assert!(steps.is_empty(), "{steps:?}");
        }
        venvs.push(prepared.venv.clone().unwrap());
        let ct = CancellationToken::new();
        let o = process(
            &task,
            Bytes::new(),
            &[],
            &dir,
            limits,
            &RunWith {
                sandbox: Some(&sandbox),
                env: Some(&prepared),
                log: None,
                cgroup: None,
            },
            &ct,
        )
        .await;
        assert_eq!(o.kind, pb::ErrorKind::None as i32, "{o:?}");
        let out = String::from_utf8_lossy(&o.outputs[0]).into_owned();
        assert_eq!(out.trim(), "hello from a wheel test and its data");
        // The task's own copy is gone with it; the cached one stays.
        assert!(!dir.exists());
    }
    assert_eq!(venvs[0], venvs[1], "one venv per env, shared");
}

#[tokio::test]
async fn test_a_failed_install_fails_with_pips_error_and_is_not_cached() {
    let (_t, root) = work_root();
    let envs = RuntimeEnvs::new(root.join("runtime-envs"), find_python());
    let env = pb::RuntimeEnv {
        pip: vec!["gpunet-no-such-package==9.9".into()],
        pip_no_index: true,
        ..Default::default()
    };
    let dir = root.join("task");
    std::fs::create_dir_all(&dir).unwrap();
    let (_, progress) = recorder();
    let err = envs.prepare(&env, &dir, &progress).await.unwrap_err();
    assert!(err.contains("pip install failed"), "{err}");
    assert!(
        err.contains("gpunet-no-such-package"),
        "pip's own words: {err}"
    );
    // Nothing half-built is kept: the next try builds again (and fails again).
    let (seen, progress) = recorder();
    assert!(envs.prepare(&env, &dir, &progress).await.is_err());
    assert!(seen.lock().iter().any(|s| s.contains("creating")));
}

/// A tar of one entry written by hand (the `tar` crate's builder refuses what these test).
fn raw_tar(name: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            g.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(if kind == tar::EntryType::Regular {
        3
    } else {
        0
    });
    h.set_cksum();
    let mut raw = h.as_bytes().to_vec();
    if kind == tar::EntryType::Regular {
        let mut block = b"bad".to_vec();
        block.resize(512, 0);
        raw.extend(block);
    }
    raw.extend([0u8; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    gz.finish().unwrap()
}

#[tokio::test]
async fn test_archives_with_links_or_paths_out_of_the_folder_are_refused() {
    let (_t, root) = work_root();
    let envs = RuntimeEnvs::new(root.join("runtime-envs"), find_python());
    let (_, progress) = recorder();
    for (archive, why) in [
        (
            raw_tar("key", tar::EntryType::Symlink, Some("/etc/passwd")),
            "only files and folders",
        ),
        (
            raw_tar("hard", tar::EntryType::Link, Some("/etc/passwd")),
            "only files and folders",
        ),
        (
            raw_tar("../escaped.txt", tar::EntryType::Regular, None),
            "outside the folder",
        ),
        (b"not a gzip at all".to_vec(), "working directory archive"),
    ] {
        let env = pb::RuntimeEnv {
            working_dir: archive.into(),
            ..Default::default()
        };
        let dir = root.join("task");
        std::fs::create_dir_all(&dir).unwrap();
        let err = envs.prepare(&env, &dir, &progress).await.unwrap_err();
        assert!(err.contains(why), "{err}");
    }
    assert!(!root.join("escaped.txt").exists());
    assert!(!root.join("runtime-envs/escaped.txt").exists());
    // Too big to carry is refused when packing, with what to do.
    let big = root.join("big");
    std::fs::create_dir_all(&big).unwrap();
    // Incompressible: xorshift noise.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..(4usize << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(big.join("noise.bin"), noise).unwrap();
    match pack_dir(&big) {
        Ok(b) => panic!("packed {} bytes past the cap", b.len()),
        Err(e) => assert!(e.contains("at most"), "{e}"),
    }
}
