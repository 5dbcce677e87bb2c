//! When this keeper last heard from each worker key, on any of its connections: a serving
//! one or a standby one (a worker keeps one to every other committee member of its leases, see
//! `gpunet_sdk::plan::standby_keepers`).
//!
//! This is what a slash for a worker's silence rests on: the keeper that asks and each
//! co-signer judge on their own record here, so a worker alive to any of them is not slashed.
//! A worker is silent past the grace period when this keeper has heard nothing from it for
//! `grace` seconds of the chain's clock (the grace period is on-chain terms) and at least
//! `dead_after` of its own clock (a test chain's clock jumps; real time must still pass, so a
//! worker that simply has not sent its next heartbeat since the jump is not silent). A key
//! never heard from counts from the moment this keeper began to watch.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Where the chain's clock comes from (the chain side's directory).
pub trait ChainTime: Send + Sync + 'static {
    /// The chain's unix time now, as best known (`None` before the first read).
    fn chain_now(&self) -> Option<i64>;
}

/// One key's last message: when, on this keeper's clock and on the chain's; and how many
/// streams it has open to this keeper now.
#[derive(Clone, Copy, Debug)]
struct Heard {
    at: Instant,
    chain: Option<i64>,
    open: u32,
}

/// How a worker stands, for a slash for its silence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Silence {
    /// Connected, and heard from within `dead_after`.
    Alive,
    /// Not heard from, but not for long enough yet (why, in words).
    NotYet(String),
    /// Not heard from for at least the grace period (chain seconds) and `dead_after`.
    Past {
        /// Chain seconds since it was last heard from (or since this keeper began watching).
        chain_seconds: i64,
    },
}

/// The record of when each worker key was last heard from.
pub struct Liveness {
    started: Instant,
    dead_after: Duration,
    clock: OnceLock<Arc<dyn ChainTime>>,
    /// The chain's time when this keeper began to watch (the first reading).
    first_chain: Mutex<Option<i64>>,
    heard: Mutex<HashMap<String, Heard>>,
}

impl Liveness {
    /// An empty record; a worker heard from within `dead_after` is alive.
    pub fn new(dead_after: Duration) -> Self {
        Liveness {
            started: Instant::now(),
            dead_after,
            clock: OnceLock::new(),
            first_chain: Mutex::new(None),
            heard: Mutex::new(HashMap::new()),
        }
    }

    /// Stamps messages with the chain's time from `clock` from now on (chain mode). Only the
    /// first call counts.
    pub fn set_clock(&self, clock: Arc<dyn ChainTime>) {
        let _ = self.clock.set(clock);
        self.chain_now();
    }

    /// The chain's time now, noting the first reading.
    fn chain_now(&self) -> Option<i64> {
        let now = self.clock.get()?.chain_now()?;
        self.first_chain.lock().get_or_insert(now);
        Some(now)
    }

    /// Worker `key` (base58) was heard from just now.
    pub fn heard(&self, key: &str) {
        let (at, chain) = (Instant::now(), self.chain_now());
        self.heard
            .lock()
            .entry(key.to_string())
            .and_modify(|h| (h.at, h.chain) = (at, chain))
            .or_insert(Heard { at, chain, open: 0 });
    }

    /// Worker `key` opened a stream to this keeper (heard from now): it counts as connected
    /// until the guard is dropped (the stream ended).
    pub fn connected(self: &Arc<Self>, key: &str) -> Connected {
        self.heard(key);
        if let Some(h) = self.heard.lock().get_mut(key) {
            h.open += 1;
        }
        Connected {
            liveness: self.clone(),
            key: key.to_string(),
        }
    }

    /// Streams worker `key` has open to this keeper now.
    pub fn open_streams(&self, key: &str) -> u32 {
        self.heard.lock().get(key).map_or(0, |h| h.open)
    }

    /// How worker `key` stands at chain time `chain_now` against a grace period of `grace`
    /// chain seconds.
    pub fn silence(&self, key: &str, chain_now: i64, grace: i64) -> Silence {
        let first = self.chain_now().and(*self.first_chain.lock());
        let last = self.heard.lock().get(key).copied();
        let (at, chain, heard, open) = match last {
            Some(h) => (h.at, h.chain.or(first), true, h.open > 0),
            None => (self.started, first, false, false),
        };
        let wall = at.elapsed();
        if open && wall < self.dead_after {
            return Silence::Alive;
        }
        let Some(since) = chain else {
            return Silence::NotYet("this keeper has not read the chain's clock yet".into());
        };
        let chain_seconds = chain_now.saturating_sub(since);
        let whom = if heard {
            "last heard from"
        } else {
            "never heard from since this keeper began watching"
        };
        if wall < self.dead_after || chain_seconds < grace {
            return Silence::NotYet(format!(
                "{whom} {chain_seconds} s ago on the chain's clock ({:.1} s on this keeper's); \
                 the grace period is {grace} s",
                wall.as_secs_f64()
            ));
        }
        Silence::Past { chain_seconds }
    }
}

/// A worker's open stream, as [`Liveness`] counts it: dropped when the stream ends.
pub struct Connected {
    liveness: Arc<Liveness>,
    key: String,
}

impl Drop for Connected {
    fn drop(&mut self) {
        if let Some(h) = self.liveness.heard.lock().get_mut(&self.key) {
            h.open = h.open.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    struct Clock(AtomicI64);
    impl ChainTime for Clock {
        fn chain_now(&self) -> Option<i64> {
            Some(self.0.load(Ordering::SeqCst))
        }
    }

    #[test]
    fn silence_needs_the_grace_period_on_the_chain_and_dead_after_on_this_clock() {
        let l = Arc::new(Liveness::new(Duration::from_millis(100)));
        let w = "worker";
        assert!(
            matches!(l.silence(w, 1_000, 60), Silence::NotYet(_)),
            "no clock"
        );
        let clock = Arc::new(Clock(AtomicI64::new(1_000)));
        l.set_clock(clock.clone());
        let stream = l.connected(w);
        assert_eq!(l.silence(w, 5_000, 60), Silence::Alive, "just heard");
        std::thread::sleep(Duration::from_millis(120));
        // dead_after has passed, not the grace period on the chain.
        assert!(matches!(l.silence(w, 1_059, 60), Silence::NotYet(_)));
        assert_eq!(l.silence(w, 1_060, 60), Silence::Past { chain_seconds: 60 });
        // Heard again, later on the chain: counted from then.
        clock.0.store(2_000, Ordering::SeqCst);
        l.heard(w);
        assert_eq!(l.silence(w, 2_100, 60), Silence::Alive);
        // Its stream ends: heard from moments ago, but gone; silent once the time passes.
        drop(stream);
        assert!(matches!(l.silence(w, 2_100, 60), Silence::NotYet(_)));
        std::thread::sleep(Duration::from_millis(120));
        assert!(matches!(l.silence(w, 2_059, 60), Silence::NotYet(_)));
        assert_eq!(
            l.silence(w, 2_100, 60),
            Silence::Past { chain_seconds: 100 }
        );
    }

    #[test]
    fn a_key_never_heard_from_counts_from_when_this_keeper_began_watching() {
        let l = Liveness::new(Duration::from_millis(50));
        l.set_clock(Arc::new(Clock(AtomicI64::new(500))));
        // Too soon after the start on this keeper's clock, whatever the chain says.
        assert!(matches!(l.silence("x", 10_000, 60), Silence::NotYet(_)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(l.silence("x", 559, 60), Silence::NotYet(_)));
        assert_eq!(l.silence("x", 560, 60), Silence::Past { chain_seconds: 60 });
    }
}
