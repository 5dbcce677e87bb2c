//! # gpunet-sdk
//!
//! What a client needs to talk to the gpunet program: PDAs derived from the program's own seed
//! constants ([`pda`]), an instruction builder per instruction ([`ix`]) whose result any
//! signer can sign, and the program's errors by code ([`errors`]).

pub mod errors;
pub mod ix;
pub mod pda;

pub use gpunet;
pub use gpunet::state::{
    Config, ConfigParams, GpuClass, GpuOffer, Keeper, KeeperStatus, Lease, LeaseStatus, Provider,
    ProviderStatus, Verdict,
};
