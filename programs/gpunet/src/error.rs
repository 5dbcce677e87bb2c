//! Every error the program returns. Native mode drops the program's log lines, so clients
//! see only the code (`custom program error: 0x…`); the SDK maps codes back to these names
//! and messages.

use anchor_lang::prelude::*;

#[error_code]
pub enum GpunetError {
    // --- authority and identity -------------------------------------------------------
    #[msg("signer is not the config admin")]
    NotAdmin,
    #[msg("signer is not the pending admin of this config")]
    NotPendingAdmin,
    #[msg("no admin handover is pending")]
    NoPendingAdmin,
    #[msg("only the program's upgrade authority may initialise the config")]
    NotUpgradeAuthority,
    #[msg("program data account does not belong to this program")]
    WrongProgramData,
    #[msg("signer is not this account's authority")]
    WrongAuthority,
    #[msg("token account or mint is not the configured mint")]
    WrongMint,
    #[msg("token account is not the configured treasury")]
    WrongTreasury,
    #[msg("token account is not owned by the expected wallet")]
    WrongTokenOwner,

    // --- config sanity ----------------------------------------------------------------
    #[msg("protocol fee or keeper fee above its cap (2,000 bps each)")]
    FeesTooHigh,
    #[msg("a basis-point value exceeds 10,000")]
    BpsOutOfRange,
    #[msg("slash quorum must be at least 2 and at most min(max keepers, 7)")]
    InvalidSlashQuorum,
    #[msg("max keepers must be at least 2, at most 1,024 and not below the active keepers")]
    InvalidMaxKeepers,
    #[msg(
        "a period is out of bounds: 1 s-365 days; interval and grace >= 60 s; unbonding >= interval + grace; change delay <= 30 days"
    )]
    InvalidPeriod,
    #[msg("the keeper bond must be at least one whole token")]
    InvalidKeeperBond,
    #[msg("the minimum stake per GPU must be at least one whole token for every class")]
    InvalidMinStake,
    #[msg(
        "committee size must be above the slash quorum (the accused cannot co-sign) and at most 7"
    )]
    InvalidCommitteeSize,
    #[msg("the mint has a freeze authority: pass allow_freeze_authority to accept it")]
    MintHasFreezeAuthority,
    #[msg("no parameter change is pending")]
    NoParamsPending,
    #[msg("the pending parameter change is not due yet")]
    ParamsNotDue,
    #[msg("protocol is paused")]
    ProtocolPaused,

    // --- arguments --------------------------------------------------------------------
    #[msg("region or zone must be 1-16 printable ASCII characters")]
    InvalidLocation,
    #[msg("endpoint must be 1-128 printable ASCII characters")]
    InvalidEndpoint,
    #[msg("GPU count must be between 1 and 1,024")]
    InvalidGpuCount,
    #[msg("GPU VRAM must be positive")]
    InvalidVram,
    #[msg("price per GPU-second must be positive")]
    InvalidPrice,
    #[msg("workers must be 1-16 distinct, non-default keys")]
    InvalidWorkers,
    #[msg("amount must be positive")]
    ZeroAmount,

    // --- state machine ----------------------------------------------------------------
    #[msg("account already exists")]
    AlreadyInitialized,
    #[msg("keeper is not active")]
    KeeperNotActive,
    #[msg("keeper is not unbonding")]
    KeeperNotUnbonding,
    #[msg("keeper is neither active nor draining")]
    KeeperNotServing,
    #[msg("keeper still has leases assigned")]
    KeeperHasLeases,
    #[msg("the keeper set is full")]
    KeeperSetFull,
    #[msg("unbonding period has not finished")]
    UnbondingNotFinished,
    #[msg("nothing is unbonding")]
    NothingToWithdraw,
    #[msg("not enough free stake: stake locked by active leases cannot be unbonded")]
    StakeLocked,
    #[msg("not enough stake")]
    InsufficientStake,
    #[msg("the treasury holds less than that")]
    TreasuryTooLow,
    #[msg("provider still has stake, unbonding stake or leases")]
    ProviderNotEmpty,
    #[msg("GPU count cannot drop below the GPUs currently leased")]
    GpusInUse,
    #[msg("GPU class cannot change while leases are active")]
    ClassChangeWithLeases,

    // --- leases -----------------------------------------------------------------------
    #[msg("the provider's price is above the most the user agreed to pay")]
    PriceAboveMax,
    #[msg("the provider does not have that many free GPUs")]
    NotEnoughCapacity,
    #[msg("the provider is jailed")]
    ProviderJailed,
    #[msg("the provider is unbonding stake and takes no new leases")]
    ProviderUnbonding,
    #[msg("the provider's stake is below its minimum or too little is free to lock")]
    BelowMinimumStake,
    #[msg("lease duration must be positive and at most 365 days")]
    InvalidDuration,
    #[msg("GPU count must be positive")]
    ZeroGpus,
    #[msg("no active keeper to assign")]
    NoActiveKeeper,
    #[msg("keeper is not the one this lease is assigned to")]
    WrongKeeper,
    #[msg("account is not the lease's provider")]
    WrongProvider,
    #[msg("account is not the lease's user")]
    WrongUser,
    #[msg("account is not the lease's rent payer")]
    WrongRentPayer,
    #[msg("lease is not active")]
    LeaseNotActive,
    #[msg("checkpoint sequence must be exactly one more than the last")]
    SequenceNotNext,
    #[msg("checkpoint period must start where the last one ended")]
    PeriodStartMismatch,
    #[msg("checkpoint period must end after it starts")]
    EmptyPeriod,
    #[msg("checkpoint period ends in the future")]
    PeriodInFuture,
    #[msg("checkpoint period goes beyond what the escrow funds")]
    PeriodBeyondEscrow,
    #[msg("lease ran out of funds longer ago than the grace period")]
    LeaseExpired,
    #[msg("only the user may close this lease before it expires and its grace period ends")]
    NotClosableYet,
    #[msg("fewer distinct active keepers signed than the slash quorum")]
    SlashQuorumNotMet,
    #[msg("a keeper appears twice among the slash signers")]
    DuplicateSlashSigner,
    #[msg("a slash signer is not an active keeper")]
    SlashSignerNotKeeper,
    #[msg("the assigned keeper is not late: it may still checkpoint")]
    KeeperNotLate,
    #[msg("the last keeper account is not the keeper with the highest index")]
    WrongLastKeeper,
    #[msg("a checkpoint's verdict must be Pass or Fail")]
    InvalidVerdict,
    #[msg("the lease's committee has already been drawn")]
    LeaseNotPending,
    #[msg(
        "no slot hash after the lease's open (or the last keeper-set change) yet: try again next slot"
    )]
    DrawTooEarly,
    #[msg(
        "the slot hash to draw from has left the SlotHashes window: the lease can only be closed"
    )]
    DrawWindowPassed,
    #[msg("account is not the SlotHashes sysvar")]
    WrongSlotHashes,
    #[msg("the keeper accounts passed are not the committee drawn, in draw order")]
    CommitteeMismatch,
    #[msg("a signer or accused keeper is not on the lease's committee")]
    NotCommitteeMember,
    #[msg("a keeper cannot co-sign its own slash")]
    SelfSlash,
    #[msg("that checkpoint (or a later one) of this lease has already been judged")]
    AlreadyJudged,
    #[msg("signer is not the lease's successor keeper: the next active committee member")]
    NotSuccessor,

    // --- arithmetic and invariants ----------------------------------------------------
    #[msg("arithmetic overflow or underflow")]
    MathOverflow,
    #[msg("account invariant violated")]
    InvariantViolated,

    // Added after the first release: new codes go last so that existing ones keep their
    // numbers.
    #[msg("a slash takes between one GPU and all of the lease's GPUs")]
    InvalidSlashGpus,
    #[msg("the provider was already slashed on this lease since its last checkpoint")]
    AlreadySlashed,
    // Lease resize.
    #[msg("the lease already has a resize waiting for its checkpoint")]
    ResizePending,
    #[msg("a resize asks for at least one GPU, and a count other than the lease's")]
    InvalidResize,
    #[msg("the resize needs a larger deposit than the user allowed")]
    DepositAboveMax,
    #[msg("a checkpoint cannot settle past a pending resize")]
    PeriodPastResize,
}
