//! Benchmark proofs over the task stream: the keeper challenges a worker of the lease's
//! cluster, times its commits, requests an opening and verifies it (`ProveWorker`). Honest,
//! dishonest and silent provers, the lease boundary, and the evidence each verdict leaves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use gpunet_keeper::store::{Evidence, EvidenceKind, read_evidence};
use gpunet_keeper::{KeeperConfig, LeaseInfo};
use gpunet_proof::merkle::{Hash, MerkleTree, leaf_hash};
use gpunet_proof::{
    CpuBackend, Expectations, OpeningRequest, ProofError, Rejection, RoundBackend, SignedChallenge,
    Transcript, compute_tile, verify,
};
use gpunet_proto::v1 as pb;
use gpunet_task_client::Client;
use gpunet_worker::{ProofExecutor, ProofIo};
use parking_lot::Mutex;
use tonic::Code;

use crate::common::*;

/// Small enough for a debug-build CPU prover: n = 64 (16 tiles of 16×16), 4 rounds, every
/// round opened once.
const N: u32 = 64;
const ROUNDS: u32 = 4;

struct Proving {
    env: Env,
    db: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

fn config(timeout: Duration) -> (KeeperConfig, std::path::PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("k.redb");
    let mut cfg = test_config();
    cfg.db_path = db.to_string_lossy().into_owned();
    cfg.proof_timeout = timeout;
    (cfg, db, tmp)
}

impl Proving {
    async fn start(timeout: Duration) -> Proving {
        let (cfg, db, tmp) = config(timeout);
        Proving {
            env: Env::start(cfg, 4).await,
            db,
            _tmp: tmp,
        }
    }

    /// A one-GPU worker with the given proof executor, in the lease's cluster.
    async fn worker(&mut self, proof: Arc<dyn ProofExecutor>) -> String {
        let c = self.env.worker_config(1, 2);
        let before = self.env.keeper.core().connected_workers();
        let h = gpunet_worker::spawn_with(c, proof);
        let id = h.id().to_string();
        self.env.workers.push(h);
        wait_until(Duration::from_secs(10), || {
            self.env.keeper.core().connected_workers() > before
        })
        .await;
        id
    }

    async fn prove(&self, c: &Client, worker: &str) -> pb::ProofVerdict {
        c.prove(worker, Some(N), Some(ROUNDS))
            .await
            .expect("a proof verdict")
    }

    /// Stops the keeper and reads the proof evidence it persisted.
    async fn evidence(self) -> Vec<Evidence> {
        for w in &self.env.workers {
            w.kill();
        }
        self.env.keeper.shutdown().await.expect("shutdown");
        read_evidence(&self.db.to_string_lossy())
            .expect("evidence")
            .into_iter()
            .filter(|e| e.kind() == EvidenceKind::Proof)
            .collect()
    }
}

fn transcript_of(v: &pb::ProofVerdict) -> Transcript {
    let t = Transcript::decode(&v.transcript).expect("transcript decodes");
    assert_eq!(
        t.digest().as_slice(),
        &v.digest[..],
        "the digest is the transcript's"
    );
    t
}

fn assert_recorded(ev: &[Evidence], v: &pb::ProofVerdict) {
    let e = ev
        .iter()
        .find(|e| e.tasks == vec![v.task_id])
        .unwrap_or_else(|| panic!("no evidence for proof task {}: {ev:?}", v.task_id));
    assert_eq!(
        (
            e.worker.as_str(),
            e.lease.as_str(),
            e.verdict(),
            e.stage(),
            e.rejection.as_str()
        ),
        (
            v.worker_id.as_str(),
            v.lease_id.as_str(),
            v.verdict(),
            v.stage(),
            v.rejection.as_str()
        )
    );
    assert_eq!(e.digest, v.digest);
    assert_eq!(e.transcript, v.transcript);
    assert_eq!(e.provider, PROVIDER);
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Runs the honest rounds on the CPU backend; `tamper` may change each commit before it goes
/// up (the prover's own seed chain is unaffected).
fn honest_rounds(
    challenge: &[u8],
    io: &mut dyn ProofIo,
    mut tamper: impl FnMut(&mut gpunet_proof::RoundCommit),
) -> Result<(SignedChallenge, CpuBackend, gpunet_proof::ProverRun), String> {
    let ch = SignedChallenge::decode(challenge).map_err(err)?;
    let mut backend = CpuBackend::new(*ch.params()).map_err(err)?;
    let run = gpunet_proof::prove(&ch, &mut backend, |c| {
        let mut c = c.clone();
        tamper(&mut c);
        io.commit(c.encode()).map_err(ProofError::Protocol)
    })
    .map_err(err)?;
    Ok((ch, backend, run))
}

fn request(io: &mut dyn ProofIo) -> Result<OpeningRequest, String> {
    OpeningRequest::decode(&io.opening_request()?).map_err(err)
}

/// Commits a wrong root for round 1 (and chains round 2 from the true one).
struct WrongRoot;

impl ProofExecutor for WrongRoot {
    fn prove(&self, ch: &[u8], key: &SigningKey, io: &mut dyn ProofIo) -> Result<String, String> {
        let (_, mut backend, run) = honest_rounds(ch, io, |c| {
            if c.round == 1 {
                c.root[0] ^= 1;
            }
        })?;
        let req = request(io)?;
        io.opening(run.open(&mut backend, &req, key).map_err(err)?.encode())?;
        Ok("cheated".into())
    }
}

/// A backend whose every tile is off by one in its first value, committed consistently (its
/// Merkle paths check out; only the recomputation can catch it).
struct OffByOne {
    params: gpunet_proof::ChallengeParams,
    rounds: Vec<(Vec<Vec<i32>>, MerkleTree)>,
}

impl RoundBackend for OffByOne {
    fn name(&self) -> String {
        "off by one".into()
    }

    fn compute_round(&mut self, _round: u32, seed: &Hash) -> Result<Hash, ProofError> {
        let tiles: Vec<Vec<i32>> = (0..self.params.tiles_per_round() as u32)
            .map(|t| {
                let mut v = compute_tile(&self.params, seed, t);
                v[0] = v[0].wrapping_add(1);
                v
            })
            .collect();
        let tree = MerkleTree::from_leaves(tiles.iter().map(|v| leaf_hash(v)).collect())?;
        let root = tree.root();
        self.rounds.push((tiles, tree));
        Ok(root)
    }

    fn merkle_path(&mut self, round: u32, tile: u32) -> Result<Vec<Hash>, ProofError> {
        self.rounds[round as usize - 1]
            .1
            .path(u64::from(tile))
            .ok_or_else(|| ProofError::Protocol("no such tile".into()))
    }

    fn tile_values(
        &mut self,
        _params: &gpunet_proof::ChallengeParams,
        round: u32,
        _seed: &Hash,
        tile: u32,
    ) -> Result<Vec<i32>, ProofError> {
        Ok(self.rounds[round as usize - 1].0[tile as usize].clone())
    }
}

struct BadTiles;

impl ProofExecutor for BadTiles {
    fn prove(&self, ch: &[u8], key: &SigningKey, io: &mut dyn ProofIo) -> Result<String, String> {
        let ch = SignedChallenge::decode(ch).map_err(err)?;
        let mut backend = OffByOne {
            params: *ch.params(),
            rounds: Vec::new(),
        };
        let run = gpunet_proof::prove(&ch, &mut backend, |c| {
            io.commit(c.encode()).map_err(ProofError::Protocol)
        })
        .map_err(err)?;
        let req = request(io)?;
        io.opening(run.open(&mut backend, &req, key).map_err(err)?.encode())?;
        Ok("cheated".into())
    }
}

/// Honest the first time; afterwards it answers every opening request with the opening it
/// made for the first challenge (another nonce).
#[derive(Default)]
struct Replayer {
    kept: Mutex<Option<Vec<u8>>>,
}

impl ProofExecutor for Replayer {
    fn prove(&self, ch: &[u8], key: &SigningKey, io: &mut dyn ProofIo) -> Result<String, String> {
        let (_, mut backend, run) = honest_rounds(ch, io, |_| {})?;
        let req = request(io)?;
        let kept = self.kept.lock().clone();
        let opening = match kept {
            Some(old) => old,
            None => {
                let o = run.open(&mut backend, &req, key).map_err(err)?.encode();
                *self.kept.lock() = Some(o.clone());
                o
            }
        };
        io.opening(opening)?;
        Ok("replayed".into())
    }
}

/// Streams honest commits, then never answers the opening request (until cancelled).
struct Silent;

impl ProofExecutor for Silent {
    fn prove(&self, ch: &[u8], _key: &SigningKey, io: &mut dyn ProofIo) -> Result<String, String> {
        honest_rounds(ch, io, |_| {})?;
        let until = Instant::now() + Duration::from_secs(30);
        while !io.cancelled() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        Err("silent prover stopped".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_honest_worker_proof_verifies_and_digest_matches_transcript() {
    let mut p = Proving::start(Duration::from_secs(20)).await;
    let w = p.worker(Arc::new(gpunet_worker::GpunetProof)).await;
    let c = p.env.client().await;
    let v = p.prove(&c, &w).await;
    assert!(v.ok, "{v:?}");
    assert_eq!(
        (v.verdict(), v.rejection.as_str(), v.reason.as_str()),
        (pb::ProofOutcome::Ok, "", "")
    );
    // Declared GPUs: the CPU reference class, no throughput claim.
    assert_eq!(v.gpu_class, "CpuReference");
    assert_eq!(
        (v.n, v.rounds, v.rounds_received, v.tiles_checked),
        (N, ROUNDS, ROUNDS, ROUNDS)
    );
    assert_eq!(v.digest.len(), 32);
    assert!(v.measured_tops > 0.0);
    // Anyone holding the transcript recomputes the digest and re-verifies it.
    let t = transcript_of(&v);
    let keeper_key = bs58::decode(&p.env.keeper.keeper_id).into_vec().unwrap();
    assert_eq!(&t.challenge.body.keeper[..], &keeper_key[..]);
    assert_eq!(
        bs58::encode(t.challenge.body.worker).into_string(),
        w,
        "bound to the worker"
    );
    let report = verify(&t, &Expectations::for_issued(&t.challenge)).expect("re-verifies");
    assert_eq!(&report.digest[..], &v.digest[..]);
    // The proof task finished with the worker's summary as its output.
    let r = c
        .get(v.task_id, 0, Duration::from_secs(10))
        .await
        .expect("task result");
    let st = r.status.unwrap();
    assert_eq!(st.state, pb::TaskState::Finished as i32, "{st:?}");
    assert!(
        String::from_utf8_lossy(&r.data).starts_with("proof nonce="),
        "{:?}",
        r.data
    );
    let ev = p.evidence().await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_recorded(&ev, &v);
    assert!(ev[0].measured_tops > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_wrong_root_is_refused_at_the_next_commit() {
    let mut p = Proving::start(Duration::from_secs(20)).await;
    let w = p.worker(Arc::new(WrongRoot)).await;
    let c = p.env.client().await;
    let v = p.prove(&c, &w).await;
    assert_eq!(
        (v.verdict(), v.rejection.as_str()),
        (pb::ProofOutcome::Rejected, "SeedMismatch"),
        "{v:?}"
    );
    assert_eq!(
        v.reason,
        Rejection::SeedMismatch { round: 2 }.to_string(),
        "refused at round 2, before any opening"
    );
    assert_eq!(v.rounds_received, 1);
    assert!(v.digest.is_empty() && v.transcript.is_empty());
    let ev = p.evidence().await;
    assert_recorded(&ev, &v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_bad_opening_tile_is_refused_with_tile_mismatch() {
    let mut p = Proving::start(Duration::from_secs(20)).await;
    let w = p.worker(Arc::new(BadTiles)).await;
    let c = p.env.client().await;
    let v = p.prove(&c, &w).await;
    assert_eq!(
        (v.verdict(), v.rejection.as_str()),
        (pb::ProofOutcome::Rejected, "TileMismatch"),
        "{v:?}"
    );
    assert!(!v.ok);
    // The refused transcript is evidence too: it re-verifies to the same rejection.
    let t = transcript_of(&v);
    match verify(&t, &Expectations::for_issued(&t.challenge)) {
        Err(Rejection::TileMismatch { row: 0, col: 0, .. }) => {}
        other => panic!("expected a mismatch at (0, 0), got {other:?}"),
    }
    let ev = p.evidence().await;
    assert_recorded(&ev, &v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_replayed_opening_for_another_nonce_is_refused() {
    let mut p = Proving::start(Duration::from_secs(20)).await;
    let w = p.worker(Arc::new(Replayer::default())).await;
    let c = p.env.client().await;
    let first = p.prove(&c, &w).await;
    assert!(first.ok, "{first:?}");
    let second = p.prove(&c, &w).await;
    assert_eq!(
        (second.verdict(), second.rejection.as_str()),
        (pb::ProofOutcome::Rejected, "BadWorkerSignature"),
        "{second:?}"
    );
    let t = transcript_of(&second);
    assert_ne!(t.challenge.nonce(), transcript_of(&first).challenge.nonce());
    assert_eq!(
        verify(&t, &Expectations::for_issued(&t.challenge)),
        Err(Rejection::BadWorkerSignature)
    );
    let ev = p.evidence().await;
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_recorded(&ev, &first);
    assert_recorded(&ev, &second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_worker_that_never_opens_gets_a_timeout_verdict_within_the_bound() {
    let timeout = Duration::from_millis(1500);
    let mut p = Proving::start(timeout).await;
    let w = p.worker(Arc::new(Silent)).await;
    let c = p.env.client().await;
    let start = Instant::now();
    let v = p.prove(&c, &w).await;
    let took = start.elapsed();
    assert_eq!(
        (v.verdict(), v.stage(), v.rejection.as_str()),
        (pb::ProofOutcome::Timeout, pb::ProofStage::Opening, ""),
        "{v:?}"
    );
    assert_eq!(v.rounds_received, ROUNDS);
    assert!(took >= timeout, "timed out too early: {took:?}");
    // The bound: the rounds (milliseconds here) plus the timeout, with slack for a loaded
    // machine.
    assert!(
        took < timeout + Duration::from_secs(3),
        "timed out too late: {took:?}"
    );
    // The keeper cancelled the worker's side.
    let st = c
        .get(v.task_id, 0, Duration::from_secs(10))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.state, pb::TaskState::Cancelled as i32, "{st:?}");
    let ev = p.evidence().await;
    assert_recorded(&ev, &v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_user_cannot_prove_a_worker_outside_their_lease() {
    let mut p = Proving::start(Duration::from_secs(20)).await;
    let mine = p.worker(Arc::new(gpunet_worker::GpunetProof)).await;
    // A second provider with its own lease, user and worker.
    let other_user = key(2);
    p.env.leases.insert(LeaseInfo {
        lease_id: "lease-2".into(),
        user: other_user.verifying_key().to_bytes(),
        provider: "provider-2".into(),
        gpus: 1,
    });
    let mut wc = p.env.worker_config(1, 2);
    wc.provider = "provider-2".into();
    p.env
        .registry
        .allow("provider-2", wc.key.verifying_key().to_bytes());
    let before = p.env.keeper.core().connected_workers();
    let h = gpunet_worker::spawn(wc);
    let theirs = h.id().to_string();
    p.env.workers.push(h);
    wait_until(Duration::from_secs(10), || {
        p.env.keeper.core().connected_workers() > before
    })
    .await;

    let c = p.env.client().await;
    let e = c.prove(&theirs, Some(N), Some(ROUNDS)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = c
        .prove("not-a-worker", Some(N), Some(ROUNDS))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Naming the other lease with this lease's session does not help.
    let e = c
        .raw()
        .prove_worker(pb::ProveRequest {
            auth: Some(c.next_auth()),
            lease_id: "lease-2".into(),
            worker_id: theirs.clone(),
            n: Some(N),
            rounds: Some(ROUNDS),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Sizes a CPU-only worker is never asked for are refused before anything runs.
    let e = c.prove(&mine, Some(4096), Some(ROUNDS)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // The other lease's user proves their own worker.
    let c2 = Client::connect(&p.env.keeper.url(), "lease-2", &other_user)
        .await
        .expect("session on lease-2");
    let v = c2
        .prove(&theirs, Some(N), Some(ROUNDS))
        .await
        .expect("verdict");
    assert!(v.ok, "{v:?}");
    // Refused requests leave no evidence; the verdict does.
    let ev = p.evidence().await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_recorded_for(&ev[0], &v, "provider-2");
}

fn assert_recorded_for(e: &Evidence, v: &pb::ProofVerdict, provider: &str) {
    assert_eq!(
        (
            e.worker.as_str(),
            e.lease.as_str(),
            e.provider.as_str(),
            e.verdict()
        ),
        (
            v.worker_id.as_str(),
            "lease-2",
            provider,
            pb::ProofOutcome::Ok
        )
    );
    assert_eq!(e.digest, v.digest);
}
