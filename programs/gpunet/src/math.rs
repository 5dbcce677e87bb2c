//! Money math: pure, checked, unit-tested. Every function returns
//! [`GpunetError::MathOverflow`] instead of wrapping or panicking.

use anchor_lang::prelude::*;

use crate::error::GpunetError;

/// Basis points in one whole.
pub const BPS_DENOMINATOR: u16 = 10_000;

/// `a + b`, or an error on overflow.
pub fn safe_add(a: u64, b: u64) -> Result<u64> {
    a.checked_add(b)
        .ok_or_else(|| error!(GpunetError::MathOverflow))
}

/// `a - b`, or an error on underflow.
pub fn safe_sub(a: u64, b: u64) -> Result<u64> {
    a.checked_sub(b)
        .ok_or_else(|| error!(GpunetError::MathOverflow))
}

/// `a * b`, or an error on overflow.
pub fn safe_mul(a: u64, b: u64) -> Result<u64> {
    a.checked_mul(b)
        .ok_or_else(|| error!(GpunetError::MathOverflow))
}

/// `a + b` for timestamps, or an error on overflow.
pub fn safe_add_time(a: i64, b: i64) -> Result<i64> {
    a.checked_add(b)
        .ok_or_else(|| error!(GpunetError::MathOverflow))
}

/// `amount × bps / 10,000`, rounded down (the party receiving a fee never gains from rounding).
pub fn bps_of(amount: u64, bps: u16) -> Result<u64> {
    require!(bps <= BPS_DENOMINATOR, GpunetError::BpsOutOfRange);
    let v = u128::from(amount) * u128::from(bps) / u128::from(BPS_DENOMINATOR);
    u64::try_from(v).map_err(|_| error!(GpunetError::MathOverflow))
}

/// Tokens a lease costs per second: price per GPU-second × GPUs.
pub fn lease_rate(price_per_gpu_second: u64, gpus: u16) -> Result<u64> {
    safe_mul(price_per_gpu_second, u64::from(gpus))
}

/// `amount * part / whole`, rounded down (`whole` > 0, `part` <= `whole`): the share of a
/// lease's stake that stays with `part` of its `whole` GPUs.
pub fn stake_share(amount: u64, part: u16, whole: u16) -> Result<u64> {
    require!(whole > 0 && part <= whole, GpunetError::MathOverflow);
    let v = u128::from(amount) * u128::from(part) / u128::from(whole);
    u64::try_from(v).map_err(|_| error!(GpunetError::MathOverflow))
}

/// Cost of `seconds` at `rate` tokens per second; `seconds` must not be negative.
pub fn cost(rate: u64, seconds: i64) -> Result<u64> {
    let seconds = u64::try_from(seconds).map_err(|_| error!(GpunetError::MathOverflow))?;
    safe_mul(rate, seconds)
}

/// Whole seconds that `amount` buys at `rate` (rounded down: the user never gets time it did
/// not pay for; the remainder stays in escrow and is refunded at close).
pub fn seconds_funded(amount: u64, rate: u64) -> Result<i64> {
    require!(rate > 0, GpunetError::MathOverflow);
    i64::try_from(amount / rate).map_err(|_| error!(GpunetError::MathOverflow))
}

/// How one checkpoint's gross payment is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentSplit {
    /// To the provider: gross minus both fees (receives the rounding remainder).
    pub provider: u64,
    /// To the treasury, rounded down.
    pub protocol: u64,
    /// To the keeper that posts the checkpoint, rounded down (the caller never gains from
    /// rounding).
    pub keeper: u64,
}

/// Splits `gross` into provider, protocol fee and keeper fee. The parts always add up to
/// `gross` exactly.
pub fn split_payment(
    gross: u64,
    protocol_fee_bps: u16,
    keeper_fee_bps: u16,
) -> Result<PaymentSplit> {
    require!(
        u32::from(protocol_fee_bps) + u32::from(keeper_fee_bps) <= u32::from(BPS_DENOMINATOR),
        GpunetError::FeesTooHigh
    );
    let protocol = bps_of(gross, protocol_fee_bps)?;
    let keeper = bps_of(gross, keeper_fee_bps)?;
    let provider = safe_sub(safe_sub(gross, protocol)?, keeper)?;
    Ok(PaymentSplit {
        provider,
        protocol,
        keeper,
    })
}

/// How a slash is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlashSplit {
    /// Taken from the provider's stake in total.
    pub total: u64,
    /// To the user (receives the rounding remainder).
    pub user: u64,
    /// To the treasury, rounded down.
    pub treasury: u64,
}

/// The slash of a lease's locked stake: `fraction_bps` of it (rounded down: the keepers who
/// call never take more than the fraction), of which `treasury_bps` goes to the treasury and
/// the rest to the user.
pub fn split_slash(locked: u64, fraction_bps: u16, treasury_bps: u16) -> Result<SlashSplit> {
    let total = bps_of(locked, fraction_bps)?;
    let treasury = bps_of(total, treasury_bps)?;
    Ok(SlashSplit {
        total,
        user: safe_sub(total, treasury)?,
        treasury,
    })
}

/// How much of a slash's user share the user may receive: at most `compensation_bps` of what
/// it paid out of escrow, less what it was already compensated. The rest goes to the treasury,
/// so a user never ends richer by having its own lease slashed.
pub fn compensation(
    user_share: u64,
    paid_by_user: u64,
    already_compensated: u64,
    compensation_bps: u16,
) -> Result<u64> {
    let cap = bps_of(paid_by_user, compensation_bps)?.saturating_sub(already_compensated);
    Ok(user_share.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_rate_and_cost() {
        assert_eq!(lease_rate(10, 4).unwrap(), 40);
        assert!(lease_rate(u64::MAX, 2).is_err());
        assert_eq!(cost(40, 3600).unwrap(), 144_000);
        assert!(cost(40, -1).is_err());
        assert!(cost(u64::MAX, 2).is_err());
    }

    #[test]
    fn seconds_funded_rounds_down() {
        assert_eq!(seconds_funded(99, 10).unwrap(), 9);
        assert_eq!(seconds_funded(100, 10).unwrap(), 10);
        assert_eq!(seconds_funded(9, 10).unwrap(), 0);
        assert!(seconds_funded(1, 0).is_err());
    }

    #[test]
    fn payment_split_adds_up_and_fees_round_down() {
        let s = split_payment(1_000, 500, 200).unwrap();
        assert_eq!(
            s,
            PaymentSplit {
                provider: 930,
                protocol: 50,
                keeper: 20
            }
        );
        // 199 × 1% = 1.99 → 1; 199 × 0.5% = 0.995 → 0; the provider gets the rest.
        let s = split_payment(199, 100, 50).unwrap();
        assert_eq!(
            s,
            PaymentSplit {
                provider: 198,
                protocol: 1,
                keeper: 0
            }
        );
        for gross in [0u64, 1, 7, 10_000, 123_456_789, u64::MAX] {
            let s = split_payment(gross, 333, 777).unwrap();
            assert_eq!(
                s.provider as u128 + s.protocol as u128 + s.keeper as u128,
                gross as u128
            );
            assert!(s.keeper as u128 * 10_000 <= gross as u128 * 777);
        }
        assert!(split_payment(1, 9_000, 1_001).is_err());
    }

    #[test]
    fn slash_split_adds_up() {
        let s = split_slash(3_000, 5_000, 1_000).unwrap();
        assert_eq!(
            s,
            SlashSplit {
                total: 1_500,
                user: 1_350,
                treasury: 150
            }
        );
        let s = split_slash(3, 5_000, 5_000).unwrap(); // 1.5 → 1; 0.5 → 0
        assert_eq!(
            s,
            SlashSplit {
                total: 1,
                user: 1,
                treasury: 0
            }
        );
        assert_eq!(split_slash(0, 10_000, 10_000).unwrap().total, 0);
        assert!(split_slash(1, 10_001, 0).is_err());
    }

    #[test]
    fn compensation_never_exceeds_what_the_user_paid() {
        assert_eq!(
            compensation(1_000, 0, 0, 10_000).unwrap(),
            0,
            "paid nothing"
        );
        assert_eq!(compensation(1_000, 400, 0, 10_000).unwrap(), 400);
        assert_eq!(compensation(1_000, 400, 300, 10_000).unwrap(), 100);
        assert_eq!(compensation(1_000, 400, 500, 10_000).unwrap(), 0);
        assert_eq!(compensation(100, 400, 0, 10_000).unwrap(), 100);
        assert_eq!(compensation(1_000, 400, 0, 5_000).unwrap(), 200);
        assert!(compensation(1, 1, 0, 10_001).is_err());
    }

    #[test]
    fn add_sub_mul_overflow_is_an_error() {
        assert_eq!(safe_add(1, 2).unwrap(), 3);
        assert!(safe_add(u64::MAX, 1).is_err());
        assert!(safe_sub(1, 2).is_err());
        assert_eq!(safe_sub(5, 2).unwrap(), 3);
        assert!(safe_mul(u64::MAX, 2).is_err());
        assert_eq!(safe_mul(6, 7).unwrap(), 42);
        assert!(safe_add_time(i64::MAX, 1).is_err());
    }

    #[test]
    fn bps_rounds_down_and_never_exceeds_amount() {
        assert_eq!(bps_of(10_000, 250).unwrap(), 250);
        assert_eq!(bps_of(99, 100).unwrap(), 0); // 0.99 rounds down
        assert_eq!(bps_of(u64::MAX, 10_000).unwrap(), u64::MAX);
        assert_eq!(bps_of(u64::MAX, 1).unwrap(), u64::MAX / 10_000);
        assert!(bps_of(1, 10_001).is_err());
    }
}
