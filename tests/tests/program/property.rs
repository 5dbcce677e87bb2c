//! Property test: random sequences of operations from several users, providers, keepers and the
//! admin through the real program (solana-program-test, real SPL Token), checked step by step
//! against a model of the rules.
//!
//! Operations:
//! - leases: `Open` (usually followed by the committee draw two slots later), `Draw` a pending
//!   lease's committee, `TopUp` (by the user or a stranger), `Resize` (grow or shrink, by the
//!   user with a deposit allowance that is sometimes too small, or by a stranger), `Checkpoint` (Pass or Fail;
//!   sometimes by a keeper not assigned to the lease, with a skewed sequence, period start or
//!   end), `Close` (by the user or a stranger), `Reassign` (to the lease's successor on its
//!   committee, or to a random keeper);
//! - slashes: `Slash` a lease's provider and `KeeperSlash` a member of a lease's committee,
//!   co-signed by random keepers (mostly committee members) and, for a keeper slash, naming a
//!   random checkpoint sequence;
//! - providers: `Stake`, `Unstake` (part or all of the free stake), `Withdraw`,
//!   `ProviderClose`, `ProviderRegister` (again, after a close);
//! - keepers: `KeeperRegister` (a fresh wallet, or a closed keeper again), `KeeperDrain`,
//!   `KeeperDeregister`, `KeeperClose`;
//! - admin: `Pause` and unpause, `ConfigChange` (fees — some above their caps —, grace,
//!   interval, slash shares); both sometimes signed by a stranger;
//! - `Warp` the clock (seconds, or 15 days).
//!
//! Most steps are one operation; some are a whole exit — a provider unstaking all its free
//! stake, withdrawing at the end of the unbonding period and closing, or a keeper deregistering
//! and closing at the end of its unbonding — so that the ends of both life cycles are reached in
//! a fair share of runs. Operations on a lease pick among the open ones (`Draw` mostly among the
//! pending ones, `KeeperSlash` among those with a checkpoint); keeper life-cycle operations
//! mostly pick a keeper in the state they start from.
//!
//! The model keeps each lease's terms (frozen at open), committee in draw order, assigned keeper,
//! books and compensation; each provider's stake, locks, unbonding and jail; each keeper's
//! status, bond, index in the active set and lease count; and the config's parameters and pause
//! accounting (paused time extends lease deadlines from each lease's `paused_mark`). The random
//! draw itself is read from the chain after each draw and checked for size and membership.
//!
//! After every step:
//! - no token is created or destroyed: all token accounts of the mint add up to the supply,
//!   and every one of them holds exactly what the model says — so no party ever receives more
//!   (or less) than its due;
//! - for every open lease, funded = paid to provider + fees + refunded + still in escrow, and
//!   every lease, provider, keeper and config field the model tracks matches the chain;
//! - an operation the model says is refused was refused, and left every balance unchanged;
//!   one the model says is allowed succeeded.
//!
//! With `GPUNET_PROPTEST_STATS=1` each operation that sent a transaction prints
//! `STAT <operation> <succeeded>`; `GPUNET_PROPTEST_CASES` sets the number of cases per half.

use std::collections::HashMap;

use gpunet::instructions::{ConfigUpdateArgs, KeeperSlashArgs, LeaseCheckpointArgs, LeaseOpenArgs};
use gpunet::math::{PaymentSplit, bps_of, compensation, split_payment, split_slash};
use gpunet::state::{
    ConfigParams, KeeperStatus, LeaseStatus, LeaseTerms, NO_INDEX, ProviderStatus, Verdict,
};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::pda;
use gpunet_tests::*;
use proptest::prelude::*;
use proptest::strategy::Union;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

const USERS: usize = 3;
const PROVIDERS: usize = 2;
/// Keeper wallets; the first `KEEPERS_AT_START` are registered at the start, the others are
/// fresh wallets holding one bond.
const KEEPER_WALLETS: usize = 5;
const KEEPERS_AT_START: usize = 4;
const GPUS: u16 = 4;
const STAKE: u64 = 4_000 * TOKEN;
const SPARE: u64 = 2_000 * TOKEN;
const USER_TOKENS: u64 = 1_000_000;
const PRICE: u64 = 10; // the price `provider_args` offers
const LOCK_PER_GPU: u64 = 1_000 * TOKEN; // `default_params` minimum stake per H100

/// A keeper wallet chosen for a keeper life-cycle operation.
#[derive(Debug, Clone, Copy)]
enum KeeperSel {
    /// Any wallet.
    Any(usize),
    /// The n-th (cyclically) of the wallets in the state the operation starts from (no
    /// account, active, active or draining, unbonding), or wallet n when none is.
    Ready(usize),
}

fn keeper_sel(ready_weight: u32) -> impl Strategy<Value = KeeperSel> {
    prop_oneof![
        1 => (0..KEEPER_WALLETS).prop_map(KeeperSel::Any),
        ready_weight => (0..KEEPER_WALLETS).prop_map(KeeperSel::Ready),
    ]
}

/// A keeper chosen for an operation on a lease.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// The member at this position of the lease's committee (modulo its size).
    Member(usize),
    /// Any keeper wallet, member or not, registered or not.
    Wallet(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Open {
        user: usize,
        provider: usize,
        gpus: u16,
        duration: i64,
        draw: bool,
    },
    Draw {
        lease: usize,
        /// Pick among the pending leases, if any.
        pending: bool,
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
        /// The period ends at what the escrow funds when that is before now.
        clamp: bool,
        /// Signed by another keeper wallet (offset from the assigned one).
        wrong_keeper: Option<usize>,
    },
    Close {
        lease: usize,
        by_user: bool,
    },
    Resize {
        lease: usize,
        /// 0 and more than a provider has are refused.
        gpus: u16,
        /// The most a grow may deposit (`None`: no limit).
        max_deposit: Option<u64>,
        by_user: bool,
    },
    Slash {
        lease: usize,
        /// `None`: every member of the lease's committee.
        signers: Option<Vec<Pick>>,
        /// GPUs slashed: 0 and more than the lease has are refused; fewer than all leave the
        /// lease going on with the rest.
        gpus: u16,
    },
    KeeperSlash {
        lease: usize,
        accused: Pick,
        /// `None`: every member of the lease's committee but the accused.
        signers: Option<Vec<Pick>>,
        /// 0: sequence 0; 1: sequence 1; 2: the last sequence; 3: one past it.
        sequence: u8,
    },
    Reassign {
        lease: usize,
        /// Seconds the clock moves first.
        advance: i64,
        /// `None`: the successor the model computes; `Some`: this keeper wallet.
        to: Option<usize>,
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
        /// `None`: all the free stake.
        amount: Option<u64>,
    },
    Withdraw {
        provider: usize,
        /// Move the clock to the end of the unbonding period first.
        wait: bool,
    },
    ProviderClose {
        provider: usize,
    },
    ProviderRegister {
        provider: usize,
    },
    KeeperRegister {
        keeper: KeeperSel,
    },
    KeeperDrain {
        keeper: KeeperSel,
    },
    KeeperDeregister {
        keeper: KeeperSel,
    },
    KeeperClose {
        keeper: KeeperSel,
        /// Move the clock to the end of the unbonding period first.
        wait: bool,
    },
    Pause {
        paused: bool,
        by_admin: bool,
    },
    ConfigChange {
        protocol_fee_bps: u16,
        keeper_fee_bps: u16,
        grace_period: i64,
        checkpoint_interval: i64,
        slash_fraction_bps: u16,
        slash_treasury_bps: u16,
        slash_compensation_bps: u16,
        keeper_slash_fraction_bps: u16,
        by_admin: bool,
    },
}

impl Op {
    fn kind(&self) -> String {
        let s = format!("{self:?}");
        s.split([' ', '{']).next().unwrap_or("").to_string()
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        5 => (0..3usize).prop_map(Pick::Member),
        1 => (0..KEEPER_WALLETS).prop_map(Pick::Wallet),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let lease = || 0..16usize;
    let arms: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (
            3,
            (
                0..USERS,
                0..PROVIDERS,
                1..=3u16,
                30..2_000i64,
                prop::bool::weighted(0.75),
            )
                .prop_map(|(user, provider, gpus, duration, draw)| Op::Open {
                    user,
                    provider,
                    gpus,
                    duration,
                    draw,
                })
                .boxed(),
        ),
        (
            1,
            (lease(), prop::bool::weighted(0.85))
                .prop_map(|(lease, pending)| Op::Draw { lease, pending })
                .boxed(),
        ),
        (
            1,
            (lease(), 0..=USERS, 1..20_000u64)
                .prop_map(|(lease, funder, amount)| Op::TopUp {
                    lease,
                    funder,
                    amount,
                })
                .boxed(),
        ),
        (
            6,
            (
                lease(),
                0..900i64,
                prop::bool::weighted(0.8),
                prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)],
                prop_oneof![8 => Just(0i64), 1 => -5..0i64, 1 => 1..5i64],
                prop_oneof![3 => Just(0i64), 1 => 0..400i64],
                prop::bool::weighted(0.8),
                prop::option::weighted(0.1, 0..KEEPER_WALLETS - 1),
            )
                .prop_map(
                    |(
                        lease,
                        advance,
                        pass,
                        seq_skew,
                        start_skew,
                        end_back,
                        clamp,
                        wrong_keeper,
                    )| {
                        Op::Checkpoint {
                            lease,
                            advance,
                            pass,
                            seq_skew,
                            start_skew,
                            end_back,
                            clamp,
                            wrong_keeper,
                        }
                    },
                )
                .boxed(),
        ),
        (
            3,
            (lease(), prop::bool::weighted(0.6))
                .prop_map(|(lease, by_user)| Op::Close { lease, by_user })
                .boxed(),
        ),
        (
            3,
            (
                lease(),
                prop_oneof![8 => 1u16..=4, 1 => Just(0u16), 1 => Just(5u16)],
                prop::option::weighted(0.2, 0..20_000u64),
                prop::bool::weighted(0.9),
            )
                .prop_map(|(lease, gpus, max_deposit, by_user)| Op::Resize {
                    lease,
                    gpus,
                    max_deposit,
                    by_user,
                })
                .boxed(),
        ),
        (
            1,
            (
                lease(),
                prop::option::weighted(0.5, prop::collection::vec(pick(), 1..=3)),
                0u16..=5,
            )
                .prop_map(|(lease, signers, gpus)| Op::Slash {
                    lease,
                    signers,
                    gpus,
                })
                .boxed(),
        ),
        (
            1,
            (
                lease(),
                pick(),
                prop::option::weighted(0.5, prop::collection::vec(pick(), 1..=3)),
                prop_oneof![1 => Just(0u8), 2 => Just(1u8), 6 => Just(2u8), 1 => Just(3u8)],
            )
                .prop_map(|(lease, accused, signers, sequence)| Op::KeeperSlash {
                    lease,
                    accused,
                    signers,
                    sequence,
                })
                .boxed(),
        ),
        (
            2,
            (
                lease(),
                prop_oneof![1 => Just(0i64), 1 => 3_000..6_000i64],
                prop::option::weighted(0.25, 0..KEEPER_WALLETS),
            )
                .prop_map(|(lease, advance, to)| Op::Reassign { lease, advance, to })
                .boxed(),
        ),
        (
            3,
            prop_oneof![3 => 0..5_000i64, 1 => Just(15 * 24 * 3_600i64)]
                .prop_map(|secs| Op::Warp { secs })
                .boxed(),
        ),
        (
            1,
            (0..PROVIDERS, 0..1_500 * TOKEN)
                .prop_map(|(provider, amount)| Op::Stake { provider, amount })
                .boxed(),
        ),
        (
            1,
            (
                0..PROVIDERS,
                prop_oneof![1 => (0..2_500 * TOKEN).prop_map(Some), 1 => Just(None)],
            )
                .prop_map(|(provider, amount)| Op::Unstake { provider, amount })
                .boxed(),
        ),
        (
            2,
            (0..PROVIDERS, prop::bool::weighted(0.3))
                .prop_map(|(provider, wait)| Op::Withdraw { provider, wait })
                .boxed(),
        ),
        (
            2,
            (0..PROVIDERS)
                .prop_map(|provider| Op::ProviderClose { provider })
                .boxed(),
        ),
        (
            1,
            (0..PROVIDERS)
                .prop_map(|provider| Op::ProviderRegister { provider })
                .boxed(),
        ),
        (
            1,
            keeper_sel(3)
                .prop_map(|keeper| Op::KeeperRegister { keeper })
                .boxed(),
        ),
        (
            1,
            keeper_sel(1)
                .prop_map(|keeper| Op::KeeperDrain { keeper })
                .boxed(),
        ),
        (
            1,
            keeper_sel(1)
                .prop_map(|keeper| Op::KeeperDeregister { keeper })
                .boxed(),
        ),
        (
            1,
            (keeper_sel(3), prop::bool::weighted(0.3))
                .prop_map(|(keeper, wait)| Op::KeeperClose { keeper, wait })
                .boxed(),
        ),
        (
            1,
            (prop::bool::weighted(0.3), prop::bool::weighted(0.9))
                .prop_map(|(paused, by_admin)| Op::Pause { paused, by_admin })
                .boxed(),
        ),
        (
            1,
            (
                0..=2_400u16,
                0..=2_400u16,
                prop::sample::select(vec![60i64, 600, 3_600]),
                prop::sample::select(vec![60i64, 300, 900]),
                prop::sample::select(vec![2_500u16, 5_000, 10_000]),
                prop::sample::select(vec![0u16, 1_000, 5_000]),
                prop::sample::select(vec![0u16, 5_000, 10_000]),
                prop::sample::select(vec![2_500u16, 5_000, 10_000]),
                prop::bool::weighted(0.9),
            )
                .prop_map(
                    |(
                        protocol_fee_bps,
                        keeper_fee_bps,
                        grace_period,
                        checkpoint_interval,
                        slash_fraction_bps,
                        slash_treasury_bps,
                        slash_compensation_bps,
                        keeper_slash_fraction_bps,
                        by_admin,
                    )| Op::ConfigChange {
                        protocol_fee_bps,
                        keeper_fee_bps,
                        grace_period,
                        checkpoint_interval,
                        slash_fraction_bps,
                        slash_treasury_bps,
                        slash_compensation_bps,
                        keeper_slash_fraction_bps,
                        by_admin,
                    },
                )
                .boxed(),
        ),
    ];
    Union::new_weighted(arms)
}

/// One step: usually one operation; sometimes a whole exit (a provider unstaking everything,
/// waiting and closing; a keeper deregistering, waiting and closing), so that the ends of
/// those life cycles are reached in a fair share of runs.
fn step_ops() -> impl Strategy<Value = Vec<Op>> {
    prop_oneof![
        40 => op().prop_map(|op| vec![op]),
        1 => (0..PROVIDERS).prop_map(|provider| vec![
            Op::Unstake { provider, amount: None },
            Op::Withdraw { provider, wait: true },
            Op::ProviderClose { provider },
        ]),
        1 => (0..KEEPER_WALLETS).prop_map(|n| vec![
            Op::KeeperDeregister { keeper: KeeperSel::Ready(n) },
            Op::KeeperClose { keeper: KeeperSel::Ready(n), wait: true },
        ]),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(step_ops(), 20..40)
        .prop_map(|steps| steps.into_iter().flatten().collect())
}

/// The model's view of the config.
#[derive(Debug, Clone)]
struct ConfigModel {
    params: ConfigParams,
    paused: bool,
    paused_at: i64,
    paused_seconds: i64,
    /// The active keeper set: keeper wallet index at each set index (dense, swap-remove).
    active: Vec<usize>,
}

impl ConfigModel {
    fn paused_seconds_at(&self, now: i64) -> i64 {
        let running = if self.paused {
            (now - self.paused_at).max(0)
        } else {
            0
        };
        self.paused_seconds + running
    }

    fn is_active(&self, k: usize) -> bool {
        self.active.contains(&k)
    }
}

/// The model's view of a provider.
#[derive(Debug, Clone, Default)]
struct ProviderModel {
    exists: bool,
    staked: u64,
    locked: u64,
    unbonding: u64,
    unbonding_ends_at: i64,
    jailed: bool,
    jailed_until: i64,
    gpus_leased: u16,
    active_leases: u32,
}

impl ProviderModel {
    fn status(&self) -> ProviderStatus {
        if self.jailed {
            ProviderStatus::Jailed
        } else if self.unbonding > 0 {
            ProviderStatus::Unbonding
        } else {
            ProviderStatus::Active
        }
    }
}

/// The model's view of a keeper; `status` is `None` while it has no account (never
/// registered, or closed).
#[derive(Debug, Clone, Default)]
struct KeeperModel {
    status: Option<KeeperStatus>,
    bond: u64,
    leases_assigned: u32,
    unbonding_ends_at: i64,
}

/// The model's view of a lease.
#[derive(Debug, Clone)]
struct LeaseModel {
    lease: Pubkey,
    user: usize,
    provider: usize,
    status: LeaseStatus,
    open: bool,
    gpus: u16,
    terms: LeaseTerms,
    /// Keeper wallet indices in draw order; empty while pending.
    committee: Vec<usize>,
    /// The assigned keeper; `None` while pending.
    keeper: Option<usize>,
    funded: u64,
    paid_provider: u64,
    paid_protocol: u64,
    paid_keeper: u64,
    compensation: u64,
    start: i64,
    paid_until: i64,
    last_sequence: u64,
    /// Highest checkpoint a keeper slash has judged; each is judged once.
    judged_sequence: u64,
    last_checkpoint_at: i64,
    paused_mark: i64,
    stake_locked: u64,
    /// When a partial slash last changed the GPU count (0: never), and what the escrow had
    /// paid out then.
    rate_since: i64,
    spent_before_rate: u64,
    /// `last_sequence + 1` at the last provider slash (0: none): one slash per checkpoint.
    slashed_sequence: u64,
    /// A pending resize (0: none): the count asked for, from when, and the stake a grow booked.
    pending_gpus: u16,
    resize_at: i64,
    pending_stake: u64,
    /// Escrow a shrink refunded while the lease ran.
    withdrawn: u64,
}

impl LeaseModel {
    fn rate(&self) -> u64 {
        PRICE * u64::from(self.gpus)
    }
    fn funded_until(&self) -> i64 {
        self.start.max(self.rate_since) + (self.budget() / self.rate()) as i64
    }
    /// What the current rate's segment may spend.
    fn budget(&self) -> u64 {
        self.funded - self.withdrawn - self.spent_before_rate
    }
    fn paid_by_user(&self) -> u64 {
        self.paid_provider + self.paid_protocol + self.paid_keeper
    }
    fn escrow(&self) -> u64 {
        self.funded - self.withdrawn - self.paid_by_user()
    }
    /// The segment budget a resize to `gpus` at `at` needs to stay funded until the same time.
    fn resize_budget(&self, gpus: u16, at: i64) -> u64 {
        let until = self.funded_until();
        self.rate() * (at - self.start.max(self.rate_since)) as u64
            + PRICE * u64::from(gpus) * (until.max(at) - at) as u64
    }
    /// Applies the pending resize at `paid_until`; returns the GPUs and stake a shrink gives
    /// back to the provider.
    fn apply_resize(&mut self) -> (u16, u64) {
        let target = self.pending_gpus;
        let released = if target < self.gpus {
            let kept =
                (u128::from(self.stake_locked) * u128::from(target) / u128::from(self.gpus)) as u64;
            let out = (self.gpus - target, self.stake_locked - kept);
            self.stake_locked = kept;
            out
        } else {
            self.stake_locked += self.pending_stake;
            (0, 0)
        };
        self.gpus = target;
        self.rate_since = self.paid_until;
        self.spent_before_rate = self.paid_by_user();
        (self.pending_gpus, self.resize_at, self.pending_stake) = (0, 0, 0);
        released
    }
    /// Drops a pending resize; returns what a grow had booked on the provider.
    fn cancel_resize(&mut self) -> (u16, u64) {
        let booked = if self.pending_gpus > self.gpus {
            (self.pending_gpus - self.gpus, self.pending_stake)
        } else {
            (0, 0)
        };
        (self.pending_gpus, self.resize_at, self.pending_stake) = (0, 0, 0);
        booked
    }
    /// Last moment a top-up is accepted; after it anyone may close.
    fn expires_at(&self, paused_now: i64) -> i64 {
        self.funded_until() + self.terms.grace_period + (paused_now - self.paused_mark).max(0)
    }
}

struct Sim {
    f: Fixture,
    cfg: ConfigModel,
    users: Vec<Wallet>,
    stranger: Wallet,
    providers: Vec<Wallet>,
    keepers: Vec<Wallet>,
    pmodel: Vec<ProviderModel>,
    kmodel: Vec<KeeperModel>,
    leases: Vec<LeaseModel>,
    nonces: Vec<u64>,
    /// Expected balance of every token account of the mint.
    expected: HashMap<Pubkey, u64>,
    supply: u64,
    /// The error of the last transaction refused, for failure messages.
    last_err: String,
}

impl Sim {
    async fn new() -> Self {
        let mut f = Fixture::new().await;
        let params = default_params();
        let mut expected = HashMap::new();
        expected.insert(f.treasury, 0);
        let mut keepers = Vec::new();
        let mut kmodel = Vec::new();
        let mut active = Vec::new();
        for i in 0..KEEPER_WALLETS {
            if i < KEEPERS_AT_START {
                let k = f.keeper_wallet().await;
                expected.insert(k.token, 0);
                expected.insert(
                    pda::keeper_vault(&pda::keeper(&k.pubkey())),
                    params.keeper_bond,
                );
                kmodel.push(KeeperModel {
                    status: Some(KeeperStatus::Active),
                    bond: params.keeper_bond,
                    ..Default::default()
                });
                active.push(i);
                keepers.push(k);
            } else {
                let k = f.wallet(params.keeper_bond).await;
                expected.insert(k.token, params.keeper_bond);
                kmodel.push(KeeperModel::default());
                keepers.push(k);
            }
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
                exists: true,
                staked: STAKE,
                ..Default::default()
            };
            PROVIDERS
        ];
        Sim {
            f,
            cfg: ConfigModel {
                params,
                paused: false,
                paused_at: 0,
                paused_seconds: 0,
                active,
            },
            users,
            stranger,
            providers,
            keepers,
            pmodel,
            kmodel,
            leases: Vec::new(),
            nonces: vec![0; USERS],
            expected,
            supply,
            last_err: String::new(),
        }
    }

    fn funder(&self, i: usize) -> Wallet {
        if i < USERS {
            Wallet::insecure_clone(&self.users[i])
        } else {
            Wallet::insecure_clone(&self.stranger)
        }
    }

    fn keeper_account(&self, k: usize) -> Pubkey {
        pda::keeper(&self.keepers[k].pubkey())
    }

    fn keeper_index(&self, keeper_account: &Pubkey) -> usize {
        (0..KEEPER_WALLETS)
            .find(|&k| self.keeper_account(k) == *keeper_account)
            .expect("known keeper")
    }

    fn provider_account(&self, p: usize) -> Pubkey {
        pda::provider(&self.providers[p].pubkey())
    }

    /// The keeper account a keeper leaving the active set must name as `last_keeper`: the one
    /// at the highest index, unless that is itself.
    fn last_keeper_for(&self, k: usize) -> Option<Pubkey> {
        let last = *self.cfg.active.last()?;
        (last != k).then(|| self.keeper_account(last))
    }

    /// Swap-remove, as the program keeps the set dense.
    fn leave_active_set(&mut self, k: usize) {
        let pos = self
            .cfg
            .active
            .iter()
            .position(|&a| a == k)
            .expect("keeper in the active set");
        self.cfg.active.swap_remove(pos);
    }

    /// The keeper wallet `sel` names; `ready` says which wallets are in the state the
    /// operation starts from.
    fn select_keeper(&self, sel: KeeperSel, ready: impl Fn(&KeeperModel) -> bool) -> usize {
        match sel {
            KeeperSel::Any(k) => k,
            KeeperSel::Ready(n) => {
                let ready: Vec<usize> = (0..KEEPER_WALLETS)
                    .filter(|&k| ready(&self.kmodel[k]))
                    .collect();
                if ready.is_empty() {
                    n
                } else {
                    ready[n % ready.len()]
                }
            }
        }
    }

    fn resolve(&self, l: &LeaseModel, p: Pick) -> usize {
        match p {
            Pick::Member(i) if !l.committee.is_empty() => l.committee[i % l.committee.len()],
            Pick::Member(i) => i % KEEPER_WALLETS,
            Pick::Wallet(k) => k,
        }
    }

    /// The `sel`-th open lease (cyclically), if any is open.
    fn pick_lease(&self, sel: usize) -> Option<usize> {
        let open: Vec<usize> = (0..self.leases.len())
            .filter(|&i| self.leases[i].open)
            .collect();
        (!open.is_empty()).then(|| open[sel % open.len()])
    }

    fn parties(&self, l: &LeaseModel) -> LeaseParties {
        LeaseParties {
            lease: l.lease,
            provider: self.provider_account(l.provider),
            keeper: l.keeper.map(|k| self.keeper_account(k)).unwrap_or_default(),
            mint: self.f.mint,
            treasury: self.f.treasury,
        }
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

    /// Sends one transaction; whether it succeeded.
    async fn send(
        &mut self,
        ixs: &[solana_sdk::instruction::Instruction],
        signers: &[&Keypair],
    ) -> bool {
        match self.f.send(ixs, signers).await {
            Ok(()) => true,
            Err(e) => {
                self.last_err = format!("{e:?}");
                false
            }
        }
    }

    /// Checks the committee just drawn for lease `i` and books it in the model.
    async fn draw(&mut self, i: usize) -> (bool, bool) {
        self.f.advance_slots(2).await;
        let now = self.now().await;
        let l = self.leases[i].clone();
        let ok =
            l.status == LeaseStatus::Pending && !self.cfg.paused && !self.cfg.active.is_empty();
        let done = match self.f.draw_committee(&l.lease).await {
            Ok(()) => true,
            Err(e) => {
                self.last_err = format!("{e:?}");
                false
            }
        };
        if done {
            let chain = self.f.lease(&l.lease).await;
            let committee: Vec<usize> = chain
                .committee()
                .iter()
                .map(|k| self.keeper_index(k))
                .collect();
            assert_eq!(
                committee.len(),
                self.cfg
                    .active
                    .len()
                    .min(usize::from(l.terms.committee_size)),
                "committee size"
            );
            let mut distinct = committee.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                committee.len(),
                "committee members distinct"
            );
            assert!(
                committee.iter().all(|&k| self.cfg.is_active(k)),
                "committee drawn from the active set"
            );
            assert_eq!(chain.keeper, self.keeper_account(committee[0]));
            assert_eq!(chain.start, now, "billing starts at the draw");
            self.kmodel[committee[0]].leases_assigned += 1;
            let paused_mark = self.cfg.paused_seconds_at(now);
            let lm = &mut self.leases[i];
            lm.keeper = Some(committee[0]);
            lm.committee = committee;
            lm.status = LeaseStatus::Active;
            lm.start = now;
            lm.paid_until = now;
            lm.last_checkpoint_at = now;
            lm.paused_mark = paused_mark;
        }
        (ok, done)
    }

    /// Runs one operation; returns (what the model predicted, what happened), or `None` when
    /// nothing was sent (no open lease to act on, or a clock warp).
    async fn step(&mut self, op: &Op) -> Option<(bool, bool)> {
        let now = self.now().await;
        let paused = self.cfg.paused;
        match op.clone() {
            Op::Warp { secs } => {
                self.f.warp(secs).await;
                None
            }
            Op::Open {
                user,
                provider,
                gpus,
                duration,
                draw,
            } => {
                let pm = &self.pmodel[provider];
                let lock = LOCK_PER_GPU * u64::from(gpus);
                let deposit = PRICE * u64::from(gpus) * duration as u64;
                let user_token = self.users[user].token;
                let ok = !paused
                    && pm.exists
                    && !pm.jailed
                    && pm.unbonding == 0
                    && pm.gpus_leased + gpus <= GPUS
                    && pm.staked >= STAKE
                    && pm.staked - pm.locked >= lock
                    && !self.cfg.active.is_empty()
                    && self.expected[&user_token] >= deposit;
                let nonce = self.nonces[user];
                self.nonces[user] += 1;
                let u = Wallet::insecure_clone(&self.users[user]);
                let provider_wallet = self.providers[provider].pubkey();
                let args = LeaseOpenArgs {
                    nonce,
                    gpus,
                    duration,
                    max_price_per_gpu_second: PRICE,
                };
                let res = self.f.open_pending_lease(&u, &provider_wallet, args).await;
                let done = match res {
                    Ok(lease) => {
                        self.sub(user_token, deposit);
                        self.expected.insert(pda::lease_vault(&lease), deposit);
                        let pm = &mut self.pmodel[provider];
                        pm.locked += lock;
                        pm.gpus_leased += gpus;
                        pm.active_leases += 1;
                        self.leases.push(LeaseModel {
                            lease,
                            user,
                            provider,
                            status: LeaseStatus::Pending,
                            open: true,
                            gpus,
                            terms: LeaseTerms::from_params(&self.cfg.params),
                            committee: Vec::new(),
                            keeper: None,
                            funded: deposit,
                            paid_provider: 0,
                            paid_protocol: 0,
                            paid_keeper: 0,
                            compensation: 0,
                            start: now,
                            paid_until: now,
                            last_sequence: 0,
                            judged_sequence: 0,
                            last_checkpoint_at: now,
                            paused_mark: self.cfg.paused_seconds_at(now),
                            stake_locked: lock,
                            rate_since: 0,
                            spent_before_rate: 0,
                            slashed_sequence: 0,
                            pending_gpus: 0,
                            resize_at: 0,
                            pending_stake: 0,
                            withdrawn: 0,
                        });
                        true
                    }
                    Err(e) => {
                        self.last_err = format!("{e:?}");
                        false
                    }
                };
                if done && draw {
                    let i = self.leases.len() - 1;
                    let (predicted, happened) = self.draw(i).await;
                    assert_eq!(
                        happened, predicted,
                        "{op:?}: draw after the open: model and program disagree ({})",
                        self.last_err
                    );
                }
                Some((ok, done))
            }
            Op::Draw { lease, pending } => {
                let pending_leases: Vec<usize> = (0..self.leases.len())
                    .filter(|&i| {
                        self.leases[i].open && self.leases[i].status == LeaseStatus::Pending
                    })
                    .collect();
                let i = if pending && !pending_leases.is_empty() {
                    pending_leases[lease % pending_leases.len()]
                } else {
                    self.pick_lease(lease)?
                };
                Some(self.draw(i).await)
            }
            Op::TopUp {
                lease,
                funder,
                amount,
            } => {
                let i = self.pick_lease(lease)?;
                let l = self.leases[i].clone();
                let w = self.funder(funder);
                let ok = l.status != LeaseStatus::Ended
                    && now <= l.expires_at(self.cfg.paused_seconds_at(now))
                    && self.expected[&w.token] >= amount;
                let mint = self.f.mint;
                let ix = ix::lease_top_up(&w.pubkey(), &w.token, &l.lease, &mint, amount);
                let done = self.send(&[ix], &[&w.keypair]).await;
                if done {
                    self.sub(w.token, amount);
                    self.add(pda::lease_vault(&l.lease), amount);
                    self.leases[i].funded += amount;
                }
                Some((ok, done))
            }
            Op::Checkpoint {
                lease,
                advance,
                pass,
                seq_skew,
                start_skew,
                end_back,
                clamp,
                wrong_keeper,
            } => {
                let i = self.pick_lease(lease)?;
                let l = self.leases[i].clone();
                self.f.warp(advance).await;
                let now = self.now().await;
                let sequence = (l.last_sequence as i64 + 1 + i64::from(seq_skew)) as u64;
                let start = l.paid_until + start_skew;
                let limit = if l.pending_gpus > 0 {
                    l.funded_until().min(l.resize_at)
                } else {
                    l.funded_until()
                };
                let end = if clamp {
                    now.min(limit) - end_back
                } else {
                    now - end_back
                };
                let keeper = match (l.keeper, wrong_keeper) {
                    (Some(k), None) => k,
                    (Some(k), Some(o)) => (k + 1 + o) % KEEPER_WALLETS,
                    (None, o) => o.unwrap_or(0),
                };
                let ok = !paused
                    && l.status == LeaseStatus::Active
                    && l.keeper == Some(keeper)
                    && self.kmodel[keeper].status == Some(KeeperStatus::Active)
                    && sequence == l.last_sequence + 1
                    && start == l.paid_until
                    && end > start
                    && end <= now
                    && end <= l.funded_until()
                    && (l.pending_gpus == 0 || end <= l.resize_at);
                let k = Wallet::insecure_clone(&self.keepers[keeper]);
                let provider_token = self.providers[l.provider].token;
                let parties = self.parties(&l);
                let ix = ix::lease_checkpoint(
                    &k.pubkey(),
                    &parties,
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
                let done = self.send(&[ix], &[&k.keypair]).await;
                if done {
                    let gross = l.rate() * (end - start) as u64;
                    let s = if pass {
                        split_payment(gross, l.terms.protocol_fee_bps, l.terms.keeper_fee_bps)
                            .unwrap()
                    } else {
                        PaymentSplit {
                            provider: 0,
                            protocol: 0,
                            keeper: bps_of(gross, l.terms.keeper_fee_bps).unwrap(),
                        }
                    };
                    // Independent of the program's split: fees are floors of the bps share of
                    // the lease's own terms, and the keeper's is the same for both verdicts.
                    assert_eq!(s.keeper, bps_of(gross, l.terms.keeper_fee_bps).unwrap());
                    if pass {
                        assert_eq!(s.protocol, bps_of(gross, l.terms.protocol_fee_bps).unwrap());
                        assert_eq!(s.provider + s.protocol + s.keeper, gross);
                    }
                    self.sub(
                        pda::lease_vault(&l.lease),
                        s.provider + s.protocol + s.keeper,
                    );
                    self.add(provider_token, s.provider);
                    self.add(self.f.treasury, s.protocol);
                    self.add(k.token, s.keeper);
                    let paused_mark = self.cfg.paused_seconds_at(now);
                    let lm = &mut self.leases[i];
                    lm.paid_provider += s.provider;
                    lm.paid_protocol += s.protocol;
                    lm.paid_keeper += s.keeper;
                    lm.paid_until = end;
                    lm.last_sequence = sequence;
                    lm.last_checkpoint_at = now;
                    lm.paused_mark = paused_mark;
                    if lm.pending_gpus > 0 && lm.paid_until == lm.resize_at {
                        let (gpus, stake) = lm.apply_resize();
                        let pm = &mut self.pmodel[l.provider];
                        pm.gpus_leased -= gpus;
                        pm.locked -= stake;
                    }
                }
                Some((ok, done))
            }
            Op::Resize {
                lease,
                gpus,
                max_deposit,
                by_user,
            } => {
                let i = self.pick_lease(lease)?;
                let l = self.leases[i].clone();
                let pm = self.pmodel[l.provider].clone();
                let grow = gpus > l.gpus;
                let budget = l.budget();
                let needed = if l.status == LeaseStatus::Active && gpus > 0 {
                    l.resize_budget(gpus, now)
                } else {
                    budget
                };
                let (deposit, refund) = if grow {
                    (needed.saturating_sub(budget), 0)
                } else {
                    (0, budget.saturating_sub(needed))
                };
                let stake = if grow {
                    LOCK_PER_GPU * u64::from(gpus - l.gpus)
                } else {
                    0
                };
                let user = if by_user {
                    Wallet::insecure_clone(&self.users[l.user])
                } else {
                    Wallet::insecure_clone(&self.stranger)
                };
                let ok = by_user
                    && !paused
                    && l.status == LeaseStatus::Active
                    && l.pending_gpus == 0
                    && gpus > 0
                    && gpus != l.gpus
                    && now <= l.expires_at(self.cfg.paused_seconds_at(now))
                    && (!grow
                        || (!pm.jailed
                            && pm.unbonding == 0
                            && pm.gpus_leased + (gpus - l.gpus) <= GPUS
                            && pm.staked >= STAKE
                            && pm.staked - pm.locked >= stake
                            && deposit <= max_deposit.unwrap_or(u64::MAX)
                            && self.expected[&user.token] >= deposit));
                let parties = self.parties(&l);
                let mint = self.f.mint;
                let ix = ix::lease_resize(
                    &user.pubkey(),
                    &user.token,
                    &l.lease,
                    &parties.provider,
                    &mint,
                    gpus,
                    max_deposit.unwrap_or(u64::MAX),
                );
                let done = self.send(&[ix], &[&user.keypair]).await;
                if done {
                    let vault = pda::lease_vault(&l.lease);
                    self.sub(user.token, deposit);
                    self.add(vault, deposit);
                    self.sub(vault, refund);
                    self.add(user.token, refund);
                    let pm = &mut self.pmodel[l.provider];
                    if grow {
                        pm.gpus_leased += gpus - l.gpus;
                        pm.locked += stake;
                    }
                    let lm = &mut self.leases[i];
                    lm.funded += deposit;
                    lm.withdrawn += refund;
                    (lm.pending_gpus, lm.resize_at, lm.pending_stake) = (gpus, now, stake);
                    if lm.paid_until == now {
                        let (gpus, stake) = lm.apply_resize();
                        pm.gpus_leased -= gpus;
                        pm.locked -= stake;
                    }
                    // Whatever the counts, once the resize applies (every period up to it
                    // paid) the lease is funded until the same time as before, and at least
                    // up to the request when its funds had run out.
                    let mut after = self.leases[i].clone();
                    let covered = grow || l.funded_until() >= now;
                    if covered && after.pending_gpus > 0 {
                        after.paid_provider += after.rate() * (now - after.paid_until) as u64;
                        after.paid_until = after.resize_at;
                        after.apply_resize();
                    }
                    assert!(
                        after.funded_until() >= l.funded_until().max(now)
                            || (!grow && l.funded_until() < now),
                        "{op:?}: a resize shortened the lease's funding"
                    );
                }
                Some((ok, done))
            }
            Op::Close { lease, by_user } => {
                let i = self.pick_lease(lease)?;
                let l = self.leases[i].clone();
                let closer = if by_user {
                    Wallet::insecure_clone(&self.users[l.user])
                } else {
                    Wallet::insecure_clone(&self.stranger)
                };
                let ok = by_user
                    || l.status == LeaseStatus::Ended
                    || now > l.expires_at(self.cfg.paused_seconds_at(now));
                let user = &self.users[l.user];
                let (user_token, rent_payer) = (user.token, user.pubkey());
                // An ended lease needs neither provider nor keeper (either may be closed); a
                // pending one has no keeper yet.
                let mut parties = self.parties(&l);
                if l.status == LeaseStatus::Ended {
                    parties = parties.ended();
                }
                let ix = ix::lease_close(&closer.pubkey(), &parties, &user_token, &rent_payer);
                let done = self.send(&[ix], &[&closer.keypair]).await;
                if done {
                    let vault = pda::lease_vault(&l.lease);
                    let left = self.expected.remove(&vault).expect("vault");
                    assert_eq!(left, l.escrow(), "escrow = funded - paid");
                    self.add(user_token, left);
                    if l.status != LeaseStatus::Ended {
                        let (booked_gpus, booked_stake) = l.clone().cancel_resize();
                        let pm = &mut self.pmodel[l.provider];
                        pm.locked -= l.stake_locked + booked_stake;
                        pm.gpus_leased -= l.gpus + booked_gpus;
                        pm.active_leases -= 1;
                    }
                    if let (LeaseStatus::Active, Some(k)) = (l.status, l.keeper) {
                        self.kmodel[k].leases_assigned -= 1;
                    }
                    self.leases[i].open = false;
                }
                Some((ok, done))
            }
            Op::Slash {
                lease,
                signers,
                gpus,
            } => {
                let i = self.pick_lease(lease)?;
                let l = self.leases[i].clone();
                let signers: Vec<usize> = match signers {
                    Some(s) => s.iter().map(|p| self.resolve(&l, *p)).collect(),
                    None => l.committee.clone(),
                };
                let mut distinct = signers.clone();
                distinct.sort();
                distinct.dedup();
                let ok = !paused
                    && l.status == LeaseStatus::Active
                    && gpus >= 1
                    && gpus <= l.gpus
                    && l.slashed_sequence <= l.last_sequence
                    && distinct.len() == signers.len()
                    && signers.len() >= usize::from(l.terms.slash_quorum)
                    && signers
                        .iter()
                        .all(|&k| self.cfg.is_active(k) && l.committee.contains(&k));
                let wallets: Vec<Pubkey> =
                    signers.iter().map(|&k| self.keepers[k].pubkey()).collect();
                let user_token = self.users[l.user].token;
                let parties = self.parties(&l);
                let ix = ix::provider_slash(&parties, &user_token, &wallets, [5; 32], gpus);
                let kps: Vec<Keypair> = distinct
                    .iter()
                    .map(|&k| self.keepers[k].keypair.insecure_clone())
                    .collect();
                let refs: Vec<&Keypair> = kps.iter().collect();
                let done = self.send(&[ix], &refs).await;
                if done {
                    // A slash cancels a pending resize; a grow's booking goes back.
                    let (booked_gpus, booked_stake) = self.leases[i].cancel_resize();
                    let pm = &mut self.pmodel[l.provider];
                    pm.gpus_leased -= booked_gpus;
                    pm.locked -= booked_stake;
                    // The stake of the slashed GPUs: the lease keeps the healthy GPUs' share,
                    // rounded down.
                    let kept = (u128::from(l.stake_locked) * u128::from(l.gpus - gpus)
                        / u128::from(l.gpus)) as u64;
                    let slashed_stake = l.stake_locked - kept;
                    let s = split_slash(
                        slashed_stake,
                        l.terms.slash_fraction_bps,
                        l.terms.slash_treasury_bps,
                    )
                    .unwrap();
                    assert_eq!(
                        s.total,
                        bps_of(slashed_stake, l.terms.slash_fraction_bps).unwrap()
                    );
                    let to_user = compensation(
                        s.user,
                        l.paid_by_user(),
                        l.compensation,
                        l.terms.slash_compensation_bps,
                    )
                    .unwrap();
                    let to_treasury = s.total - to_user;
                    // Slashing one's own lease never pays: compensation in all never exceeds
                    // the capped share of what the user paid out of escrow.
                    assert!(
                        l.compensation + to_user
                            <= bps_of(l.paid_by_user(), l.terms.slash_compensation_bps).unwrap()
                    );
                    self.sub(pda::provider_vault(&parties.provider), s.total);
                    self.add(user_token, to_user);
                    self.add(self.f.treasury, to_treasury);
                    let jail = self.cfg.params.jail_period;
                    let ends = gpus == l.gpus;
                    let pm = &mut self.pmodel[l.provider];
                    pm.staked -= s.total;
                    pm.locked -= slashed_stake;
                    pm.gpus_leased -= gpus;
                    pm.jailed = true;
                    pm.jailed_until = now + jail;
                    if ends {
                        pm.active_leases -= 1;
                        let k = l.keeper.expect("active lease has a keeper");
                        self.kmodel[k].leases_assigned -= 1;
                    }
                    let lm = &mut self.leases[i];
                    lm.compensation += to_user;
                    lm.slashed_sequence = lm.last_sequence + 1;
                    if ends {
                        lm.status = LeaseStatus::Ended;
                    } else {
                        // Goes on with the healthy GPUs from `paid_until`, at their rate.
                        lm.gpus -= gpus;
                        lm.stake_locked = kept;
                        lm.rate_since = lm.paid_until;
                        lm.spent_before_rate = lm.paid_by_user();
                    }
                }
                Some((ok, done))
            }
            Op::KeeperSlash {
                lease,
                accused,
                signers,
                sequence,
            } => {
                let checkpointed: Vec<usize> = (0..self.leases.len())
                    .filter(|&i| self.leases[i].open && self.leases[i].last_sequence > 0)
                    .collect();
                let i = if checkpointed.is_empty() {
                    self.pick_lease(lease)?
                } else {
                    checkpointed[lease % checkpointed.len()]
                };
                let l = self.leases[i].clone();
                let accused = self.resolve(&l, accused);
                let signers: Vec<usize> = match signers {
                    Some(s) => s.iter().map(|p| self.resolve(&l, *p)).collect(),
                    None => l
                        .committee
                        .iter()
                        .copied()
                        .filter(|&k| k != accused)
                        .collect(),
                };
                let mut distinct = signers.clone();
                distinct.sort();
                distinct.dedup();
                let sequence = match sequence {
                    0 => 0,
                    1 => 1,
                    2 => l.last_sequence,
                    _ => l.last_sequence + 1,
                };
                let accused_status = self.kmodel[accused].status;
                let ok = !paused
                    && l.status != LeaseStatus::Pending
                    && sequence >= 1
                    && sequence <= l.last_sequence
                    && sequence > l.judged_sequence
                    && l.committee.contains(&accused)
                    && accused_status.is_some()
                    && distinct.len() == signers.len()
                    && signers.len() >= usize::from(l.terms.slash_quorum)
                    && signers.iter().all(|&k| {
                        k != accused && self.cfg.is_active(k) && l.committee.contains(&k)
                    });
                let last_keeper = if accused_status == Some(KeeperStatus::Active) {
                    self.last_keeper_for(accused)
                } else {
                    None
                };
                let wallets: Vec<Pubkey> =
                    signers.iter().map(|&k| self.keepers[k].pubkey()).collect();
                let user_token = self.users[l.user].token;
                let parties = self.parties(&l);
                let accused_account = self.keeper_account(accused);
                let ix = ix::keeper_slash(
                    &parties,
                    &accused_account,
                    last_keeper,
                    &user_token,
                    &wallets,
                    KeeperSlashArgs {
                        sequence,
                        evidence_digest: [7; 32],
                    },
                );
                let kps: Vec<Keypair> = distinct
                    .iter()
                    .map(|&k| self.keepers[k].keypair.insecure_clone())
                    .collect();
                let refs: Vec<&Keypair> = kps.iter().collect();
                let done = self.send(&[ix], &refs).await;
                if done {
                    let km = &self.kmodel[accused];
                    let slashed =
                        bps_of(km.bond, self.cfg.params.keeper_slash_fraction_bps).unwrap();
                    let to_user = compensation(
                        slashed,
                        l.paid_by_user(),
                        l.compensation,
                        l.terms.slash_compensation_bps,
                    )
                    .unwrap();
                    assert!(
                        l.compensation + to_user
                            <= bps_of(l.paid_by_user(), l.terms.slash_compensation_bps).unwrap()
                    );
                    self.sub(pda::keeper_vault(&accused_account), slashed);
                    self.add(user_token, to_user);
                    self.add(self.f.treasury, slashed - to_user);
                    self.leases[i].compensation += to_user;
                    self.leases[i].judged_sequence = sequence;
                    if accused_status == Some(KeeperStatus::Active) {
                        self.leave_active_set(accused);
                        self.kmodel[accused].status = Some(KeeperStatus::Draining);
                    }
                    self.kmodel[accused].bond -= slashed;
                }
                Some((ok, done))
            }
            Op::Reassign { lease, advance, to } => {
                let i = self.pick_lease(lease)?;
                self.f.warp(advance).await;
                let now = self.now().await;
                let l = self.leases[i].clone();
                let n = l.committee.len();
                let old = l.keeper.unwrap_or(0);
                let from = l.committee.iter().position(|&k| k == old);
                // The successor: the first active member after the current keeper, cyclically.
                let successor = from.and_then(|from| {
                    (1..n)
                        .map(|d| l.committee[(from + d) % n])
                        .find(|&k| self.cfg.is_active(k))
                });
                let new = match (to, successor, from) {
                    (Some(k), _, _) => k,
                    (None, Some(k), _) => k,
                    (None, None, Some(from)) => l.committee[(from + 1) % n],
                    (None, None, None) => 1,
                };
                // The members between the old keeper and the new one, in committee order.
                let skipped: Vec<usize> = match (from, l.committee.iter().position(|&k| k == new)) {
                    (Some(from), Some(to)) if to != from => (1..n)
                        .map(|d| l.committee[(from + d) % n])
                        .take((to + n - from - 1) % n)
                        .collect(),
                    _ => Vec::new(),
                };
                let paused_now = self.cfg.paused_seconds_at(now);
                let deadline = l.last_checkpoint_at
                    + l.terms.checkpoint_interval
                    + l.terms.grace_period
                    + (paused_now - l.paused_mark).max(0);
                let ok = !paused
                    && l.status == LeaseStatus::Active
                    && self.cfg.is_active(new)
                    && new != old
                    && (!self.cfg.is_active(old) || now > deadline)
                    && l.committee.contains(&new)
                    && skipped.iter().all(|&k| !self.cfg.is_active(k));
                let k = Wallet::insecure_clone(&self.keepers[new]);
                let old_account = self.keeper_account(old);
                let skipped_accounts: Vec<Pubkey> =
                    skipped.iter().map(|&s| self.keeper_account(s)).collect();
                let ix = ix::lease_reassign_keeper(
                    &k.pubkey(),
                    &l.lease,
                    &old_account,
                    &skipped_accounts,
                );
                let done = self.send(&[ix], &[&k.keypair]).await;
                if done {
                    self.kmodel[old].leases_assigned -= 1;
                    self.kmodel[new].leases_assigned += 1;
                    let lm = &mut self.leases[i];
                    lm.keeper = Some(new);
                    lm.last_checkpoint_at = now;
                    lm.paused_mark = paused_now;
                }
                Some((ok, done))
            }
            Op::Stake { provider, amount } => {
                let p = Wallet::insecure_clone(&self.providers[provider]);
                let pm = &self.pmodel[provider];
                let ok = !paused && pm.exists && amount > 0 && self.expected[&p.token] >= amount;
                let mint = self.f.mint;
                let ix = ix::provider_stake(&p.pubkey(), &p.token, &mint, amount);
                let done = self.send(&[ix], &[&p.keypair]).await;
                if done {
                    self.sub(p.token, amount);
                    self.add(
                        pda::provider_vault(&self.provider_account(provider)),
                        amount,
                    );
                    let pm = &mut self.pmodel[provider];
                    pm.staked += amount;
                    if pm.jailed && now >= pm.jailed_until {
                        pm.jailed = false;
                    }
                }
                Some((ok, done))
            }
            Op::Unstake { provider, amount } => {
                let p = Wallet::insecure_clone(&self.providers[provider]);
                let pm = &self.pmodel[provider];
                let amount = amount.unwrap_or(pm.staked - pm.locked);
                let ok = pm.exists && amount > 0 && amount <= pm.staked - pm.locked;
                let ix = ix::provider_unstake_request(&p.pubkey(), amount);
                let done = self.send(&[ix], &[&p.keypair]).await;
                if done {
                    let period = self.cfg.params.unbonding_period;
                    let pm = &mut self.pmodel[provider];
                    pm.staked -= amount;
                    pm.unbonding += amount;
                    pm.unbonding_ends_at = now + period;
                }
                Some((ok, done))
            }
            Op::Withdraw { provider, wait } => {
                let p = Wallet::insecure_clone(&self.providers[provider]);
                let pm = self.pmodel[provider].clone();
                let mut now = now;
                if wait && pm.unbonding > 0 && pm.unbonding_ends_at > now {
                    self.f.warp(pm.unbonding_ends_at - now).await;
                    now = self.now().await;
                }
                let ok = pm.exists && pm.unbonding > 0 && now >= pm.unbonding_ends_at;
                let mint = self.f.mint;
                let ix = ix::provider_withdraw(&p.pubkey(), &p.token, &mint);
                let done = self.send(&[ix], &[&p.keypair]).await;
                if done {
                    self.sub(
                        pda::provider_vault(&self.provider_account(provider)),
                        pm.unbonding,
                    );
                    self.add(p.token, pm.unbonding);
                    let pm = &mut self.pmodel[provider];
                    pm.unbonding = 0;
                    pm.unbonding_ends_at = 0;
                }
                Some((ok, done))
            }
            Op::ProviderClose { provider } => {
                let p = Wallet::insecure_clone(&self.providers[provider]);
                let pm = &self.pmodel[provider];
                let ok = pm.exists && pm.staked == 0 && pm.unbonding == 0 && pm.active_leases == 0;
                let mint = self.f.mint;
                let ix = ix::provider_close(&p.pubkey(), &p.token, &mint);
                let done = self.send(&[ix], &[&p.keypair]).await;
                if done {
                    let vault = pda::provider_vault(&self.provider_account(provider));
                    let left = self.expected.remove(&vault).expect("provider vault");
                    assert_eq!(left, 0, "a closed provider's vault is empty");
                    self.pmodel[provider] = ProviderModel::default();
                }
                Some((ok, done))
            }
            Op::ProviderRegister { provider } => {
                let p = Wallet::insecure_clone(&self.providers[provider]);
                let ok = !paused && !self.pmodel[provider].exists;
                let mint = self.f.mint;
                let ix = ix::provider_register(&p.pubkey(), &mint, provider_args(GPUS));
                let done = self.send(&[ix], &[&p.keypair]).await;
                if done {
                    self.expected
                        .insert(pda::provider_vault(&self.provider_account(provider)), 0);
                    self.pmodel[provider] = ProviderModel {
                        exists: true,
                        ..Default::default()
                    };
                }
                Some((ok, done))
            }
            Op::KeeperRegister { keeper } => {
                let keeper = self.select_keeper(keeper, |k| k.status.is_none());
                let k = Wallet::insecure_clone(&self.keepers[keeper]);
                let bond = self.cfg.params.keeper_bond;
                let ok = !paused
                    && self.kmodel[keeper].status.is_none()
                    && self.cfg.active.len() < usize::from(self.cfg.params.max_keepers)
                    && self.expected[&k.token] >= bond;
                let mint = self.f.mint;
                let ix = ix::keeper_register(&k.pubkey(), &k.token, &mint, KEEPER_ENDPOINT);
                let done = self.send(&[ix], &[&k.keypair]).await;
                if done {
                    self.sub(k.token, bond);
                    self.expected
                        .insert(pda::keeper_vault(&self.keeper_account(keeper)), bond);
                    self.kmodel[keeper] = KeeperModel {
                        status: Some(KeeperStatus::Active),
                        bond,
                        ..Default::default()
                    };
                    self.cfg.active.push(keeper);
                    // So that the fixture's draws see it.
                    if !self.f.keepers.contains(&k.pubkey()) {
                        self.f.keepers.push(k.pubkey());
                    }
                }
                Some((ok, done))
            }
            Op::KeeperDrain { keeper } => {
                let keeper = self.select_keeper(keeper, |k| k.status == Some(KeeperStatus::Active));
                let k = Wallet::insecure_clone(&self.keepers[keeper]);
                let active = self.kmodel[keeper].status == Some(KeeperStatus::Active);
                let last = if active {
                    self.last_keeper_for(keeper)
                } else {
                    None
                };
                let ix = ix::keeper_drain(&k.pubkey(), last);
                let done = self.send(&[ix], &[&k.keypair]).await;
                if done {
                    self.leave_active_set(keeper);
                    self.kmodel[keeper].status = Some(KeeperStatus::Draining);
                }
                Some((active, done))
            }
            Op::KeeperDeregister { keeper } => {
                let keeper = self.select_keeper(keeper, |k| {
                    matches!(
                        k.status,
                        Some(KeeperStatus::Active | KeeperStatus::Draining)
                    )
                });
                let k = Wallet::insecure_clone(&self.keepers[keeper]);
                let km = self.kmodel[keeper].clone();
                let active = km.status == Some(KeeperStatus::Active);
                let ok = matches!(
                    km.status,
                    Some(KeeperStatus::Active | KeeperStatus::Draining)
                ) && km.leases_assigned == 0;
                let last = if active {
                    self.last_keeper_for(keeper)
                } else {
                    None
                };
                let ix = ix::keeper_deregister(&k.pubkey(), last);
                let done = self.send(&[ix], &[&k.keypair]).await;
                if done {
                    if active {
                        self.leave_active_set(keeper);
                    }
                    let km = &mut self.kmodel[keeper];
                    km.status = Some(KeeperStatus::Unbonding);
                    km.unbonding_ends_at = now + self.cfg.params.unbonding_period;
                }
                Some((ok, done))
            }
            Op::KeeperClose { keeper, wait } => {
                let keeper =
                    self.select_keeper(keeper, |k| k.status == Some(KeeperStatus::Unbonding));
                let k = Wallet::insecure_clone(&self.keepers[keeper]);
                let km = self.kmodel[keeper].clone();
                let mut now = now;
                if wait && km.status == Some(KeeperStatus::Unbonding) && km.unbonding_ends_at > now
                {
                    self.f.warp(km.unbonding_ends_at - now).await;
                    now = self.now().await;
                }
                let ok = km.status == Some(KeeperStatus::Unbonding) && now >= km.unbonding_ends_at;
                let mint = self.f.mint;
                let ix = ix::keeper_close(&k.pubkey(), &k.token, &mint);
                let done = self.send(&[ix], &[&k.keypair]).await;
                if done {
                    let vault = pda::keeper_vault(&self.keeper_account(keeper));
                    let left = self.expected.remove(&vault).expect("keeper vault");
                    assert_eq!(left, km.bond, "the vault holds the bond left");
                    self.add(k.token, left);
                    self.kmodel[keeper] = KeeperModel::default();
                }
                Some((ok, done))
            }
            Op::Pause {
                paused: pause,
                by_admin,
            } => {
                let signer = if by_admin {
                    self.f.admin.insecure_clone()
                } else {
                    self.stranger.keypair.insecure_clone()
                };
                let ix = ix::config_update(
                    &signer.pubkey(),
                    ConfigUpdateArgs {
                        paused: Some(pause),
                        ..Default::default()
                    },
                );
                let done = self.send(&[ix], &[&signer]).await;
                if done {
                    match (pause, self.cfg.paused) {
                        (true, false) => {
                            self.cfg.paused = true;
                            self.cfg.paused_at = now.max(1);
                        }
                        (false, true) => {
                            self.cfg.paused_seconds = self.cfg.paused_seconds_at(now);
                            self.cfg.paused = false;
                            self.cfg.paused_at = 0;
                        }
                        _ => {}
                    }
                }
                Some((by_admin, done))
            }
            Op::ConfigChange {
                protocol_fee_bps,
                keeper_fee_bps,
                grace_period,
                checkpoint_interval,
                slash_fraction_bps,
                slash_treasury_bps,
                slash_compensation_bps,
                keeper_slash_fraction_bps,
                by_admin,
            } => {
                let params = ConfigParams {
                    protocol_fee_bps,
                    keeper_fee_bps,
                    grace_period,
                    checkpoint_interval,
                    slash_fraction_bps,
                    slash_treasury_bps,
                    slash_compensation_bps,
                    keeper_slash_fraction_bps,
                    ..self.cfg.params.clone()
                };
                let ok = by_admin && protocol_fee_bps <= 2_000 && keeper_fee_bps <= 2_000;
                let signer = if by_admin {
                    self.f.admin.insecure_clone()
                } else {
                    self.stranger.keypair.insecure_clone()
                };
                let ix = ix::config_update(
                    &signer.pubkey(),
                    ConfigUpdateArgs {
                        params: Some(params.clone()),
                        ..Default::default()
                    },
                );
                let done = self.send(&[ix], &[&signer]).await;
                if done {
                    // `param_change_delay` is 0 in the fixture: the change is current at once.
                    self.cfg.params = params;
                }
                Some((ok, done))
            }
        }
    }

    /// Every balance is what the model says; they add up to the supply; each open lease's
    /// books balance with its vault; every lease, provider, keeper and config field the model
    /// tracks matches the chain.
    async fn check(&mut self, step: usize, op: &Op) {
        let mut total = 0u64;
        let accounts: Vec<(Pubkey, u64)> = self.expected.iter().map(|(k, v)| (*k, *v)).collect();
        let mut balances = HashMap::new();
        for (account, want) in accounts {
            let got = self.f.balance(&account).await;
            assert_eq!(got, want, "step {step} {op:?}: balance of {account}");
            balances.insert(account, got);
            total += got;
        }
        assert_eq!(
            total, self.supply,
            "step {step} {op:?}: tokens created or destroyed"
        );
        assert_eq!(self.f.supply().await, self.supply);

        for l in self.leases.clone().iter().filter(|l| l.open) {
            let lease = self.f.lease(&l.lease).await;
            let vault = balances[&pda::lease_vault(&l.lease)];
            assert_eq!(
                lease.funded,
                lease.paid_provider
                    + lease.paid_protocol
                    + lease.paid_keeper
                    + lease.refunded
                    + lease.withdrawn
                    + vault,
                "step {step} {op:?}: lease books"
            );
            assert_eq!(
                (
                    lease.pending_gpus,
                    lease.resize_at,
                    lease.pending_stake,
                    lease.withdrawn
                ),
                (l.pending_gpus, l.resize_at, l.pending_stake, l.withdrawn),
                "step {step} {op:?}: lease {} resize",
                l.lease
            );
            let committee: Vec<Pubkey> = l
                .committee
                .iter()
                .map(|&k| self.keeper_account(k))
                .collect();
            let keeper = l.keeper.map(|k| self.keeper_account(k)).unwrap_or_default();
            assert_eq!(
                (
                    lease.status,
                    lease.funded,
                    lease.paid_provider,
                    lease.paid_protocol,
                    lease.paid_keeper,
                    lease.compensation,
                    lease.stake_locked,
                ),
                (
                    l.status,
                    l.funded,
                    l.paid_provider,
                    l.paid_protocol,
                    l.paid_keeper,
                    l.compensation,
                    l.stake_locked,
                ),
                "step {step} {op:?}: lease {} status and books",
                l.lease
            );
            assert_eq!(
                (
                    lease.start,
                    lease.paid_until,
                    lease.last_sequence,
                    lease.judged_sequence,
                    lease.last_checkpoint_at,
                    lease.paused_mark,
                    lease.gpus,
                    lease.rate_since,
                    lease.spent_before_rate,
                    lease.slashed_sequence,
                ),
                (
                    l.start,
                    l.paid_until,
                    l.last_sequence,
                    l.judged_sequence,
                    l.last_checkpoint_at,
                    l.paused_mark,
                    l.gpus,
                    l.rate_since,
                    l.spent_before_rate,
                    l.slashed_sequence,
                ),
                "step {step} {op:?}: lease {} times",
                l.lease
            );
            assert_eq!(
                (lease.terms, lease.committee().to_vec(), lease.keeper),
                (l.terms, committee, keeper),
                "step {step} {op:?}: lease {} terms and committee",
                l.lease
            );
        }

        for i in 0..PROVIDERS {
            let address = self.provider_account(i);
            let pm = self.pmodel[i].clone();
            if !pm.exists {
                assert!(
                    self.f.raw(&address).await.is_none(),
                    "step {step} {op:?}: provider {i} closed"
                );
                continue;
            }
            let authority = self.providers[i].pubkey();
            let acct = self.f.provider(&authority).await;
            assert_eq!(
                (
                    acct.staked,
                    acct.locked,
                    acct.unbonding,
                    acct.unbonding_ends_at,
                    acct.gpus_leased,
                    acct.active_leases,
                    acct.status,
                    acct.jailed_until,
                ),
                (
                    pm.staked,
                    pm.locked,
                    pm.unbonding,
                    pm.unbonding_ends_at,
                    pm.gpus_leased,
                    pm.active_leases,
                    pm.status(),
                    pm.jailed_until,
                ),
                "step {step} {op:?}: provider {i}"
            );
        }

        for k in 0..KEEPER_WALLETS {
            let address = self.keeper_account(k);
            let km = self.kmodel[k].clone();
            let Some(status) = km.status else {
                assert!(
                    self.f.raw(&address).await.is_none(),
                    "step {step} {op:?}: keeper {k} closed"
                );
                continue;
            };
            let index = self
                .cfg
                .active
                .iter()
                .position(|&a| a == k)
                .map(|i| i as u16)
                .unwrap_or(NO_INDEX);
            let authority = self.keepers[k].pubkey();
            let acct = self.f.keeper(&authority).await;
            assert_eq!(
                (
                    acct.status,
                    acct.bond,
                    acct.leases_assigned,
                    acct.unbonding_ends_at,
                    acct.index,
                ),
                (
                    status,
                    km.bond,
                    km.leases_assigned,
                    km.unbonding_ends_at,
                    index
                ),
                "step {step} {op:?}: keeper {k}"
            );
        }

        let config = self.f.config().await;
        assert_eq!(
            (
                config.paused,
                config.paused_at,
                config.paused_seconds,
                usize::from(config.active_keepers),
                &config.params,
            ),
            (
                self.cfg.paused,
                self.cfg.paused_at,
                self.cfg.paused_seconds,
                self.cfg.active.len(),
                &self.cfg.params,
            ),
            "step {step} {op:?}: config"
        );
    }
}

async fn run(ops: Vec<Op>) {
    let stats = std::env::var("GPUNET_PROPTEST_STATS").is_ok();
    let mut sim = Sim::new().await;
    sim.check(0, &Op::Warp { secs: 0 }).await;
    for (i, op) in ops.iter().enumerate() {
        sim.last_err.clear();
        if let Some((predicted, happened)) = sim.step(op).await {
            if stats {
                eprintln!("STAT {} {happened}", op.kind());
            }
            assert_eq!(
                happened, predicted,
                "step {i} {op:?}: model and program disagree (last error: {})",
                sim.last_err
            );
        }
        // A warp moves only the clock; the next step's check covers it.
        if !matches!(op, Op::Warp { .. }) {
            sim.check(i + 1, op).await;
        }
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
    fn test_property_random_operations_first_half(ops in ops()) {
        runtime().block_on(run(ops));
    }

    #[test]
    fn test_property_random_operations_second_half(ops in ops()) {
        runtime().block_on(run(ops));
    }
}
