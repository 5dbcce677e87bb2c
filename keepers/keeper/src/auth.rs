//! Challenges, signed sessions and replay protection.
//!
//! Per ARCHITECTURE.md ("Who may submit"): a client signs one fresh keeper challenge per
//! session; afterwards each request carries the session id and a nonce that may be used once.
//! No per-task signatures: ed25519 verification costs tens of µs, more than a whole dispatch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, VerifyingKey};
use parking_lot::Mutex;

use crate::error::KeeperError;

/// How long a challenge stays valid.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(30);
/// Most outstanding challenges (a flood is refused rather than growing memory).
pub const MAX_CHALLENGES: usize = 100_000;
/// Most live sessions.
pub const MAX_SESSIONS: usize = 100_000;

/// Fill `buf` with OS randomness.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], KeeperError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| KeeperError::Exhausted(format!("os randomness: {e}")))?;
    Ok(b)
}

/// Single-use challenges with an expiry.
#[derive(Default)]
pub struct Challenges {
    open: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Challenges {
    /// Issue a fresh challenge.
    pub fn issue(&self) -> Result<[u8; 32], KeeperError> {
        let c = random_bytes::<32>()?;
        let now = Instant::now();
        let mut open = self.open.lock();
        if open.len() >= MAX_CHALLENGES {
            open.retain(|_, exp| *exp > now);
            if open.len() >= MAX_CHALLENGES {
                return Err(KeeperError::Exhausted(
                    "too many outstanding challenges".into(),
                ));
            }
        }
        open.insert(c, now + CHALLENGE_TTL);
        Ok(c)
    }

    /// Consume a challenge: true if it was issued, unused and unexpired.
    pub fn consume(&self, c: &[u8]) -> bool {
        let Ok(key) = <[u8; 32]>::try_from(c) else {
            return false;
        };
        match self.open.lock().remove(&key) {
            Some(exp) => exp > Instant::now(),
            None => false,
        }
    }
}

/// Verify an ed25519 signature by a 32-byte public key.
pub fn verify_sig(key: &[u8], msg: &[u8], sig: &[u8]) -> Result<[u8; 32], KeeperError> {
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| KeeperError::Invalid("public key must be 32 bytes".into()))?;
    let vk = VerifyingKey::from_bytes(&key)
        .map_err(|_| KeeperError::Invalid("malformed public key".into()))?;
    let sig = Signature::from_slice(sig)
        .map_err(|_| KeeperError::Invalid("signature must be 64 bytes".into()))?;
    vk.verify_strict(msg, &sig)
        .map_err(|_| KeeperError::Unauthenticated("bad signature".into()))?;
    Ok(key)
}

/// Sliding window of used nonces (the highest seen and a bitmap of the 128 below it), so
/// concurrent requests may arrive out of order but none is accepted twice.
#[derive(Default, Debug)]
pub struct NonceWindow {
    max: u64,
    seen: u128,
}

/// Width of the nonce window.
pub const NONCE_WINDOW: u64 = 128;

impl NonceWindow {
    /// Accept `n` once. Nonce 0 and nonces older than the window are refused.
    pub fn accept(&mut self, n: u64) -> bool {
        if n == 0 {
            return false;
        }
        if n > self.max {
            let shift = n - self.max;
            self.seen = if shift >= NONCE_WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.max = n;
            return true;
        }
        let back = self.max - n;
        if back >= NONCE_WINDOW {
            return false;
        }
        let bit = 1u128 << back;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

/// An authenticated client session on one lease.
pub struct SessionEntry {
    /// Lease the session may act on.
    pub lease: Arc<str>,
    /// User key that opened it.
    pub user: [u8; 32],
    window: NonceWindow,
    last_used: Instant,
}

/// Live sessions.
pub struct Sessions {
    map: Mutex<HashMap<[u8; 16], SessionEntry>>,
    ttl: Duration,
}

impl Sessions {
    /// Sessions that expire after `ttl` without use.
    pub fn new(ttl: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Idle lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Create a session; returns its id.
    pub fn open(&self, lease: Arc<str>, user: [u8; 32]) -> Result<[u8; 16], KeeperError> {
        let id = random_bytes::<16>()?;
        let now = Instant::now();
        let mut m = self.map.lock();
        if m.len() >= MAX_SESSIONS {
            let ttl = self.ttl;
            m.retain(|_, s| now.duration_since(s.last_used) < ttl);
            if m.len() >= MAX_SESSIONS {
                return Err(KeeperError::Exhausted("too many sessions".into()));
            }
        }
        m.insert(
            id,
            SessionEntry {
                lease,
                user,
                window: NonceWindow::default(),
                last_used: now,
            },
        );
        Ok(id)
    }

    /// Check a request's session and nonce; returns the session's lease.
    pub fn check(&self, session: &[u8], nonce: u64) -> Result<Arc<str>, KeeperError> {
        let id: [u8; 16] = session
            .try_into()
            .map_err(|_| KeeperError::Unauthenticated("missing or malformed session".into()))?;
        let mut m = self.map.lock();
        let s = m
            .get_mut(&id)
            .ok_or_else(|| KeeperError::Unauthenticated("unknown or expired session".into()))?;
        let now = Instant::now();
        if now.duration_since(s.last_used) > self.ttl {
            m.remove(&id);
            return Err(KeeperError::Unauthenticated("session expired".into()));
        }
        if !s.window.accept(nonce) {
            return Err(KeeperError::Denied(format!(
                "nonce {nonce} replayed or too old"
            )));
        }
        s.last_used = now;
        Ok(s.lease.clone())
    }
}

/// The gRPC layer's admission state, shared by both services: the challenges it has issued
/// (worker registration, client sessions) and the client sessions it has opened. The core
/// never sees either; it receives verified keys and leases.
pub struct Gate {
    /// Keeper id (base58 public key) that signatures are bound to.
    pub keeper_id: String,
    /// Registration and session challenges.
    pub challenges: Challenges,
    /// Client sessions.
    pub sessions: Sessions,
}

impl Gate {
    /// A gate for keeper `keeper_id` whose sessions live `session_ttl`.
    pub fn new(keeper_id: String, session_ttl: Duration) -> Self {
        Gate {
            keeper_id,
            challenges: Challenges::default(),
            sessions: Sessions::new(session_ttl),
        }
    }

    /// A fresh challenge for `GetChallenge` (both services).
    pub fn challenge(&self) -> Result<gpunet_proto::v1::Challenge, KeeperError> {
        let c = self.challenges.issue()?;
        Ok(gpunet_proto::v1::Challenge {
            challenge: c.to_vec().into(),
            keeper_id: self.keeper_id.clone(),
        })
    }

    /// Checks an answer to one of our challenges: the challenge is consumed (it must be ours,
    /// unused and unexpired) and `signature` must be `key`'s over `message`. Returns the key.
    /// `refused` counts every refusal.
    pub fn answer(
        &self,
        challenge: &[u8],
        key: &[u8],
        message: &[u8],
        signature: &[u8],
        refused: &prometheus_client::metrics::counter::Counter,
    ) -> Result<[u8; 32], KeeperError> {
        if !self.challenges.consume(challenge) {
            refused.inc();
            return Err(KeeperError::Unauthenticated(
                "unknown, used or expired challenge".into(),
            ));
        }
        verify_sig(key, message, signature).inspect_err(|_| {
            refused.inc();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_window_refuses_replays_and_old_nonces() {
        let mut w = NonceWindow::default();
        assert!(!w.accept(0));
        assert!(w.accept(5));
        assert!(!w.accept(5));
        assert!(w.accept(3));
        assert!(!w.accept(3));
        assert!(w.accept(200));
        assert!(!w.accept(5));
        assert!(w.accept(199));
        assert!(!w.accept(200));
    }

    #[test]
    fn challenges_are_single_use() {
        let c = Challenges::default();
        let x = c.issue().unwrap();
        assert!(c.consume(&x));
        assert!(!c.consume(&x));
        assert!(!c.consume(b"short"));
    }
}
