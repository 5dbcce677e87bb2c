//! The sandbox process tasks run in: bubblewrap (`bwrap`, Debian's `bubblewrap` package).
//!
//! Why bubblewrap and not namespaces set up here: it is the small, audited setuid-free tool
//! Flatpak uses for exactly this (a fresh mount namespace built from a few binds, PID, IPC, UTS
//! and network namespaces, `PR_SET_NO_NEW_PRIVS`, die-with-parent), it needs no privileges
//! where unprivileged user namespaces are on, and doing the same by hand between `fork` and
//! `exec` is where sandboxes usually get it wrong.
//!
//! What a sandboxed task sees:
//! - its working directory (read-write) and a private `/tmp` that vanishes with it;
//! - the host's `/usr`, `/etc`, `/opt` and the `/bin`, `/sbin`, `/lib*` links or folders,
//!   read-only; nothing else of the host's files: not the worker's key, not the other tasks'
//!   directories, not `/home`, `/root` or `/var`;
//! - its own PID namespace (it sees only its own processes), IPC and UTS namespaces (hostname
//!   `gpunet-task`), and no network (a network namespace of its own: only its own loopback)
//!   unless the task asks for one (`ProcessTask.network`) and the worker allows it;
//! - `/dev` with the null/zero/random/tty nodes, plus the NVIDIA control nodes and only the
//!   device nodes of its own GPUs (`/dev/nvidia<i>` for each index it was given);
//! - an unprivileged user: the worker's own if it does not run as root, else `nobody`
//!   (65534), switched to before `bwrap` runs; and no way to gain privileges (no setuid).
//!
//! Memory and CPU are capped by the task's cgroup ([`crate::cgroup`], joined before `bwrap`
//! runs); where the worker cannot make cgroups, memory falls back to `RLIMIT_AS` (inherited
//! through `bwrap`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Whether process tasks run sandboxed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SandboxMode {
    /// Sandboxed when bubblewrap is installed and works here; otherwise unsandboxed, with a
    /// warning at start (tests, local development).
    #[default]
    Auto,
    /// Always sandboxed: a worker that cannot sandbox does not start.
    Required,
    /// Never sandboxed (a trusted machine; the provider says so).
    Off,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SandboxMode::Auto),
            "on" | "required" => Ok(SandboxMode::Required),
            "off" => Ok(SandboxMode::Off),
            _ => Err(format!("sandbox: {s:?} is not auto, on or off")),
        }
    }
}

/// A working sandbox: where `bwrap` is and which user tasks run as.
#[derive(Clone, Debug)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// (uid, gid) to switch to before `bwrap` runs: `nobody` when the worker is root.
    run_as: Option<(u32, u32)>,
}

/// The user and group tasks of a root worker run as.
const NOBODY: (u32, u32) = (65534, 65534);

impl SandboxMode {
    /// The sandbox this mode gives: `Ok(None)` when tasks run unsandboxed, an error (saying
    /// what to install) when `Required` cannot be met. Checked once per process.
    pub fn resolve(self) -> Result<Option<Sandbox>, String> {
        static FOUND: OnceLock<Result<Sandbox, String>> = OnceLock::new();
        if self == SandboxMode::Off {
            return Ok(None);
        }
        match (FOUND.get_or_init(Sandbox::find), self) {
            (Ok(s), _) => Ok(Some(s.clone())),
            (Err(why), SandboxMode::Required) => Err(why.clone()),
            (Err(_), _) => Ok(None),
        }
    }
}

impl Sandbox {
    /// Finds `bwrap` and checks that it can build a sandbox here (user namespaces on).
    fn find() -> Result<Sandbox, String> {
        let bwrap = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .chain([PathBuf::from("/usr/bin")])
            .map(|d| d.join("bwrap"))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                "bubblewrap (bwrap) is not installed: install it (Debian/Ubuntu: `apt install \
                 bubblewrap`) or run tasks unsandboxed with --sandbox off"
                    .to_string()
            })?;
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let s = Sandbox {
            bwrap,
            run_as: root.then_some(NOBODY),
        };
        let dir = std::env::temp_dir();
        let mut probe = std::process::Command::new(&s.bwrap);
        probe
            .args(s.args(&dir, &[], false, &[]))
            .args(["--", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        s.drop_privileges(&mut probe);
        let out = probe
            .output()
            .map_err(|e| format!("bubblewrap ({}) does not run: {e}", s.bwrap.display()))?;
        if !out.status.success() {
            return Err(format!(
                "bubblewrap cannot build a sandbox here (are unprivileged user namespaces \
                 off?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(s)
    }

    /// The program to run instead of the task's: `bwrap`.
    pub fn program(&self) -> &Path {
        &self.bwrap
    }

    /// The user tasks run as, when the worker switches to one (it runs as root).
    pub fn run_as(&self) -> Option<(u32, u32)> {
        self.run_as
    }

    /// `bwrap`'s arguments for a task in `dir` with GPUs `gpu_ids` (and network if
    /// `network`), also seeing the folders `ro` read-only (its runtime env's virtual
    /// environment); the task's argv follows after `--`.
    pub fn args(&self, dir: &Path, gpu_ids: &[u32], network: bool, ro: &[&Path]) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |xs: &[&dyn AsRef<std::ffi::OsStr>]| {
            a.extend(xs.iter().map(|x| x.as_ref().to_os_string()));
        };
        push(&[
            &"--die-with-parent",
            &"--new-session",
            &"--unshare-all",
            &"--hostname",
            &"gpunet-task",
        ]);
        if network {
            push(&[&"--share-net"]);
        }
        push(&[&"--ro-bind", &"/usr", &"/usr"]);
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            let p = Path::new(top);
            if let Ok(target) = std::fs::read_link(p) {
                push(&[&"--symlink", &target, &top]);
            } else if p.is_dir() {
                push(&[&"--ro-bind", &top, &top]);
            }
        }
        push(&[
            &"--ro-bind",
            &"/etc",
            &"/etc",
            &"--ro-bind-try",
            &"/opt",
            &"/opt",
            &"--proc",
            &"/proc",
            &"--dev",
            &"/dev",
            &"--tmpfs",
            &"/tmp",
        ]);
        for node in [
            "/dev/nvidiactl",
            "/dev/nvidia-uvm",
            "/dev/nvidia-uvm-tools",
            "/dev/nvidia-modeset",
        ] {
            push(&[&"--dev-bind-try", &node, &node]);
        }
        for g in gpu_ids {
            let node = format!("/dev/nvidia{g}");
            push(&[&"--dev-bind-try", &node, &node]);
        }
        for r in ro {
            push(&[&"--ro-bind", r, r]);
        }
        push(&[&"--bind", &dir, &dir, &"--chdir", &dir]);
        // The sandbox's own root (a tmpfs holding the mount points) read-only too: only the
        // directory and /tmp, mounted on it, stay writable.
        push(&[&"--remount-ro", &"/"]);
        a
    }

    /// Makes `cmd` switch to the task user before it runs (when the worker is root).
    pub fn drop_privileges(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        if let Some((uid, gid)) = self.run_as {
            // SAFETY: setgroups, setgid and setuid are async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }

    /// Gives the task user the working directory and what is in it (its runtime env's
    /// working directory), when the worker is root.
    pub fn hand_over(&self, dir: &Path) -> std::io::Result<()> {
        fn chown_tree(p: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
            // lchown: nothing in the folder is followed out of it.
            std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
            if std::fs::symlink_metadata(p)?.is_dir() {
                for e in std::fs::read_dir(p)? {
                    chown_tree(&e?.path(), uid, gid)?;
                }
            }
            Ok(())
        }
        match self.run_as {
            Some((uid, gid)) => chown_tree(dir, uid, gid),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_off_needs_nothing() {
        assert_eq!("auto".parse::<SandboxMode>(), Ok(SandboxMode::Auto));
        assert_eq!("on".parse::<SandboxMode>(), Ok(SandboxMode::Required));
        assert_eq!("off".parse::<SandboxMode>(), Ok(SandboxMode::Off));
        assert!("maybe".parse::<SandboxMode>().is_err());
        assert!(SandboxMode::Off.resolve().unwrap().is_none());
    }

    #[test]
    fn only_the_task_dir_is_writable_and_the_network_is_asked_for() {
        let s = Sandbox {
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            run_as: None,
        };
        let dir = Path::new("/work/task-1-0");
        let a: Vec<String> = s
            .args(dir, &[2], false, &[Path::new("/work/envs/venv-1")])
            .into_iter()
            .map(|x| x.into_string().unwrap())
            .collect();
        let joined = a.join(" ");
        assert!(joined.contains("--unshare-all"));
        assert!(!joined.contains("--share-net"));
        assert!(joined.contains("--bind /work/task-1-0 /work/task-1-0"));
        assert!(joined.contains("--dev-bind-try /dev/nvidia2 /dev/nvidia2"));
        assert!(joined.contains("--ro-bind /work/envs/venv-1 /work/envs/venv-1"));
        assert!(!joined.contains("/dev/nvidia0 "));
        // Every other bind is read-only.
        let rw: Vec<&String> = a
            .iter()
            .enumerate()
            .filter(|(i, x)| *x == "--bind" && a[i + 1] != dir.to_str().unwrap())
            .map(|(_, x)| x)
            .collect();
        assert!(rw.is_empty(), "{joined}");
        let with_net = s.args(dir, &[], true, &[]);
        assert!(with_net.iter().any(|x| x == "--share-net"));
    }
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
pub(crate) mod escape_tests;
