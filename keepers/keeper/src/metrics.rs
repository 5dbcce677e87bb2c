//! Prometheus metrics (prefix `gpunet_keeper_`), served on `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The keeper's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Tasks accepted.
    pub tasks_submitted: Counter,
    /// Tasks finished successfully.
    pub tasks_finished: Counter,
    /// Tasks failed or cancelled.
    pub tasks_failed: Counter,
    /// Retries after worker failure (and lineage re-executions).
    pub task_retries: Counter,
    /// Finished tasks forgotten by retention.
    pub tasks_forgotten: Counter,
    /// Tasks sent to a worker ahead, behind a running task (pipelining).
    pub tasks_pipelined: Counter,
    /// Workers declared dead.
    pub workers_dead: Counter,
    /// Workers connected now.
    pub workers_connected: Gauge,
    /// Standby connections open now (workers of other keepers' leases on whose committee this
    /// keeper sits).
    pub workers_standby: Gauge,
    /// Workers refused at registration.
    pub workers_refused: Counter,
    /// Requests refused for auth reasons (bad session, replayed nonce, bad signature).
    pub auth_refused: Counter,
    /// Leases this keeper serves now (chain mode).
    pub leases_served: Gauge,
    /// Leases that stopped being served (closed, expired, slashed, reassigned away).
    pub leases_ended: Counter,
    /// Reads of the chain that failed (the next one retries).
    pub chain_read_errors: Counter,
    /// Checkpoints posted on chain.
    pub checkpoints_posted: Counter,
    /// Leases this keeper took over from a silent or inactive keeper.
    pub reassignments: Counter,
    /// Transactions the chain refused or that failed to send, by error (the program's error
    /// name, or the kind of failure).
    pub chain_tx_failed: Family<Labels, Counter>,
    /// Transactions confirmed, by what they were (`checkpoint`, `slash`, `reassign`, …).
    pub chain_tx_sent: Family<Labels, Counter>,
    /// Attempts sent again after a transport failure, by what they were.
    pub chain_tx_retries: Family<Labels, Counter>,
    /// Slashes this keeper sent with a quorum of its committee, by kind (`provider`, `keeper`).
    pub slashes: Family<Labels, Counter>,
    /// Slashes this keeper co-signed for another member, by kind.
    pub slashes_cosigned: Family<Labels, Counter>,
    /// Requests to co-sign a slash this keeper refused (the evidence did not hold for it).
    pub cosign_refused: Counter,
    /// Other keepers' checkpoints this keeper re-verified, by outcome (`verified`,
    /// `mismatch`, `unavailable`).
    pub checkpoints_audited: Family<Labels, Counter>,
    /// Per served lease: seconds between the chain's clock and the end of the last settled
    /// period (grows until the next checkpoint lands).
    pub checkpoint_lag_seconds: Family<Labels, Gauge>,
}

/// Label pairs of a metric family.
pub type Labels = Vec<(String, String)>;

/// The label set `name=value`.
pub fn label(name: &str, value: impl Into<String>) -> Labels {
    vec![(name.to_string(), value.into())]
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("gpunet_keeper");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            tasks_submitted: Counter::default(),
            tasks_finished: Counter::default(),
            tasks_failed: Counter::default(),
            task_retries: Counter::default(),
            tasks_forgotten: Counter::default(),
            tasks_pipelined: Counter::default(),
            workers_dead: Counter::default(),
            workers_connected: Gauge::default(),
            workers_standby: Gauge::default(),
            workers_refused: Counter::default(),
            auth_refused: Counter::default(),
            leases_served: Gauge::default(),
            leases_ended: Counter::default(),
            chain_read_errors: Counter::default(),
            checkpoints_posted: Counter::default(),
            reassignments: Counter::default(),
            chain_tx_failed: Family::default(),
            chain_tx_sent: Family::default(),
            chain_tx_retries: Family::default(),
            checkpoint_lag_seconds: Family::default(),
            slashes: Family::default(),
            slashes_cosigned: Family::default(),
            cosign_refused: Counter::default(),
            checkpoints_audited: Family::default(),
        };
        r.register(
            "tasks_submitted",
            "Tasks accepted",
            m.tasks_submitted.clone(),
        );
        r.register(
            "tasks_finished",
            "Tasks finished successfully",
            m.tasks_finished.clone(),
        );
        r.register(
            "tasks_failed",
            "Tasks failed or cancelled",
            m.tasks_failed.clone(),
        );
        r.register(
            "task_retries",
            "Task retries and lineage re-executions",
            m.task_retries.clone(),
        );
        r.register(
            "tasks_forgotten",
            "Finished tasks forgotten by retention",
            m.tasks_forgotten.clone(),
        );
        r.register(
            "tasks_pipelined",
            "Tasks sent to a worker ahead, to run right after a running task (pipelining)",
            m.tasks_pipelined.clone(),
        );
        r.register(
            "workers_dead",
            "Workers declared dead",
            m.workers_dead.clone(),
        );
        r.register(
            "workers_connected",
            "Workers connected",
            m.workers_connected.clone(),
        );
        r.register(
            "workers_standby",
            "Standby connections of workers (liveness only)",
            m.workers_standby.clone(),
        );
        r.register(
            "workers_refused",
            "Worker registrations refused",
            m.workers_refused.clone(),
        );
        r.register(
            "auth_refused",
            "Client requests refused by authentication",
            m.auth_refused.clone(),
        );
        r.register(
            "leases_served",
            "Leases this keeper serves (chain mode)",
            m.leases_served.clone(),
        );
        r.register(
            "leases_ended",
            "Leases that stopped being served: closed, expired, slashed or reassigned away",
            m.leases_ended.clone(),
        );
        r.register(
            "chain_read_errors",
            "Failed reads of the chain (retried at the next reconciliation)",
            m.chain_read_errors.clone(),
        );
        r.register(
            "checkpoints_posted",
            "Checkpoints posted on chain",
            m.checkpoints_posted.clone(),
        );
        r.register(
            "reassignments",
            "Leases taken over from a silent or inactive keeper",
            m.reassignments.clone(),
        );
        r.register(
            "chain_tx_failed",
            "Transactions refused by the chain or not sent, by error",
            m.chain_tx_failed.clone(),
        );
        r.register(
            "chain_tx_sent",
            "Transactions confirmed on chain, by what they were",
            m.chain_tx_sent.clone(),
        );
        r.register(
            "chain_tx_retries",
            "Transaction attempts sent again after a transport failure, by what they were",
            m.chain_tx_retries.clone(),
        );
        r.register(
            "checkpoint_lag_seconds",
            "Seconds since the end of the lease's last settled period, on the chain's clock",
            m.checkpoint_lag_seconds.clone(),
        );
        r.register(
            "slashes",
            "Slashes sent with a quorum of the lease's committee, by kind",
            m.slashes.clone(),
        );
        r.register(
            "slashes_cosigned",
            "Slashes co-signed for another committee member, by kind",
            m.slashes_cosigned.clone(),
        );
        r.register(
            "cosign_refused",
            "Requests to co-sign a slash refused because the evidence did not hold",
            m.cosign_refused.clone(),
        );
        r.register(
            "checkpoints_audited",
            "Other keepers' checkpoints re-verified from their transcripts, by outcome",
            m.checkpoints_audited.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}
