//! The `skybroker` binary: `serve`, `check-config`, `openapi` and `admin`. Everything else is
//! in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use skybroker_config::Severity;

/// One Open Service Broker API v2.17 endpoint in front of many clouds.
#[derive(Debug, Parser)]
#[command(name = "skybroker", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the OSB API (built-in sandbox configuration unless --config is given).
    Serve {
        /// A configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration and its catalog; print every problem.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
    /// Manage a running broker's Service Manager: brokers, platforms, visibilities, instances.
    Admin(skybroker::admin_cli::AdminArgs),
    /// Print an API's OpenAPI 3.1 document (JSON).
    Openapi {
        /// `osb` (the `/v2` API, for the configured catalog) or `service-manager` (`/v1`).
        api: Api,
        /// A configuration file (TOML); the built-in one otherwise.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The APIs with an OpenAPI document.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Api {
    /// The OSB API (`/v2`).
    Osb,
    /// The Service Manager API (`/v1`).
    ServiceManager,
}

/// mimalloc instead of the system allocator, when built with `--features mimalloc`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let env = std::env::vars().collect();
    // Human or JSON lines (SKYBROKER_LOG_FORMAT), filtered by RUST_LOG.
    if let Err(err) = skybroker::logging::init(&env) {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let (path, serve) = match &cli.command {
        Command::Serve { config } => (config.as_deref(), true),
        Command::CheckConfig { file } => (Some(file.as_path()), false),
        Command::Openapi { api, config } => return print_openapi(*api, config.as_deref(), &env),
        Command::Admin(_) => return admin(cli.command),
    };
    let mut config = match skybroker::load_config(path, &env) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let problems = skybroker::check_config(&config);
    for problem in &problems {
        eprintln!("{problem}");
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    if !serve {
        println!("{errors} error(s), {} warning(s)", problems.len() - errors);
        return if errors == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if errors > 0 {
        eprintln!("refusing to start: the configuration has {errors} error(s)");
        return ExitCode::FAILURE;
    }
    if let Some(password) = skybroker::ensure_password(&mut config) {
        // Shown once, on the console, never through the log.
        eprintln!(
            "No password configured: generated one for user {:?}: {password}\n\
             Set SKYBROKER_PASSWORD to choose your own.",
            config.server.username
        );
    }
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(skybroker::serve(config, skybroker::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime `builder` makes, with I/O and timers; `None` (said on stderr) if it cannot.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            None
        }
    }
}

/// `skybroker admin`.
fn admin(command: Command) -> ExitCode {
    let Command::Admin(args) = command else {
        return ExitCode::FAILURE;
    };
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(skybroker::admin_cli::run(args)) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `skybroker openapi`.
fn print_openapi(
    api: Api,
    path: Option<&std::path::Path>,
    env: &std::collections::HashMap<String, String>,
) -> ExitCode {
    let document = match api {
        Api::ServiceManager => skybroker::service_manager::schema::document().to_owned(),
        Api::Osb => match skybroker::load_config(path, env) {
            Ok(config) => {
                let document = skybroker::api::openapi::document(&config.services);
                serde_json::to_string_pretty(&document).expect("JSON serializes")
            }
            Err(err) => {
                eprintln!("error: {err:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    println!("{document}");
    ExitCode::SUCCESS
}
