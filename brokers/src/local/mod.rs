//! The local provider: databases on PostgreSQL and MySQL/MariaDB servers the operator runs
//! (`kind = "postgres"`, `kind = "mysql"`).
//!
//! Shaped like every provider folder: this file builds the plugins, [`config`] reads their
//! section, [`error`] says what is wrong with it. The databases, roles, users and grants
//! themselves are [`crate::sql`], which the AWS provider shares for RDS; the SQL connection
//! is that module's client, so this folder has none of its own.

pub mod config;
pub mod error;

use skybroker_config::ProviderConfig;

pub use error::ConfigError;

use crate::sql::mysql::MysqlServer;
use crate::sql::postgres::PostgresServer;

/// The `postgres` plugin of a `[providers.<name>]` section (no connection is made yet).
pub fn postgres(config: &ProviderConfig) -> Result<PostgresServer, ConfigError> {
    Ok(PostgresServer::with_server(config::server_settings(
        config, 5432, "postgres",
    )?))
}

/// The `mysql` plugin of a `[providers.<name>]` section (no connection is made yet).
pub fn mysql(config: &ProviderConfig) -> Result<MysqlServer, ConfigError> {
    Ok(MysqlServer::with_server(config::server_settings(
        config, 3306, "mysql",
    )?))
}
