//! A runtime env written down (`--runtime-env env.toml`), the ML stack a task or a cluster
//! names, as Ray's `runtime_env` dict:
//!
//! ```toml
//! working_dir = "./job"              # relative to this file's folder
//! pip = ["torch==2.5.1", "wheels/mylib-1.0-py3-none-any.whl"]
//! pip_index_url = "https://pypi.org/simple"
//! pip_no_index = false
//!
//! [env_vars]
//! WANDB_MODE = "offline"
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use gpunet_sdk::task::pb;
use serde::Deserialize;

/// The file's fields; unknown ones are refused (a typo must not silently drop a package).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEnvFile {
    /// Folder packed as the task's working directory.
    pub working_dir: Option<PathBuf>,
    /// Python packages.
    #[serde(default)]
    pub pip: Vec<String>,
    /// pip's package index.
    pub pip_index_url: Option<String>,
    /// Local wheels only.
    #[serde(default)]
    pub pip_no_index: bool,
    /// Environment variables.
    #[serde(default)]
    pub env_vars: HashMap<String, String>,
}

impl RuntimeEnvFile {
    /// Reads `path`; a relative `working_dir` is taken from the file's folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--runtime-env: reading {}", path.display()))?;
        let mut f: RuntimeEnvFile = toml::from_str(&text)
            .with_context(|| format!("--runtime-env: {} is not a runtime env", path.display()))?;
        if let Some(d) = &f.working_dir
            && d.is_relative()
        {
            f.working_dir = Some(path.parent().unwrap_or(Path::new(".")).join(d));
        }
        if f.env_vars.keys().any(|k| k.is_empty() || k.contains('=')) {
            bail!(
                "--runtime-env {}: an env_vars name is empty or has '='",
                path.display()
            );
        }
        Ok(f)
    }

    /// The env: the file's entries, then the flags' (`extra`) on top — their pip entries
    /// added, their index options and working directory winning.
    pub fn merge(mut self, extra: RuntimeEnvFile) -> Self {
        self.pip.extend(extra.pip);
        self.env_vars.extend(extra.env_vars);
        self.working_dir = extra.working_dir.or(self.working_dir);
        self.pip_index_url = extra.pip_index_url.or(self.pip_index_url);
        self.pip_no_index |= extra.pip_no_index;
        self
    }

    /// The proto a task carries (the working directory packed); `None` when it names nothing.
    pub fn to_proto(&self) -> Result<Option<pb::RuntimeEnv>> {
        if self.working_dir.is_none() && self.pip.is_empty() && self.env_vars.is_empty() {
            return Ok(None);
        }
        let working_dir = match &self.working_dir {
            Some(d) => gpunet_worker::runtime_env::pack_dir(d)
                .map_err(|e| anyhow::anyhow!("working_dir {}: {e}", d.display()))?,
            None => Vec::new(),
        };
        Ok(Some(pb::RuntimeEnv {
            env_vars: self.env_vars.clone(),
            working_dir: working_dir.into(),
            pip: self.pip.clone(),
            pip_index_url: self.pip_index_url.clone().unwrap_or_default(),
            pip_no_index: self.pip_no_index,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_merges_with_flags_and_refuses_typos() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("job")).unwrap();
        std::fs::write(dir.path().join("job/run.py"), "print(1)").unwrap();
        let p = dir.path().join("env.toml");
        std::fs::write(
            &p,
            "working_dir = \"job\"\npip = [\"a==1\"]\n[env_vars]\nX = \"1\"\n",
        )
        .unwrap();
        let f = RuntimeEnvFile::load(&p).unwrap();
        assert_eq!(
            f.working_dir.as_deref(),
            Some(dir.path().join("job").as_path())
        );
        let m = f.merge(RuntimeEnvFile {
            pip: vec!["b".into()],
            pip_no_index: true,
            ..Default::default()
        });
        let e = m.to_proto().unwrap().unwrap();
        assert_eq!(e.pip, vec!["a==1", "b"]);
        assert!(e.pip_no_index && !e.working_dir.is_empty());
        assert_eq!(e.env_vars["X"], "1");
        std::fs::write(&p, "pips = [\"a\"]\n").unwrap();
        let err = format!("{:#}", RuntimeEnvFile::load(&p).unwrap_err());
        assert!(err.contains("pips"), "{err}");
        assert!(RuntimeEnvFile::default().to_proto().unwrap().is_none());
    }
}
