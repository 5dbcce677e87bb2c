//! Lease actions: open, top up, checkpoint, close, reassign, and the provider slash.

use anchor_lang::error::ErrorCode as AnchorError;
use gpunet::error::GpunetError;
use gpunet::instructions::{LeaseCheckpointArgs, LeaseOpenArgs, ProviderUpdateArgs};
use gpunet::state::{LeaseStatus, ProviderStatus, Verdict};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::pda;
use gpunet_tests::*;
use solana_sdk::signature::Signer;

use crate::substitute;

pub(crate) const STAKE: u64 = 4_000 * TOKEN; // 4 H100s × 1,000 tokens minimum
pub(crate) const PRICE: u64 = 10; // base units per GPU-second
pub(crate) const HOUR: i64 = 3_600;

/// Two keepers, a provider with 4 H100s fully staked, a user with plenty of tokens.
pub(crate) struct World {
    pub(crate) f: Fixture,
    pub(crate) keepers: Vec<Wallet>,
    pub(crate) provider: Wallet,
    pub(crate) user: Wallet,
}

impl World {
    pub(crate) async fn new() -> Self {
        let mut f = Fixture::new().await;
        let keepers = vec![f.keeper_wallet().await, f.keeper_wallet().await];
        let provider = f.provider_wallet(4, STAKE, 0).await;
        let user = f.wallet(10_000_000).await;
        World {
            f,
            keepers,
            provider,
            user,
        }
    }

    pub(crate) fn args(nonce: u64, gpus: u16, duration: i64) -> LeaseOpenArgs {
        LeaseOpenArgs {
            nonce,
            gpus,
            duration,
            max_price_per_gpu_second: PRICE,
        }
    }

    pub(crate) async fn open(&mut self, nonce: u64, gpus: u16, duration: i64) -> LeaseParties {
        let user = Wallet {
            keypair: self.user.keypair.insecure_clone(),
            token: self.user.token,
        };
        self.f
            .open_lease(
                &user,
                &self.provider.pubkey(),
                Self::args(nonce, gpus, duration),
            )
            .await
            .expect("lease_open")
    }

    pub(crate) fn keeper_of(&self, parties: &LeaseParties) -> &Wallet {
        self.keepers
            .iter()
            .find(|k| pda::keeper(&k.pubkey()) == parties.keeper)
            .expect("assigned keeper is one of ours")
    }

    /// Posts checkpoint `sequence` for [start, end) with `verdict`, signed by `keeper`.
    pub(crate) async fn checkpoint_by(
        &mut self,
        keeper: &Wallet,
        parties: &LeaseParties,
        sequence: u64,
        start: i64,
        end: i64,
        verdict: Verdict,
    ) -> Result<(), solana_program_test::BanksClientError> {
        let ix = ix::lease_checkpoint(
            &keeper.pubkey(),
            parties,
            &self.provider.token,
            &keeper.token,
            LeaseCheckpointArgs {
                sequence,
                period_start: start,
                period_end: end,
                proof_digest: [7; 32],
                verdict,
                score: 1234,
            },
        );
        let kp = keeper.keypair.insecure_clone();
        self.f.send(&[ix], &[&kp]).await
    }

    pub(crate) async fn checkpoint(
        &mut self,
        parties: &LeaseParties,
        sequence: u64,
        start: i64,
        end: i64,
    ) -> Result<(), solana_program_test::BanksClientError> {
        let k = self.keeper_of(parties);
        let k = Wallet {
            keypair: k.keypair.insecure_clone(),
            token: k.token,
        };
        self.checkpoint_by(&k, parties, sequence, start, end, Verdict::Pass)
            .await
    }

    pub(crate) async fn close_by_user(
        &mut self,
        parties: &LeaseParties,
    ) -> Result<(), solana_program_test::BanksClientError> {
        let ix = ix::lease_close(
            &self.user.pubkey(),
            parties,
            &self.user.token,
            &self.user.pubkey(),
        );
        let kp = self.user.keypair.insecure_clone();
        self.f.send(&[ix], &[&kp]).await
    }

    pub(crate) async fn slash(
        &mut self,
        parties: &LeaseParties,
        signers: &[&Wallet],
    ) -> Result<(), solana_program_test::BanksClientError> {
        let gpus = self.f.lease(&parties.lease).await.gpus;
        self.slash_gpus(parties, signers, gpus).await
    }

    pub(crate) async fn slash_gpus(
        &mut self,
        parties: &LeaseParties,
        signers: &[&Wallet],
        gpus: u16,
    ) -> Result<(), solana_program_test::BanksClientError> {
        let wallets: Vec<_> = signers.iter().map(|w| w.pubkey()).collect();
        let ix = ix::provider_slash(parties, &self.user.token, &wallets, [9; 32], gpus);
        let kps: Vec<_> = signers.iter().map(|w| w.keypair.insecure_clone()).collect();
        let refs: Vec<_> = kps.iter().collect();
        self.f.send(&[ix], &refs).await
    }
}

#[tokio::test]
async fn test_lease_open_ok() {
    let mut w = World::new().await;
    let user_before = w.f.balance(&w.user.token).await;
    let p = w.open(1, 2, HOUR).await;
    let deposit = PRICE * 2 * HOUR as u64;
    let lease = w.f.lease(&p.lease).await;
    let now = w.f.clock().await.unix_timestamp;
    assert_eq!(lease.user, w.user.pubkey());
    assert_eq!(lease.gpus, 2);
    assert_eq!(lease.price_per_gpu_second, PRICE);
    assert_eq!(lease.funded, deposit);
    assert_eq!(lease.funded_until().unwrap(), now + HOUR);
    assert_eq!(lease.stake_locked, 2_000 * TOKEN);
    assert_eq!(lease.status, LeaseStatus::Active);
    assert_eq!(w.f.balance(&pda::lease_vault(&p.lease)).await, deposit);
    assert_eq!(w.f.balance(&w.user.token).await, user_before - deposit);
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!(
        (prov.gpus_leased, prov.active_leases, prov.locked),
        (2, 1, 2_000 * TOKEN)
    );
    let keeper = w.f.account::<gpunet::state::Keeper>(&p.keeper).await;
    assert_eq!(keeper.leases_assigned, 1);
}

#[tokio::test]
async fn test_lease_opens_pending_and_its_committee_comes_from_a_later_slot() {
    let mut w = World::new().await;
    let user = Wallet {
        keypair: w.user.keypair.insecure_clone(),
        token: w.user.token,
    };
    let lease =
        w.f.open_pending_lease(&user, &w.provider.pubkey(), World::args(1, 1, HOUR))
            .await
            .unwrap();
    let pending = w.f.lease(&lease).await;
    assert_eq!(pending.status, LeaseStatus::Pending);
    assert_eq!(pending.keeper, anchor_lang::prelude::Pubkey::default());
    // No hash after the open to draw from yet.
    assert_gpunet_err(w.f.draw_committee(&lease).await, GpunetError::DrawTooEarly);
    w.f.advance_slots(2).await;
    let expected = w.f.expected_committee(&lease).await.unwrap();
    w.f.draw_committee(&lease).await.unwrap();
    let l = w.f.lease(&lease).await;
    assert_eq!(l.status, LeaseStatus::Active);
    // Two active keepers, committees of three: both are on it, in draw order.
    assert_eq!(l.committee(), expected.as_slice());
    assert_eq!(l.committee().len(), 2);
    assert_eq!(l.keeper, expected[0]);
    assert_eq!(
        l.start,
        w.f.clock().await.unix_timestamp,
        "billing starts at the draw"
    );
    // A second draw is refused.
    assert_gpunet_err(
        w.f.draw_committee(&lease).await,
        GpunetError::LeaseNotPending,
    );
}

#[tokio::test]
async fn test_lease_draw_follows_the_slot_hash_and_not_the_caller() {
    let mut w = World::new().await;
    for _ in 0..4 {
        let k = w.f.keeper_wallet().await;
        w.keepers.push(k);
    }
    let user = Wallet {
        keypair: w.user.keypair.insecure_clone(),
        token: w.user.token,
    };
    let mut firsts = std::collections::HashSet::new();
    for nonce in 1..=4u64 {
        let lease =
            w.f.open_pending_lease(&user, &w.provider.pubkey(), World::args(nonce, 1, 60))
                .await
                .unwrap();
        w.f.set_slot_hash([nonce as u8; 32]).await;
        let expected = w.f.expected_committee(&lease).await.unwrap();
        assert_eq!(expected.len(), 3);
        firsts.insert(expected[0]);
        // Any other list — another order, another member, one short — is refused.
        let mut swapped = expected.clone();
        swapped.swap(0, 1);
        let other = w
            .keepers
            .iter()
            .map(|k| pda::keeper(&k.pubkey()))
            .find(|k| !expected.contains(k))
            .unwrap();
        let mut replaced = expected.clone();
        replaced[2] = other;
        for bad in [swapped, replaced, expected[..2].to_vec()] {
            let ix = ix::lease_draw_committee(&lease, &bad);
            assert_gpunet_err(w.f.send(&[ix], &[]).await, GpunetError::CommitteeMismatch);
        }
        let ix = ix::lease_draw_committee(&lease, &expected);
        w.f.send(&[ix], &[]).await.unwrap();
    }
    assert!(firsts.len() > 1, "different hashes pick different keepers");
}

#[tokio::test]
async fn test_lease_open_price_above_max_fails() {
    let mut w = World::new().await;
    let user = Wallet {
        keypair: w.user.keypair.insecure_clone(),
        token: w.user.token,
    };
    let mut args = World::args(1, 1, HOUR);
    args.max_price_per_gpu_second = PRICE - 1;
    let res = w.f.open_lease(&user, &w.provider.pubkey(), args).await;
    assert_gpunet_err(res.map(|_| ()), GpunetError::PriceAboveMax);
}

#[tokio::test]
async fn test_lease_keeps_its_price_when_the_provider_raises_it() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let mut gpu = h100s(4);
    gpu.price_per_gpu_second = PRICE * 100;
    let ix = ix::provider_update(
        &w.provider.pubkey(),
        ProviderUpdateArgs {
            gpu: Some(gpu),
            ..Default::default()
        },
    );
    let kp = w.provider.keypair.insecure_clone();
    w.f.send(&[ix], &[&kp]).await.unwrap();
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(100).await;
    let before = w.f.balance(&w.provider.token).await;
    w.checkpoint(&p, 1, start, start + 100).await.unwrap();
    let paid = w.f.balance(&w.provider.token).await - before;
    assert_eq!(
        paid,
        1_000 - 50 - 20,
        "10/s for 100 s, minus 5% and 2% fees"
    );
}

#[tokio::test]
async fn test_lease_open_more_gpus_than_free_fails() {
    let mut w = World::new().await;
    w.open(1, 3, HOUR).await;
    let user = Wallet {
        keypair: w.user.keypair.insecure_clone(),
        token: w.user.token,
    };
    let res =
        w.f.open_lease(&user, &w.provider.pubkey(), World::args(2, 2, HOUR))
            .await;
    assert_gpunet_err(res.map(|_| ()), GpunetError::NotEnoughCapacity);
}

#[tokio::test]
async fn test_lease_open_bad_arguments_fail() {
    let mut w = World::new().await;
    let user = Wallet {
        keypair: w.user.keypair.insecure_clone(),
        token: w.user.token,
    };
    let res =
        w.f.open_lease(&user, &w.provider.pubkey(), World::args(1, 0, HOUR))
            .await;
    assert_gpunet_err(res.map(|_| ()), GpunetError::ZeroGpus);
    let res =
        w.f.open_lease(&user, &w.provider.pubkey(), World::args(1, 1, 0))
            .await;
    assert_gpunet_err(res.map(|_| ()), GpunetError::InvalidDuration);
    let res =
        w.f.open_lease(
            &user,
            &w.provider.pubkey(),
            World::args(1, 1, 366 * 24 * HOUR),
        )
        .await;
    assert_gpunet_err(res.map(|_| ()), GpunetError::InvalidDuration);
}

#[tokio::test]
async fn test_lease_open_reusing_an_open_nonce_fails() {
    let mut w = World::new().await;
    w.open(1, 1, HOUR).await;
    let user = Wallet {
        keypair: w.user.keypair.insecure_clone(),
        token: w.user.token,
    };
    let res =
        w.f.open_lease(&user, &w.provider.pubkey(), World::args(1, 1, HOUR))
            .await;
    assert_gpunet_err(res.map(|_| ()), GpunetError::AlreadyInitialized);
}

#[tokio::test]
async fn test_lease_open_on_unbonding_provider_fails() {
    let mut w = World::new().await;
    let kp = w.provider.keypair.insecure_clone();
    w.f.send(
        &[ix::provider_unstake_request(&w.provider.pubkey(), 1)],
        &[&kp],
    )
    .await
    .unwrap();
    let user = Wallet {
        keypair: w.user.keypair.insecure_clone(),
        token: w.user.token,
    };
    let res =
        w.f.open_lease(&user, &w.provider.pubkey(), World::args(1, 1, HOUR))
            .await;
    assert_gpunet_err(res.map(|_| ()), GpunetError::ProviderUnbonding);
}

#[tokio::test]
async fn test_lease_open_below_minimum_stake_fails() {
    let mut f = Fixture::new().await;
    f.keeper_wallet().await;
    f.keeper_wallet().await;
    let provider = f.provider_wallet(4, STAKE - 1, 0).await;
    let user = f.wallet(10_000_000).await;
    let res = f
        .open_lease(&user, &provider.pubkey(), World::args(1, 1, HOUR))
        .await;
    assert_gpunet_err(res.map(|_| ()), GpunetError::BelowMinimumStake);
}

#[tokio::test]
async fn test_lease_open_paying_from_someone_elses_account_fails() {
    let mut w = World::new().await;
    let thief = w.f.wallet(0).await;
    let mint = w.f.mint;
    let ix = ix::lease_open(
        &thief.pubkey(),
        &thief.pubkey(),
        &w.user.token,
        &pda::provider(&w.provider.pubkey()),
        &mint,
        World::args(1, 1, HOUR),
    );
    assert_gpunet_err(
        w.f.send(&[ix], &[&thief.keypair]).await,
        GpunetError::WrongTokenOwner,
    );
}

#[tokio::test]
async fn test_lease_open_paused_fails() {
    let mut w = World::new().await;
    w.f.set_paused(true).await;
    let user = Wallet {
        keypair: w.user.keypair.insecure_clone(),
        token: w.user.token,
    };
    let res =
        w.f.open_lease(&user, &w.provider.pubkey(), World::args(1, 1, HOUR))
            .await;
    assert_gpunet_err(res.map(|_| ()), GpunetError::ProtocolPaused);
}

#[tokio::test]
async fn test_lease_top_up_by_a_dapp_extends_it() {
    let mut w = World::new().await;
    let p = w.open(1, 2, HOUR).await;
    let dapp = w.f.wallet(100_000).await;
    let until = w.f.lease(&p.lease).await.funded_until().unwrap();
    let mint = w.f.mint;
    let ix = ix::lease_top_up(&dapp.pubkey(), &dapp.token, &p.lease, &mint, 20 * 60 + 7);
    w.f.send(&[ix], &[&dapp.keypair]).await.unwrap();
    let lease = w.f.lease(&p.lease).await;
    assert_eq!(
        lease.funded_until().unwrap(),
        until + 60,
        "20 tokens/s buys 60 s; 7 left over"
    );
    assert_eq!(w.f.balance(&pda::lease_vault(&p.lease)).await, lease.funded);
}

#[tokio::test]
async fn test_lease_top_up_after_grace_fails_and_within_grace_resumes() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let grace = default_params().grace_period;
    let mint = w.f.mint;
    let kp = w.user.keypair.insecure_clone();
    // Out of funds, within grace: paused, and a top-up resumes it.
    w.f.warp(HOUR + grace / 2).await;
    let ix = ix::lease_top_up(
        &w.user.pubkey(),
        &w.user.token,
        &p.lease,
        &mint,
        10 * HOUR as u64,
    );
    w.f.send(&[ix], &[&kp]).await.unwrap();
    // Past the new end plus grace: no more top-ups.
    w.f.warp(HOUR + grace).await;
    let ix = ix::lease_top_up(&w.user.pubkey(), &w.user.token, &p.lease, &mint, 10);
    assert_gpunet_err(w.f.send(&[ix], &[&kp]).await, GpunetError::LeaseExpired);
}

#[tokio::test]
async fn test_lease_top_up_zero_or_other_mint_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let mint = w.f.mint;
    let kp = w.user.keypair.insecure_clone();
    let ix = ix::lease_top_up(&w.user.pubkey(), &w.user.token, &p.lease, &mint, 0);
    assert_gpunet_err(w.f.send(&[ix], &[&kp]).await, GpunetError::ZeroAmount);
    let other_mint = w.f.create_mint(&w.user.pubkey()).await;
    let other = w.f.token_account(&w.user.pubkey(), &other_mint).await;
    let ix = ix::lease_top_up(&w.user.pubkey(), &other, &p.lease, &mint, 10);
    assert_gpunet_err(w.f.send(&[ix], &[&kp]).await, GpunetError::WrongMint);
}

#[tokio::test]
async fn test_lease_checkpoint_ok_pays_provider_treasury_and_keeper() {
    let mut w = World::new().await;
    let p = w.open(1, 2, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    let keeper = w.keeper_of(&p).token;
    let (prov0, tres0, keep0) = (
        w.f.balance(&w.provider.token).await,
        w.f.balance(&w.f.treasury.clone()).await,
        w.f.balance(&keeper).await,
    );
    w.f.warp(600).await;
    w.checkpoint(&p, 1, start, start + 600).await.unwrap();
    let gross = PRICE * 2 * 600;
    assert_eq!(
        w.f.balance(&w.provider.token).await - prov0,
        gross * 93 / 100
    );
    assert_eq!(
        w.f.balance(&w.f.treasury.clone()).await - tres0,
        gross * 5 / 100
    );
    assert_eq!(w.f.balance(&keeper).await - keep0, gross * 2 / 100);
    let lease = w.f.lease(&p.lease).await;
    assert_eq!(lease.paid_until, start + 600);
    assert_eq!(lease.last_sequence, 1);
    assert_eq!(lease.last_digest, [7; 32]);
    assert_eq!(
        w.f.balance(&pda::lease_vault(&p.lease)).await,
        lease.funded - gross
    );
    assert_eq!(w.f.provider(&w.provider.pubkey()).await.score, 1234);
}

#[tokio::test]
async fn test_lease_checkpoint_replayed_sequence_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(600).await;
    w.checkpoint(&p, 1, start, start + 300).await.unwrap();
    let before = w.f.balance(&w.provider.token).await;
    // The same checkpoint sent again (a keeper that crashed and re-sends) pays nothing.
    let res = w.checkpoint(&p, 1, start, start + 300).await;
    assert_gpunet_err(res, GpunetError::SequenceNotNext);
    // Out of order.
    let res = w.checkpoint(&p, 3, start + 300, start + 600).await;
    assert_gpunet_err(res, GpunetError::SequenceNotNext);
    assert_eq!(w.f.balance(&w.provider.token).await, before);
}

#[tokio::test]
async fn test_lease_checkpoint_overlapping_or_gapped_period_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(600).await;
    w.checkpoint(&p, 1, start, start + 300).await.unwrap();
    let res = w.checkpoint(&p, 2, start + 299, start + 600).await;
    assert_gpunet_err(res, GpunetError::PeriodStartMismatch);
    let res = w.checkpoint(&p, 2, start + 301, start + 600).await;
    assert_gpunet_err(res, GpunetError::PeriodStartMismatch);
    let res = w.checkpoint(&p, 2, start + 300, start + 300).await;
    assert_gpunet_err(res, GpunetError::EmptyPeriod);
}

#[tokio::test]
async fn test_lease_checkpoint_in_the_future_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(100).await;
    let res = w.checkpoint(&p, 1, start, start + 101).await;
    assert_gpunet_err(res, GpunetError::PeriodInFuture);
}

#[tokio::test]
async fn test_lease_checkpoint_past_escrow_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(2 * HOUR).await;
    let res = w.checkpoint(&p, 1, start, start + HOUR + 1).await;
    assert_gpunet_err(res, GpunetError::PeriodBeyondEscrow);
    w.checkpoint(&p, 1, start, start + HOUR).await.unwrap();
    assert_eq!(w.f.balance(&pda::lease_vault(&p.lease)).await, 0);
}

#[tokio::test]
async fn test_lease_checkpoint_by_another_keeper_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(100).await;
    let other = w
        .keepers
        .iter()
        .find(|k| pda::keeper(&k.pubkey()) != p.keeper)
        .unwrap();
    let other = Wallet {
        keypair: other.keypair.insecure_clone(),
        token: other.token,
    };
    let res = w
        .checkpoint_by(&other, &p, 1, start, start + 100, Verdict::Pass)
        .await;
    assert_gpunet_err(res, GpunetError::WrongKeeper);
}

#[tokio::test]
async fn test_lease_checkpoint_with_substituted_accounts_fails() {
    let mut w = World::new().await;
    let a = w.open(1, 1, HOUR).await;
    let b = w.open(2, 1, HOUR).await;
    let start = w.f.lease(&a.lease).await.start;
    w.f.warp(100).await;
    let k = w.keeper_of(&a);
    let k = Wallet {
        keypair: k.keypair.insecure_clone(),
        token: k.token,
    };
    let args = LeaseCheckpointArgs {
        sequence: 1,
        period_start: start,
        period_end: start + 100,
        proof_digest: [1; 32],
        verdict: Verdict::Pass,
        score: 1,
    };
    let base = ix::lease_checkpoint(&k.pubkey(), &a, &w.provider.token, &k.token, args.clone());

    // Another lease's escrow vault.
    let ix = substitute(
        base.clone(),
        &pda::lease_vault(&a.lease),
        &pda::lease_vault(&b.lease),
    );
    assert_anchor_err(
        w.f.send(&[ix], &[&k.keypair]).await,
        AnchorError::ConstraintSeeds,
    );
    // A provider token account the provider does not own.
    let ix = substitute(base.clone(), &w.provider.token, &w.user.token);
    assert_gpunet_err(
        w.f.send(&[ix], &[&k.keypair]).await,
        GpunetError::WrongTokenOwner,
    );
    // A "treasury" that is not the configured one.
    let mint = w.f.mint;
    let fake_treasury = w.f.token_account(&k.pubkey(), &mint).await;
    let ix = substitute(base.clone(), &w.f.treasury.clone(), &fake_treasury);
    assert_gpunet_err(
        w.f.send(&[ix], &[&k.keypair]).await,
        GpunetError::WrongTreasury,
    );
    // Another mint.
    let other_mint = w.f.create_mint(&k.pubkey()).await;
    let ix = substitute(base.clone(), &w.f.mint.clone(), &other_mint);
    assert_gpunet_err(w.f.send(&[ix], &[&k.keypair]).await, GpunetError::WrongMint);
    // Nothing moved.
    assert_eq!(w.f.lease(&a.lease).await.last_sequence, 0);
    w.f.send(&[base], &[&k.keypair]).await.unwrap();
}

#[tokio::test]
async fn test_lease_checkpoint_fail_verdict_pays_only_the_keeper_fee_and_refunds_at_close() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    let k = w.keeper_of(&p);
    let k = Wallet {
        keypair: k.keypair.insecure_clone(),
        token: k.token,
    };
    let user0 = w.f.balance(&w.user.token).await;
    let keeper0 = w.f.balance(&k.token).await;
    w.f.warp(600).await;
    w.checkpoint_by(&k, &p, 1, start, start + 300, Verdict::Fail)
        .await
        .unwrap();
    // The keeper earns the same 2% of the period whatever its verdict.
    assert_eq!(w.f.balance(&k.token).await - keeper0, 60);
    w.checkpoint_by(&k, &p, 2, start + 300, start + 600, Verdict::Pass)
        .await
        .unwrap();
    assert_eq!(w.f.balance(&k.token).await - keeper0, 120);
    assert_eq!(w.f.lease(&p.lease).await.paid_provider, 3_000 * 93 / 100);
    w.close_by_user(&p).await.unwrap();
    // Only the 300 verified seconds were paid, plus the keeper's fee for the failed period;
    // everything else came back.
    assert_eq!(
        w.f.balance(&w.user.token).await,
        user0 + (HOUR as u64) * PRICE - 3_000 - 60
    );
}

#[tokio::test]
async fn test_lease_checkpoint_none_verdict_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    let k = w.keeper_of(&p);
    let k = Wallet {
        keypair: k.keypair.insecure_clone(),
        token: k.token,
    };
    w.f.warp(60).await;
    let res = w
        .checkpoint_by(&k, &p, 1, start, start + 60, Verdict::None)
        .await;
    assert_gpunet_err(res, GpunetError::InvalidVerdict);
}

#[tokio::test]
async fn test_lease_close_by_user_ok_settles_everything() {
    let mut w = World::new().await;
    let supply = w.f.supply().await;
    let p = w.open(1, 2, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(900).await;
    w.checkpoint(&p, 1, start, start + 900).await.unwrap();
    let user0 = w.f.balance(&w.user.token).await;
    let rent = w.f.lamports(&p.lease).await + w.f.lamports(&pda::lease_vault(&p.lease)).await;
    let lamports0 = w.f.lamports(&w.user.pubkey()).await;
    w.close_by_user(&p).await.unwrap();
    let funded = PRICE * 2 * HOUR as u64;
    let spent = PRICE * 2 * 900;
    assert_eq!(w.f.balance(&w.user.token).await, user0 + funded - spent);
    assert!(w.f.raw(&p.lease).await.is_none());
    assert!(w.f.raw(&pda::lease_vault(&p.lease)).await.is_none());
    assert_eq!(w.f.lamports(&w.user.pubkey()).await, lamports0 + rent);
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!(
        (prov.gpus_leased, prov.active_leases, prov.locked),
        (0, 0, 0)
    );
    let keeper = w.f.account::<gpunet::state::Keeper>(&p.keeper).await;
    assert_eq!((keeper.leases_assigned, keeper.leases_served), (0, 1));
    assert_eq!(w.f.supply().await, supply);
}

#[tokio::test]
async fn test_lease_close_by_stranger_before_expiry_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let stranger = w.f.wallet(0).await;
    let user_token = w.user.token;
    let user = w.user.pubkey();
    let ix = ix::lease_close(&stranger.pubkey(), &p, &user_token, &user);
    assert_gpunet_err(
        w.f.send(&[ix.clone()], &[&stranger.keypair]).await,
        GpunetError::NotClosableYet,
    );
    // Expired but within grace: still not.
    w.f.warp(HOUR + default_params().grace_period).await;
    assert_gpunet_err(
        w.f.send(&[ix.clone()], &[&stranger.keypair]).await,
        GpunetError::NotClosableYet,
    );
    // After grace: anyone may, and the refund still goes to the user.
    w.f.warp(1).await;
    let user0 = w.f.balance(&user_token).await;
    w.f.send(&[ix], &[&stranger.keypair]).await.unwrap();
    assert_eq!(w.f.balance(&user_token).await, user0 + PRICE * HOUR as u64);
}

#[tokio::test]
async fn test_lease_close_with_refund_to_someone_else_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let thief = w.f.wallet(0).await;
    let user = w.user.pubkey();
    let ix = ix::lease_close(&user, &p, &thief.token, &user);
    let kp = w.user.keypair.insecure_clone();
    assert_gpunet_err(w.f.send(&[ix], &[&kp]).await, GpunetError::WrongUser);
    // The rent must go back to whoever paid it.
    let ix = ix::lease_close(&user, &p, &w.user.token, &thief.pubkey());
    assert_gpunet_err(w.f.send(&[ix], &[&kp]).await, GpunetError::WrongRentPayer);
}

#[tokio::test]
async fn test_keeper_with_a_lease_cannot_deregister() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let k = w.keeper_of(&p);
    let kp = k.keypair.insecure_clone();
    // Whichever index it has, the lease blocks it first.
    let other = w
        .keepers
        .iter()
        .map(|k| pda::keeper(&k.pubkey()))
        .find(|a| *a != p.keeper);
    let ix = ix::keeper_deregister(&kp.pubkey(), other);
    assert_gpunet_err(w.f.send(&[ix], &[&kp]).await, GpunetError::KeeperHasLeases);
}

#[tokio::test]
async fn test_unstaking_stake_a_lease_locks_fails() {
    let mut w = World::new().await;
    w.open(1, 3, HOUR).await; // locks 3,000 of 4,000 tokens
    let kp = w.provider.keypair.insecure_clone();
    let res =
        w.f.send(
            &[ix::provider_unstake_request(
                &w.provider.pubkey(),
                1_000 * TOKEN + 1,
            )],
            &[&kp],
        )
        .await;
    assert_gpunet_err(res, GpunetError::StakeLocked);
}

#[tokio::test]
async fn test_provider_slash_ok_compensates_jails_and_ends_the_lease() {
    let mut w = World::new().await;
    let supply = w.f.supply().await;
    let p = w.open(1, 2, HOUR).await;
    // The user paid for 900 s of service before the slash.
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(900).await;
    w.checkpoint(&p, 1, start, start + 900).await.unwrap();
    let paid = PRICE * 2 * 900;
    let user0 = w.f.balance(&w.user.token).await;
    let tres0 = w.f.balance(&w.f.treasury.clone()).await;
    let (k0, k1) = (
        Wallet {
            keypair: w.keepers[0].keypair.insecure_clone(),
            token: w.keepers[0].token,
        },
        Wallet {
            keypair: w.keepers[1].keypair.insecure_clone(),
            token: w.keepers[1].token,
        },
    );
    w.slash(&p, &[&k0, &k1]).await.unwrap();
    // 50% of the 2,000 locked; the user gets back what it paid (no more: slashing one's own
    // lease is never a profit), the treasury the rest.
    let slashed = 1_000 * TOKEN;
    assert_eq!(w.f.balance(&w.user.token).await - user0, paid);
    assert_eq!(
        w.f.balance(&w.f.treasury.clone()).await - tres0,
        slashed - paid
    );
    assert_eq!(w.f.lease(&p.lease).await.compensation, paid);
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!(prov.status, ProviderStatus::Jailed);
    assert_eq!(
        prov.jailed_until,
        w.f.clock().await.unix_timestamp + default_params().jail_period
    );
    assert_eq!(prov.staked, STAKE - slashed);
    assert_eq!(
        (prov.locked, prov.gpus_leased, prov.active_leases),
        (0, 0, 0)
    );
    assert_eq!(prov.slashed_total, slashed);
    assert_eq!(w.f.lease(&p.lease).await.status, LeaseStatus::Ended);

    // A jailed provider takes no new leases.
    let user = Wallet {
        keypair: w.user.keypair.insecure_clone(),
        token: w.user.token,
    };
    let res =
        w.f.open_lease(&user, &w.provider.pubkey(), World::args(2, 1, HOUR))
            .await;
    assert_gpunet_err(res.map(|_| ()), GpunetError::ProviderJailed);
    // An ended lease takes no checkpoints, and anyone may close it (refund to the user),
    // without the provider or keeper accounts.
    w.f.warp(10).await;
    assert_gpunet_err(
        w.checkpoint(&p, 2, start + 900, start + 910).await,
        GpunetError::LeaseNotActive,
    );
    let stranger = w.f.wallet(0).await;
    let user_token = w.user.token;
    let user_key = w.user.pubkey();
    let ix = ix::lease_close(&stranger.pubkey(), &p.ended(), &user_token, &user_key);
    w.f.send(&[ix], &[&stranger.keypair]).await.unwrap();
    assert_eq!(w.f.supply().await, supply);
}

#[tokio::test]
async fn test_provider_slash_of_some_gpus_keeps_the_lease_on_the_rest() {
    let mut w = World::new().await;
    let supply = w.f.supply().await;
    let p = w.open(1, 3, HOUR).await; // 3 GPUs, 3,000 tokens locked
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(900).await;
    w.checkpoint(&p, 1, start, start + 900).await.unwrap();
    let paid = PRICE * 3 * 900;
    let (k0, k1) = (
        Wallet::insecure_clone(&w.keepers[0]),
        Wallet::insecure_clone(&w.keepers[1]),
    );
    // Neither none nor more GPUs than the lease has.
    for gpus in [0, 4] {
        assert_gpunet_err(
            w.slash_gpus(&p, &[&k0, &k1], gpus).await,
            GpunetError::InvalidSlashGpus,
        );
    }
    let user0 = w.f.balance(&w.user.token).await;
    let tres0 = w.f.balance(&w.f.treasury.clone()).await;
    w.slash_gpus(&p, &[&k0, &k1], 1).await.unwrap();
    // The same failed period cannot be slashed for twice (a retried slash after a crash).
    assert_gpunet_err(
        w.slash_gpus(&p, &[&k0, &k1], 1).await,
        GpunetError::AlreadySlashed,
    );

    // One GPU's stake (1,000 of the 3,000 locked) is slashed at 50%.
    let slashed = 500 * TOKEN;
    let to_user = w.f.balance(&w.user.token).await - user0;
    let to_treasury = w.f.balance(&w.f.treasury.clone()).await - tres0;
    assert_eq!(to_user + to_treasury, slashed);
    assert_eq!(to_user, paid, "compensated up to what the user paid");
    let l = w.f.lease(&p.lease).await;
    assert_eq!(l.status, LeaseStatus::Active, "the lease goes on");
    assert_eq!((l.gpus, l.stake_locked), (2, 2_000 * TOKEN));
    assert_eq!((l.rate_since, l.spent_before_rate), (start + 900, paid));
    assert_eq!(l.compensation, to_user);
    // The escrow left buys time at two GPUs' rate from the slash's period on.
    let left = PRICE * 3 * HOUR as u64 - paid;
    assert_eq!(
        l.funded_until().unwrap(),
        start + 900 + (left / (PRICE * 2)) as i64
    );
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!(prov.status, ProviderStatus::Jailed);
    assert_eq!(prov.staked, STAKE - slashed);
    assert_eq!(
        (prov.locked, prov.gpus_leased, prov.active_leases),
        (2_000 * TOKEN, 2, 1)
    );

    // The next period pays two GPUs' price.
    let prov_tokens = w.f.balance(&w.provider.token).await;
    w.f.warp(900).await;
    w.checkpoint(&p, 2, start + 900, start + 1800)
        .await
        .unwrap();
    let l2 = w.f.lease(&p.lease).await;
    let gross = l2.paid_by_user().unwrap() - l.paid_by_user().unwrap();
    assert_eq!(gross, PRICE * 2 * 900);
    assert_eq!(
        w.f.balance(&w.provider.token).await - prov_tokens,
        l2.paid_provider - l.paid_provider
    );

    // A second slash of every GPU left ends it; it cannot be slashed again.
    w.slash_gpus(&p, &[&k0, &k1], 2).await.unwrap();
    let l3 = w.f.lease(&p.lease).await;
    assert_eq!(l3.status, LeaseStatus::Ended);
    assert!(l3.compensation <= l3.paid_by_user().unwrap());
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!(
        (prov.locked, prov.gpus_leased, prov.active_leases),
        (0, 0, 0)
    );
    assert_eq!(
        prov.staked,
        STAKE - slashed - 1_000 * TOKEN,
        "50% of the 2,000 left"
    );
    assert_gpunet_err(
        w.slash_gpus(&p, &[&k0, &k1], 1).await,
        GpunetError::LeaseNotActive,
    );
    let user_token = w.user.token;
    let user_key = w.user.pubkey();
    let ix = ix::lease_close(&user_key, &p.ended(), &user_token, &user_key);
    let kp = w.user.keypair.insecure_clone();
    w.f.send(&[ix], &[&kp]).await.unwrap();
    assert_eq!(w.f.supply().await, supply, "no token created or lost");
}

#[tokio::test]
async fn test_provider_slash_by_one_keeper_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let k0 = Wallet {
        keypair: w.keepers[0].keypair.insecure_clone(),
        token: w.keepers[0].token,
    };
    assert_gpunet_err(w.slash(&p, &[&k0]).await, GpunetError::SlashQuorumNotMet);
    // The same keeper twice is still one keeper.
    assert_gpunet_err(
        w.slash(&p, &[&k0, &k0]).await,
        GpunetError::DuplicateSlashSigner,
    );
    assert_eq!(w.f.provider(&w.provider.pubkey()).await.staked, STAKE);
}

#[tokio::test]
async fn test_provider_slash_with_a_non_keeper_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let k0 = Wallet {
        keypair: w.keepers[0].keypair.insecure_clone(),
        token: w.keepers[0].token,
    };
    let impostor = w.f.wallet(0).await;
    assert_gpunet_err(
        w.slash(&p, &[&k0, &impostor]).await,
        GpunetError::SlashSignerNotKeeper,
    );
}

#[tokio::test]
async fn test_provider_slash_with_unsigned_keeper_fails() {
    let mut w = World::new().await;
    let p = w.open(1, 1, HOUR).await;
    let (k0, k1) = (w.keepers[0].pubkey(), w.keepers[1].pubkey());
    let mut ix = ix::provider_slash(&p, &w.user.token, &[k0, k1], [9; 32], 1);
    for m in ix.accounts.iter_mut().filter(|m| m.pubkey == k1) {
        m.is_signer = false;
    }
    let kp = w.keepers[0].keypair.insecure_clone();
    assert_gpunet_err(
        w.f.send(&[ix], &[&kp]).await,
        GpunetError::SlashSignerNotKeeper,
    );
}

#[tokio::test]
async fn test_provider_slash_with_a_deregistered_keeper_fails() {
    let mut w = World::new().await;
    let k2 = w.f.keeper_wallet().await;
    w.keepers.push(k2);
    let p = w.open(1, 1, HOUR).await; // all three on the committee
    // A committee member without the lease deregisters (the set stays dense).
    let leaving = w
        .keepers
        .iter()
        .find(|k| pda::keeper(&k.pubkey()) != p.keeper)
        .map(|k| Wallet {
            keypair: k.keypair.insecure_clone(),
            token: k.token,
        })
        .unwrap();
    let me = pda::keeper(&leaving.pubkey());
    let active = w.f.config().await.active_keepers;
    let last =
        w.f.keeper_accounts()
            .await
            .into_iter()
            .find(|(a, k)| *a != me && k.index + 1 == active)
            .map(|(a, _)| a);
    w.f.send(
        &[ix::keeper_deregister(&leaving.pubkey(), last)],
        &[&leaving.keypair],
    )
    .await
    .unwrap();
    let primary = w.keeper_of(&p);
    let primary = Wallet {
        keypair: primary.keypair.insecure_clone(),
        token: primary.token,
    };
    assert_gpunet_err(
        w.slash(&p, &[&primary, &leaving]).await,
        GpunetError::SlashSignerNotKeeper,
    );
}

#[tokio::test]
async fn test_lease_reassign_keeper_ok_after_missed_checkpoints() {
    let mut w = World::new().await;
    let p = w.open(1, 1, 10 * HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    let old = w.keeper_of(&p);
    let old = Wallet {
        keypair: old.keypair.insecure_clone(),
        token: old.token,
    };
    let new = w
        .keepers
        .iter()
        .find(|k| pda::keeper(&k.pubkey()) != p.keeper)
        .unwrap();
    let new = Wallet {
        keypair: new.keypair.insecure_clone(),
        token: new.token,
    };
    let params = default_params();

    // Not late yet.
    w.f.warp(params.checkpoint_interval + params.grace_period)
        .await;
    let ix = ix::lease_reassign_keeper(&new.pubkey(), &p.lease, &p.keeper, &[]);
    assert_gpunet_err(
        w.f.send(&[ix.clone()], &[&new.keypair]).await,
        GpunetError::KeeperNotLate,
    );
    // The assigned keeper itself cannot "take over" (the same account twice as writable).
    let self_ix = ix::lease_reassign_keeper(&old.pubkey(), &p.lease, &p.keeper, &[]);
    w.f.warp(1).await;
    assert_anchor_err(
        w.f.send(&[self_ix], &[&old.keypair]).await,
        AnchorError::ConstraintDuplicateMutableAccount,
    );

    w.f.send(&[ix], &[&new.keypair]).await.unwrap();
    let moved = w.f.parties(&p.lease).await;
    assert_eq!(moved.keeper, pda::keeper(&new.pubkey()));
    let old_acct = w.f.keeper(&old.pubkey()).await;
    let new_acct = w.f.keeper(&new.pubkey()).await;
    assert_eq!((old_acct.leases_assigned, new_acct.leases_assigned), (0, 1));
    // The old keeper can no longer checkpoint; the new one continues the sequence.
    let now = w.f.clock().await.unix_timestamp;
    let res = w
        .checkpoint_by(&old, &moved, 1, start, now, Verdict::Pass)
        .await;
    assert_gpunet_err(res, GpunetError::WrongKeeper);
    w.checkpoint_by(&new, &moved, 1, start, now, Verdict::Pass)
        .await
        .unwrap();
}
