//! The `[providers.<name>]` section of the local providers (`kind = "postgres"` or
//! `"mysql"`): which server, which administrator, how to reach it. Read once at start; the
//! administrator's password comes from `password_env`/`password_file` like every secret.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use skybroker_config::ProviderConfig;

use super::error::ConfigError;
use crate::sql::{ServerSettings, TlsMode};

/// The keys `[providers.<name>]` accepts for `postgres` and `mysql`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerSettings {
    host: String,
    port: Option<u16>,
    admin_user: String,
    admin_database: Option<String>,
    public_host: Option<String>,
    public_port: Option<u16>,
    #[serde(default = "tls_default")]
    tls: TlsMode,
    ca_file: Option<std::path::PathBuf>,
    connect_timeout_secs: Option<u64>,
    user_host: Option<String>,
}

fn tls_default() -> TlsMode {
    TlsMode::Disable
}

/// Reads a provider's settings; `default_port` and `default_admin_db` are the engine's.
pub fn server_settings(
    config: &ProviderConfig,
    default_port: u16,
    default_admin_db: &str,
) -> Result<ServerSettings, ConfigError> {
    let raw: RawServerSettings = serde_json::from_value(Value::Object(config.settings.clone()))
        .map_err(ConfigError::Settings)?;
    let ca_pem = match (&raw.ca_file, raw.tls) {
        (Some(path), _) => Some(std::fs::read(path).map_err(|source| ConfigError::CaFile {
            path: path.clone(),
            source,
        })?),
        (None, TlsMode::VerifyFull) => return Err(ConfigError::VerifyFullWithoutCa),
        (None, _) => None,
    };
    let port = raw.port.unwrap_or(default_port);
    Ok(ServerSettings {
        public_host: raw.public_host.unwrap_or_else(|| raw.host.clone()),
        public_port: raw.public_port.unwrap_or(port),
        host: raw.host,
        port,
        admin_user: raw.admin_user,
        admin_password: config.password.clone(),
        admin_database: raw
            .admin_database
            .unwrap_or_else(|| default_admin_db.to_owned()),
        tls: raw.tls,
        ca_pem,
        connect_timeout: Duration::from_secs(raw.connect_timeout_secs.unwrap_or(10)),
        user_host: raw.user_host.unwrap_or_else(|| "%".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::credentials;
    use serde_json::json;

    #[test]
    fn credentials_carry_everything_an_app_needs() {
        let config: ProviderConfig = serde_json::from_value(json!({
            "kind": "postgres", "host": "10.0.0.5", "admin_user": "admin", "public_host": "db.example"
        }))
        .unwrap();
        let server = server_settings(&config, 5432, "postgres").unwrap();
        let result = credentials("postgresql", "postgresql", &server, "db1", "u1", "pw");
        let c = result.credentials.unwrap();
        assert_eq!(c["uri"], "postgresql://u1:pw@db.example:5432/db1");
        assert_eq!(
            c["jdbcUrl"],
            "jdbc:postgresql://db.example:5432/db1?user=u1&password=pw"
        );
        assert_eq!(result.endpoints.unwrap()[0]["ports"][0], "5432");
    }

    #[test]
    fn a_verified_connection_needs_its_ca() {
        let config: ProviderConfig = serde_json::from_value(json!({
            "kind": "postgres", "host": "db", "admin_user": "admin", "tls": "verify_full"
        }))
        .unwrap();
        assert!(matches!(
            server_settings(&config, 5432, "postgres"),
            Err(ConfigError::VerifyFullWithoutCa)
        ));
        let config: ProviderConfig = serde_json::from_value(json!({
            "kind": "mysql", "host": "db", "admin_user": "root", "ca_file": "/nonexistent/ca.pem"
        }))
        .unwrap();
        assert!(matches!(
            server_settings(&config, 3306, "mysql"),
            Err(ConfigError::CaFile { .. })
        ));
    }
}
