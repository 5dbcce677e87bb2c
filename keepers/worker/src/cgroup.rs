//! Kernel-enforced memory and CPU limits for process tasks: one cgroup per task.
//!
//! The worker makes a folder of its own in the cgroup it runs in (`gpunet-worker-<pid>`, in
//! the memory and cpu hierarchies of cgroup v1, or in the unified cgroup v2 tree) and one cgroup
//! per task below it. The task's process joins its cgroup between `fork` and `exec`, before it
//! drops privileges, so everything it starts (the sandbox, its children, anything that leaves
//! the process group) is counted and limited:
//!
//! - memory: a hard cap on resident memory (`memory.max`; v1 `memory.limit_in_bytes`, swap
//!   included where the kernel counts it): the task's `memory_limit_bytes`, else the memory it
//!   reserved. A task past it is killed by the kernel's OOM killer and fails with
//!   `ERROR_KIND_MEMORY_LIMIT`. Unlike `RLIMIT_AS` (what a worker without cgroups falls back
//!   to), this caps what is used, not address space: CUDA programs, which reserve terabytes of
//!   virtual addresses, run under it.
//! - CPU: a quota of the CPUs it reserved (`cpu.max`; v1 CFS quota) per 100 ms; a task that
//!   reserved none gets a low weight and no quota.
//! - when it ends, every process still in its cgroup is killed (`cgroup.kill`, or each pid
//!   in v1), then the cgroup is removed.
//!
//! No crate does this small part without pulling a container runtime: the files are the
//! kernel's documented interface (Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/).
//!
//! It needs write access to the worker's cgroup: root on a host with cgroup v1 or v2, or a
//! delegated v2 subtree (`systemd-run --user -p Delegate=yes`, `Delegate=yes` in a unit).
//! `--cgroups auto` (the default) runs without them where that is missing, with a warning;
//! `--cgroups on` refuses to start.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Whether process tasks get cgroups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CgroupMode {
    /// Where the worker can make them; otherwise without, with a warning at start.
    #[default]
    Auto,
    /// Always: a worker that cannot make them does not start.
    Required,
    /// Never (memory limits fall back to `RLIMIT_AS`).
    Off,
}

impl std::str::FromStr for CgroupMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(CgroupMode::Auto),
            "on" | "required" => Ok(CgroupMode::Required),
            "off" => Ok(CgroupMode::Off),
            _ => Err(format!("cgroups: {s:?} is not auto, on or off")),
        }
    }
}

impl CgroupMode {
    /// The cgroups this mode gives: `Ok(None)` without, an error (saying why) when they are
    /// required and cannot be made.
    pub fn resolve(self) -> Result<Option<Cgroups>, String> {
        match (self, Cgroups::detect()) {
            (CgroupMode::Off, _) => Ok(None),
            (_, Ok(c)) => Ok(Some(c)),
            (CgroupMode::Required, Err(why)) => Err(format!(
                "{why}; run the worker as root or in a delegated cgroup v2 subtree, or choose \
                 --cgroups off"
            )),
            (CgroupMode::Auto, Err(_)) => Ok(None),
        }
    }
}

/// The CFS period quotas are counted in.
const PERIOD_US: u64 = 100_000;

#[derive(Clone, Debug)]
enum Tree {
    /// The unified hierarchy: the worker's folder.
    V2(PathBuf),
    /// Separate hierarchies: the worker's folder in the memory one and in the cpu one.
    V1 { memory: PathBuf, cpu: PathBuf },
}

/// This worker's folder of task cgroups.
#[derive(Clone, Debug)]
pub struct Cgroups {
    inner: Arc<Folder>,
}

/// The worker's folder, removed when the last handle to it goes (with the worker).
#[derive(Debug)]
struct Folder {
    tree: Tree,
    /// Numbers the task cgroups: names never repeat within a worker's folder.
    seq: AtomicU64,
}

impl Drop for Folder {
    fn drop(&mut self) {
        let dirs = match &self.tree {
            Tree::V1 { memory, cpu } => vec![memory.clone(), cpu.clone()],
            Tree::V2(d) => vec![d.clone()],
        };
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// What a task's cgroup enforces.
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskLimits {
    /// Bytes of memory (None: no cap).
    pub memory: Option<u64>,
    /// Thousandths of a CPU (0: no quota, a low weight).
    pub milli_cpus: u32,
}

/// SIGKILLs every process in the cgroup `dir`.
fn kill_procs(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill(2) of a process in a task's cgroup (its own, or a dead worker's task's).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// The lines of a cgroup file that say `key value`, as a number.
fn read_key(path: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Where the cgroup hierarchies are mounted: (v2 mount, v1 mounts by controller).
fn mounts() -> (Option<PathBuf>, Vec<(Vec<String>, PathBuf)>) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let (mut v2, mut v1) = (None, Vec::new());
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let point = left.split(' ').nth(4).map(PathBuf::from);
        let mut r = right.split(' ');
        let (fstype, _source, opts) = (r.next(), r.next(), r.next().unwrap_or_default());
        match (fstype, point) {
            (Some("cgroup2"), Some(p)) => v2 = v2.or(Some(p)),
            (Some("cgroup"), Some(p)) => v1.push((opts.split(',').map(String::from).collect(), p)),
            _ => {}
        }
    }
    (v2, v1)
}

/// This process's cgroup in each hierarchy: (v2 path, v1 paths by controller list).
fn own() -> (Option<String>, Vec<(Vec<String>, String)>) {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let (mut v2, mut v1) = (None, Vec::new());
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (f.next(), f.next().unwrap_or_default(), f.next());
        let Some(path) = path else { continue };
        if ctrl.is_empty() {
            v2 = Some(path.to_string());
        } else {
            v1.push((
                ctrl.split(',').map(String::from).collect(),
                path.to_string(),
            ));
        }
    }
    (v2, v1)
}

/// Removes the folders of workers that are gone, their tasks' cgroups first, killing what a
/// crashed worker's tasks left running (nobody is left to collect their results).
fn sweep(parent: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix("gpunet-worker-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        if let Ok(tasks) = std::fs::read_dir(e.path()) {
            for t in tasks.flatten().filter(|t| t.path().is_dir()) {
                kill_procs(&t.path());
                let _ = std::fs::remove_dir(t.path());
            }
        }
        let _ = std::fs::remove_dir(e.path());
    }
}

impl Cgroups {
    /// Makes this worker's folder in its own cgroup and checks a task cgroup can be made and
    /// limited there.
    pub fn detect() -> Result<Cgroups, String> {
        let (v2_mount, v1_mounts) = mounts();
        let (v2_own, v1_own) = own();
        // One folder per worker (several may run in one process: tests, the localnet).
        static WORKERS: AtomicU64 = AtomicU64::new(0);
        let leaf = format!(
            "gpunet-worker-{}-{}",
            std::process::id(),
            WORKERS.fetch_add(1, Ordering::Relaxed)
        );
        let v1_dir = |ctrl: &str| -> Option<PathBuf> {
            let (_, mount) = v1_mounts
                .iter()
                .find(|(c, _)| c.iter().any(|x| x == ctrl))?;
            let (_, path) = v1_own.iter().find(|(c, _)| c.iter().any(|x| x == ctrl))?;
            Some(mount.join(path.trim_start_matches('/')))
        };
        let tree = match (v1_dir("memory"), v1_dir("cpu")) {
            (Some(m), Some(c)) => {
                sweep(&m);
                sweep(&c);
                Tree::V1 {
                    memory: m.join(&leaf),
                    cpu: c.join(&leaf),
                }
            }
            _ => {
                let (Some(mount), Some(path)) = (v2_mount, v2_own) else {
                    return Err("no cgroup hierarchy with the memory and cpu controllers".into());
                };
                // A worker earlier in this process may have moved it into its own leaf.
                let path = path.strip_suffix("/gpunet-worker-self").unwrap_or(&path);
                let mine = mount.join(path.trim_start_matches('/'));
                sweep(&mine);
                Tree::V2(mine.join(&leaf))
            }
        };
        let c = Cgroups {
            inner: Arc::new(Folder {
                tree,
                seq: AtomicU64::new(0),
            }),
        };
        c.prepare()
            .map_err(|e| format!("cannot make task cgroups: {e}"))?;
        // A probe task cgroup with both limits, made and removed.
        let probe = c
            .create(
                "probe",
                TaskLimits {
                    memory: Some(64 << 20),
                    milli_cpus: 500,
                },
            )
            .map_err(|e| format!("cannot limit a task cgroup: {e}"))?;
        drop(probe);
        Ok(c)
    }

    fn prepare(&self) -> std::io::Result<()> {
        match &self.inner.tree {
            Tree::V1 { memory, cpu } => {
                std::fs::create_dir_all(memory)?;
                std::fs::create_dir_all(cpu)
            }
            Tree::V2(dir) => {
                let parent = dir.parent().unwrap_or(Path::new("/"));
                let want = ["memory", "cpu"];
                let have = std::fs::read_to_string(parent.join("cgroup.controllers"))?;
                if let Some(m) = want
                    .iter()
                    .find(|w| !have.split_whitespace().any(|h| h == **w))
                {
                    return Err(std::io::Error::other(format!(
                        "the {m} controller is not available to {}",
                        parent.display()
                    )));
                }
                // Controllers for the worker's folder; a cgroup with processes in it cannot
                // hand controllers down (v2's no-internal-process rule), so the worker first
                // moves itself into a leaf of its own.
                let enable = |p: &Path| write(&p.join("cgroup.subtree_control"), "+memory +cpu");
                if enable(parent).is_err() {
                    let me = parent.join("gpunet-worker-self");
                    std::fs::create_dir_all(&me)?;
                    write(&me.join("cgroup.procs"), &std::process::id().to_string())?;
                    enable(parent)?;
                }
                std::fs::create_dir_all(dir)?;
                enable(dir)
            }
        }
    }

    /// Which cgroup version this is.
    pub fn version(&self) -> u8 {
        match self.inner.tree {
            Tree::V1 { .. } => 1,
            Tree::V2(_) => 2,
        }
    }

    /// A fresh task cgroup (named after `name`) with `limits`.
    pub fn create(&self, name: &str, limits: TaskLimits) -> std::io::Result<TaskCgroup> {
        let name = format!(
            "task-{name}-{}",
            self.inner.seq.fetch_add(1, Ordering::Relaxed)
        );
        let (dirs, v2) = match &self.inner.tree {
            Tree::V1 { memory, cpu } => (vec![memory.join(&name), cpu.join(&name)], false),
            Tree::V2(d) => (vec![d.join(&name)], true),
        };
        let cg = TaskCgroup {
            dirs,
            v2,
            memory: limits.memory,
        };
        for d in &cg.dirs {
            std::fs::create_dir(d)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", d.display())))?;
        }
        let quota = u64::from(limits.milli_cpus) * PERIOD_US / 1000;
        if v2 {
            let d = &cg.dirs[0];
            if let Some(m) = limits.memory {
                write(&d.join("memory.max"), &m.to_string())?;
                if d.join("memory.swap.max").exists() {
                    write(&d.join("memory.swap.max"), "0")?;
                }
            }
            if quota > 0 {
                write(
                    &d.join("cpu.max"),
                    &format!("{} {PERIOD_US}", quota.max(1000)),
                )?;
            } else {
                write(&d.join("cpu.weight"), "10")?;
            }
        } else {
            let (m, c) = (&cg.dirs[0], &cg.dirs[1]);
            if let Some(bytes) = limits.memory {
                write(&m.join("memory.limit_in_bytes"), &bytes.to_string())?;
                // Swap counted too where the kernel keeps that account.
                let memsw = m.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &bytes.to_string())?;
                }
            }
            if quota > 0 {
                write(&c.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                write(&c.join("cpu.cfs_quota_us"), &quota.max(1000).to_string())?;
            } else {
                write(&c.join("cpu.shares"), "128")?;
            }
        }
        Ok(cg)
    }
}

/// One task's cgroup: limits set, joined by the task's process before `exec`; emptied and
/// removed when dropped.
#[derive(Debug)]
pub struct TaskCgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
    /// Its memory cap, if any.
    pub memory: Option<u64>,
}

impl TaskCgroup {
    /// The `cgroup.procs` files the task's process writes `0` into (itself) before `exec`.
    pub fn join_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|d| {
                CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes()).ok()
            })
            .collect()
    }

    /// How many of its processes the kernel's OOM killer killed for its memory cap.
    pub fn oom_kills(&self) -> u64 {
        let d = &self.dirs[0];
        if self.v2 {
            read_key(&d.join("memory.events"), "oom_kill").unwrap_or(0)
        } else {
            read_key(&d.join("memory.oom_control"), "oom_kill").unwrap_or_else(|| {
                // Kernels before 4.13 say only that the cap was hit.
                std::fs::read_to_string(d.join("memory.failcnt"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0)
            })
        }
    }

    /// Kills every process in it.
    pub fn kill_all(&self) {
        if self.v2 && write(&self.dirs[0].join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for d in &self.dirs {
            kill_procs(d);
        }
    }

    /// Kills what is left and waits (up to a second) until the cgroups can be removed.
    pub async fn finish(self) {
        for _ in 0..100 {
            self.kill_all();
            if self
                .dirs
                .iter()
                .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TaskCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
