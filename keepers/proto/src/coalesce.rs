//! One stream over an unbounded queue that folds consecutive batch messages into one frame:
//! the keeper's assignments to a worker and the worker's results to the keeper both queue
//! many small batches under load, and one gRPC frame per batch costs more than the batch.

use futures_util::Stream;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::v1;

/// Most items folded into one message.
pub const MAX_COALESCED: usize = 4096;

/// A message that may carry a batch of items of one kind.
pub trait Coalesce: Sized {
    /// Items in this message when it is a batch that may take more; None otherwise.
    fn batch_len(&self) -> Option<usize>;
    /// Appends `next`'s items when it is a batch of the same kind; otherwise gives it back.
    fn absorb(&mut self, next: Self) -> Result<(), Self>;
}

impl Coalesce for v1::KeeperMessage {
    fn batch_len(&self) -> Option<usize> {
        match &self.msg {
            Some(v1::keeper_message::Msg::Assign(a)) => Some(a.tasks.len()),
            _ => None,
        }
    }

    fn absorb(&mut self, next: Self) -> Result<(), Self> {
        match (&mut self.msg, next.msg) {
            (
                Some(v1::keeper_message::Msg::Assign(a)),
                Some(v1::keeper_message::Msg::Assign(b)),
            ) => {
                a.tasks.extend(b.tasks);
                Ok(())
            }
            (_, msg) => Err(Self { msg }),
        }
    }
}

impl Coalesce for v1::WorkerMessage {
    fn batch_len(&self) -> Option<usize> {
        match &self.msg {
            Some(v1::worker_message::Msg::Results(r)) => Some(r.results.len()),
            _ => None,
        }
    }

    fn absorb(&mut self, next: Self) -> Result<(), Self> {
        match (&mut self.msg, next.msg) {
            (
                Some(v1::worker_message::Msg::Results(a)),
                Some(v1::worker_message::Msg::Results(b)),
            ) => {
                a.results.extend(b.results);
                Ok(())
            }
            (_, msg) => Err(Self { msg }),
        }
    }
}

/// The messages of `rx` in order, with each batch followed by the batches already queued
/// behind it folded into it (up to [`MAX_COALESCED`] items). Never waits to fill a batch:
/// only what is queued at that moment is taken. Ends when every sender is gone.
pub fn coalesced<M: Coalesce + Send + 'static>(
    rx: UnboundedReceiver<M>,
) -> impl Stream<Item = M> + Send + 'static {
    futures_util::stream::unfold((rx, None::<M>), |(mut rx, held)| async move {
        let mut msg = match held {
            Some(m) => m,
            None => rx.recv().await?,
        };
        let mut next = None;
        while msg.batch_len().is_some_and(|n| n < MAX_COALESCED) {
            let Ok(m) = rx.try_recv() else {
                break;
            };
            if let Err(other) = msg.absorb(m) {
                next = Some(other);
                break;
            }
        }
        Some((msg, (rx, next)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn results(ids: &[u64]) -> v1::WorkerMessage {
        v1::WorkerMessage {
            msg: Some(v1::worker_message::Msg::Results(v1::TaskResults {
                results: ids
                    .iter()
                    .map(|&task_id| v1::TaskResult {
                        task_id,
                        ..Default::default()
                    })
                    .collect(),
            })),
        }
    }

    #[tokio::test]
    async fn queued_batches_fold_and_other_messages_keep_their_place() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(results(&[1])).unwrap();
        tx.send(results(&[2, 3])).unwrap();
        tx.send(v1::WorkerMessage {
            msg: Some(v1::worker_message::Msg::Heartbeat(Default::default())),
        })
        .unwrap();
        tx.send(results(&[4])).unwrap();
        drop(tx);
        let got: Vec<v1::WorkerMessage> = coalesced(rx).collect().await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], results(&[1, 2, 3]));
        assert!(matches!(
            got[1].msg,
            Some(v1::worker_message::Msg::Heartbeat(_))
        ));
        assert_eq!(got[2], results(&[4]));
    }
}
