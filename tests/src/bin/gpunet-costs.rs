//! `gpunet-costs`: what gpunet costs on chain, computed from the program's own account types and
//! the SDK's instruction builders (nothing estimated except compute units, which a natively run
//! program cannot report): each account's size and rent-exempt deposit, each instruction's
//! transaction size and signature count, and one whole lease's life in transactions and
//! lamports. Prints Markdown for BENCHMARKS.md (`bench/costs.sh` writes it under
//! bench/results/).
//!
//! Fees use Solana's base fee (5,000 lamports per signature) with no priority fee; rent uses
//! the default rent (what mainnet, devnet and the localnet charge).

use anchor_lang::Space;
use gpunet::instructions::{
    KeeperSlashArgs, LeaseCheckpointArgs, LeaseOpenArgs, ProviderRegisterArgs,
};
use gpunet::state::{Config, GpuClass, GpuOffer, Keeper, Lease, Provider, Verdict};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::{pda, token};
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::rent::Rent;
use solana_sdk::transaction::Transaction;

const FEE_PER_SIGNATURE: u64 = 5_000;
/// SPL Token account size.
const TOKEN_ACCOUNT: usize = 165;

/// Wire size of the signed transaction (compact-u16 signature count, the signatures, the
/// message) and its signature count.
fn size(ix: &[Instruction], payer: &Pubkey) -> (usize, usize) {
    let tx = Transaction::new_with_payer(ix, Some(payer));
    let sigs = tx.signatures.len();
    (1 + 64 * sigs + tx.message.serialize().len(), sigs)
}

fn main() {
    let rent = Rent::default();
    println!("### Accounts\n");
    println!("| account | bytes | rent-exempt deposit (lamports) | closed by | deposit back to |");
    println!("| --- | ---: | ---: | --- | --- |");
    let accounts: [(&str, usize, &str, &str); 8] = [
        ("config", 8 + Config::INIT_SPACE, "never", "—"),
        ("treasury vault (token)", TOKEN_ACCOUNT, "never", "—"),
        (
            "keeper",
            8 + Keeper::INIT_SPACE,
            "`keeper_close`",
            "the keeper",
        ),
        (
            "keeper vault (token)",
            TOKEN_ACCOUNT,
            "`keeper_close`",
            "the keeper",
        ),
        (
            "provider",
            8 + Provider::INIT_SPACE,
            "`provider_close`",
            "the provider",
        ),
        (
            "provider vault (token)",
            TOKEN_ACCOUNT,
            "`provider_close`",
            "the provider",
        ),
        (
            "lease",
            8 + Lease::INIT_SPACE,
            "`lease_close`",
            "the lease's rent payer",
        ),
        (
            "lease vault (token)",
            TOKEN_ACCOUNT,
            "`lease_close`",
            "the lease's rent payer",
        ),
    ];
    for (name, bytes, closed, back) in accounts {
        println!(
            "| {name} | {bytes} | {} | {closed} | {back} |",
            rent.minimum_balance(bytes)
        );
    }

    // Every party distinct, as on a real cluster.
    let [user, provider_w, keeper_w, k2, k3, mint] = std::array::from_fn(|_| Pubkey::new_unique());
    let provider = pda::provider(&provider_w);
    let lease = pda::lease(&user, 1);
    let parties = LeaseParties {
        lease,
        provider,
        keeper: pda::keeper(&keeper_w),
        mint,
        treasury: pda::treasury(),
    };
    let committee = [pda::keeper(&keeper_w), pda::keeper(&k2), pda::keeper(&k3)];
    let user_token = token::ata(&user, &mint);
    let offer = GpuOffer {
        class: GpuClass::H100,
        count: 8,
        vram_gib: 80,
        price_per_gpu_second: 10,
    };
    let open = ix::lease_open(
        &user,
        &user,
        &user_token,
        &provider,
        &mint,
        LeaseOpenArgs {
            nonce: 1,
            gpus: 2,
            duration: 3_600,
            max_price_per_gpu_second: 10,
        },
    );
    let draw = ix::lease_draw_committee(&lease, &committee);
    let checkpoint = ix::lease_checkpoint(
        &keeper_w,
        &parties,
        &token::ata(&provider_w, &mint),
        &token::ata(&keeper_w, &mint),
        LeaseCheckpointArgs {
            sequence: 1,
            period_start: 0,
            period_end: 300,
            proof_digest: [0; 32],
            verdict: Verdict::Pass,
            score: 0,
        },
    );
    let close = ix::lease_close(&user, &parties, &user_token, &user);
    let rows: Vec<(&str, Vec<Instruction>, Pubkey)> = vec![
        (
            "keeper_register",
            vec![ix::keeper_register(
                &keeper_w,
                &token::ata(&keeper_w, &mint),
                &mint,
                "http://203.0.113.7:7400",
            )],
            keeper_w,
        ),
        (
            "provider_register (8 worker keys)",
            vec![ix::provider_register(
                &provider_w,
                &mint,
                ProviderRegisterArgs {
                    region: "eu-west".into(),
                    zone: "a".into(),
                    endpoint: "grpc://203.0.113.8:7000".into(),
                    gpu: offer,
                    workers: (0..8).map(|_| Pubkey::new_unique()).collect(),
                },
            )],
            provider_w,
        ),
        (
            "provider_stake",
            vec![ix::provider_stake(
                &provider_w,
                &token::ata(&provider_w, &mint),
                &mint,
                1,
            )],
            provider_w,
        ),
        ("lease_open", vec![open], user),
        ("lease_draw_committee (3 members)", vec![draw], user),
        (
            "lease_top_up",
            vec![ix::lease_top_up(&user, &user_token, &lease, &mint, 1)],
            user,
        ),
        ("lease_checkpoint", vec![checkpoint], keeper_w),
        ("lease_close", vec![close], user),
        (
            "provider_slash (quorum 2)",
            vec![ix::provider_slash(
                &parties,
                &user_token,
                &[keeper_w, k2],
                [0; 32],
                2,
            )],
            keeper_w,
        ),
        (
            "keeper_slash (quorum 2)",
            vec![ix::keeper_slash(
                &parties,
                &pda::keeper(&k3),
                None,
                &user_token,
                &[keeper_w, k2],
                KeeperSlashArgs {
                    sequence: 1,
                    evidence_digest: [0; 32],
                },
            )],
            keeper_w,
        ),
    ];
    println!("\n### Transactions (limit: 1,232 bytes)\n");
    println!("| transaction | bytes | signatures | fee (lamports) |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, ixs, payer) in &rows {
        let (bytes, sigs) = size(ixs, payer);
        println!(
            "| {name} | {bytes} | {sigs} | {} |",
            sigs as u64 * FEE_PER_SIGNATURE
        );
    }

    // A whole lease: open, draw, N checkpoints, close.
    println!("\n### One lease's life (1 hour, checkpoints every 300 s: 12)\n");
    let n = 12u64;
    let fees = (1 + 1 + n + 1) * FEE_PER_SIGNATURE;
    let deposit = rent.minimum_balance(8 + Lease::INIT_SPACE) + rent.minimum_balance(TOKEN_ACCOUNT);
    println!("| what | transactions | lamports |");
    println!("| --- | ---: | ---: |");
    println!(
        "| open + draw (user) | 2 | {} fees + {deposit} deposit |",
        2 * FEE_PER_SIGNATURE
    );
    println!(
        "| {n} checkpoints (keeper) | {n} | {} |",
        n * FEE_PER_SIGNATURE
    );
    println!("| close (user) | 1 | {FEE_PER_SIGNATURE}; {deposit} deposit back |");
    println!(
        "| total | {} | {fees} spent in fees; the deposit comes back whole |",
        n + 3
    );
    println!(
        "\nCompute units are not measured: the program runs natively (host code), which has no \
         compute meter. Estimate: the heaviest instructions (`lease_checkpoint`, \
         `provider_slash`) do 2–3 SPL Token transfer CPIs (~4,500 CU each on SBF) plus account \
         deserialisation and PDA checks (a few thousand CU each), i.e. tens of thousands of CU, \
         well under the 200,000 default per instruction."
    );
}
