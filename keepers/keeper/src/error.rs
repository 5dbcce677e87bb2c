//! Keeper errors.

use tonic::Status;

/// Everything that can go wrong in the keeper.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// The embedded database failed.
    #[error("database: {0}")]
    Db(String),
    /// Bad configuration.
    #[error("config: {0}")]
    Config(String),
    /// I/O (sockets, files).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A request was malformed.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Authentication failed.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("permission denied: {0}")]
    Denied(String),
    /// Unknown id.
    #[error("not found: {0}")]
    NotFound(String),
    /// The lease ended on chain (closed, expired, slashed, or moved to another keeper).
    #[error("{0}")]
    LeaseEnded(String),
    /// The keeper is shutting down.
    #[error("keeper is shutting down")]
    ShuttingDown,
    /// A limit was hit.
    #[error("resource exhausted: {0}")]
    Exhausted(String),
    /// A benchmark-proof challenge could not be made (a refused proof is a verdict, not this).
    #[error("proof: {0}")]
    Proof(String),
}

impl From<KeeperError> for Status {
    fn from(e: KeeperError) -> Status {
        match e {
            KeeperError::Invalid(m) => Status::invalid_argument(m),
            KeeperError::Unauthenticated(m) => Status::unauthenticated(m),
            KeeperError::Denied(m) => Status::permission_denied(m),
            KeeperError::NotFound(m) => Status::not_found(m),
            KeeperError::LeaseEnded(m) => Status::failed_precondition(m),
            KeeperError::ShuttingDown => Status::unavailable("keeper is shutting down"),
            KeeperError::Exhausted(m) => Status::resource_exhausted(m),
            other => Status::internal(other.to_string()),
        }
    }
}

macro_rules! db_from {
    ($($t:ty),*) => {$(
        impl From<$t> for KeeperError {
            fn from(e: $t) -> Self { KeeperError::Db(e.to_string()) }
        }
    )*};
}
db_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
