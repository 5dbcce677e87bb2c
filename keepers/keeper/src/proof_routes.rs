//! Where proof messages from workers go: to the [`crate::proofs::Prover`] run that issued the
//! challenge. The core tells it when a proof task's assignment goes out
//! ([`ProofRoutes::assigned`]); the worker stream hands it round commits and openings.
//! It depends on nothing else in the keeper, so the core can hold it without knowing the
//! prover.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// What the worker stream and the core tell a running proof.
#[derive(Debug)]
pub(crate) enum ProofEvent {
    /// The proof task's assignment went out (`at`: when).
    Assigned {
        task_id: u64,
        attempt: u32,
        tx: Option<mpsc::UnboundedSender<pb::KeeperMessage>>,
        at: Instant,
    },
    /// A round commit arrived (`at`: when).
    Commit { commit: Bytes, at: Instant },
    /// The opening arrived.
    Opening { opening: Bytes },
}

struct Route {
    challenge: Bytes,
    worker: Arc<str>,
    tx: mpsc::UnboundedSender<ProofEvent>,
}

#[derive(Default)]
struct Routes {
    /// Issued challenges whose task has not been assigned yet.
    pending: HashMap<Bytes, Route>,
    /// Assigned proof tasks.
    running: HashMap<u64, Route>,
}

/// Routes proof messages to the [`Prover`] that issued the challenge. Only challenges this
/// keeper issued are routed (a user's own `ProofTask` is an ordinary task), and only messages
/// from the worker the challenge is for.
///
/// Locked inside the core's lock (from `Core::start`), never the other way round.
#[derive(Default)]
pub struct ProofRoutes {
    inner: Mutex<Routes>,
}

/// Removes a proof's routes when its prover is done.
pub(crate) struct RouteGuard<'a> {
    routes: &'a ProofRoutes,
    challenge: Bytes,
}

impl Drop for RouteGuard<'_> {
    fn drop(&mut self) {
        let mut r = self.routes.inner.lock();
        r.pending.remove(&self.challenge);
        r.running.retain(|_, x| x.challenge != self.challenge);
    }
}

impl ProofRoutes {
    pub(crate) fn expect(
        &self,
        challenge: Bytes,
        worker: Arc<str>,
    ) -> (RouteGuard<'_>, mpsc::UnboundedReceiver<ProofEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.lock().pending.insert(
            challenge.clone(),
            Route {
                challenge: challenge.clone(),
                worker,
                tx,
            },
        );
        (
            RouteGuard {
                routes: self,
                challenge,
            },
            rx,
        )
    }

    /// A proof task's assignment goes out now (called by the core when it starts a task with
    /// a `ProofTask` executor, with the worker's stream).
    pub(crate) fn assigned(
        &self,
        challenge: &Bytes,
        task_id: u64,
        attempt: u32,
        worker: &Arc<str>,
        tx: Option<&mpsc::UnboundedSender<pb::KeeperMessage>>,
    ) {
        let mut r = self.inner.lock();
        let Some(route) = r.pending.remove(challenge) else {
            return;
        };
        if route.worker != *worker {
            // Not the worker the challenge is for (cannot happen with hard affinity).
            r.pending.insert(challenge.clone(), route);
            return;
        }
        let _ = route.tx.send(ProofEvent::Assigned {
            task_id,
            attempt,
            tx: tx.cloned(),
            at: Instant::now(),
        });
        r.running.insert(task_id, route);
    }

    /// A `ProofCommitMsg` from `worker`.
    pub(crate) fn commit(&self, worker: &Arc<str>, m: pb::ProofCommitMsg) {
        let at = Instant::now();
        let r = self.inner.lock();
        if let Some(route) = r.running.get(&m.task_id).filter(|x| x.worker == *worker) {
            let _ = route.tx.send(ProofEvent::Commit {
                commit: m.commit,
                at,
            });
        }
    }

    /// A `ProofOpening` from `worker`.
    pub(crate) fn opening(&self, worker: &Arc<str>, m: pb::ProofOpening) {
        let r = self.inner.lock();
        if let Some(route) = r.running.get(&m.task_id).filter(|x| x.worker == *worker) {
            let _ = route.tx.send(ProofEvent::Opening { opening: m.opening });
        }
    }

    /// Whether a proof of `worker` is under way.
    pub fn in_flight(&self, worker: &str) -> bool {
        let r = self.inner.lock();
        r.pending
            .values()
            .chain(r.running.values())
            .any(|x| &*x.worker == worker)
    }
}
