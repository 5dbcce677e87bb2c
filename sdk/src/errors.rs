//! Program errors by code. Native mode drops the program's log lines, so a client sees only
//! `custom program error: 0x…`; these helpers turn the code back into the error's name and
//! message.

use anchor_lang::error::ERROR_CODE_OFFSET;
use gpunet::error::GpunetError;

/// A gpunet program error, recovered from its numeric code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} ({code}): {message}")]
pub struct ProgramError {
    /// The numeric code (6000 + variant index).
    pub code: u32,
    /// The variant's name, e.g. `StakeLocked`.
    pub name: String,
    /// The human-readable message.
    pub message: String,
}

/// Looks up a gpunet error by its code; `None` for codes outside the program's range.
pub fn program_error(code: u32) -> Option<ProgramError> {
    let index = code.checked_sub(ERROR_CODE_OFFSET)?;
    let variant = all_errors().into_iter().nth(index as usize)?;
    Some(ProgramError {
        code,
        name: variant.name(),
        message: variant.to_string(),
    })
}

/// Every variant, in code order (checked against the codes by a test).
fn all_errors() -> Vec<GpunetError> {
    use GpunetError::*;
    vec![
        NotAdmin,
        NotPendingAdmin,
        NoPendingAdmin,
        NotUpgradeAuthority,
        WrongProgramData,
        WrongAuthority,
        WrongMint,
        WrongTreasury,
        WrongTokenOwner,
        FeesTooHigh,
        BpsOutOfRange,
        InvalidSlashQuorum,
        InvalidMaxKeepers,
        InvalidPeriod,
        InvalidKeeperBond,
        InvalidMinStake,
        InvalidCommitteeSize,
        MintHasFreezeAuthority,
        NoParamsPending,
        ParamsNotDue,
        ProtocolPaused,
        InvalidLocation,
        InvalidEndpoint,
        InvalidGpuCount,
        InvalidVram,
        InvalidPrice,
        InvalidWorkers,
        ZeroAmount,
        AlreadyInitialized,
        KeeperNotActive,
        KeeperNotUnbonding,
        KeeperNotServing,
        KeeperHasLeases,
        KeeperSetFull,
        UnbondingNotFinished,
        NothingToWithdraw,
        StakeLocked,
        InsufficientStake,
        TreasuryTooLow,
        ProviderNotEmpty,
        GpusInUse,
        ClassChangeWithLeases,
        PriceAboveMax,
        NotEnoughCapacity,
        ProviderJailed,
        ProviderUnbonding,
        BelowMinimumStake,
        InvalidDuration,
        ZeroGpus,
        NoActiveKeeper,
        WrongKeeper,
        WrongProvider,
        WrongUser,
        WrongRentPayer,
        LeaseNotActive,
        SequenceNotNext,
        PeriodStartMismatch,
        EmptyPeriod,
        PeriodInFuture,
        PeriodBeyondEscrow,
        LeaseExpired,
        NotClosableYet,
        SlashQuorumNotMet,
        DuplicateSlashSigner,
        SlashSignerNotKeeper,
        KeeperNotLate,
        WrongLastKeeper,
        InvalidVerdict,
        LeaseNotPending,
        DrawTooEarly,
        DrawWindowPassed,
        WrongSlotHashes,
        CommitteeMismatch,
        NotCommitteeMember,
        SelfSlash,
        AlreadyJudged,
        NotSuccessor,
        MathOverflow,
        InvariantViolated,
        InvalidSlashGpus,
        AlreadySlashed,
        ResizePending,
        InvalidResize,
        DepositAboveMax,
        PeriodPastResize,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_back_to_its_variant() {
        for (i, e) in all_errors().into_iter().enumerate() {
            let code = u32::from(e);
            assert_eq!(
                code,
                ERROR_CODE_OFFSET + i as u32,
                "{} out of order",
                e.name()
            );
            let found = program_error(code).unwrap();
            assert_eq!(found.name, e.name());
        }
        assert!(program_error(ERROR_CODE_OFFSET + all_errors().len() as u32).is_none());
        assert!(program_error(1).is_none());
    }
}
