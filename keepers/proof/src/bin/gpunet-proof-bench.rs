//! `gpunet-proof-bench` — the numbers behind BENCHMARKS.md ("Benchmark proofs").
//!
//! ```text
//! cargo build -p gpunet-proof --release --bins
//! target/release/gpunet-proof-bench                      # everything this machine can do
//! LD_LIBRARY_PATH=/usr/local/cuda/lib64 target/release/gpunet-proof-bench   # on a GPU box
//! ```
//!
//! Options: `--cpu-n 512,1024,2048` (CPU prover sizes), `--verify-n 16384` (verifier size,
//! default parameters otherwise), `--gpu-n 8192,16384` (CUDA prover sizes),
//! `--gpu-inner-mult 1,4` (inner dimension as multiples of n), `--gpu-rounds 8`,
//! `--skip-cpu`, `--skip-verify`.
//!
//! Prints: CPU prover throughput; verifier cost on one core for the default sampling; and,
//! with a GPU, the CUDA prover's effective int8 TOP/s against bare cuBLAS int8 `gemm_ex` of
//! the same size in the same run, plus a bit-identity check of CUDA against CPU roots.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use gpunet_proof::merkle::{Hash, leaf_hash, node_hash};
use gpunet_proof::opening::opening_message;
use gpunet_proof::*;
use sha2::{Digest, Sha256};

type Res<T> = Result<T, Box<dyn Error>>;

struct Args {
    cpu_n: Vec<u32>,
    verify_n: u32,
    gpu_n: Vec<u32>,
    gpu_inner_mult: Vec<u32>,
    gpu_rounds: u32,
    skip_cpu: bool,
    skip_verify: bool,
}

fn parse_list(s: &str) -> Res<Vec<u32>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<u32>()
                .map_err(|e| format!("bad number {x:?}: {e}").into())
        })
        .collect()
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        cpu_n: vec![512, 1024, 2048, 4096],
        verify_n: 16_384,
        gpu_n: vec![8192, 16_384],
        gpu_inner_mult: vec![1, 4],
        gpu_rounds: 8,
        skip_cpu: false,
        skip_verify: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--cpu-n" => a.cpu_n = parse_list(&val()?)?,
            "--verify-n" => a.verify_n = val()?.parse()?,
            "--gpu-n" => a.gpu_n = parse_list(&val()?)?,
            "--gpu-inner-mult" => a.gpu_inner_mult = parse_list(&val()?)?,
            "--gpu-rounds" => a.gpu_rounds = val()?.parse()?,
            "--skip-cpu" => a.skip_cpu = true,
            "--skip-verify" => a.skip_verify = true,
            "-h" | "--help" => {
                println!(
                    "see the module docs: gpunet-proof-bench [--cpu-n LIST] [--verify-n N] [--gpu-n LIST] [--gpu-inner-mult LIST] [--gpu-rounds K] [--skip-cpu] [--skip-verify]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(a)
}

fn keeper() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn worker() -> SigningKey {
    SigningKey::from_bytes(&[2; 32])
}

fn challenge(params: ChallengeParams, class: GpuClass, salt: u8) -> Res<SignedChallenge> {
    Ok(SignedChallenge::issue(
        &keeper(),
        ChallengeBody {
            version: PROTOCOL_VERSION,
            slot: 1,
            slot_hash: [salt; 32],
            epoch: 1,
            keeper: keeper().verifying_key().to_bytes(),
            worker: worker().verifying_key().to_bytes(),
            gpu_class: class,
            gpus: 1,
            params,
            keeper_entropy: [salt.wrapping_add(1); 32],
        },
    )?)
}

fn tops(ops: f64, secs: f64) -> f64 {
    ops / secs / 1e12
}

fn main() -> Res<()> {
    let args = parse_args()?;
    println!("# gpunet-proof-bench");
    println!(
        "CPU: {} rayon threads, int8 kernel: {:?} (cap with GPUNET_PROOF_KERNEL=vnni|avx2|sse2|portable)",
        rayon::current_num_threads(),
        gpunet_proof::gemm::kernel()
    );
    if !args.skip_cpu {
        cpu_prover(&args)?;
    }
    if !args.skip_verify {
        verifier_cost(args.verify_n)?;
    }
    gpu(&args)?;
    Ok(())
}

// ------------------------------------------------------------------ CPU prover

fn cpu_prover(args: &Args) -> Res<()> {
    println!("\n## CPU reference prover (one round = PRF + exact int8 GEMM + SHA-256 Merkle)");
    println!(
        "{:>6} {:>10} {:>10} {:>12} {:>10}",
        "n", "round s", "PRF s", "eff GOP/s", "rounds"
    );
    for &n in &args.cpu_n {
        let p = ChallengeParams::square(n, 3, 16, 1, 1);
        p.validate()?;
        let rounds = if n >= 4096 { 2 } else { 3 };
        let mut b = CpuBackend::new(ChallengeParams { rounds, ..p })?;
        let mut best = f64::MAX;
        for r in 1..=rounds {
            let t0 = Instant::now();
            b.compute_round(r, &[r as u8; 32])?;
            best = best.min(t0.elapsed().as_secs_f64());
        }
        let t0 = Instant::now();
        let _a = gpunet_proof::cpu::generate_matrix(&p, &[9; 32], gpunet_proof::prf::STREAM_A);
        let _b = gpunet_proof::cpu::generate_matrix(&p, &[9; 32], gpunet_proof::prf::STREAM_B);
        let prf = t0.elapsed().as_secs_f64();
        println!(
            "{n:>6} {best:>10.4} {prf:>10.4} {:>12.1} {rounds:>10}",
            tops(p.ops_per_round(), best) * 1e3
        );
    }
    Ok(())
}

// ------------------------------------------------------------------ verifier cost

/// Builds a transcript that passes every check for parameters far too large to prove on a
/// CPU: the harness draws the keeper's opening randomness *before* the rounds (a real keeper
/// never does), computes only the tiles that will be opened, and fills every Merkle subtree
/// that holds no opened tile with an arbitrary hash. Unopened rounds get arbitrary roots.
/// The verifier cannot tell: it only ever looks at the opened tiles and their paths.
fn synthetic_transcript(p: ChallengeParams) -> Res<Transcript> {
    let c = challenge(p, GpuClass::CpuReference, 7)?;
    let nonce = c.nonce();
    let request = OpeningRequest {
        entropy: [0x5a; 32],
    };
    let selection = request.selection(&nonce, &p);
    let mut by_round: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for &(r, t) in &selection {
        by_round.entry(r).or_default().insert(t);
    }
    let depth = p.merkle_depth();
    let mut commits = Vec::new();
    let mut tiles = Vec::new();
    let mut prev = gpunet_proof::challenge::GENESIS_ROOT;
    for round in 1..=p.rounds {
        let seed = round_seed(&nonce, round, &prev);
        let root = match by_round.get(&round) {
            None => Sha256::digest([&seed[..], b"filler root"].concat()).into(),
            Some(set) => {
                let mut leaves = BTreeMap::new();
                for &t in set {
                    let values = compute_tile(&p, &seed, t);
                    leaves.insert(t, (leaf_hash(&values), values));
                }
                let tree = Sparse { leaves: &leaves };
                for (&t, (_, values)) in &leaves {
                    let path = (0..depth)
                        .map(|l| tree.node(l, (u64::from(t) >> l) ^ 1))
                        .collect();
                    tiles.push(TileOpening {
                        round,
                        tile: t,
                        values: values.clone(),
                        path,
                    });
                }
                tree.node(depth, 0)
            }
        };
        commits.push(RoundCommit {
            round,
            seed,
            root,
            worker_elapsed_us: 0,
        });
        prev = root;
    }
    let sig = {
        use ed25519_dalek::Signer;
        worker()
            .sign(&opening_message(&nonce, &commits, &request, &tiles))
            .to_bytes()
    };
    Ok(Transcript {
        challenge: c,
        commits: commits
            .into_iter()
            .enumerate()
            .map(|(i, commit)| ReceivedCommit {
                commit,
                received_us: 1000 + 10 * i as u64,
            })
            .collect(),
        request,
        opening: Opening {
            tiles,
            worker_signature: sig,
        },
    })
}

struct Sparse<'a> {
    leaves: &'a BTreeMap<u32, (Hash, Vec<i32>)>,
}

impl Sparse<'_> {
    fn node(&self, level: u32, index: u64) -> Hash {
        let lo = index << level;
        let hi = (index + 1) << level;
        let has_leaf = self
            .leaves
            .range(lo as u32..hi.min(u64::from(u32::MAX)) as u32)
            .next()
            .is_some();
        if !has_leaf {
            return Sha256::digest([&level.to_le_bytes()[..], &index.to_le_bytes()].concat())
                .into();
        }
        if level == 0 {
            return self
                .leaves
                .get(&(index as u32))
                .map(|l| l.0)
                .unwrap_or([0; 32]);
        }
        node_hash(
            &self.node(level - 1, 2 * index),
            &self.node(level - 1, 2 * index + 1),
        )
    }
}

fn verifier_cost(n: u32) -> Res<()> {
    let p = ChallengeParams {
        n,
        inner: n,
        ..ChallengeParams::default()
    };
    p.validate()?;
    println!(
        "\n## Verifier cost, one core: n = {n}, K = {}, tile = {}, {} rounds x {} tiles = {} tiles opened",
        p.rounds,
        p.tile,
        p.rounds_sampled,
        p.samples_per_round,
        p.opened_tiles()
    );
    println!(
        "(synthetic transcript: only the opened tiles are real; other leaves and unopened roots are arbitrary — see docs/proof.md)"
    );
    let t0 = Instant::now();
    let t = synthetic_transcript(p)?;
    println!(
        "harness built the transcript in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let e = Expectations::for_issued(&t.challenge);
    let mut times = Vec::new();
    for _ in 0..7 {
        let t0 = Instant::now();
        let r = verify(&t, &e).map_err(|e| format!("synthetic transcript refused: {e}"))?;
        times.push(t0.elapsed().as_secs_f64());
        if r.tiles_checked != p.opened_tiles() {
            return Err(format!(
                "checked {} tiles, expected {}",
                r.tiles_checked,
                p.opened_tiles()
            )
            .into());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let one_tile = {
        let t0 = Instant::now();
        for i in 0..8u32 {
            std::hint::black_box(compute_tile(&p, &[i as u8; 32], i));
        }
        t0.elapsed().as_secs_f64() / 8.0
    };
    let gpu_floor = f64::from(p.rounds) * p.ops_per_round() / 930e12;
    println!(
        "verify(): min {:.2} ms, median {median_ms:.2} ms over {} runs; one tile recomputed: {:.3} ms",
        times[0] * 1e3,
        times.len(),
        one_tile * 1e3,
        median_ms = median * 1e3
    );
    println!(
        "prover GPU time if every round ran at bare-cuBLAS speed (930 TOP/s, estimate): {:.3} s -> verifier = {:.2} % of it",
        gpu_floor,
        100.0 * median / gpu_floor
    );
    let ser = t.encode().len();
    println!("transcript size: {ser} bytes; digest {}", hex(&t.digest()));
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ------------------------------------------------------------------ GPU

fn gpu(args: &Args) -> Res<()> {
    println!("\n## CUDA prover");
    let small = ChallengeParams::square(256, 3, 16, 4, 2);
    let gpu = match CudaBackend::new(small) {
        Ok(g) => g,
        Err(e) => {
            println!("not measured: {e}");
            let (_, note) = best_backend(small)?;
            println!("{note}");
            return Ok(());
        }
    };
    println!("device: {}", gpu.device_name());
    drop(gpu);

    // Bit identity: the same challenges on both backends, then a GPU proof verified.
    for p in [
        small,
        ChallengeParams::square(1024, 2, 32, 4, 2),
        ChallengeParams {
            inner: 2048,
            ..ChallengeParams::square(512, 3, 16, 2, 3)
        },
    ] {
        let c = challenge(p, GpuClass::CpuReference, 3)?;
        let mut g = CudaBackend::new(p)?;
        let mut cpu = CpuBackend::new(p)?;
        let gr = prove(&c, &mut g, |_| Ok(()))?;
        let cr = prove(&c, &mut cpu, |_| Ok(()))?;
        let same = gr
            .commits()
            .iter()
            .zip(cr.commits())
            .all(|(a, b)| a.root == b.root && a.seed == b.seed);
        println!(
            "bit identity n={} inner={} K={} tile={}: CUDA roots {} CPU roots",
            p.n,
            p.inner,
            p.rounds,
            p.tile,
            if same { "==" } else { "!= (MISMATCH)" }
        );
        let mut session = KeeperSession::new(c.clone());
        for rc in gr.commits() {
            session.receive(rc.clone())?;
        }
        let req = session.request_opening()?;
        let t = session.finish(gr.open(&mut g, &req, &worker())?)?;
        match verify(&t, &Expectations::for_issued(&c)) {
            Ok(_) => println!("  GPU proof (paths read back from device trees) verifies"),
            Err(e) => println!("  GPU proof REFUSED: {e}"),
        }
    }

    println!(
        "\n{:>6} {:>6} {:>4} {:>12} {:>14} {:>12} {:>8}",
        "n", "inner", "K", "bare TOP/s", "prover TOP/s", "round ms", "ratio"
    );
    for (n, mult) in args
        .gpu_n
        .iter()
        .flat_map(|&n| args.gpu_inner_mult.iter().map(move |&m| (n, m)))
    {
        let p = ChallengeParams {
            inner: n.saturating_mul(mult),
            ..ChallengeParams::square(n, args.gpu_rounds.max(2), 16, 1, 2)
        };
        if let Err(e) = p.validate() {
            println!("{n:>6} x{mult}: {e}");
            continue;
        }
        let mut g = match CudaBackend::new(p) {
            Ok(g) => g,
            Err(e) => {
                println!("{n:>6}: {e}");
                continue;
            }
        };
        let bare1 = g.bare_gemm_seconds(10)?;
        // Warm-up challenge (kernel JIT, cuBLAS heuristics), then the measured one.
        let warm = challenge(
            ChallengeParams { rounds: 1, ..p },
            GpuClass::CpuReference,
            4,
        )?;
        let mut gw = CudaBackend::new(ChallengeParams { rounds: 1, ..p })?;
        prove(&warm, &mut gw, |_| Ok(()))?;
        drop(gw);
        let c = challenge(p, GpuClass::H100, 5)?;
        let start = Instant::now();
        let mut stamps = Vec::new();
        prove(&c, &mut g, |_| {
            stamps.push(start.elapsed().as_secs_f64());
            Ok(())
        })?;
        let bare2 = g.bare_gemm_seconds(10)?;
        let bare = 0.5 * (bare1 + bare2);
        // Gaps between roots, as the keeper's timing check sees them.
        let gaps = (stamps[stamps.len() - 1] - stamps[0]) / (stamps.len() - 1) as f64;
        let eff = tops(p.ops_per_round(), gaps);
        let bare_tops = tops(p.ops_per_round(), bare);
        println!(
            "{n:>6} {:>6} {:>4} {bare_tops:>12.1} {eff:>14.1} {:>12.3} {:>7.1}%",
            p.inner,
            p.rounds,
            gaps * 1e3,
            100.0 * eff / bare_tops
        );
    }
    Ok(())
}
