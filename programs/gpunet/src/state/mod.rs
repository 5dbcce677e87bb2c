//! On-chain accounts: one PDA per thing.

pub mod config;
pub mod gpu;
pub mod keeper;
pub mod lease;
pub mod provider;
pub mod seeds;

pub use config::*;
pub use gpu::*;
pub use keeper::*;
pub use lease::*;
pub use provider::*;
pub use seeds::*;
