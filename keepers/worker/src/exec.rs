//! Executors: built-ins (for control-plane work), processes, and the benchmark proof.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use gpunet_proto::v1 as pb;
use pb::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::cgroup::TaskCgroup;
use crate::runtime_env::Prepared;
use crate::sandbox::Sandbox;

/// Most bytes kept from a process's stdout or stderr.
pub const MAX_CAPTURE: usize = 256 << 20;

/// What an executor produced.
#[derive(Debug, Default)]
pub struct ExecOutcome {
    /// Outputs by index.
    pub outputs: Vec<Bytes>,
    /// Error kind (None on success).
    pub kind: i32,
    /// Error message.
    pub error: String,
    /// Exit code of a process.
    pub exit_code: Option<i32>,
}

impl ExecOutcome {
    fn ok(outputs: Vec<Bytes>) -> Self {
        Self {
            outputs,
            ..Default::default()
        }
    }
    fn err(kind: ErrorKind, error: impl Into<String>) -> Self {
        Self {
            kind: kind as i32,
            error: error.into(),
            ..Default::default()
        }
    }
}

/// Run a built-in task.
pub async fn builtin(
    b: &pb::BuiltinTask,
    inputs: &[Bytes],
    cancel: &CancellationToken,
) -> ExecOutcome {
    match b.name.as_str() {
        "noop" => ExecOutcome::ok(vec![Bytes::new()]),
        "echo" => {
            if inputs.is_empty() {
                return ExecOutcome::ok(vec![b.payload.clone()]);
            }
            let mut out =
                Vec::with_capacity(b.payload.len() + inputs.iter().map(|i| i.len()).sum::<usize>());
            out.extend_from_slice(&b.payload);
            for i in inputs {
                out.extend_from_slice(i);
            }
            ExecOutcome::ok(vec![out.into()])
        }
        "fill" => match std::str::from_utf8(&b.payload)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        {
            Some(n) if n <= 1 << 30 => ExecOutcome::ok(vec![Bytes::from(vec![b'x'; n])]),
            _ => ExecOutcome::err(
                ErrorKind::Invalid,
                "fill: payload must be a byte count up to 1 GiB",
            ),
        },
        "sleep" => match std::str::from_utf8(&b.payload)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            Some(ms) => {
                tokio::select! {
                    _ = cancel.cancelled() => ExecOutcome::err(ErrorKind::Cancelled, "cancelled"),
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => ExecOutcome::ok(vec![Bytes::new()]),
                }
            }
            None => ExecOutcome::err(ErrorKind::Invalid, "sleep: payload must be milliseconds"),
        },
        "fail" => ExecOutcome::err(
            ErrorKind::Application,
            String::from_utf8_lossy(&b.payload).into_owned(),
        ),
        other => ExecOutcome::err(ErrorKind::Invalid, format!("unknown builtin {other:?}")),
    }
}

/// Kills a whole process group when dropped (unless disarmed), so an aborted worker leaves no
/// orphans.
struct GroupKill(Option<i32>);

impl GroupKill {
    fn kill(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) on a process group we created; errors (ESRCH) are harmless.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail(b: &[u8]) -> String {
    let start = b.len().saturating_sub(400);
    String::from_utf8_lossy(&b[start..]).trim().to_string()
}

fn looks_like_oom(stderr: &[u8]) -> bool {
    let s = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(4096)..]).to_lowercase();
    [
        "memoryerror",
        "cannot allocate memory",
        "out of memory",
        "bad_alloc",
        "memory exhausted",
        "failed to allocate",
    ]
    .iter()
    .any(|p| s.contains(p))
}

/// Reads a task's stdout or stderr (`stream` 0 or 1) to its end, keeping the first
/// `MAX_CAPTURE` bytes and handing every piece to `log` as it comes, when given.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    stream: u32,
    log: Option<LogTap>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(log) = &log {
                    log(stream, &buf[..n]);
                }
                if out.len() < MAX_CAPTURE {
                    let take = n.min(MAX_CAPTURE - out.len());
                    out.extend_from_slice(&buf[..take]);
                }
            }
        }
    }
    out
}

/// Where a running task's output goes as it comes: `(stream, bytes)`, stream 0 stdout, 1
/// stderr.
pub type LogTap = std::sync::Arc<dyn Fn(u32, &[u8]) + Send + Sync>;

/// What a process task runs with beside its spec.
#[derive(Clone, Default)]
pub struct RunWith<'a> {
    /// The sandbox ([`crate::sandbox`]); `None`: unsandboxed.
    pub sandbox: Option<&'a Sandbox>,
    /// Its runtime env, already built ([`crate::runtime_env`]).
    pub env: Option<&'a Prepared>,
    /// Its output as it comes (a job streaming its logs).
    pub log: Option<LogTap>,
    /// Its cgroup ([`crate::cgroup`]): memory and CPU enforced by the kernel; `None`: the
    /// memory limit is `RLIMIT_AS`.
    pub cgroup: Option<&'a TaskCgroup>,
}

/// Limits applied to a process task.
#[derive(Clone, Copy, Debug)]
pub struct ProcessLimits {
    /// Wall-time limit.
    pub time: Duration,
    /// Address-space limit in bytes (0 = none).
    pub memory: u64,
}

/// Run a process task in its own working directory and process group.
///
/// - `CUDA_VISIBLE_DEVICES` is exactly `gpu_ids`; `HOME` and the working directory are a fresh
///   directory under `work_root`, removed afterwards; `PATH` is inherited; then the task's env.
/// - In `with.sandbox` when given ([`crate::sandbox`]): its own namespaces, only its directory
///   writable, no network unless `p.network`, an unprivileged user.
/// - With its runtime env `with.env` ([`crate::runtime_env`], already built, its working directory
///   already in `dir`): its variables before the task's own, its virtual environment's `bin`
///   first on PATH (`VIRTUAL_ENV` set), shown read-only in the sandbox.
/// - In its cgroup `with.cgroup` when given ([`crate::cgroup`]: memory and CPU capped by the
///   kernel, joined before `exec`); otherwise the memory limit is `RLIMIT_AS`.
/// - Time limit and cancellation SIGKILL the whole process group (a sandbox's PID namespace
///   dies with it); so does leaving early.
pub async fn process(
    p: &pb::ProcessTask,
    stdin: Bytes,
    gpu_ids: &[u32],
    dir: &Path,
    limits: ProcessLimits,
    with: &RunWith<'_>,
    cancel: &CancellationToken,
) -> ExecOutcome {
    let sandbox = with.sandbox;
    if let Err(e) = std::fs::create_dir_all(dir) {
        return ExecOutcome::err(
            ErrorKind::Invalid,
            format!("cannot create working directory: {e}"),
        );
    }
    if let Some(s) = sandbox
        && let Err(e) = s.hand_over(dir)
    {
        let _ = std::fs::remove_dir_all(dir);
        return ExecOutcome::err(
            ErrorKind::Invalid,
            format!("cannot hand the working directory to the task user: {e}"),
        );
    }
    let out = run_in(p, stdin, gpu_ids, dir, limits, with, cancel).await;
    let _ = std::fs::remove_dir_all(dir);
    out
}

async fn run_in(
    p: &pb::ProcessTask,
    stdin: Bytes,
    gpu_ids: &[u32],
    dir: &Path,
    limits: ProcessLimits,
    with: &RunWith<'_>,
    cancel: &CancellationToken,
) -> ExecOutcome {
    let (sandbox, env) = (with.sandbox, with.env);
    let Some(prog) = p.argv.first() else {
        return ExecOutcome::err(ErrorKind::Invalid, "empty argv");
    };
    let venv = env.and_then(|e| e.venv.as_deref());
    let mut path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    if let Some(v) = venv {
        path = format!("{}:{path}", v.join("bin").display());
    }
    let mut cmd = match sandbox {
        Some(s) => {
            let ro: Vec<&Path> = venv.into_iter().collect();
            let mut c = std::process::Command::new(s.program());
            c.args(s.args(dir, gpu_ids, p.network, &ro))
                .arg("--")
                .arg(prog);
            c
        }
        // Unsandboxed, argv[0] is resolved through the task's PATH (the venv first).
        None => match venv
            .map(|v| v.join("bin").join(prog))
            .filter(|x| x.is_file())
        {
            Some(in_venv) => std::process::Command::new(in_venv),
            None => std::process::Command::new(prog),
        },
    };
    cmd.args(&p.argv[1..])
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir)
        .env(
            "CUDA_VISIBLE_DEVICES",
            gpu_ids
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
        .envs(env.iter().flat_map(|e| e.env_vars.iter().cloned()))
        .envs(venv.map(|v| ("VIRTUAL_ENV", v.as_os_str())))
        .envs(p.env.iter())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cg) = with.cgroup {
        let files = cg.join_files();
        // SAFETY: open, write and close are async-signal-safe; the paths were made before the
        // fork. Registered before the sandbox's privilege drop: the task user could not join.
        unsafe {
            cmd.pre_exec(move || {
                for f in &files {
                    let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if n != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    // Without a cgroup, the memory limit caps address space instead.
    let mem = if with.cgroup.is_some() {
        0
    } else {
        limits.memory
    };
    if mem > 0 {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: mem as libc::rlim_t,
                    rlim_max: mem as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    if let Some(s) = sandbox {
        s.drop_privileges(&mut cmd);
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ExecOutcome::err(ErrorKind::Invalid, format!("cannot start {prog:?}: {e}"));
        }
    };
    let mut guard = GroupKill(child.id().map(|i| i as i32));
    if let Some(mut si) = child.stdin.take() {
        tokio::spawn(async move {
            let _ = si.write_all(&stdin).await;
        });
    }
    let so = child
        .stdout
        .take()
        .map(|s| tokio::spawn(read_capped(s, 0, with.log.clone())));
    let se = child
        .stderr
        .take()
        .map(|s| tokio::spawn(read_capped(s, 1, with.log.clone())));
    enum End {
        Exited(std::io::Result<std::process::ExitStatus>),
        Timeout,
        Cancelled,
    }
    let end = tokio::select! {
        st = child.wait() => End::Exited(st),
        _ = tokio::time::sleep(limits.time) => End::Timeout,
        _ = cancel.cancelled() => End::Cancelled,
    };
    // Whatever happened, nothing of the task's process group outlives it.
    guard.kill();
    guard.0 = None;
    let _ = child.wait().await;
    let stdout = match so {
        Some(h) => h.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let stderr = match se {
        Some(h) => h.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let mut out = match end {
        End::Timeout => ExecOutcome::err(
            ErrorKind::TimeLimit,
            format!(
                "time limit of {:?} exceeded; process group killed",
                limits.time
            ),
        ),
        End::Cancelled => ExecOutcome::err(ErrorKind::Cancelled, "cancelled; process group killed"),
        End::Exited(Err(e)) => {
            ExecOutcome::err(ErrorKind::Application, format!("wait failed: {e}"))
        }
        End::Exited(Ok(st)) => {
            use std::os::unix::process::ExitStatusExt;
            let sig = st.signal();
            let oom_sig = matches!(
                sig,
                Some(libc::SIGSEGV | libc::SIGABRT | libc::SIGBUS | libc::SIGKILL)
            );
            let cgroup_oom = with.cgroup.filter(|cg| !st.success() && cg.oom_kills() > 0);
            if st.success() {
                ExecOutcome {
                    exit_code: Some(0),
                    ..Default::default()
                }
            } else if let Some(cg) = cgroup_oom {
                let mut o = ExecOutcome::err(
                    ErrorKind::MemoryLimit,
                    format!(
                        "memory limit of {} bytes exceeded: the kernel's OOM killer ended it \
                         (its cgroup's cap); {}",
                        cg.memory.unwrap_or(0),
                        tail(&stderr)
                    ),
                );
                o.exit_code = st.code();
                o
            } else if mem > 0 && (oom_sig || looks_like_oom(&stderr)) {
                let mut o = ExecOutcome::err(
                    ErrorKind::MemoryLimit,
                    format!(
                        "memory limit of {mem} bytes exceeded (RLIMIT_AS); {}",
                        tail(&stderr)
                    ),
                );
                o.exit_code = st.code();
                o
            } else if sandbox.is_some() && st.code() == Some(1) && stderr.starts_with(b"bwrap: ") {
                // bubblewrap itself failed: the program could not be started in the sandbox.
                ExecOutcome::err(
                    ErrorKind::Invalid,
                    format!("cannot start {prog:?} in the sandbox: {}", tail(&stderr)),
                )
            } else if let Some(code) = st.code() {
                let mut o = ExecOutcome::err(
                    ErrorKind::Application,
                    format!("exited with code {code}: {}", tail(&stderr)),
                );
                o.exit_code = Some(code);
                o
            } else {
                ExecOutcome::err(
                    ErrorKind::Application,
                    format!("killed by signal {}", sig.unwrap_or(0)),
                )
            }
        }
    };
    out.outputs = vec![stdout.into(), stderr.into()];
    out
}

/// The prover's side of the task stream, as a proof executor sees it. The worker implements
/// it over its connection to the keeper; tests implement it directly.
pub trait ProofIo {
    /// Sends one encoded `RoundCommit` to the keeper as soon as its round ends. An error
    /// (the task was cancelled, the stream is gone) means: stop proving.
    fn commit(&mut self, commit: Vec<u8>) -> Result<(), String>;
    /// Blocks until the keeper's opening request (an encoded `OpeningRequest`) arrives.
    /// Errors on cancellation or when none came within the worker's bounded wait.
    fn opening_request(&mut self) -> Result<Vec<u8>, String>;
    /// Sends the encoded, worker-signed `Opening`.
    fn opening(&mut self, opening: Vec<u8>) -> Result<(), String>;
    /// Whether the task was cancelled (the keeper refused the proof, or the user cancelled).
    fn cancelled(&self) -> bool;
}

/// The benchmark-proof executor, behind a small trait so tests can inject a dishonest
/// prover.
///
/// One call runs the whole exchange on one (blocking) thread: every round, streaming each
/// commit; then the wait for the keeper's opening request; then the signed opening. The
/// prover keeps its state (the CUDA prover: every round's Merkle tree in device memory) on
/// that thread until it has opened, so nothing device-bound has to move between threads.
pub trait ProofExecutor: Send + Sync + 'static {
    /// Runs `challenge` (an encoded `SignedChallenge`), opening with the worker's `key`.
    /// Returns a short summary for the task's output.
    fn prove(
        &self,
        challenge: &[u8],
        key: &SigningKey,
        io: &mut dyn ProofIo,
    ) -> Result<String, String>;

    /// Called once on a blocking thread when a worker with discovered GPUs starts: set up
    /// whatever a proof would otherwise set up inside the keeper's timed window.
    fn warm_up(&self) {}
}

/// [`ProofExecutor`] on `gpunet-proof`: the CUDA prover when available, else the CPU reference.
pub struct GpunetProof;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl ProofExecutor for GpunetProof {
    fn warm_up(&self) {
        let t = std::time::Instant::now();
        match gpunet_proof::warm_up_cuda() {
            Ok(name) => tracing::info!(gpu = %name, took = ?t.elapsed(), "CUDA prover ready"),
            Err(e) => {
                tracing::warn!(error = %e, "CUDA prover unavailable; proofs will run on the CPU reference")
            }
        }
    }

    fn prove(
        &self,
        challenge: &[u8],
        key: &SigningKey,
        io: &mut dyn ProofIo,
    ) -> Result<String, String> {
        let ch = gpunet_proof::SignedChallenge::decode(challenge)
            .map_err(|e| format!("bad challenge: {e}"))?;
        if ch.body.worker != key.verifying_key().to_bytes() {
            return Err("the challenge is addressed to another worker".into());
        }
        let (mut backend, note) =
            gpunet_proof::best_backend(*ch.params()).map_err(|e| e.to_string())?;
        tracing::info!(%note, "proof backend");
        let run = gpunet_proof::prove(&ch, backend.as_mut(), |c| {
            io.commit(c.encode())
                .map_err(gpunet_proof::ProofError::Protocol)
        })
        .map_err(|e| e.to_string())?;
        let request = gpunet_proof::OpeningRequest::decode(&io.opening_request()?)
            .map_err(|e| format!("bad opening request: {e}"))?;
        let opening = run
            .open(backend.as_mut(), &request, key)
            .map_err(|e| e.to_string())?;
        let tiles = opening.tiles.len();
        io.opening(opening.encode())?;
        let last = run.commits().last().map(|c| c.root).unwrap_or_default();
        Ok(format!(
            "proof nonce={} rounds={} last_root={} opened_tiles={tiles} backend={}",
            hex(&ch.nonce()),
            run.commits().len(),
            hex(&last),
            backend.name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpunet_proof::{
        ChallengeBody, ChallengeParams, Expectations, GpuClass, KeeperSession, Opening,
        OpeningRequest, PROTOCOL_VERSION, RoundCommit, SignedChallenge, verify,
    };

    /// Records commits and answers the opening request with fixed entropy.
    #[derive(Default)]
    struct Recorder {
        commits: Vec<Vec<u8>>,
        openings: Vec<Vec<u8>>,
        request: Option<OpeningRequest>,
        cancel_after: Option<usize>,
    }

    impl ProofIo for Recorder {
        fn commit(&mut self, commit: Vec<u8>) -> Result<(), String> {
            if self.cancel_after == Some(self.commits.len()) {
                return Err("cancelled".into());
            }
            self.commits.push(commit);
            Ok(())
        }
        fn opening_request(&mut self) -> Result<Vec<u8>, String> {
            let r = OpeningRequest { entropy: [7; 32] };
            self.request = Some(r);
            Ok(r.encode())
        }
        fn opening(&mut self, opening: Vec<u8>) -> Result<(), String> {
            self.openings.push(opening);
            Ok(())
        }
        fn cancelled(&self) -> bool {
            false
        }
    }

    fn small_challenge(keeper: &SigningKey, worker: &SigningKey) -> SignedChallenge {
        let params = ChallengeParams {
            n: 64,
            inner: 64,
            rounds: 3,
            tile: 16,
            samples_per_round: 1,
            rounds_sampled: 2,
        };
        let body = ChallengeBody {
            version: PROTOCOL_VERSION,
            slot: 1,
            slot_hash: [1; 32],
            epoch: 1,
            keeper: keeper.verifying_key().to_bytes(),
            worker: worker.verifying_key().to_bytes(),
            gpu_class: GpuClass::CpuReference,
            gpus: 1,
            params,
            keeper_entropy: [3; 32],
        };
        SignedChallenge::issue(keeper, body).expect("issue")
    }

    #[test]
    fn proof_executor_streams_commits_then_opens_a_verifiable_proof() {
        let keeper = SigningKey::from_bytes(&[9; 32]);
        let worker = SigningKey::from_bytes(&[2; 32]);
        let ch = small_challenge(&keeper, &worker);
        let mut io = Recorder::default();
        let summary = GpunetProof
            .prove(&ch.encode(), &worker, &mut io)
            .expect("proof runs");
        assert!(summary.contains("rounds=3"), "{summary}");
        assert_eq!((io.commits.len(), io.openings.len()), (3, 1));
        // What the keeper would assemble verifies.
        let mut session = KeeperSession::new(ch.clone());
        for (i, c) in io.commits.iter().enumerate() {
            let c = RoundCommit::decode(c).expect("commit decodes");
            session
                .receive_at(c, 1000 * (i as u64 + 1))
                .expect("commit");
        }
        session
            .request_opening_with(io.request.expect("requested").entropy)
            .expect("request");
        let t = session
            .finish(Opening::decode(&io.openings[0]).expect("opening decodes"))
            .expect("transcript");
        let report = verify(&t, &Expectations::for_issued(&ch)).expect("verifies");
        assert_eq!(report.digest, t.digest());
    }

    #[test]
    fn proof_executor_refuses_garbage_other_workers_and_stops_when_cancelled() {
        let keeper = SigningKey::from_bytes(&[9; 32]);
        let worker = SigningKey::from_bytes(&[2; 32]);
        let other = SigningKey::from_bytes(&[4; 32]);
        let ch = small_challenge(&keeper, &worker);
        assert!(
            GpunetProof
                .prove(b"garbage", &worker, &mut Recorder::default())
                .is_err()
        );
        assert!(
            GpunetProof
                .prove(&ch.encode(), &other, &mut Recorder::default())
                .is_err()
        );
        let mut io = Recorder {
            cancel_after: Some(1),
            ..Default::default()
        };
        assert!(GpunetProof.prove(&ch.encode(), &worker, &mut io).is_err());
        assert_eq!((io.commits.len(), io.openings.len()), (1, 0));
    }

    #[tokio::test]
    async fn builtins_behave() {
        let ct = CancellationToken::new();
        let b = |n: &str, p: &str| pb::BuiltinTask {
            name: n.into(),
            payload: Bytes::copy_from_slice(p.as_bytes()),
        };
        assert_eq!(
            builtin(&b("echo", "a"), &[Bytes::from_static(b"b")], &ct)
                .await
                .outputs[0],
            Bytes::from_static(b"ab")
        );
        assert_eq!(builtin(&b("fill", "5"), &[], &ct).await.outputs[0].len(), 5);
        assert_eq!(
            builtin(&b("fail", "x"), &[], &ct).await.kind,
            ErrorKind::Application as i32
        );
        assert_eq!(
            builtin(&b("fill", "nope"), &[], &ct).await.kind,
            ErrorKind::Invalid as i32
        );
        ct.cancel();
        assert_eq!(
            builtin(&b("sleep", "10000"), &[], &ct).await.kind,
            ErrorKind::Cancelled as i32
        );
    }
}
