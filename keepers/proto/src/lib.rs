//! `gpunet-proto`: the `gpunet.v1` gRPC services and messages.
//!
//! - [`v1::worker_service_server`] / [`v1::worker_service_client`]: worker ↔ keeper
//!   (registration by signed challenge, one long-lived task stream `Join`, object fetch).
//! - [`v1::keeper_service_server`] / [`v1::keeper_service_client`]: client ↔ keeper
//!   (signed sessions, submit / status / cancel / get / list / watch, cluster view).
//! - [`v1::peer_service_server`] / [`v1::peer_service_client`]: keeper ↔ keeper (committee
//!   members co-signing a slash, each after re-verifying the evidence itself).
//!
//! Generated at build time from `proto/gpunet/v1/{dispatch,peer}.proto` with `protox` (no `protoc`).
//! [`FILE_DESCRIPTOR_SET`] feeds gRPC reflection. [`coalesce`] folds queued batch messages
//! (assignments, results) into one frame on both ends of the worker stream. The signing-message
//! helpers live here so the worker, the keeper and clients build byte-identical messages;
//! [`keys`] reads and writes the one key format every party uses (Solana JSON keypair files);
//! [`labels`] is how a task's label selector matches a worker's labels, for the keeper's
//! scheduler and for clients that route tasks over several leases.

#![warn(missing_docs)]

pub mod coalesce;
pub mod keys;
pub mod labels;

/// Generated code for package `gpunet.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("gpunet.v1");
}

/// Encoded `FileDescriptorSet` of `gpunet.v1` (for tonic-reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gpunet_v1_descriptor.bin"));

/// Domain tag of a worker registration signature.
pub const WORKER_REGISTER_DOMAIN: &[u8] = b"gpunet-worker-register-v1";
/// Domain tag of a client session signature.
pub const SESSION_DOMAIN: &[u8] = b"gpunet-session-v1";

fn push_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Bytes a worker signs to register: domain ‖ keeper_id ‖ provider ‖ challenge ‖ worker_key
/// (variable-length fields are length-prefixed, u32 little-endian).
pub fn worker_signing_bytes(
    keeper_id: &str,
    provider: &str,
    challenge: &[u8],
    worker_key: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(WORKER_REGISTER_DOMAIN);
    push_lp(&mut out, keeper_id.as_bytes());
    push_lp(&mut out, provider.as_bytes());
    push_lp(&mut out, challenge);
    push_lp(&mut out, worker_key);
    out
}

/// Bytes a lease's user signs to open a session: domain ‖ keeper_id ‖ lease_id ‖ challenge ‖ user_key.
pub fn session_signing_bytes(
    keeper_id: &str,
    lease_id: &str,
    challenge: &[u8],
    user_key: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(SESSION_DOMAIN);
    push_lp(&mut out, keeper_id.as_bytes());
    push_lp(&mut out, lease_id.as_bytes());
    push_lp(&mut out, challenge);
    push_lp(&mut out, user_key);
    out
}

/// Metadata key carrying a worker's session secret (hex) on `FetchObject`.
pub const WORKER_SESSION_METADATA: &str = "x-gpunet-worker-session";

/// Short lowercase names of the enums clients print (the words the protocol used before these
/// fields were enums: "ok", "ready", "created", "opening", ...).
macro_rules! labels {
    ($($ty:ident { $($variant:ident => $label:literal),* $(,)? })*) => {$(
        impl v1::$ty {
            /// Short lowercase name ("unspecified" for the zero value).
            pub fn label(&self) -> &'static str {
                match self {
                    $(v1::$ty::$variant => $label,)*
                }
            }
        }
    )*};
}

labels! {
    ClusterState {
        Unspecified => "unspecified",
        Forming => "forming",
        Ready => "ready",
        Degraded => "degraded",
    }
    PlacementGroupState {
        Unspecified => "unspecified",
        Pending => "pending",
        Created => "created",
    }
    ProofOutcome {
        Unspecified => "unspecified",
        Ok => "ok",
        Rejected => "rejected",
        Timeout => "timeout",
        Failed => "failed",
    }
    ProofStage {
        Unspecified => "unspecified",
        Assignment => "assignment",
        Commits => "commits",
        Opening => "opening",
    }
}
