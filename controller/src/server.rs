//! Wiring: configuration → store → map → dispatcher → engine tasks → HTTP server, and the
//! orderly shutdown that undoes it.
//!
//! # Shutdown order
//! 1. the HTTP server stops accepting and lets in-flight requests finish (bounded by
//!    `server.shutdown_grace_secs`); synchronous requests still need the engine, so it runs on;
//! 2. the scanner and clean-up stop: nothing new is dispatched;
//! 3. the dispatcher stops, each worker finishing the plugin call it is in; queued jobs are
//!    handed back and dropped, as their operations are persisted and resume at the next start;
//! 4. the applier applies the outcomes that came back, then stops;
//! 5. the metrics listener stops last; its `/readyz` has answered 503 since step 1, so load
//!    balancers stop sending requests while the others drain.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use skybroker_brokers::BrokerRegistry;
use skybroker_config::{Config, Problem, Secret, Severity, StorageBackend};
use skybroker_dispatcher::Dispatcher;
use skybroker_storage::{EmbeddedStore, EtcdOptions, EtcdStore, MemoryStore, StateMap, Store};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::catalog::Catalogs;
use crate::core::Core;
use crate::credentials::LiveSecrets;
use crate::engine::{self, Engine, Parts};
use crate::locks::InstanceLocks;
use crate::metrics::{Live, MeteredStore, Metrics};
use crate::schemas::SchemaCache;

/// Outcomes in flight between the workers and the applier.
const OUTCOME_BUFFER: usize = 1024;

/// Every problem of a configuration: the catalog rules and each plugin's settings check.
pub fn check_config(config: &Config) -> Vec<Problem> {
    let mut problems = skybroker_config::validate(config);
    if let Err(mut plugin_problems) =
        BrokerRegistry::from_config(&config.providers, &config.services)
    {
        problems.append(&mut plugin_problems);
    }
    if let Err(message) = SchemaCache::compile(&config.services) {
        problems.push(Problem {
            severity: Severity::Error,
            location: "services".to_owned(),
            message,
        });
    }
    problems
}

/// Gives the broker a random password when none is configured, so it never runs open.
/// Returns the generated password, which the caller shows once.
pub fn ensure_password(config: &mut Config) -> Option<String> {
    if config
        .server
        .password
        .as_ref()
        .is_some_and(|p| !p.expose().is_empty())
    {
        return None;
    }
    let generated = uuid::Uuid::new_v4().simple().to_string();
    config.server.password = Some(Secret::new(generated.clone()));
    Some(generated)
}

/// Loads the configuration `serve` runs: the file or the built-in one, then the environment.
pub fn load_config(
    path: Option<&std::path::Path>,
    env: &HashMap<String, String>,
) -> anyhow::Result<Config> {
    let mut config = match path {
        Some(path) => Config::load(path)?,
        None => Config::builtin(),
    };
    config.apply_env(env)?;
    Ok(config)
}

/// A running broker.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The address of the metrics listener (`/metrics`, `/healthz`, `/readyz`), unless
    /// `[metrics] enabled = false`.
    pub metrics_addr: Option<SocketAddr>,
    /// The shared state (tests inspect it).
    pub core: Arc<Core>,
    shutdown: watch::Sender<bool>,
    done: JoinHandle<()>,
}

impl Running {
    /// Shuts down in order and waits until it is done.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.done.await;
    }

    /// Waits until the broker has shut down (after a signal).
    pub async fn wait(self) {
        let _ = self.done.await;
    }

    /// A sender that triggers shutdown.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Opens the configured store.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config.storage.backend {
        StorageBackend::Embedded => {
            let dir = &config.storage.data_dir;
            let store = EmbeddedStore::open(dir)
                .with_context(|| format!("opening the embedded store in {}", dir.display()))?;
            log::info!("embedded store at {}", store.path().display());
            Arc::new(store)
        }
        StorageBackend::Memory => {
            log::warn!("memory store: nothing survives a restart");
            Arc::new(MemoryStore::new())
        }
        StorageBackend::Etcd => {
            let etcd = &config.storage.etcd;
            let read = |path: &Option<std::path::PathBuf>| -> anyhow::Result<Option<Vec<u8>>> {
                path.as_ref()
                    .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
                    .transpose()
            };
            let identity = match (read(&etcd.cert_file)?, read(&etcd.key_file)?) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => bail!("storage.etcd: cert_file and key_file go together"),
            };
            let options = EtcdOptions {
                endpoints: etcd.endpoints.clone(),
                prefix: etcd.prefix.clone(),
                user: etcd.username.clone().map(|user| {
                    let password = etcd.password.as_ref().map(|p| p.expose().to_owned());
                    (user, password.unwrap_or_default())
                }),
                ca_pem: read(&etcd.ca_file)?,
                identity_pem: identity,
                lease_ttl: Duration::from_secs(etcd.lease_ttl_secs),
                request_timeout: Duration::from_secs(etcd.request_timeout_secs),
            };
            log::info!(
                "etcd store at {} under {}",
                etcd.endpoints.join(","),
                etcd.prefix
            );
            Arc::new(
                EtcdStore::connect(options).await.with_context(|| {
                    format!("connecting to etcd at {}", etcd.endpoints.join(","))
                })?,
            )
        }
    })
}

/// Starts everything and returns once the listener is bound. Must run inside a
/// multi-threaded tokio runtime.
///
/// # Errors
/// An invalid configuration (every problem listed), a store that cannot be opened or read,
/// or a listener that cannot be bound.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    start_on(config, None).await
}

/// Like [`start`], on a store the caller opened instead of the configured one (tests wrap
/// one to make it fail).
///
/// # Errors
/// As [`start`].
pub async fn start_with_store(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Running> {
    start_on(config, Some(store)).await
}

async fn start_on(config: Config, store: Option<Arc<dyn Store>>) -> anyhow::Result<Running> {
    let errors: Vec<String> = check_config(&config)
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.to_string())
        .collect();
    if !errors.is_empty() {
        bail!("invalid configuration:\n  {}", errors.join("\n  "));
    }
    if config.server.password.is_none() {
        bail!("no password configured (call ensure_password first)");
    }
    let metrics = Arc::new(Metrics::new());
    let store = match store {
        Some(store) => store,
        None => open_store(&config).await?,
    };
    let state = StateMap::open(MeteredStore::wrap(store, Arc::clone(&metrics)))
        .await
        .context("loading state from the store")?;
    let state = Arc::new(state);
    let catalog = Arc::new(Catalogs::new(&config, Arc::clone(&state)).map_err(anyhow::Error::msg)?);
    let counts = state.counts();
    log::info!(
        "loaded {} instance(s), {} binding(s), {} operation record(s)",
        counts.instances,
        counts.bindings,
        counts.operations
    );

    let (outcome_sender, outcomes) = mpsc::channel(OUTCOME_BUFFER);
    let runtime = tokio::runtime::Handle::current();
    let workers = config.dispatcher.worker_count();
    let job_metrics = Arc::clone(&metrics);
    let dispatcher = Dispatcher::start(
        "skybroker-worker",
        workers,
        config.dispatcher.capacity(),
        move |job| crate::jobs::run(job, &runtime, &outcome_sender, &job_metrics),
    );
    log::info!(
        "{workers} worker(s), queue capacity {}",
        config.dispatcher.capacity()
    );
    let secrets = Arc::new(LiveSecrets::new(&config.server).map_err(anyhow::Error::msg)?);
    let locks = Arc::new(InstanceLocks::default());
    let engine = Arc::new(Engine::new(Parts {
        config: config.engine.clone(),
        catalog: Arc::clone(&catalog),
        state: Arc::clone(&state),
        locks: Arc::clone(&locks),
        dispatcher,
        metrics: Arc::clone(&metrics),
    }));
    let core = Arc::new(Core {
        config,
        catalog,
        state,
        locks,
        engine: Arc::clone(&engine),
        metrics,
        logins: Default::default(),
        secrets: Arc::clone(&secrets),
    });
    engine.resume();
    crate::service_manager::operations::resume(&core);

    // Both listeners are bound before any task starts, so a taken port fails the start
    // without leaving tasks behind.
    let listener = tokio::net::TcpListener::bind(core.config.server.listen)
        .await
        .with_context(|| format!("binding {}", core.config.server.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, mut shutdown_requested) = watch::channel(false);
    // Bound before the OSB server starts, so a taken metrics port fails the start cleanly.
    let admin = start_admin(&core, shutdown.subscribe()).await?;
    let metrics_addr = admin.addr;
    let (stop_engine, engine_stopped) = watch::channel(false);
    let (stop_applier, applier_stopped) = watch::channel(false);
    let scanner = tokio::spawn(engine::run_scanner(
        Arc::clone(&engine),
        engine_stopped.clone(),
    ));
    let cleanup = tokio::spawn(engine::run_cleanup(Arc::clone(&engine), engine_stopped));
    let applier = tokio::spawn(engine::run_applier(
        Arc::clone(&engine),
        outcomes,
        applier_stopped,
    ));

    // Mounted secrets are read again now and then: a rotation needs no restart.
    let reload = core.config.server.secret_reload_secs;
    if secrets.has_files() && reload > 0 {
        tokio::spawn(crate::credentials::watch_secret_files(
            Arc::clone(&secrets),
            Duration::from_secs(reload),
            stop_engine.subscribe(),
        ));
    }

    // Several replicas on one store: follow the others' changes.
    let follower = core.state.store().watch().await?.map(|changes| {
        tokio::spawn(crate::replicas::follow(
            Arc::clone(&core),
            changes,
            stop_engine.subscribe(),
        ))
    });

    let app = crate::api::router(Arc::clone(&core))
        .nest("/v1", crate::service_manager::router(Arc::clone(&core)));
    let header_timeout = Duration::from_secs(core.config.server.header_read_timeout_secs);
    let http = tokio::spawn(async move {
        let signal = async move {
            let _ = shutdown_requested.wait_for(|stop| *stop).await;
        };
        crate::listener::serve(listener, app, header_timeout, signal).await;
    });
    let grace = Duration::from_secs(core.config.server.shutdown_grace_secs);
    let mut requested = shutdown.subscribe();
    let drain_core = Arc::clone(&core);
    let done = tokio::spawn(async move {
        let _ = requested.wait_for(|stop| *stop).await;
        log::info!("shutting down: draining HTTP requests");
        if tokio::time::timeout(grace, http).await.is_err() {
            log::warn!("requests still running after {grace:?}; closing anyway");
        }
        let _ = stop_engine.send(true);
        let _ = scanner.await;
        let _ = cleanup.await;
        if let Some(follower) = follower {
            let _ = follower.await;
        }
        let dispatcher_engine = Arc::clone(&drain_core.engine);
        let handed_back =
            tokio::task::spawn_blocking(move || dispatcher_engine.dispatcher().shutdown())
                .await
                .map_or(0, |jobs| jobs.len());
        if handed_back > 0 {
            log::info!("{handed_back} queued job(s) left for the next start (they are persisted)");
        }
        let _ = stop_applier.send(true);
        let _ = applier.await;
        let _ = admin.stop.send(true);
        if let Some(task) = admin.task {
            let _ = task.await;
        }
        log::info!("shut down cleanly");
    });
    Ok(Running {
        addr,
        metrics_addr,
        core,
        shutdown,
        done,
    })
}

/// The metrics listener, running or disabled.
struct Admin {
    /// Where it listens.
    addr: Option<SocketAddr>,
    /// Stops it.
    stop: watch::Sender<bool>,
    /// Its server task.
    task: Option<JoinHandle<()>>,
}

/// Binds and serves the metrics listener, if enabled. `stopping` turns true when shutdown
/// begins (readiness turns 503).
async fn start_admin(core: &Arc<Core>, stopping: watch::Receiver<bool>) -> anyhow::Result<Admin> {
    let (stop, mut stopped) = watch::channel(false);
    if !core.config.metrics.enabled {
        return Ok(Admin {
            addr: None,
            stop,
            task: None,
        });
    }
    let listen = core.config.metrics.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the metrics listener {listen}"))?;
    let addr = listener.local_addr()?;
    let live: Arc<dyn Live> = Arc::clone(&core.engine) as Arc<dyn Live>;
    let registry = core.metrics.registry(Arc::downgrade(&live));
    let app = crate::admin::router(Arc::clone(core), registry, stopping);
    let header_timeout = Duration::from_secs(core.config.server.header_read_timeout_secs);
    let task = tokio::spawn(async move {
        let signal = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        crate::listener::serve(listener, app, header_timeout, signal).await;
    });
    Ok(Admin {
        addr: Some(addr),
        stop,
        task: Some(task),
    })
}

/// Runs the broker until `signal` completes, then shuts down in order.
pub async fn serve(config: Config, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(config).await?;
    // Tests and scripts read this line to find the port.
    println!("skybroker listening on http://{}", running.addr);
    log::info!("listening on http://{}", running.addr);
    if let Some(metrics) = running.metrics_addr {
        println!("skybroker metrics and probes on http://{metrics}");
        log::info!("metrics and probes (/metrics, /healthz, /readyz) on http://{metrics}");
    }
    signal.await;
    running.shutdown().await;
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
