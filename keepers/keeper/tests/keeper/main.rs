//! Keeper integration tests: real gRPC over loopback, in-process keeper and workers.

mod common;

mod auth;
mod bad_input;
mod dag;
mod failure;
mod pipeline;
mod placement;
mod process;
mod proofs;
mod reflection;
mod restart;
mod retention;
mod span;
