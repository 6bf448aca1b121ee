//! Databases on a MySQL or MariaDB server (kind `mysql`).
//!
//! Per instance: a database `sbi_<hash>`. Per binding: a user `sbb_<hash>`@`user_host` with
//! ALL (read-write) or SELECT (read-only) on that database only, and the plan's connection
//! limit as its `MAX_USER_CONNECTIONS`.

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde_json::{json, Value};

use super::{
    credentials, new_password, resource_name, state_str, Access, PlanSettings, ServerSettings,
    TlsMode,
};
use crate::SettingsError;
use crate::{Broker, BrokerError, Completion, OperationKind, OperationRequest, Progress};

const BROKER: &str = "mysql";

/// The MySQL/MariaDB provider.
#[derive(Debug)]
pub struct MysqlServer {
    server: ServerSettings,
}

/// Quotes an identifier (names are `[a-z0-9_]` by construction).
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Maps a driver error: I/O and "too many connections" are transient, server refusals carry
/// the server's message, the rest is a provider failure.
fn map_error(err: mysql_async::Error) -> BrokerError {
    match err {
        mysql_async::Error::Server(server) => match server.code {
            // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS, ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK
            1040 | 1203 | 1205 | 1213 => {
                BrokerError::Transient(format!("MySQL busy: {}", server.message))
            }
            // Access denied and missing privileges.
            1044 | 1045 | 1142 | 1227 => {
                BrokerError::Failed(format!("MySQL refused: {}", server.message))
            }
            code => BrokerError::Failed(format!("MySQL error {code}: {}", server.message)),
        },
        mysql_async::Error::Io(err) => BrokerError::Transient(format!("MySQL unreachable: {err}")),
        other => BrokerError::Provider {
            broker: BROKER,
            source: Box::new(other),
        },
    }
}

impl MysqlServer {
    /// A provision or update done: the instance state later calls read back.
    fn instance_done(database: &str, settings: &PlanSettings) -> Progress {
        Progress::Done(Completion {
            state: Some(json!({
                "database": database,
                "encoding": settings.encoding,
                "connection_limit": settings.connection_limit,
            })),
            ..Completion::default()
        })
    }

    /// The provider on a server found some other way: a cloud database instance whose
    /// endpoint and master user the cloud provider knows (AWS RDS binds through this, so roles
    /// and grants have one implementation).
    pub fn with_server(server: ServerSettings) -> Self {
        MysqlServer { server }
    }

    async fn connect(&self) -> Result<Conn, BrokerError> {
        let options = OptsBuilder::default()
            .ip_or_hostname(self.server.host.clone())
            .tcp_port(self.server.port)
            .user(Some(self.server.admin_user.clone()))
            .pass(
                self.server
                    .admin_password
                    .as_ref()
                    .map(|p| p.expose().to_owned()),
            )
            .prefer_socket(false)
            .ssl_opts(self.ssl_options());
        let connect = Conn::new(options);
        match tokio::time::timeout(self.server.connect_timeout, connect).await {
            Ok(conn) => conn.map_err(map_error),
            Err(_) => Err(BrokerError::Transient(
                "MySQL did not answer in time".to_owned(),
            )),
        }
    }

    /// TLS per `tls`: `require` accepts any certificate, `verify_full` checks it against
    /// the CA and the host name.
    fn ssl_options(&self) -> Option<mysql_async::SslOpts> {
        let options = mysql_async::SslOpts::default();
        match self.server.tls {
            TlsMode::Disable => None,
            TlsMode::Require => Some(
                options
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            TlsMode::VerifyFull => {
                let ca = self.server.ca_pem.clone().unwrap_or_default();
                Some(options.with_root_certs(vec![ca.into()]))
            }
        }
    }

    fn account(&self, user: &str) -> String {
        format!("{}@{}", literal(user), literal(&self.server.user_host))
    }

    /// Ends the sessions whose `column` (USER or DB) equals `value`.
    async fn terminate(conn: &mut Conn, column: &str, value: &str) -> Result<(), BrokerError> {
        // `column` is one of two constants below; `value` is bound as a parameter.
        let sql = format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE {column} = ? AND ID <> CONNECTION_ID()"
        );
        let ids: Vec<u64> = conn.exec(sql, (value,)).await.map_err(map_error)?;
        for id in ids {
            // The session may have ended meanwhile (ER_NO_SUCH_THREAD): fine.
            match conn.query_drop(format!("KILL CONNECTION {id}")).await {
                Ok(()) => {}
                Err(mysql_async::Error::Server(e)) if e.code == 1094 => {}
                Err(err) => return Err(map_error(err)),
            }
        }
        Ok(())
    }

    async fn user_exists(&self, conn: &mut Conn, user: &str) -> Result<bool, BrokerError> {
        let found: Option<u8> = conn
            .exec_first(
                "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
                (user, self.server.user_host.as_str()),
            )
            .await
            .map_err(map_error)?;
        Ok(found.is_some())
    }
}

#[async_trait]
impl Broker for MysqlServer {
    fn name(&self) -> &'static str {
        BROKER
    }

    fn is_async(&self, _plan_settings: &Value, _kind: OperationKind) -> bool {
        false
    }

    fn check_plan_settings(&self, plan_settings: &Value) -> Result<(), SettingsError> {
        let settings = PlanSettings::effective(plan_settings, &Value::Null)
            .map_err(|e| SettingsError::invalid(e.to_string()))?;
        if !settings.extensions.is_empty() {
            return Err(SettingsError::invalid(
                "extensions are a PostgreSQL setting",
            ));
        }
        Ok(())
    }

    async fn provision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let settings = PlanSettings::effective(&request.plan_settings, &request.parameters)?;
        let database = resource_name("sbi", &request.instance_id);
        let mut conn = self.connect().await?;
        let mut sql = format!("CREATE DATABASE IF NOT EXISTS {}", ident(&database));
        if let Some(charset) = &settings.encoding {
            // Allow-listed in PlanSettings::check.
            sql.push_str(&format!(" CHARACTER SET {charset}"));
        }
        conn.query_drop(sql).await.map_err(map_error)?;
        let _ = conn.disconnect().await;
        Ok(Self::instance_done(&database, &settings))
    }

    async fn update(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let settings = PlanSettings::effective(&request.plan_settings, &request.parameters)?;
        let state = &request.instance_state;
        let database = state_str(state, "database")?.to_owned();
        if settings.encoding.as_deref() != state.get("encoding").and_then(Value::as_str) {
            return Err(BrokerError::Unprocessable(
                "the character set of an existing database cannot be changed".to_owned(),
            ));
        }
        // The connection limit is per user: it applies to bindings made from now on.
        Ok(Self::instance_done(&database, &settings))
    }

    async fn deprovision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let database = resource_name("sbi", &request.instance_id);
        let mut conn = self.connect().await?;
        let existed: Option<u8> = conn
            .exec_first(
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (&database,),
            )
            .await
            .map_err(map_error)?;
        Self::terminate(&mut conn, "DB", &database).await?;
        conn.query_drop(format!("DROP DATABASE IF EXISTS {}", ident(&database)))
            .await
            .map_err(map_error)?;
        let _ = conn.disconnect().await;
        match existed {
            Some(_) => Ok(Progress::Done(Completion::default())),
            None => Err(BrokerError::NotFound(format!(
                "database {database} does not exist"
            ))),
        }
    }

    async fn bind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let settings = PlanSettings::effective(&request.plan_settings, &Value::Null)?;
        let state = &request.instance_state;
        let database = state_str(state, "database")?;
        let limit = state
            .get("connection_limit")
            .and_then(Value::as_i64)
            .filter(|n| *n >= 0)
            .unwrap_or(0);
        let binding_id = request.binding_id.as_deref().unwrap_or_default();
        let user = resource_name("sbb", binding_id);
        let password = new_password();
        let account = self.account(&user);
        let privileges = match settings.access {
            Access::ReadWrite => "ALL PRIVILEGES",
            Access::ReadOnly => "SELECT",
        };
        let mut conn = self.connect().await?;
        let verb = if self.user_exists(&mut conn, &user).await? {
            "ALTER"
        } else {
            "CREATE"
        };
        conn.query_drop(format!(
            "{verb} USER {account} IDENTIFIED BY {password} WITH MAX_USER_CONNECTIONS {limit}",
            password = literal(&password)
        ))
        .await
        .map_err(map_error)?;
        conn.query_drop(format!(
            "GRANT {privileges} ON {}.* TO {account}",
            ident(database)
        ))
        .await
        .map_err(map_error)?;
        let _ = conn.disconnect().await;
        Ok(Progress::Done(Completion {
            state: Some(json!({ "username": user })),
            binding: Some(credentials(
                "mysql",
                "mysql",
                &self.server,
                database,
                &user,
                &password,
            )),
            ..Completion::default()
        }))
    }

    async fn unbind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let binding_id = request.binding_id.as_deref().unwrap_or_default();
        let user = resource_name("sbb", binding_id);
        let mut conn = self.connect().await?;
        if !self.user_exists(&mut conn, &user).await? {
            return Err(BrokerError::NotFound(format!("user {user} does not exist")));
        }
        // Lock first so no new session starts, then end the open ones, then drop.
        conn.query_drop(format!("ALTER USER {} ACCOUNT LOCK", self.account(&user)))
            .await
            .map_err(map_error)?;
        Self::terminate(&mut conn, "USER", &user).await?;
        conn.query_drop(format!("DROP USER IF EXISTS {}", self.account(&user)))
            .await
            .map_err(map_error)?;
        let _ = conn.disconnect().await;
        Ok(Progress::Done(Completion::default()))
    }

    async fn poll(&self, _request: &OperationRequest) -> Result<Progress, BrokerError> {
        Err(BrokerError::Failed(
            "mysql operations are synchronous; nothing to poll".to_owned(),
        ))
    }
}
