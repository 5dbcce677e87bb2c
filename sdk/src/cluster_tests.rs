use anchor_lang::{AnchorDeserialize, Space};

use super::*;
use crate::{GpuOffer, ProviderStatus};

fn config() -> Config {
    let mut c = Config::deserialize(&mut &vec![0u8; Config::INIT_SPACE][..]).unwrap();
    c.params = crate::setup::default_params(6);
    c
}

/// An active provider fully staked for `count` GPUs of `class`.
fn provider(
    region: &str,
    zone: &str,
    class: GpuClass,
    count: u16,
    price: u64,
) -> (Pubkey, Provider) {
    let mut p = Provider::deserialize(&mut &vec![0u8; Provider::INIT_SPACE][..]).unwrap();
    p.status = ProviderStatus::Active;
    p.region = gpunet::state::encode_location(region).unwrap();
    p.zone = gpunet::state::encode_location(zone).unwrap();
    p.gpu = GpuOffer {
        class,
        count,
        vram_gib: 80,
        price_per_gpu_second: price,
    };
    p.staked = config().params.min_stake_per_gpu[class.index()] * u64::from(count);
    (Pubkey::new_unique(), p)
}

fn spec(gpus: u16) -> ClusterSpec {
    ClusterSpec {
        gpus,
        ..Default::default()
    }
}

fn split(picks: &[Pick]) -> Vec<(String, u16)> {
    picks
        .iter()
        .map(|p| (format!("{}/{}", p.region, p.zone), p.gpus))
        .collect()
}

#[test]
fn the_cheapest_matching_providers_fill_the_cluster() {
    let ps = vec![
        provider("eu-west", "a", GpuClass::H100, 8, 12),
        provider("eu-west", "b", GpuClass::H100, 8, 10),
        provider("eu-north", "a", GpuClass::H100, 8, 11),
        provider("us-east", "a", GpuClass::H100, 8, 1),
        provider("eu-west", "c", GpuClass::A100, 8, 1),
    ];
    let s = ClusterSpec {
        gpus: 12,
        class: Some(GpuClass::H100),
        regions: vec!["eu-west".into(), "eu-north".into()],
        ..Default::default()
    };
    let picks = choose(&s, &ps, &config()).unwrap();
    assert_eq!(
        split(&picks),
        vec![("eu-west/b".into(), 8), ("eu-north/a".into(), 4)]
    );
    assert_eq!(picks[0].provider, ps[1].0);
    // A price cap leaves out the dearer ones.
    let capped = ClusterSpec {
        max_price: Some(10),
        ..s.clone()
    };
    assert_eq!(
        choose(&capped, &ps, &config()),
        Err(MatchError::NotEnough {
            wanted: 12,
            found: 8,
            providers: 1
        })
    );
    assert_eq!(choose(&spec(0), &ps, &config()), Err(MatchError::NoGpus));
}

#[test]
fn spreading_balances_zones_and_needs_two() {
    let ps = vec![
        provider("eu-west", "a", GpuClass::H100, 8, 10),
        provider("eu-west", "a", GpuClass::H100, 8, 10),
        provider("eu-west", "b", GpuClass::H100, 2, 11),
        provider("eu-north", "a", GpuClass::H100, 8, 12),
    ];
    let s = ClusterSpec {
        gpus: 9,
        spread_zones: true,
        ..Default::default()
    };
    let picks = choose(&s, &ps, &config()).unwrap();
    let mut per_zone: BTreeMap<String, u16> = BTreeMap::new();
    for (z, n) in split(&picks) {
        *per_zone.entry(z).or_default() += n;
    }
    // Zone b has room for 2: the other two zones share the rest, differing by at most one.
    assert_eq!(per_zone["eu-west/b"], 2);
    assert_eq!(per_zone["eu-west/a"] + per_zone["eu-north/a"], 7);
    assert!(per_zone["eu-west/a"].abs_diff(per_zone["eu-north/a"]) <= 1);
    assert_eq!(picks.iter().map(|p| p.gpus).sum::<u16>(), 9);
    let one_zone = vec![ps[0].clone(), ps[1].clone()];
    assert_eq!(
        choose(&s, &one_zone, &config()),
        Err(MatchError::OneZone(1))
    );
}

#[test]
fn only_providers_that_can_take_the_lease_count() {
    let c = config();
    let mut jailed = provider("eu-west", "a", GpuClass::H100, 8, 1);
    jailed.1.status = ProviderStatus::Jailed;
    let mut busy = provider("eu-west", "a", GpuClass::H100, 8, 1);
    busy.1.gpus_leased = 6;
    let mut thin = provider("eu-west", "a", GpuClass::H100, 8, 1);
    thin.1.locked = c.params.min_stake_per_gpu[GpuClass::H100.index()] * 7;
    assert_eq!(free_gpus(&jailed.1, &c), 0);
    assert_eq!(free_gpus(&busy.1, &c), 2);
    assert_eq!(free_gpus(&thin.1, &c), 1, "free stake covers one more GPU");
    let picks = choose(&spec(3), &[jailed, busy, thin], &c).unwrap();
    assert_eq!(picks.iter().map(|p| p.gpus).collect::<Vec<_>>(), vec![2, 1]);
}

#[test]
fn cluster_nonces_round_trip_and_leave_plain_leases_alone() {
    let n = lease_nonce(7, 2);
    assert_eq!(cluster_of(n), Some((7, 2)));
    assert_eq!(cluster_of(0), None);
    assert_eq!(cluster_of(12345), None);
    assert_ne!(lease_nonce(7, 2), lease_nonce(7, 3));
    assert_ne!(lease_nonce(7, 2), lease_nonce(8, 2));
}

#[test]
fn opens_go_in_as_few_transactions_as_fit() {
    let user = Pubkey::new_unique();
    let ixs: Vec<_> = (0..12u16)
        .map(|i| {
            ix::lease_open(
                &user,
                &user,
                &Pubkey::new_unique(),
                &Pubkey::new_unique(),
                &Pubkey::new_unique(),
                LeaseOpenArgs {
                    nonce: lease_nonce(1, i),
                    gpus: 1,
                    duration: 60,
                    max_price_per_gpu_second: 1,
                },
            )
        })
        .collect();
    let b = batches(&ixs, &user);
    assert!(b.len() > 1, "twelve opens do not fit one transaction");
    assert!(b[0].len() > 1, "several fit one");
    assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 12);
    assert_eq!(batches(&ixs[..1], &user).len(), 1);
}
