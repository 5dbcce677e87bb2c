//! Property test: random sequences of operations from several users, providers and keepers
//! through the real program (solana-program-test, real SPL Token), checked step by step
//! against a model of the rules.
//!
//! After every step:
//! - no token is created or destroyed: all token accounts of the mint add up to the supply,
//!   and every one of them holds exactly what the model says — so no party ever receives more
//!   (or less) than its due;
//! - for every open lease, funded = paid to provider + fees + refunded + still in escrow;
//! - an operation the model says is refused was refused, and left every balance unchanged;
//!   one the model says is allowed succeeded.

use std::collections::HashMap;

use gpunet::instructions::{LeaseCheckpointArgs, LeaseOpenArgs};
use gpunet::math::{bps_of, split_payment, split_slash};
use gpunet::state::{ConfigParams, LeaseStatus, Verdict};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::pda;
use gpunet_tests::*;
use proptest::prelude::*;
use solana_sdk::pubkey::Pubkey;

const USERS: usize = 3;
const PROVIDERS: usize = 2;
const KEEPERS: usize = 3;
const GPUS: u16 = 4;
const STAKE: u64 = 4_000 * TOKEN;
const SPARE: u64 = 2_000 * TOKEN;
const USER_TOKENS: u64 = 1_000_000;
const PRICE: u64 = 10; // the price `provider_args` offers

#[derive(Debug, Clone)]
enum Op {
    Open {
        user: usize,
        provider: usize,
        gpus: u16,
        duration: i64,
    },
    TopUp {
        lease: usize,
        funder: usize,
        amount: u64,
    },
    Checkpoint {
        lease: usize,
        advance: i64,
        pass: bool,
        seq_skew: i8,
        start_skew: i64,
        end_back: i64,
        wrong_keeper: bool,
    },
    Close {
        lease: usize,
        by_user: bool,
    },
    Slash {
        lease: usize,
        signers: Vec<usize>,
    },
    Reassign {
        lease: usize,
        keeper: usize,
    },
    Warp {
        secs: i64,
    },
    Stake {
        provider: usize,
        amount: u64,
    },
    Unstake {
        provider: usize,
        amount: u64,
    },
    Withdraw {
        provider: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..USERS, 0..PROVIDERS, 1..=3u16, 30..2_000i64)
            .prop_map(|(user, provider, gpus, duration)| Op::Open { user, provider, gpus, duration }),
        1 => (0..8usize, 0..=USERS, 1..20_000u64)
            .prop_map(|(lease, funder, amount)| Op::TopUp { lease, funder, amount }),
        5 => (
            0..8usize,
            0..900i64,
            prop::bool::weighted(0.85),
            prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)],
            prop_oneof![8 => Just(0i64), 1 => -5..0i64, 1 => 1..5i64],
            prop_oneof![3 => Just(0i64), 1 => 0..400i64],
            prop::bool::weighted(0.1),
        )
            .prop_map(|(lease, advance, pass, seq_skew, start_skew, end_back, wrong_keeper)| {
                Op::Checkpoint { lease, advance, pass, seq_skew, start_skew, end_back, wrong_keeper }
            }),
        1 => (0..8usize, prop::bool::weighted(0.7)).prop_map(|(lease, by_user)| Op::Close { lease, by_user }),
        1 => (0..8usize, prop::collection::vec(0..KEEPERS, 1..=3))
            .prop_map(|(lease, signers)| Op::Slash { lease, signers }),
        1 => (0..8usize, 0..KEEPERS).prop_map(|(lease, keeper)| Op::Reassign { lease, keeper }),
        2 => prop_oneof![9 => 0..5_000i64, 1 => Just(15 * 24 * 3_600i64)].prop_map(|secs| Op::Warp { secs }),
        1 => (0..PROVIDERS, 0..1_500 * TOKEN).prop_map(|(provider, amount)| Op::Stake { provider, amount }),
        1 => (0..PROVIDERS, 0..2_500 * TOKEN).prop_map(|(provider, amount)| Op::Unstake { provider, amount }),
        1 => (0..PROVIDERS).prop_map(|provider| Op::Withdraw { provider }),
    ]
}

/// The model's view of a provider.
#[derive(Debug, Clone, Default)]
struct ProviderModel {
    staked: u64,
    locked: u64,
    unbonding: u64,
    unbonding_ends_at: i64,
    jailed: bool,
    gpus_leased: u16,
}

/// The model's view of a lease.
#[derive(Debug, Clone)]
struct LeaseModel {
    parties: LeaseParties,
    user: usize,
    provider: usize,
    keeper: usize,
    gpus: u16,
    funded: u64,
    paid_out: u64,
    start: i64,
    paid_until: i64,
    last_sequence: u64,
    last_checkpoint_at: i64,
    stake_locked: u64,
    ended: bool,
    open: bool,
}

impl LeaseModel {
    fn rate(&self) -> u64 {
        PRICE * u64::from(self.gpus)
    }
    fn funded_until(&self) -> i64 {
        self.start + (self.funded / self.rate()) as i64
    }
}

struct Sim {
    f: Fixture,
    params: ConfigParams,
    users: Vec<Wallet>,
    stranger: Wallet,
    providers: Vec<Wallet>,
    keepers: Vec<Wallet>,
    pmodel: Vec<ProviderModel>,
    leases: Vec<LeaseModel>,
    nonces: Vec<u64>,
    /// Expected balance of every token account of the mint.
    expected: HashMap<Pubkey, u64>,
    supply: u64,
}

fn clone(w: &Wallet) -> Wallet {
    Wallet {
        keypair: w.keypair.insecure_clone(),
        token: w.token,
    }
}

impl Sim {
    async fn new() -> Self {
        let mut f = Fixture::new().await;
        let params = default_params();
        let mut expected = HashMap::new();
        expected.insert(f.treasury, 0);
        let mut keepers = Vec::new();
        for _ in 0..KEEPERS {
            let k = f.keeper_wallet().await;
            expected.insert(k.token, 0);
            expected.insert(
                pda::keeper_vault(&pda::keeper(&k.pubkey())),
                params.keeper_bond,
            );
            keepers.push(k);
        }
        let mut providers = Vec::new();
        for _ in 0..PROVIDERS {
            let p = f.provider_wallet(GPUS, STAKE, SPARE).await;
            expected.insert(p.token, SPARE);
            expected.insert(pda::provider_vault(&pda::provider(&p.pubkey())), STAKE);
            providers.push(p);
        }
        let mut users = Vec::new();
        for _ in 0..USERS {
            let u = f.wallet(USER_TOKENS).await;
            expected.insert(u.token, USER_TOKENS);
            users.push(u);
        }
        let stranger = f.wallet(USER_TOKENS).await;
        expected.insert(stranger.token, USER_TOKENS);
        let supply = f.supply().await;
        let pmodel = vec![
            ProviderModel {
                staked: STAKE,
                ..Default::default()
            };
            PROVIDERS
        ];
        Sim {
            f,
            params,
            users,
            stranger,
            providers,
            keepers,
            pmodel,
            leases: Vec::new(),
            nonces: vec![0; USERS],
            expected,
            supply,
        }
    }

    fn funder(&self, i: usize) -> Wallet {
        if i < USERS {
            clone(&self.users[i])
        } else {
            clone(&self.stranger)
        }
    }

    fn keeper_index(&self, keeper_account: &Pubkey) -> usize {
        self.keepers
            .iter()
            .position(|k| pda::keeper(&k.pubkey()) == *keeper_account)
            .expect("known keeper")
    }

    fn add(&mut self, account: Pubkey, amount: u64) {
        *self.expected.entry(account).or_insert(0) += amount;
    }

    fn sub(&mut self, account: Pubkey, amount: u64) {
        let e = self.expected.get_mut(&account).expect("known account");
        *e = e.checked_sub(amount).expect("model underflow");
    }

    async fn now(&mut self) -> i64 {
        self.f.clock().await.unix_timestamp
    }

    /// Runs one operation; returns (what the model predicted, what happened).
    async fn step(&mut self, op: &Op) -> (bool, bool) {
        let now = self.now().await;
        match op.clone() {
            Op::Warp { secs } => {
                self.f.warp(secs).await;
                (true, true)
            }
            Op::Open {
                user,
                provider,
                gpus,
                duration,
            } => {
                let pm = &self.pmodel[provider];
                let lock = 1_000 * TOKEN * u64::from(gpus);
                let deposit = PRICE * u64::from(gpus) * duration as u64;
                let user_token = self.users[user].token;
                let ok = !pm.jailed
                    && pm.unbonding == 0
                    && pm.gpus_leased + gpus <= GPUS
                    && pm.staked >= STAKE
                    && pm.staked - pm.locked >= lock
                    && self.expected[&user_token] >= deposit;
                let nonce = self.nonces[user];
                self.nonces[user] += 1;
                let u = clone(&self.users[user]);
                let provider_wallet = self.providers[provider].pubkey();
                let res = self
                    .f
                    .open_lease(
                        &u,
                        &provider_wallet,
                        LeaseOpenArgs {
                            nonce,
                            gpus,
                            duration,
                            max_price_per_gpu_second: PRICE,
                        },
                    )
                    .await;
                let done = res.is_ok();
                if let Ok(parties) = res {
                    let keeper = self.keeper_index(&parties.keeper);
                    self.sub(user_token, deposit);
                    self.expected
                        .insert(pda::lease_vault(&parties.lease), deposit);
                    let pm = &mut self.pmodel[provider];
                    pm.locked += lock;
                    pm.gpus_leased += gpus;
                    self.leases.push(LeaseModel {
                        parties,
                        user,
                        provider,
                        keeper,
                        gpus,
                        funded: deposit,
                        paid_out: 0,
                        start: now,
                        paid_until: now,
                        last_sequence: 0,
                        last_checkpoint_at: now,
                        stake_locked: lock,
                        ended: false,
                        open: true,
                    });
                }
                (ok, done)
            }
            Op::TopUp {
                lease,
                funder,
                amount,
            } => {
                let Some(l) = self.leases.get(lease).cloned() else {
                    return (true, true);
                };
                let w = self.funder(funder);
                let ok = l.open
                    && !l.ended
                    && now <= l.funded_until() + self.params.grace_period
                    && self.expected[&w.token] >= amount;
                if !l.open {
                    return (true, true); // its accounts are gone; nothing to send
                }
                let mint = self.f.mint;
                let ix = ix::lease_top_up(&w.pubkey(), &w.token, &l.parties.lease, &mint, amount);
                let done = self.f.send(&[ix], &[&w.keypair]).await.is_ok();
                if done {
                    self.sub(w.token, amount);
                    self.add(pda::lease_vault(&l.parties.lease), amount);
                    self.leases[lease].funded += amount;
                }
                (ok, done)
            }
            Op::Checkpoint {
                lease,
                advance,
                pass,
                seq_skew,
                start_skew,
                end_back,
                wrong_keeper,
            } => {
                let Some(l) = self.leases.get(lease).cloned() else {
                    return (true, true);
                };
                if !l.open {
                    return (true, true);
                }
                self.f.warp(advance).await;
                let now = self.now().await;
                let sequence = (l.last_sequence as i64 + 1 + i64::from(seq_skew)) as u64;
                let start = l.paid_until + start_skew;
                let end = now - end_back;
                let keeper = if wrong_keeper {
                    (l.keeper + 1) % KEEPERS
                } else {
                    l.keeper
                };
                let ok = !l.ended
                    && !wrong_keeper
                    && sequence == l.last_sequence + 1
                    && start == l.paid_until
                    && end > start
                    && end <= now
                    && end <= l.funded_until();
                let k = clone(&self.keepers[keeper]);
                let provider_token = self.providers[l.provider].token;
                let ix = ix::lease_checkpoint(
                    &k.pubkey(),
                    &l.parties,
                    &provider_token,
                    &k.token,
                    LeaseCheckpointArgs {
                        sequence,
                        period_start: start,
                        period_end: end,
                        proof_digest: [3; 32],
                        verdict: if pass { Verdict::Pass } else { Verdict::Fail },
                        score: 1,
                    },
                );
                let done = self.f.send(&[ix], &[&k.keypair]).await.is_ok();
                if done {
                    if pass {
                        let gross = l.rate() * (end - start) as u64;
                        let s = split_payment(
                            gross,
                            self.params.protocol_fee_bps,
                            self.params.keeper_fee_bps,
                        )
                        .unwrap();
                        // Independent of the program's split: fees are floors of the bps share.
                        assert_eq!(
                            s.protocol,
                            bps_of(gross, self.params.protocol_fee_bps).unwrap()
                        );
                        assert_eq!(s.provider + s.protocol + s.keeper, gross);
                        self.sub(pda::lease_vault(&l.parties.lease), gross);
                        self.add(provider_token, s.provider);
                        self.add(self.f.treasury, s.protocol);
                        self.add(k.token, s.keeper);
                        self.leases[lease].paid_out += gross;
                    }
                    let lm = &mut self.leases[lease];
                    lm.paid_until = end;
                    lm.last_sequence = sequence;
                    lm.last_checkpoint_at = now;
                }
                (ok, done)
            }
            Op::Close { lease, by_user } => {
                let Some(l) = self.leases.get(lease).cloned() else {
                    return (true, true);
                };
                if !l.open {
                    return (true, true);
                }
                let closer = if by_user {
                    clone(&self.users[l.user])
                } else {
                    clone(&self.stranger)
                };
                let ok = by_user || l.ended || now > l.funded_until() + self.params.grace_period;
                let user = &self.users[l.user];
                let (user_token, rent_payer) = (user.token, user.pubkey());
                let parties = self.f.parties(&l.parties.lease).await;
                let ix = ix::lease_close(&closer.pubkey(), &parties, &user_token, &rent_payer);
                let done = self.f.send(&[ix], &[&closer.keypair]).await.is_ok();
                if done {
                    let vault = pda::lease_vault(&l.parties.lease);
                    let left = self.expected.remove(&vault).expect("vault");
                    assert_eq!(left, l.funded - l.paid_out, "escrow = funded - paid");
                    self.add(user_token, left);
                    if !l.ended {
                        let pm = &mut self.pmodel[l.provider];
                        pm.locked -= l.stake_locked;
                        pm.gpus_leased -= l.gpus;
                    }
                    self.leases[lease].open = false;
                }
                (ok, done)
            }
            Op::Slash { lease, signers } => {
                let Some(l) = self.leases.get(lease).cloned() else {
                    return (true, true);
                };
                if !l.open {
                    return (true, true);
                }
                let mut distinct = signers.clone();
                distinct.sort();
                distinct.dedup();
                let ok = !l.ended && distinct.len() == signers.len() && signers.len() >= 2;
                let wallets: Vec<Pubkey> =
                    signers.iter().map(|&i| self.keepers[i].pubkey()).collect();
                let user_token = self.users[l.user].token;
                let parties = self.f.parties(&l.parties.lease).await;
                let ix = ix::provider_slash(&parties, &user_token, &wallets, [5; 32]);
                let kps: Vec<_> = distinct
                    .iter()
                    .map(|&i| self.keepers[i].keypair.insecure_clone())
                    .collect();
                let refs: Vec<_> = kps.iter().collect();
                let done = self.f.send(&[ix], &refs).await.is_ok();
                if done {
                    let s = split_slash(
                        l.stake_locked,
                        self.params.slash_fraction_bps,
                        self.params.slash_treasury_bps,
                    )
                    .unwrap();
                    assert_eq!(s.total, l.stake_locked / 2, "50% of the lock");
                    let provider_vault = pda::provider_vault(&l.parties.provider);
                    self.sub(provider_vault, s.total);
                    self.add(user_token, s.user);
                    self.add(self.f.treasury, s.treasury);
                    let pm = &mut self.pmodel[l.provider];
                    pm.staked -= s.total;
                    pm.locked -= l.stake_locked;
                    pm.gpus_leased -= l.gpus;
                    pm.jailed = true;
                    self.leases[lease].ended = true;
                }
                (ok, done)
            }
            Op::Reassign { lease, keeper } => {
                let Some(l) = self.leases.get(lease).cloned() else {
                    return (true, true);
                };
                if !l.open {
                    return (true, true);
                }
                let ok = !l.ended
                    && keeper != l.keeper
                    && now
                        > l.last_checkpoint_at
                            + self.params.checkpoint_interval
                            + self.params.grace_period;
                let k = clone(&self.keepers[keeper]);
                let old = pda::keeper(&self.keepers[l.keeper].pubkey());
                let ix = ix::lease_reassign_keeper(&k.pubkey(), &l.parties.lease, &old);
                let done = self.f.send(&[ix], &[&k.keypair]).await.is_ok();
                if done {
                    let lm = &mut self.leases[lease];
                    lm.keeper = keeper;
                    lm.last_checkpoint_at = now;
                    lm.parties.keeper = pda::keeper(&k.pubkey());
                }
                (ok, done)
            }
            Op::Stake { provider, amount } => {
                let p = clone(&self.providers[provider]);
                let ok = amount > 0 && self.expected[&p.token] >= amount;
                let mint = self.f.mint;
                let ix = ix::provider_stake(&p.pubkey(), &p.token, &mint, amount);
                let done = self.f.send(&[ix], &[&p.keypair]).await.is_ok();
                if done {
                    self.sub(p.token, amount);
                    self.add(pda::provider_vault(&pda::provider(&p.pubkey())), amount);
                    self.pmodel[provider].staked += amount;
                }
                (ok, done)
            }
            Op::Unstake { provider, amount } => {
                let p = clone(&self.providers[provider]);
                let pm = &self.pmodel[provider];
                let ok = amount > 0 && amount <= pm.staked - pm.locked;
                let ix = ix::provider_unstake_request(&p.pubkey(), amount);
                let done = self.f.send(&[ix], &[&p.keypair]).await.is_ok();
                if done {
                    let pm = &mut self.pmodel[provider];
                    pm.staked -= amount;
                    pm.unbonding += amount;
                    pm.unbonding_ends_at = now + self.params.unbonding_period;
                }
                (ok, done)
            }
            Op::Withdraw { provider } => {
                let p = clone(&self.providers[provider]);
                let pm = self.pmodel[provider].clone();
                let ok = pm.unbonding > 0 && now >= pm.unbonding_ends_at;
                let mint = self.f.mint;
                let ix = ix::provider_withdraw(&p.pubkey(), &p.token, &mint);
                let done = self.f.send(&[ix], &[&p.keypair]).await.is_ok();
                if done {
                    self.sub(
                        pda::provider_vault(&pda::provider(&p.pubkey())),
                        pm.unbonding,
                    );
                    self.add(p.token, pm.unbonding);
                    let pm = &mut self.pmodel[provider];
                    pm.unbonding = 0;
                    pm.unbonding_ends_at = 0;
                }
                (ok, done)
            }
        }
    }

    /// Every balance is what the model says; they add up to the supply; each open lease's
    /// books balance with its vault.
    async fn check(&mut self, step: usize, op: &Op) {
        let mut total = 0u64;
        let accounts: Vec<(Pubkey, u64)> = self.expected.iter().map(|(k, v)| (*k, *v)).collect();
        for (account, want) in accounts {
            let got = self.f.balance(&account).await;
            assert_eq!(got, want, "step {step} {op:?}: balance of {account}");
            total += got;
        }
        assert_eq!(
            total, self.supply,
            "step {step} {op:?}: tokens created or destroyed"
        );
        assert_eq!(self.f.supply().await, self.supply);
        for l in self.leases.clone().iter().filter(|l| l.open) {
            let lease = self.f.lease(&l.parties.lease).await;
            let vault = self.f.balance(&pda::lease_vault(&l.parties.lease)).await;
            assert_eq!(
                lease.funded,
                lease.paid_provider
                    + lease.paid_protocol
                    + lease.paid_keeper
                    + lease.refunded
                    + vault,
                "step {step} {op:?}: lease books"
            );
            assert_eq!(lease.funded, l.funded);
            assert_eq!(lease.status == LeaseStatus::Ended, l.ended);
        }
        for (i, p) in self.providers.iter().enumerate() {
            let acct = self.f.provider(&p.pubkey()).await;
            let pm = &self.pmodel[i];
            assert_eq!(
                (acct.staked, acct.locked, acct.unbonding, acct.gpus_leased),
                (pm.staked, pm.locked, pm.unbonding, pm.gpus_leased),
                "step {step} {op:?}: provider {i}"
            );
        }
    }
}

async fn run(ops: Vec<Op>) {
    let mut sim = Sim::new().await;
    sim.check(0, &Op::Warp { secs: 0 }).await;
    for (i, op) in ops.iter().enumerate() {
        let (predicted, happened) = sim.step(op).await;
        if std::env::var("GPUNET_PROPTEST_STATS").is_ok() {
            let kind = format!("{op:?}");
            let kind = kind.split([' ', '{']).next().unwrap_or("");
            eprintln!("STAT {kind} {happened}");
        }
        assert_eq!(
            happened, predicted,
            "step {i} {op:?}: model and program disagree"
        );
        sim.check(i + 1, op).await;
    }
}

fn cases() -> u32 {
    std::env::var("GPUNET_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

// Two halves of the 1,000 sequences, so that the test harness runs them on both cores.
proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn test_property_random_operations_first_half(ops in prop::collection::vec(op(), 20..40)) {
        runtime().block_on(run(ops));
    }

    #[test]
    fn test_property_random_operations_second_half(ops in prop::collection::vec(op(), 20..40)) {
        runtime().block_on(run(ops));
    }
}
