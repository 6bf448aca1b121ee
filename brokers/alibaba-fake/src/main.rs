//! `skybroker-alibaba-fake`: the fake Alibaba Cloud as a process, for tests that are not
//! written in Rust (the official Python SDKs are run against it to show that it verifies
//! signatures as the real service does).
//!
//! It prints one JSON line, `{"rpc_url":…,"oss_url":…,"metadata_url":…}`, once the
//! listeners are bound, then serves until killed. Logs go to stderr (`RUST_LOG`, default `info`).

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use skybroker_alibaba_fake::{FakeAlibaba, FakeConfig};

/// Serves a fake Alibaba Cloud (RDS, RAM, STS, OSS, ECS metadata) on loopback ports.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The account's own AccessKey id.
    #[arg(long)]
    access_key_id: Option<String>,
    /// The account's own AccessKey secret.
    #[arg(long)]
    access_key_secret: Option<String>,
    /// The region served.
    #[arg(long)]
    region: Option<String>,
    /// How long a new RDS instance stays `Creating`, in milliseconds.
    #[arg(long)]
    creating_ms: Option<u64>,
    /// How long a deleted RDS instance stays `Deleting`, in milliseconds.
    #[arg(long)]
    deleting_ms: Option<u64>,
    /// How long a spec change stays `DBInstanceClassChanging`, in milliseconds.
    #[arg(long)]
    changing_ms: Option<u64>,
    /// `host:port` of a PostgreSQL server (user postgres, trust auth) for PostgreSQL instances.
    #[arg(long)]
    postgres: Option<String>,
    /// `host:port` of a MySQL/MariaDB server (user root, no password) for MySQL instances.
    #[arg(long)]
    mysql: Option<String>,
    /// The RAM role attached to the fake ECS instance (its metadata service hands out the
    /// role's credentials once the role exists).
    #[arg(long)]
    ecs_ram_role: Option<String>,
}

impl Args {
    fn into_config(self) -> FakeConfig {
        let defaults = FakeConfig::default();
        let ms =
            |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_millis);
        FakeConfig {
            access_key_id: self.access_key_id.unwrap_or(defaults.access_key_id),
            access_key_secret: self.access_key_secret.unwrap_or(defaults.access_key_secret),
            region: self.region.unwrap_or(defaults.region),
            creating: ms(self.creating_ms, defaults.creating),
            deleting: ms(self.deleting_ms, defaults.deleting),
            changing: ms(self.changing_ms, defaults.changing),
            postgres: self.postgres,
            mysql: self.mysql,
            ecs_ram_role: self.ecs_ram_role,
            ..defaults
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = Args::parse().into_config();
    log::info!("starting with {config:?}");
    let fake = FakeAlibaba::start(config).await?;
    let ready = serde_json::json!({
        "rpc_url": fake.rpc_url(),
        "oss_url": fake.oss_url(),
        "metadata_url": fake.metadata_url(),
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{ready}")?;
    stdout.flush()?;
    drop(stdout);
    // Serve until killed; the listeners run on the runtime's tasks.
    std::future::pending::<()>().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn flags_become_config() {
        let config = Args::parse_from([
            "skybroker-alibaba-fake",
            "--creating-ms",
            "250",
            "--postgres",
            "127.0.0.1:5432",
        ])
        .into_config();
        assert_eq!(config.creating, Duration::from_millis(250));
        assert_eq!(config.deleting, FakeConfig::default().deleting);
        assert_eq!(config.postgres.as_deref(), Some("127.0.0.1:5432"));
        assert_eq!(config.access_key_id, FakeConfig::default().access_key_id);
    }
}
