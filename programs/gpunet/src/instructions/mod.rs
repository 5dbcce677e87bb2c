//! One file per instruction, named noun-then-verb. Each file reads top to bottom: arguments,
//! accounts, `validate` (rules that span accounts or time), handler.
//!
//! Accounts structs (and Anchor's generated client modules) are used through the globs below;
//! each file's `handler` is always called by its full path from lib.rs.
#![allow(ambiguous_glob_reexports)]

pub mod config_accept_admin;
pub mod config_apply;
pub mod config_init;
pub mod config_update;
pub mod keeper_close;
pub mod keeper_deregister;
pub mod keeper_drain;
pub mod keeper_register;
pub mod keeper_slash;
pub mod keeper_update;
pub mod lease_checkpoint;
pub mod lease_close;
pub mod lease_draw_committee;
pub mod lease_open;
pub mod lease_reassign_keeper;
pub mod lease_resize;
pub mod lease_top_up;
pub mod provider_close;
pub mod provider_register;
pub mod provider_slash;
pub mod provider_stake;
pub mod provider_unstake_request;
pub mod provider_update;
pub mod provider_withdraw;
pub mod treasury_withdraw;

pub use config_accept_admin::*;
pub use config_apply::*;
pub use config_init::*;
pub use config_update::*;
pub use keeper_close::*;
pub use keeper_deregister::*;
pub use keeper_drain::*;
pub use keeper_register::*;
pub use keeper_slash::*;
pub use keeper_update::*;
pub use lease_checkpoint::*;
pub use lease_close::*;
pub use lease_draw_committee::*;
pub use lease_open::*;
pub use lease_reassign_keeper::*;
pub use lease_resize::*;
pub use lease_top_up::*;
pub use provider_close::*;
pub use provider_register::*;
pub use provider_slash::*;
pub use provider_stake::*;
pub use provider_unstake_request::*;
pub use provider_update::*;
pub use provider_withdraw::*;
pub use treasury_withdraw::*;
