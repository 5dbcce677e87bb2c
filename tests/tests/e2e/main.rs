//! End to end: a localnet (embedded surfpool with gpunet loaded natively) started in-process on
//! free ports, driven over real HTTP JSON-RPC by the SDK's client (solana-rpc-client underneath)
//! and by anchor-client; a chain-mode keeper with a real worker over gRPC on loopback.

mod flows;
mod harness;
mod idl;
mod keeper;
mod resize;
mod restart;
mod slash;
mod typescript;
