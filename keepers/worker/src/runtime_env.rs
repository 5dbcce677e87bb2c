//! Runtime environments (Ray's `runtime_env`) for process tasks: environment variables, a
//! working directory uploaded by the client, and Python packages in a virtual environment.
//!
//! Both the unpacked working directory and the virtual environment are cached under the
//! worker's `work_dir/runtime-envs`, each built once per worker under a lock of its own (tasks
//! asking for the same env while it builds wait for that build), and marked ready by a sibling
//! `<name>.ready` file written last: a build interrupted by a crash is redone, never used half
//! made. The first task pays the build ("cold start"); every later one only copies its working
//! directory ("warm start").
//!
//! What runs outside the sandbox, as the worker's user, is limited to what cannot run the
//! user's code: unpacking (regular files and folders only, paths checked by the `tar` crate,
//! sizes capped), `python -m venv`, and `pip install --only-binary=:all:` (wheels are unpacked,
//! never built: no `setup.py` runs here). The packages' code runs only inside the task's
//! sandbox, which sees the environment read-only.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gpunet_proto::v1 as pb;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// Largest working directory archive a task may carry (it travels in the task's spec).
pub const MAX_WORKING_DIR_PACKED: usize = 3 << 20;
/// Largest working directory once unpacked.
pub const MAX_WORKING_DIR_UNPACKED: u64 = 64 << 20;
/// How long one `pip install` may take.
const PIP_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// What a task's process gets from its runtime env.
#[derive(Debug, Default, Clone)]
pub struct Prepared {
    /// The virtual environment: its `bin` goes first on PATH, and the sandbox shows it
    /// read-only.
    pub venv: Option<PathBuf>,
    /// Environment variables (the task's own `env` is applied after them).
    pub env_vars: Vec<(String, String)>,
}

/// The worker's cache of runtime envs.
pub struct RuntimeEnvs {
    root: PathBuf,
    python: PathBuf,
    /// One lock per cache entry being built or checked.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Python that builds virtual environments: one the sandbox shows (under `/usr` or
/// `/opt`), so that a venv's interpreter link resolves inside it.
pub fn find_python() -> PathBuf {
    [
        "/usr/bin/python3",
        "/usr/local/bin/python3",
        "/opt/python3/bin/python3",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .unwrap_or_else(|| PathBuf::from("python3"))
}

impl RuntimeEnvs {
    /// A cache under `root`, building virtual environments with `python`.
    pub fn new(root: PathBuf, python: PathBuf) -> Self {
        RuntimeEnvs {
            root,
            python,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn ready(&self, name: &str) -> bool {
        self.root.join(format!("{name}.ready")).is_file()
    }

    fn mark_ready(&self, name: &str) -> Result<(), String> {
        std::fs::write(self.root.join(format!("{name}.ready")), b"")
            .map_err(|e| format!("cannot record {name} as built: {e}"))
    }

    /// Builds (or finds) `env` and puts its working directory into `task_dir`; `progress`
    /// hears each step of a build. The error is what the client sees.
    pub async fn prepare(
        &self,
        env: &pb::RuntimeEnv,
        task_dir: &Path,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Prepared, String> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| format!("cannot create {}: {e}", self.root.display()))?;
        let wd = if env.working_dir.is_empty() {
            None
        } else {
            Some(self.working_dir(&env.working_dir, progress).await?)
        };
        let venv = if env.pip.is_empty() {
            None
        } else {
            Some(
                self.venv(env, wd.as_ref().map(|(_, d)| d.as_path()), progress)
                    .await?,
            )
        };
        if let Some((_, dir)) = &wd {
            let (from, to) = (dir.clone(), task_dir.to_path_buf());
            tokio::task::spawn_blocking(move || copy_tree(&from, &to))
                .await
                .map_err(|e| format!("copying the working directory: {e}"))?
                .map_err(|e| format!("copying the working directory: {e}"))?;
        }
        let mut env_vars: Vec<(String, String)> = env
            .env_vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env_vars.sort();
        Ok(Prepared { venv, env_vars })
    }

    /// The unpacked working directory of `archive`: (its hash, the cached folder).
    async fn working_dir(
        &self,
        archive: &[u8],
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(String, PathBuf), String> {
        if archive.len() > MAX_WORKING_DIR_PACKED {
            return Err(format!(
                "the working directory archive is {} bytes; at most {MAX_WORKING_DIR_PACKED}",
                archive.len()
            ));
        }
        let hash = hex(&Sha256::digest(archive));
        let name = format!("wd-{hash}");
        let dir = self.root.join(&name);
        let lock = self.lock(&name);
        let _held = lock.lock().await;
        if !self.ready(&name) {
            progress(format!(
                "unpacking the working directory ({} bytes)",
                archive.len()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let (bytes, to) = (archive.to_vec(), dir.clone());
            let res = tokio::task::spawn_blocking(move || unpack(&bytes, &to))
                .await
                .map_err(|e| format!("unpacking the working directory: {e}"))?;
            if let Err(e) = res {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("the working directory archive: {e}"));
            }
            self.mark_ready(&name)?;
        }
        Ok((hash, dir))
    }

    /// The virtual environment of `env`'s packages, built in `wd` (where relative wheel paths
    /// point) when there is one.
    async fn venv(
        &self,
        env: &pb::RuntimeEnv,
        wd: Option<&Path>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<PathBuf, String> {
        let mut h = Sha256::new();
        for p in &env.pip {
            h.update(p.as_bytes());
            h.update([0]);
        }
        h.update(env.pip_index_url.as_bytes());
        h.update([u8::from(env.pip_no_index)]);
        if let Some(wd) = wd {
            // Local wheels are part of the env: the same names from another folder differ.
            h.update(wd.as_os_str().as_encoded_bytes());
        }
        let name = format!("venv-{}", hex(&h.finalize()));
        let dir = self.root.join(&name);
        let lock = self.lock(&name);
        let _held = lock.lock().await;
        if self.ready(&name) {
            return Ok(dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
        progress("creating a virtual environment".into());
        let cwd = wd.unwrap_or(&self.root);
        let mut venv = tokio::process::Command::new(&self.python);
        venv.args(["-m", "venv"]).arg(&dir);
        if let Err(e) = run(venv, cwd, Duration::from_secs(120)).await {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("{} -m venv failed: {e}", self.python.display()));
        }
        progress(format!(
            "installing {} with pip",
            if env.pip.len() == 1 {
                env.pip[0].clone()
            } else {
                format!("{} packages", env.pip.len())
            }
        ));
        let mut pip = tokio::process::Command::new(dir.join("bin/python"));
        pip.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--no-cache-dir",
            "--only-binary=:all:",
        ]);
        if env.pip_no_index {
            pip.arg("--no-index");
        } else if !env.pip_index_url.is_empty() {
            pip.args(["--index-url", &env.pip_index_url]);
        }
        pip.arg("--").args(&env.pip);
        if let Err(e) = run(pip, cwd, PIP_TIMEOUT).await {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("pip install failed: {e}"));
        }
        self.mark_ready(&name)?;
        progress("runtime env ready".into());
        Ok(dir)
    }
}

/// Runs an installer step in `cwd` with a bare environment; its exit status and the tail of
/// its output when it fails.
async fn run(mut cmd: tokio::process::Command, cwd: &Path, limit: Duration) -> Result<(), String> {
    cmd.current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", cwd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| format!("did not finish in {limit:?}"))?
        .map_err(|e| format!("cannot start: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let text = text.trim();
    let tail: String = {
        let chars: Vec<char> = text.chars().collect();
        chars[chars.len().saturating_sub(2000)..].iter().collect()
    };
    Err(format!("{}\n{tail}", out.status))
}

/// Unpacks a gzip-compressed tar of regular files and folders into `to`: any other entry (a
/// link, a device) is refused, as is a path that leaves `to` (the `tar` crate checks) or more
/// than [`MAX_WORKING_DIR_UNPACKED`] bytes in all.
fn unpack(archive: &[u8], to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    let gz = flate2::read::GzDecoder::new(archive);
    // Counted as read, so a small archive that inflates without end stops at the cap.
    let mut ar = tar::Archive::new(gz.take(MAX_WORKING_DIR_UNPACKED + (1 << 20)));
    ar.set_preserve_permissions(false);
    ar.set_overwrite(true);
    let mut total: u64 = 0;
    for entry in ar.entries().map_err(|e| e.to_string())? {
        let mut e = entry.map_err(|e| e.to_string())?;
        let path = e.path().map_err(|e| e.to_string())?.into_owned();
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Directory => {}
            other => {
                return Err(format!(
                    "{}: only files and folders are allowed, not {other:?}",
                    path.display()
                ));
            }
        }
        total = total.saturating_add(e.size());
        if total > MAX_WORKING_DIR_UNPACKED {
            return Err(format!(
                "more than {MAX_WORKING_DIR_UNPACKED} bytes once unpacked"
            ));
        }
        if !e
            .unpack_in(to)
            .map_err(|e| format!("{}: {e}", path.display()))?
        {
            return Err(format!("{}: a path outside the folder", path.display()));
        }
    }
    Ok(())
}

/// Copies the folders and regular files under `from` into `to` (nothing else is there:
/// [`unpack`] let nothing else in).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// Packs the folder `dir` as a runtime env's working directory (what a client uploads):
/// regular files and folders, in a stable order; links and other entries are skipped. Fails
/// past [`MAX_WORKING_DIR_PACKED`].
pub fn pack_dir(dir: &Path) -> Result<Vec<u8>, String> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    b.follow_symlinks(false);
    fn walk(
        b: &mut tar::Builder<impl std::io::Write>,
        root: &Path,
        rel: &Path,
    ) -> Result<(), String> {
        let here = root.join(rel);
        let mut entries: Vec<_> = std::fs::read_dir(&here)
            .map_err(|e| format!("{}: {e}", here.display()))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let kind = e.file_type().map_err(|x| x.to_string())?;
            let name = rel.join(e.file_name());
            if kind.is_dir() {
                b.append_dir(&name, e.path()).map_err(|x| x.to_string())?;
                walk(b, root, &name)?;
            } else if kind.is_file() {
                b.append_path_with_name(e.path(), &name)
                    .map_err(|x| format!("{}: {x}", e.path().display()))?;
            }
        }
        Ok(())
    }
    walk(&mut b, dir, Path::new(""))?;
    let bytes = b
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| e.to_string())?;
    if bytes.len() > MAX_WORKING_DIR_PACKED {
        return Err(format!(
            "{} packs to {} bytes; a working directory is at most {MAX_WORKING_DIR_PACKED} \
             (leave data out and fetch it from the task)",
            dir.display(),
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Writes `gpunet_hello-0.1-py3-none-any.whl` (a pure-Python package whose `GREETING` is
/// `"hello from a wheel"`) into `dir` and returns its path: a wheel is a zip of the package and
/// its `.dist-info`, made here with the Python that builds venvs, so tests and benchmarks need
/// neither a build backend nor a package index.
pub fn demo_wheel(dir: &Path) -> Result<PathBuf, String> {
    const SCRIPT: &str = r#"
import sys, zipfile
name = "gpunet_hello"
info = f"{name}-0.1.dist-info"
files = {
    f"{name}/__init__.py": "GREETING = 'hello from a wheel'\n",
    f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
    f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: gpunet\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for path, text in files.items():
        z.writestr(path, text)
    z.writestr(f"{info}/RECORD", "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n")
"#;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join("gpunet_hello-0.1-py3-none-any.whl");
    let out = std::process::Command::new(find_python())
        .args(["-c", SCRIPT])
        .arg(&path)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(path)
}

#[cfg(test)]
#[path = "runtime_env_tests.rs"]
mod tests;
