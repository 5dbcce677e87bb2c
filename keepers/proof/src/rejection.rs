//! Why a proof was refused: the verdict's reason, shared by the keeper's session (which
//! refuses a commit as it arrives) and the verifier.

/// Why a proof was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// The transcript bytes do not decode.
    #[error("undecodable transcript: {0}")]
    Decode(String),
    /// Parameters outside the supported ranges.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// Unknown protocol version.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The challenge's keeper signature does not verify.
    #[error("the keeper's signature on the challenge does not verify")]
    BadKeeperSignature,
    /// The challenge was issued by another keeper.
    #[error("challenge issued by another keeper")]
    WrongKeeper,
    /// The challenge is for another worker.
    #[error("challenge addressed to another worker")]
    WrongWorker,
    /// The challenge is for another epoch.
    #[error("challenge for epoch {got}, expected {expected}")]
    WrongEpoch {
        /// Expected epoch.
        expected: u64,
        /// Epoch in the challenge.
        got: u64,
    },
    /// The transcript answers a different challenge than the one issued.
    #[error("transcript answers another challenge (nonce mismatch)")]
    NonceMismatch,
    /// Not exactly `K` commits.
    #[error("{got} round commits, expected {expected}")]
    RoundCount {
        /// `K`.
        expected: u32,
        /// Commits present.
        got: u32,
    },
    /// Commit at position `index` carries another round number.
    #[error("commit {index} is for round {round}")]
    RoundOutOfOrder {
        /// Position in the stream (from 0).
        index: u32,
        /// Round number it claims.
        round: u32,
    },
    /// A seed is not `SHA-256(nonce || k || root_{k-1})`.
    #[error("round {round}: wrong seed (not derived from this nonce and the previous root)")]
    SeedMismatch {
        /// Round.
        round: u32,
    },
    /// A root equal to the previous round's root (a copied round).
    #[error("round {round}: root repeats the previous round's")]
    RepeatedRoot {
        /// Round.
        round: u32,
    },
    /// Receive times go backwards.
    #[error("round {round}: receive time earlier than the previous round's")]
    TimestampsNotMonotonic {
        /// Round.
        round: u32,
    },
    /// The worker's signature on the opening does not verify.
    #[error("the worker's signature on the opening does not verify")]
    BadWorkerSignature,
    /// Not as many opened tiles as the request selects.
    #[error("{got} tiles opened, {expected} requested")]
    OpeningCount {
        /// Requested.
        expected: u32,
        /// Opened.
        got: u32,
    },
    /// An opened tile that the request did not select (or out of order).
    #[error("opened tile {index} is (round {round}, tile {tile}), not the one requested")]
    UnrequestedTile {
        /// Position in the opening.
        index: u32,
        /// Its round.
        round: u32,
        /// Its tile.
        tile: u32,
    },
    /// Wrong number of values or path length.
    #[error("round {round} tile {tile}: wrong number of values or path length")]
    TileShape {
        /// Round.
        round: u32,
        /// Tile.
        tile: u32,
    },
    /// The tile and path do not lead to the committed root.
    #[error("round {round} tile {tile}: Merkle path does not lead to the committed root")]
    MerklePathInvalid {
        /// Round.
        round: u32,
        /// Tile.
        tile: u32,
    },
    /// The committed tile is not `A * B` for the round's seed.
    #[error("round {round} tile {tile}: value at ({row}, {col}) is not the product")]
    TileMismatch {
        /// Round.
        round: u32,
        /// Tile.
        tile: u32,
        /// Row within the tile.
        row: u32,
        /// Column within the tile.
        col: u32,
    },
    /// Slower than the claimed GPU class allows.
    #[error("measured {measured_tops:.1} TOP/s, the claimed class needs {required_tops:.1}")]
    TooSlow {
        /// Throughput over the time from the challenge to the last root.
        measured_tops: f64,
        /// Class expectation less slack.
        required_tops: f64,
    },
}
