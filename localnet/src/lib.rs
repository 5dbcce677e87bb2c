//! # gpunet-localnet — the embedded default chain
//!
//! [surfpool](https://surfpool.run) (Anchor 1.x's default local network) embedded as a library
//! and run offline in-process, with the gpunet program registered in its SVM as a native
//! builtin (the program cannot be compiled to SBF on our machines). Surfpool serves the standard
//! Solana JSON-RPC, the pubsub websocket, its SQLite ledger and its cheat codes (time travel);
//! this crate only starts it, loads gpunet and stops it cleanly. SPL Token and the Associated
//! Token Account program come with surfpool's SVM.
//!
//! ```no_run
//! let net = gpunet_localnet::Localnet::start(gpunet_localnet::LocalnetConfig::default())?;
//! println!("JSON-RPC on {}", net.rpc_url());
//! net.stop()?;
//! # Ok::<(), gpunet_localnet::LocalnetError>(())
//! ```

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use surfpool_core::runloops::start_local_surfnet_runloop;
use surfpool_core::surfnet::locker::SurfnetSvmLocker;
use surfpool_core::surfnet::svm::{SurfnetSvm, SurfnetSvmConfig};
use surfpool_types::{RpcConfig, SimnetCommand, SimnetConfig, SimnetEvent, SurfpoolConfig};

/// Default JSON-RPC port (as `solana-test-validator` and surfpool).
pub const DEFAULT_RPC_PORT: u16 = 8899;
/// Default websocket (pubsub) port.
pub const DEFAULT_WS_PORT: u16 = 8900;
/// How long [`Localnet::stop`] waits for surfpool's runloop to end.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Name of the SQLite file inside the ledger directory.
pub const LEDGER_FILE: &str = "chain.sqlite";

/// How to run the localnet.
#[derive(Debug, Clone)]
pub struct LocalnetConfig {
    /// Address to bind, `127.0.0.1` by default.
    pub bind_host: String,
    /// JSON-RPC port; 0 picks a free one.
    pub rpc_port: u16,
    /// Websocket port; 0 picks a free one.
    pub ws_port: u16,
    /// Keep the chain's state in `DIR/chain.sqlite` across restarts; `None` keeps it in memory.
    pub ledger: Option<PathBuf>,
    /// Milliseconds per slot (400 as on mainnet).
    pub slot_time_ms: u64,
    /// How long to wait for the chain to come up.
    pub startup_timeout: Duration,
}

impl Default for LocalnetConfig {
    fn default() -> Self {
        Self {
            bind_host: "127.0.0.1".into(),
            rpc_port: DEFAULT_RPC_PORT,
            ws_port: DEFAULT_WS_PORT,
            ledger: None,
            slot_time_ms: 400,
            startup_timeout: Duration::from_secs(60),
        }
    }
}

impl LocalnetConfig {
    /// A config on free ports, for tests and parallel runs.
    pub fn ephemeral() -> Self {
        Self {
            rpc_port: 0,
            ws_port: 0,
            ..Self::default()
        }
    }
}

/// What can go wrong starting or stopping the localnet.
#[derive(Debug, thiserror::Error)]
pub enum LocalnetError {
    /// A port is taken, or no free port could be found.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    /// The ledger directory cannot be created or is not valid UTF-8.
    #[error("ledger directory {path}: {reason}")]
    Ledger { path: PathBuf, reason: String },
    /// Surfpool refused to build its SVM or start.
    #[error("surfpool failed: {0}")]
    Surfpool(String),
    /// Surfpool did not report ready in time.
    #[error("surfpool did not become ready within {0:?}")]
    Timeout(Duration),
}

/// A running localnet. Dropping it stops it (as [`Localnet::stop`] does, ignoring errors).
pub struct Localnet {
    rpc_url: String,
    ws_url: String,
    commands: Sender<SimnetCommand>,
    runloop: Option<JoinHandle<()>>,
    events: Option<JoinHandle<()>>,
}

impl Localnet {
    /// Starts surfpool offline with gpunet loaded and waits until it serves JSON-RPC.
    pub fn start(config: LocalnetConfig) -> Result<Self, LocalnetError> {
        install_syscall_stubs();
        let rpc_port = resolve_port(&config.bind_host, config.rpc_port, "JSON-RPC")?;
        let ws_port = resolve_port(&config.bind_host, config.ws_port, "websocket")?;

        let svm_config = SurfnetSvmConfig {
            slot_time: config.slot_time_ms,
            // Otherwise each transaction runs a second time to profile it.
            instruction_profiling_enabled: false,
            ..SurfnetSvmConfig::default()
        };
        let db_url = match &config.ledger {
            Some(dir) => Some(ledger_url(dir)?),
            None => None,
        };
        let (mut svm, events_rx, geyser_rx) =
            SurfnetSvm::new_with_db(db_url.as_deref(), svm_config)
                .map_err(|e| LocalnetError::Surfpool(e.to_string()))?;
        svm.inner.svm.add_builtin(gpunet::ID, builtin());
        let locker = SurfnetSvmLocker::new(svm);

        let surfpool_config = SurfpoolConfig {
            simnets: vec![SimnetConfig {
                offline_mode: true,
                remote_rpc_url: None,
                slot_time: config.slot_time_ms,
                instruction_profiling_enabled: false,
                ..SimnetConfig::default()
            }],
            rpc: RpcConfig {
                bind_host: config.bind_host.clone(),
                bind_port: rpc_port,
                ws_port,
                ..RpcConfig::default()
            },
            ..SurfpoolConfig::default()
        };

        let (commands_tx, commands_rx) = unbounded();
        let (ready_tx, ready_rx) = unbounded::<Result<(), String>>();
        let runloop_ready = ready_tx.clone();
        let runloop_commands = commands_tx.clone();
        let runloop = std::thread::Builder::new()
            .name("gpunet-localnet".into())
            .spawn(move || {
                let future = start_local_surfnet_runloop(
                    locker,
                    surfpool_config,
                    runloop_commands,
                    commands_rx,
                    geyser_rx,
                );
                if let Err(e) = hiro_system_kit::nestable_block_on(future) {
                    let _ = runloop_ready.send(Err(e.to_string()));
                }
            })
            .map_err(|e| LocalnetError::Surfpool(e.to_string()))?;
        let events = std::thread::Builder::new()
            .name("gpunet-localnet-events".into())
            .spawn(move || drain_events(events_rx, ready_tx))
            .map_err(|e| LocalnetError::Surfpool(e.to_string()))?;

        let mut net = Localnet {
            rpc_url: format!("http://{}:{}", config.bind_host, rpc_port),
            ws_url: format!("ws://{}:{}", config.bind_host, ws_port),
            commands: commands_tx,
            runloop: Some(runloop),
            events: Some(events),
        };
        match ready_rx.recv_timeout(config.startup_timeout) {
            Ok(Ok(())) => Ok(net),
            Ok(Err(e)) => {
                net.shutdown();
                Err(LocalnetError::Surfpool(e))
            }
            Err(_) => {
                net.shutdown();
                Err(LocalnetError::Timeout(config.startup_timeout))
            }
        }
    }

    /// The JSON-RPC URL, e.g. `http://127.0.0.1:8899`.
    pub fn rpc_url(&self) -> &str {
        &self.rpc_url
    }

    /// The pubsub websocket URL, e.g. `ws://127.0.0.1:8900`.
    pub fn ws_url(&self) -> &str {
        &self.ws_url
    }

    /// Stops the chain: surfpool checkpoints its SQLite ledger (nothing is lost) and closes its
    /// servers; returns when its threads have ended.
    pub fn stop(mut self) -> Result<(), LocalnetError> {
        self.shutdown();
        Ok(())
    }

    fn shutdown(&mut self) {
        let Some(runloop) = self.runloop.take() else {
            return;
        };
        // Surfpool's runloop checkpoints the SQLite ledger (WAL) when it takes `Terminate`,
        // then stops its servers and returns.
        let _ = self.commands.send(SimnetCommand::Terminate(None));
        let deadline = std::time::Instant::now() + SHUTDOWN_TIMEOUT;
        while !runloop.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if runloop.is_finished() {
            if runloop.join().is_err() {
                tracing::warn!("the localnet runloop panicked while stopping");
            }
        } else {
            tracing::warn!(
                "the localnet runloop did not stop within {SHUTDOWN_TIMEOUT:?}; leaving it"
            );
        }
        // The events thread ends when surfpool drops its event sender.
        drop(self.events.take());
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// gpunet's native entry point in the type LiteSVM expects.
fn builtin() -> solana_program_runtime::invoke_context::BuiltinFunctionWithContext {
    #[allow(deprecated)] // program-test's `processor!` is the supported way to wrap a builtin
    let f: Option<solana_program_runtime::invoke_context::BuiltinFunctionWithContext> =
        solana_program_test::processor!(gpunet::native::process_instruction);
    f.expect("processor! always returns Some")
}

/// Anchor's `init` and sysvar reads need the process-wide syscall stubs that
/// solana-program-test installs when it first starts a context (they are private to it).
fn install_syscall_stubs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the stubs");
        #[allow(deprecated)]
        rt.block_on(async {
            let _ = solana_program_test::ProgramTest::default()
                .start_with_context()
                .await;
        });
    });
}

/// `port`, or a free one when `port` is 0; checks that it can be bound.
fn resolve_port(host: &str, port: u16, what: &'static str) -> Result<u16, LocalnetError> {
    let addr = format!("{host}:{port}");
    let listener = TcpListener::bind(&addr).map_err(|source| LocalnetError::Bind {
        what,
        addr: addr.clone(),
        source,
    })?;
    let port = listener
        .local_addr()
        .map_err(|source| LocalnetError::Bind { what, addr, source })?
        .port();
    Ok(port)
}

fn ledger_url(dir: &std::path::Path) -> Result<String, LocalnetError> {
    std::fs::create_dir_all(dir).map_err(|e| LocalnetError::Ledger {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let file = dir.join(LEDGER_FILE);
    file.to_str()
        .map(str::to_owned)
        .ok_or_else(|| LocalnetError::Ledger {
            path: dir.to_path_buf(),
            reason: "path is not valid UTF-8".into(),
        })
}

/// Forwards surfpool's events to `tracing` and reports readiness once.
fn drain_events(events: Receiver<SimnetEvent>, ready: Sender<Result<(), String>>) {
    let mut ready = Some(ready);
    for event in events.iter() {
        match event {
            SimnetEvent::Ready(_) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Ok(()));
                }
                tracing::info!("localnet ready");
            }
            SimnetEvent::ErrorLog(_, msg) => tracing::error!(target: "surfpool", "{msg}"),
            SimnetEvent::WarnLog(_, msg) => tracing::warn!(target: "surfpool", "{msg}"),
            SimnetEvent::InfoLog(_, msg) => tracing::debug!(target: "surfpool", "{msg}"),
            _ => {}
        }
    }
}
