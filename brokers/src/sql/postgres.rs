//! Databases on a PostgreSQL server (kind `postgres`).
//!
//! Per instance: a database `sbi_<hash>` owned by a NOLOGIN role `sbi_<hash>_owner`, with
//! CONNECT revoked from PUBLIC (so only the instance's bindings reach it), and a NOLOGIN role
//! `sbi_<hash>_ro` that may read every table. Per binding: a LOGIN role `sbb_<hash>` that is a
//! member of the owner role (read-write; objects it creates belong to the owner, so every
//! binding sees them) or of the read-only role.

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::{
    credentials, new_password, resource_name, state_str, Access, PlanSettings, ServerSettings,
};
use crate::SettingsError;
use crate::{Broker, BrokerError, Completion, OperationKind, OperationRequest, Progress};

const BROKER: &str = "postgres";

/// The PostgreSQL provider.
#[derive(Debug)]
pub struct PostgresServer {
    server: ServerSettings,
}

/// Quotes an identifier (names are `[a-z0-9_]` by construction; quoting is belt and braces).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Maps a driver error to a broker error: connection trouble is transient, refusals carry
/// the server's message (it never holds our secrets), the rest is a provider failure.
fn map_error(err: tokio_postgres::Error) -> BrokerError {
    let Some(db) = err.as_db_error() else {
        return BrokerError::Transient(format!("PostgreSQL unreachable: {err}"));
    };
    let code = db.code();
    if *code == SqlState::INSUFFICIENT_PRIVILEGE || *code == SqlState::INVALID_PASSWORD {
        BrokerError::Failed(format!("PostgreSQL refused: {}", db.message()))
    } else if *code == SqlState::TOO_MANY_CONNECTIONS
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::ADMIN_SHUTDOWN
        || code.code().starts_with("08")
    {
        BrokerError::Transient(format!("PostgreSQL busy: {}", db.message()))
    } else if code.code().starts_with("53") {
        BrokerError::Failed(format!("PostgreSQL out of resources: {}", db.message()))
    } else {
        BrokerError::Failed(format!(
            "PostgreSQL error {}: {}",
            code.code(),
            db.message()
        ))
    }
}

impl PostgresServer {
    /// The provider on a server found some other way: a cloud database instance whose
    /// endpoint and master user the cloud provider knows (AWS RDS binds through this, so roles
    /// and grants have one implementation).
    pub fn with_server(server: ServerSettings) -> Self {
        PostgresServer { server }
    }

    /// Connects as administrator to `database` (the admin database when `None`).
    async fn connect(&self, database: Option<&str>) -> Result<Client, BrokerError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.server.host)
            .port(self.server.port)
            .user(&self.server.admin_user)
            .dbname(database.unwrap_or(&self.server.admin_database))
            .connect_timeout(self.server.connect_timeout)
            .application_name("skybroker");
        if let Some(password) = &self.server.admin_password {
            config.password(password.expose());
        }
        let client = match super::tls::client_config(&self.server)? {
            None => Self::finish_connect(config.connect(NoTls).await.map_err(map_error)?),
            Some(tls) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
                Self::finish_connect(config.connect(tls).await.map_err(map_error)?)
            }
        };
        Ok(client)
    }

    /// Spawns the task that drives a connection's socket (it ends when the client drops).
    fn finish_connect<S, T>(
        (client, connection): (Client, tokio_postgres::Connection<S, T>),
    ) -> Client
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                log::debug!("postgres admin connection closed: {err}");
            }
        });
        client
    }

    async fn role_exists(client: &Client, role: &str) -> Result<bool, BrokerError> {
        let row = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(map_error)?;
        Ok(row.is_some())
    }

    async fn database_exists(client: &Client, database: &str) -> Result<bool, BrokerError> {
        let row = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
            .await
            .map_err(map_error)?;
        Ok(row.is_some())
    }

    async fn ensure_role(client: &Client, role: &str) -> Result<(), BrokerError> {
        if !Self::role_exists(client, role).await? {
            client
                .batch_execute(&format!("CREATE ROLE {} NOLOGIN", ident(role)))
                .await
                .map_err(map_error)?;
        }
        Ok(())
    }

    /// Names of an instance's resources.
    fn names(instance_id: &str) -> (String, String, String) {
        let database = resource_name("sbi", instance_id);
        let owner = format!("{database}_owner");
        let reader = format!("{database}_ro");
        (database, owner, reader)
    }

    /// The state [`Broker::provision`] records for `instance_id` (what unbind needs), without
    /// touching the server.
    pub fn state_of(instance_id: &str, settings: &PlanSettings) -> Value {
        let (database, owner, reader) = Self::names(instance_id);
        Self::instance_state(&database, &owner, &reader, settings)
    }

    fn instance_state(database: &str, owner: &str, reader: &str, settings: &PlanSettings) -> Value {
        json!({
            "database": database,
            "owner": owner,
            "reader": reader,
            "encoding": settings.encoding,
            "extensions": settings.extensions,
            "connection_limit": settings.connection_limit,
        })
    }

    async fn create_extensions(
        &self,
        database: &str,
        extensions: &[String],
    ) -> Result<(), BrokerError> {
        if extensions.is_empty() {
            return Ok(());
        }
        let client = self.connect(Some(database)).await?;
        for extension in extensions {
            client
                .batch_execute(&format!(
                    "CREATE EXTENSION IF NOT EXISTS {}",
                    ident(extension)
                ))
                .await
                .map_err(map_error)?;
        }
        Ok(())
    }

    /// Ends every session of `user` (or on `database`).
    async fn terminate(client: &Client, column: &str, value: &str) -> Result<(), BrokerError> {
        // `column` is one of two constants below; `value` is bound as a parameter.
        let sql = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {column} = $1 AND pid <> pg_backend_pid()"
        );
        client.execute(&sql, &[&value]).await.map_err(map_error)?;
        Ok(())
    }
}

#[async_trait]
impl Broker for PostgresServer {
    fn name(&self) -> &'static str {
        BROKER
    }

    fn is_async(&self, _plan_settings: &Value, _kind: OperationKind) -> bool {
        false
    }

    fn check_plan_settings(&self, plan_settings: &Value) -> Result<(), SettingsError> {
        PlanSettings::effective(plan_settings, &Value::Null)
            .map(|_| ())
            .map_err(|err| SettingsError::invalid(err.to_string()))
    }

    async fn provision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let settings = PlanSettings::effective(&request.plan_settings, &request.parameters)?;
        let (database, owner, reader) = Self::names(&request.instance_id);
        let client = self.connect(None).await?;
        Self::ensure_role(&client, &owner).await?;
        Self::ensure_role(&client, &reader).await?;
        if !Self::database_exists(&client, &database).await? {
            let mut sql = format!(
                "CREATE DATABASE {} OWNER {}",
                ident(&database),
                ident(&owner)
            );
            if let Some(encoding) = &settings.encoding {
                // Allow-listed in PlanSettings::check; template0 allows any encoding.
                sql.push_str(&format!(
                    " ENCODING {} TEMPLATE template0",
                    literal(encoding)
                ));
            }
            if let Some(limit) = settings.connection_limit {
                sql.push_str(&format!(" CONNECTION LIMIT {limit}"));
            }
            client.batch_execute(&sql).await.map_err(map_error)?;
        }
        client
            .batch_execute(&format!(
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC; GRANT CONNECT ON DATABASE {db} TO {ro}",
                db = ident(&database),
                ro = ident(&reader)
            ))
            .await
            .map_err(map_error)?;
        drop(client);
        // Inside the new database: extensions, and read access for the reader role on
        // everything the owner creates.
        self.create_extensions(&database, &settings.extensions)
            .await?;
        let inside = self.connect(Some(&database)).await?;
        inside
            .batch_execute(&format!(
                "GRANT USAGE ON SCHEMA public TO {ro}; \
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ro}; \
                 ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT ON TABLES TO {ro}",
                ro = ident(&reader),
                owner = ident(&owner)
            ))
            .await
            .map_err(map_error)?;
        Ok(Progress::Done(Completion {
            state: Some(Self::instance_state(&database, &owner, &reader, &settings)),
            ..Completion::default()
        }))
    }

    async fn update(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let settings = PlanSettings::effective(&request.plan_settings, &request.parameters)?;
        let state = &request.instance_state;
        let database = state_str(state, "database")?.to_owned();
        let current_encoding = state.get("encoding").and_then(Value::as_str);
        if settings.encoding.as_deref() != current_encoding {
            return Err(BrokerError::Unprocessable(
                "the encoding of an existing database cannot be changed".to_owned(),
            ));
        }
        let current_extensions: Vec<String> = state
            .get("extensions")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if current_extensions
            .iter()
            .any(|e| !settings.extensions.contains(e))
        {
            return Err(BrokerError::Unprocessable(
                "extensions cannot be removed from an existing database".to_owned(),
            ));
        }
        let client = self.connect(None).await?;
        let limit = settings.connection_limit.unwrap_or(-1);
        client
            .batch_execute(&format!(
                "ALTER DATABASE {} CONNECTION LIMIT {limit}",
                ident(&database)
            ))
            .await
            .map_err(map_error)?;
        self.create_extensions(&database, &settings.extensions)
            .await?;
        let owner = state_str(state, "owner")?;
        let reader = state_str(state, "reader")?;
        Ok(Progress::Done(Completion {
            state: Some(Self::instance_state(&database, owner, reader, &settings)),
            ..Completion::default()
        }))
    }

    async fn deprovision(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let (database, owner, reader) = Self::names(&request.instance_id);
        let client = self.connect(None).await?;
        let existed = Self::database_exists(&client, &database).await?;
        // WITH (FORCE) ends the sessions still connected (PostgreSQL 13+).
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(&database)
            ))
            .await
            .map_err(map_error)?;
        for role in [&reader, &owner] {
            if Self::role_exists(&client, role).await? {
                client
                    .batch_execute(&format!("DROP ROLE {}", ident(role)))
                    .await
                    .map_err(map_error)?;
            }
        }
        if !existed {
            return Err(BrokerError::NotFound(format!(
                "database {database} does not exist"
            )));
        }
        Ok(Progress::Done(Completion::default()))
    }

    async fn bind(&self, request: &OperationRequest) -> Result<Progress, BrokerError> {
        let settings = PlanSettings::effective(&request.plan_settings, &Value::Null)?;
        let state = &request.instance_state;
        let database = state_str(state, "database")?;
        let role = match settings.access {
            Access::ReadWrite => state_str(state, "owner")?,
            Access::ReadOnly => state_str(state, "reader")?,
        };
        let binding_id = request.binding_id.as_deref().unwrap_or_default();
        let user = resource_name("sbb", binding_id);
        let password = new_password();
        let client = self.connect(None).await?;
        let verb = if Self::role_exists(&client, &user).await? {
            "ALTER"
        } else {
            "CREATE"
        };
        // Read-write users act as the owner role, so what one binding creates every binding
        // of the instance can use.
        let set_role = match settings.access {
            Access::ReadWrite => format!(
                "ALTER ROLE {user} SET role = {role};",
                user = ident(&user),
                role = ident(role)
            ),
            Access::ReadOnly => String::new(),
        };
        client
            .batch_execute(&format!(
                "{verb} ROLE {user} LOGIN PASSWORD {password}; GRANT {role} TO {user}; \
                 GRANT CONNECT ON DATABASE {db} TO {user}; {set_role}",
                user = ident(&user),
                password = literal(&password),
                role = ident(role),
                db = ident(database),
            ))
            .await
            .map_err(map_error)?;
        Ok(Progress::Done(Completion {
            state: Some(json!({ "username": user })),
            binding: Some(credentials(
                "postgresql",
                "postgresql",
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
        let client = self.connect(None).await?;
        if !Self::role_exists(&client, &user).await? {
            return Err(BrokerError::NotFound(format!("user {user} does not exist")));
        }
        // No new logins, then end the sessions it has.
        client
            .batch_execute(&format!("ALTER ROLE {} NOLOGIN", ident(&user)))
            .await
            .map_err(map_error)?;
        Self::terminate(&client, "usename", &user).await?;
        // Objects it owns (read-write users create as the owner role, so normally none) and
        // its grants go, in the instance database, before the role can be dropped.
        if let (Ok(database), Ok(owner)) = (
            state_str(&request.instance_state, "database"),
            state_str(&request.instance_state, "owner"),
        ) {
            if Self::database_exists(&client, database).await? {
                let inside = self.connect(Some(database)).await?;
                inside
                    .batch_execute(&format!(
                        "REASSIGN OWNED BY {user} TO {owner}; DROP OWNED BY {user}",
                        user = ident(&user),
                        owner = ident(owner)
                    ))
                    .await
                    .map_err(map_error)?;
            }
        }
        client
            .batch_execute(&format!(
                "DROP OWNED BY {user}; DROP ROLE {user}",
                user = ident(&user)
            ))
            .await
            .map_err(map_error)?;
        Ok(Progress::Done(Completion::default()))
    }

    async fn poll(&self, _request: &OperationRequest) -> Result<Progress, BrokerError> {
        Err(BrokerError::Failed(
            "postgres operations are synchronous; nothing to poll".to_owned(),
        ))
    }
}
