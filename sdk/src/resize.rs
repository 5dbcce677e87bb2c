//! Resizing a lease (`lease_resize`): what it will cost or refund, and the request itself.
//!
//! The quote is the program's own arithmetic (`Lease::budget_for_resize`), so what a client
//! shows is what the program moves: a grow deposits the new GPUs' price for the time the lease
//! is funded for (plus any unpaid time since its funds ran out); a shrink refunds the GPUs it
//! gives back for that time. The new count bills from the request; checkpoints settle the old
//! count up to it, and the one that reaches it applies the new count.

use gpunet::events::LeaseResizeRequested;
use gpunet::state::Lease;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};

use crate::events::GpunetEvent;
use crate::{GpunetClient, SdkError, ix, token};

/// What a resize of a lease to a GPU count at a chain time moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeQuote {
    /// GPUs now and wanted.
    pub from: u16,
    pub to: u16,
    /// Escrow the user deposits (a grow).
    pub deposit: u64,
    /// Unspent escrow refunded to the user (a shrink).
    pub refund: u64,
    /// The lease's `funded_until` now: a resize keeps it (or, for a lease whose funds ran
    /// out, the request time).
    pub funded_until: i64,
}

/// The quote for resizing `lease` to `gpus` by a request at chain time `now`; `None` when the program's arithmetic would overflow. Whether the
/// program accepts the count at all (not 0, not the current one, GPUs free) is its own check.
pub fn quote(lease: &Lease, gpus: u16, now: i64) -> Option<ResizeQuote> {
    let budget = lease.segment_budget().ok()?;
    let needed = lease.budget_for_resize(gpus, now).ok()?;
    let grow = gpus > lease.gpus;
    Some(ResizeQuote {
        from: lease.gpus,
        to: gpus,
        deposit: if grow {
            needed.saturating_sub(budget)
        } else {
            0
        },
        refund: if grow {
            0
        } else {
            budget.saturating_sub(needed)
        },
        funded_until: lease.funded_until().ok()?,
    })
}

/// Asks the program to resize the lease at `address` to `gpus`, signed by its user. A grow
/// deposits at most `max_deposit` (default: the quote at the chain's time now, which only
/// shrinks as time passes: a later request costs less). Returns the signature and what the
/// program did (its `LeaseResizeRequested` event).
pub async fn resize(
    client: &GpunetClient,
    user: &Keypair,
    address: &Pubkey,
    gpus: u16,
    max_deposit: Option<u64>,
) -> Result<(Signature, LeaseResizeRequested), SdkError> {
    let lease = client.lease(address).await?;
    let config = client.config().await?;
    let now = client.chain_time().await?;
    // No quote (an overflow): the program refuses the request with its own error.
    let allowance =
        max_deposit.unwrap_or_else(|| quote(&lease, gpus, now).map_or(0, |q| q.deposit));
    let user_token = token::ata(&user.pubkey(), &config.mint);
    let ixs = [
        token::create_ata(&user.pubkey(), &user.pubkey(), &config.mint),
        ix::lease_resize(
            &user.pubkey(),
            &user_token,
            address,
            &lease.provider,
            &config.mint,
            gpus,
            allowance,
        ),
    ];
    let sig = client.send(&ixs, user, &[]).await?;
    let event = client
        .events(&sig)
        .await?
        .into_iter()
        .find_map(|e| match e {
            GpunetEvent::LeaseResizeRequested(r) => Some(r),
            _ => None,
        })
        .ok_or_else(|| SdkError::Decode {
            kind: "transaction",
            address: *address,
            reason: format!("lease_resize {sig} emitted no LeaseResizeRequested event"),
        })?;
    Ok((sig, event))
}
