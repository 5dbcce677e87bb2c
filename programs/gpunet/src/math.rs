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

#[cfg(test)]
mod tests {
    use super::*;

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
