//! Databases, roles and users on a SQL server: PostgreSQL ([`postgres`]) and MySQL/MariaDB
//! ([`mysql`]), wherever the server runs. The `local` provider serves them on servers the
//! operator runs; the AWS provider binds RDS instances through them and the Alibaba Cloud
//! provider shares their credentials format, so roles, grants and credentials have one
//! implementation.
//!
//! Both engines follow one model, written down here once:
//! - **Names** never come from a request. Every database, role and user name is derived from
//!   the instance or binding id by a hash ([`resource_name`]): fixed length, `[a-z0-9_]` only,
//!   deterministic (a repeated call after a crash finds and adopts what exists). They are
//!   still quoted as identifiers wherever they appear.
//! - **Values** that cannot be bound as query parameters (DDL takes none) are either typed
//!   integers, members of a fixed allow-list, or strings this module generated itself
//!   (passwords are hex); nothing from a request is ever spliced into SQL.
//! - **Provision** creates a database (and, for PostgreSQL, a per-instance owner role);
//!   **bind** creates a login user per binding with a fresh random password, read-write or
//!   read-only as the plan says; **unbind** ends that user's sessions and drops it;
//!   **deprovision** ends every session on the database and drops it with its roles.
//! - Calls are short, so every operation is synchronous.

pub mod mysql;
pub mod postgres;
mod tls;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use skybroker_config::Secret;

// Naming and passwords are shared with the cloud providers (one rule for every plugin).
pub use crate::names::{new_password, resource_name};
use crate::SettingsError;
use crate::{BindingResult, BrokerError};

/// How a provider connects to its server as administrator, from `[providers.<name>]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Host the broker connects to.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The administrator user.
    pub admin_user: String,
    /// The administrator's password (from `password_env`/`password_file`).
    pub admin_password: Option<Secret>,
    /// The database the administrator connects to (PostgreSQL).
    pub admin_database: String,
    /// Host written into credentials (what apps reach); default `host`.
    pub public_host: String,
    /// Port written into credentials; default `port`.
    pub public_port: u16,
    /// `disable`, `require` or `verify_full`.
    pub tls: TlsMode,
    /// PEM of the CA that signed the server's certificate (`verify_full`).
    pub ca_pem: Option<Vec<u8>>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Host pattern of created MySQL users (`%` by default).
    pub user_host: String,
}

/// Transport security to the server (the names libpq uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain TCP (a server on the same host or a private network).
    Disable,
    /// TLS, without checking the server's certificate: protects against eavesdropping, not
    /// against impersonation.
    Require,
    /// TLS with the server's certificate checked against `ca_file` and its host name.
    VerifyFull,
}

/// What a binding may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Read and write (the default).
    #[default]
    ReadWrite,
    /// Read only.
    ReadOnly,
}

/// A plan's `settings` for the local providers, with the parameters applied on top.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    /// What bindings may do.
    #[serde(default)]
    pub access: Access,
    /// Maximum concurrent connections to the database (PostgreSQL) or per user (MySQL).
    #[serde(default)]
    pub connection_limit: Option<i32>,
    /// Character set: PostgreSQL encoding or MySQL character set, from an allow-list.
    #[serde(default)]
    pub encoding: Option<String>,
    /// PostgreSQL extensions created in the database.
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// Encodings and character sets the providers accept (both engines' names).
const ENCODINGS: [&str; 8] = [
    "UTF8",
    "LATIN1",
    "SQL_ASCII",
    "WIN1252",
    "utf8mb4",
    "utf8mb3",
    "latin1",
    "ascii",
];

impl PlanSettings {
    /// The plan's settings with the request's `connection_limit` parameter, if any.
    pub fn effective(plan_settings: &Value, parameters: &Value) -> Result<Self, BrokerError> {
        let mut settings: PlanSettings = if plan_settings.is_null() {
            PlanSettings::default()
        } else {
            serde_json::from_value(plan_settings.clone())
                .map_err(|err| BrokerError::InvalidParameters(format!("plan settings: {err}")))?
        };
        if let Some(limit) = parameters.get("connection_limit") {
            let limit = limit
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n >= -1)
                .ok_or_else(|| {
                    BrokerError::InvalidParameters(
                        "connection_limit must be an integer ≥ -1".into(),
                    )
                })?;
            settings.connection_limit = Some(limit);
        }
        settings.check()?;
        Ok(settings)
    }

    /// Checks the values that end up in SQL.
    pub fn check(&self) -> Result<(), SettingsError> {
        if let Some(encoding) = &self.encoding {
            if !ENCODINGS.contains(&encoding.as_str()) {
                return Err(SettingsError::invalid(format!(
                    "encoding {encoding:?} is not allowed (options are: {})",
                    ENCODINGS.join(", ")
                )));
            }
        }
        for extension in &self.extensions {
            let valid = !extension.is_empty()
                && extension.len() <= 63
                && extension
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(SettingsError::invalid(format!(
                    "extension name {extension:?} is not a plain identifier"
                )));
            }
        }
        if self.connection_limit.is_some_and(|n| n < -1) {
            return Err(SettingsError::invalid("connection_limit must be ≥ -1"));
        }
        Ok(())
    }
}

/// The binding result for a database user (OSB-BIND-13/17).
pub fn credentials(
    scheme: &str,
    jdbc_scheme: &str,
    server: &ServerSettings,
    database: &str,
    username: &str,
    password: &str,
) -> BindingResult {
    database_credentials(
        scheme,
        jdbc_scheme,
        &server.public_host,
        server.public_port,
        database,
        username,
        password,
    )
}

/// The binding result for a database user at `host:port` (OSB-BIND-13/17), wherever the
/// server runs (a local one, RDS on AWS or on Alibaba Cloud).
pub fn database_credentials(
    scheme: &str,
    jdbc_scheme: &str,
    host: &str,
    port: u16,
    database: &str,
    username: &str,
    password: &str,
) -> BindingResult {
    BindingResult {
        credentials: Some(json!({
            "uri": format!("{scheme}://{username}:{password}@{host}:{port}/{database}"),
            "jdbcUrl": format!("jdbc:{jdbc_scheme}://{host}:{port}/{database}?user={username}&password={password}"),
            "host": host,
            "port": port,
            "database": database,
            "username": username,
            "password": password,
        })),
        endpoints: Some(json!([{ "host": host, "ports": [port.to_string()], "protocol": "tcp" }])),
        ..BindingResult::default()
    }
}

/// A string from the instance state a provision stored.
pub fn state_str<'a>(state: &'a Value, key: &str) -> Result<&'a str, BrokerError> {
    state.get(key).and_then(Value::as_str).ok_or_else(|| {
        BrokerError::Failed(format!(
            "the instance has no {key} recorded; was it provisioned?"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_safe_and_deterministic() {
        let hostile = "x'; DROP DATABASE postgres; -- ünïcødé \" `";
        let name = resource_name("sbi", hostile);
        assert_eq!(name, resource_name("sbi", hostile));
        assert_ne!(name, resource_name("sbi", "other"));
        assert_eq!(name.len(), 24);
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
    }

    #[test]
    fn passwords_are_long_hex_and_fresh() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn plan_settings_reject_what_could_reach_sql() {
        let ok = PlanSettings::effective(
            &json!({"encoding": "UTF8", "extensions": ["pgcrypto"]}),
            &json!({"connection_limit": 5}),
        );
        assert_eq!(ok.unwrap().connection_limit, Some(5));
        for (settings, parameters) in [
            (json!({"encoding": "UTF8'; DROP"}), json!({})),
            (json!({"extensions": ["x; DROP"]}), json!({})),
            (json!({}), json!({"connection_limit": "5; DROP"})),
            (json!({}), json!({"connection_limit": -2})),
            (json!({"unknown": 1}), json!({})),
        ] {
            assert!(
                PlanSettings::effective(&settings, &parameters).is_err(),
                "{settings} {parameters}"
            );
        }
    }
}
