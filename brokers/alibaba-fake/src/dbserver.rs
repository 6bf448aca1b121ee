//! Makes RDS databases and accounts real on a PostgreSQL or MySQL/MariaDB server, so a test
//! can log in with the credentials the fake handed out and find the grants enforced.
//!
//! Every fake instance of an engine lives on the one configured server: an instance's
//! `ConnectionString`/`Port` are that server's, and its databases and accounts are plain
//! server-wide databases and users, unprefixed. Names never collide in practice because the
//! broker derives them from hashed ids (two fake instances asked for the same database name
//! would collide on the server, and the second would fail with `InternalError`).
//!
//! # What each privilege becomes
//! - MySQL, on `` `db`.* `` (with `_` and `%` escaped, since `GRANT` treats them as
//!   wildcards in database names): `ReadWrite` is every database-level privilege, so the
//!   account creates, changes and drops tables; `ReadOnly` is `SELECT, LOCK TABLES, SHOW
//!   VIEW`, which covers tables created later by anyone; `DDLOnly` and `DMLOnly` split the
//!   rest along the line their names draw.
//! - PostgreSQL knows only `DBOwner` (as the real API for cloud-disk instances). Each
//!   database is owned by a `NOLOGIN` role `"<db>:owner"` (the colon keeps it apart from any
//!   account name); a `DBOwner` account is a member of it, and its sessions in that database
//!   run as the owner role (`ALTER ROLE … IN DATABASE … SET role`). So whatever one owner
//!   creates, every owner of the database can read, change and drop, and the objects
//!   survive the account that created them.
//!
//! Deleting an account ends its sessions (so a deleted account loses access at once, as a
//! dropped one would on RDS), and deleting a database or instance drops what it held.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio_postgres::NoTls;

use crate::rds::{Engine, Privilege};

/// How long to wait for the server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a server operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The server could not be reached.
    #[error("cannot reach the database server: {0}")]
    Unreachable(String),
    /// The server refused a statement.
    #[error("the database server refused: {0}")]
    Refused(String),
}

impl From<tokio_postgres::Error> for ServerError {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => ServerError::Refused(format!("{}: {}", db.code().code(), db.message())),
            None => ServerError::Unreachable(err.to_string()),
        }
    }
}

impl From<mysql_async::Error> for ServerError {
    fn from(err: mysql_async::Error) -> Self {
        match err {
            mysql_async::Error::Server(server) => {
                ServerError::Refused(format!("{}: {}", server.code, server.message))
            }
            other => ServerError::Unreachable(other.to_string()),
        }
    }
}

/// The real server the instances of one engine live on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbServer {
    /// Which engine it serves (and so which SQL dialect it speaks).
    engine: Engine,
    /// Host name or address.
    host: String,
    /// Port.
    port: u16,
}

impl DbServer {
    /// A server at `address` (`host:port`); `None` when it does not parse.
    pub fn parse(engine: Engine, address: &str) -> Option<DbServer> {
        let (host, port) = address.rsplit_once(':')?;
        Some(DbServer {
            engine,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: port.parse().ok()?,
        })
    }

    /// The host handed out as `ConnectionString`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port handed out as `Port`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a database with the character set `charset` (already validated; for
    /// PostgreSQL `ENCODING[,COLLATE[,CTYPE]]`, both locales `C` when not given).
    pub async fn create_database(&self, name: &str, charset: &str) -> Result<(), ServerError> {
        match self.engine {
            Engine::MySql => {
                let mut conn = self.mysql().await?;
                conn.query_drop(format!(
                    "CREATE DATABASE {} CHARACTER SET {}",
                    my_ident(name),
                    my_literal(charset)
                ))
                .await?;
                conn.disconnect().await?;
            }
            Engine::PostgreSql => {
                let mut parts = charset.split(',').map(str::trim);
                let encoding = parts.next().unwrap_or("UTF8");
                let collate = parts.next().filter(|s| !s.is_empty()).unwrap_or("C");
                let ctype = parts.next().filter(|s| !s.is_empty()).unwrap_or("C");
                let owner = pg_owner_role(name);
                let client = self.postgres("postgres").await?;
                client
                    .batch_execute(&format!("CREATE ROLE {} NOLOGIN", pg_ident(&owner)))
                    .await?;
                // CREATE DATABASE cannot share a multi-statement string with anything else.
                let created = client
                    .batch_execute(&format!(
                        "CREATE DATABASE {} OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {} TEMPLATE template0",
                        pg_ident(name),
                        pg_ident(&owner),
                        pg_literal(encoding),
                        pg_literal(collate),
                        pg_literal(ctype),
                    ))
                    .await;
                if let Err(err) = created {
                    let _ = client
                        .batch_execute(&format!("DROP ROLE IF EXISTS {}", pg_ident(&owner)))
                        .await;
                    return Err(err.into());
                }
                // Only its owners may connect: instances share the server.
                client
                    .batch_execute(&format!(
                        "REVOKE ALL ON DATABASE {} FROM PUBLIC",
                        pg_ident(name)
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    /// Drops a database, first taking away the grants `accounts` hold on it.
    pub async fn drop_database(&self, name: &str, accounts: &[String]) -> Result<(), ServerError> {
        match self.engine {
            Engine::MySql => {
                let mut conn = self.mysql().await?;
                for account in accounts {
                    mysql_revoke_all(&mut conn, account, name).await?;
                }
                conn.query_drop(format!("DROP DATABASE IF EXISTS {}", my_ident(name)))
                    .await?;
                conn.disconnect().await?;
            }
            Engine::PostgreSql => {
                let client = self.postgres("postgres").await?;
                client
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        pg_ident(name)
                    ))
                    .await?;
                // Its members lose the membership with it.
                client
                    .batch_execute(&format!(
                        "DROP ROLE IF EXISTS {}",
                        pg_ident(&pg_owner_role(name))
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    /// Creates a login with `password`; a `Super` account may also create databases and
    /// roles (PostgreSQL) — the fake grants it nothing server-wide on MySQL, where other
    /// instances' databases share the server.
    pub async fn create_account(
        &self,
        name: &str,
        password: &str,
        super_account: bool,
    ) -> Result<(), ServerError> {
        match self.engine {
            Engine::MySql => {
                let mut conn = self.mysql().await?;
                conn.query_drop(format!(
                    "CREATE USER {} IDENTIFIED BY {}",
                    my_account(name),
                    my_literal(password)
                ))
                .await?;
                conn.disconnect().await?;
            }
            Engine::PostgreSql => {
                let extra = if super_account {
                    " CREATEDB CREATEROLE"
                } else {
                    ""
                };
                self.postgres("postgres")
                    .await?
                    .batch_execute(&format!(
                        "CREATE ROLE {} LOGIN PASSWORD {}{extra}",
                        pg_ident(name),
                        pg_literal(password)
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    /// Sets a login's password.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), ServerError> {
        match self.engine {
            Engine::MySql => {
                let mut conn = self.mysql().await?;
                conn.query_drop(format!(
                    "ALTER USER {} IDENTIFIED BY {}",
                    my_account(name),
                    my_literal(password)
                ))
                .await?;
                conn.disconnect().await?;
            }
            Engine::PostgreSql => {
                self.postgres("postgres")
                    .await?
                    .batch_execute(&format!(
                        "ALTER ROLE {} PASSWORD {}",
                        pg_ident(name),
                        pg_literal(password)
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    /// Gives `account` `privilege` on `database` (see the module documentation).
    pub async fn grant(
        &self,
        account: &str,
        database: &str,
        privilege: Privilege,
    ) -> Result<(), ServerError> {
        match self.engine {
            Engine::MySql => {
                let mut conn = self.mysql().await?;
                conn.query_drop(format!(
                    "GRANT {} ON {}.* TO {}",
                    mysql_privileges(privilege),
                    my_ident(&grant_pattern(database)),
                    my_account(account)
                ))
                .await?;
                conn.disconnect().await?;
            }
            Engine::PostgreSql => {
                let owner = pg_ident(&pg_owner_role(database));
                self.postgres("postgres")
                    .await?
                    .batch_execute(&format!(
                        "GRANT {owner} TO {account}; ALTER ROLE {account} IN DATABASE {db} SET role = {owner}",
                        account = pg_ident(account),
                        db = pg_ident(database),
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    /// Takes back what [`DbServer::grant`] gave.
    pub async fn revoke(&self, account: &str, database: &str) -> Result<(), ServerError> {
        match self.engine {
            Engine::MySql => {
                let mut conn = self.mysql().await?;
                mysql_revoke_all(&mut conn, account, database).await?;
                conn.disconnect().await?;
            }
            Engine::PostgreSql => {
                let owner = pg_ident(&pg_owner_role(database));
                self.postgres("postgres")
                    .await?
                    .batch_execute(&format!(
                        "REVOKE {owner} FROM {account}; ALTER ROLE {account} IN DATABASE {db} RESET role",
                        account = pg_ident(account),
                        db = pg_ident(database),
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    /// Drops a login and ends its sessions; `databases` are the instance's databases, where
    /// anything it still owns passes to the database's owner role (PostgreSQL).
    pub async fn drop_account(
        &self,
        account: &str,
        databases: &[String],
    ) -> Result<(), ServerError> {
        match self.engine {
            Engine::MySql => {
                let mut conn = self.mysql().await?;
                // Dropped first, so the sessions ended next cannot come back.
                conn.query_drop(format!("DROP USER IF EXISTS {}", my_account(account)))
                    .await?;
                let ids: Vec<u64> = conn
                    .exec(
                        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()",
                        (account,),
                    )
                    .await?;
                for id in ids {
                    match conn.query_drop(format!("KILL CONNECTION {id}")).await {
                        // ER_NO_SUCH_THREAD: it ended by itself meanwhile.
                        Err(mysql_async::Error::Server(err)) if err.code == 1094 => {}
                        other => other?,
                    }
                }
                conn.disconnect().await?;
            }
            Engine::PostgreSql => {
                let client = self.postgres("postgres").await?;
                let role = pg_ident(account);
                client
                    .batch_execute(&format!("ALTER ROLE {role} NOLOGIN"))
                    .await?;
                client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
                        &[&account],
                    )
                    .await?;
                for database in databases {
                    let exists = client
                        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[database])
                        .await?
                        .is_some();
                    if !exists {
                        continue;
                    }
                    self.postgres(database)
                        .await?
                        .batch_execute(&format!(
                            "REASSIGN OWNED BY {role} TO {owner}; DROP OWNED BY {role}",
                            owner = pg_ident(&pg_owner_role(database))
                        ))
                        .await?;
                }
                client
                    .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
                    .await?;
            }
        }
        Ok(())
    }

    async fn mysql(&self) -> Result<mysql_async::Conn, ServerError> {
        let options = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some("root"))
            .prefer_socket(false);
        match tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(options)).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(ServerError::Unreachable(format!(
                "{}:{} did not answer in time",
                self.host, self.port
            ))),
        }
    }

    async fn postgres(&self, database: &str) -> Result<tokio_postgres::Client, ServerError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user("postgres")
            .dbname(database)
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("skybroker-alibaba-fake");
        let (client, connection) = config.connect(NoTls).await?;
        // The task ends when the client is dropped.
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                log::debug!("fake RDS admin connection closed: {err}");
            }
        });
        Ok(client)
    }
}

/// The role that owns a PostgreSQL database.
fn pg_owner_role(database: &str) -> String {
    format!("{database}:owner")
}

/// Quotes a PostgreSQL identifier.
fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a PostgreSQL string literal (standard-conforming strings, the default).
fn pg_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Quotes a MySQL identifier.
fn my_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a MySQL string literal.
fn my_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A MySQL account: any host, as RDS creates them.
fn my_account(name: &str) -> String {
    format!("{}@'%'", my_literal(name))
}

/// A database name as a `GRANT … ON <db>.*` pattern: `_` and `%` would be wildcards.
fn grant_pattern(database: &str) -> String {
    database.replace('_', "\\_").replace('%', "\\%")
}

/// The database-level privileges of each RDS privilege on MySQL.
fn mysql_privileges(privilege: Privilege) -> &'static str {
    match privilege {
        Privilege::ReadWrite => {
            "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, \
             CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, \
             CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER"
        }
        Privilege::ReadOnly => "SELECT, LOCK TABLES, SHOW VIEW",
        Privilege::DdlOnly => {
            "CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, \
             SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER"
        }
        Privilege::DmlOnly => {
            "SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, \
             SHOW VIEW, EVENT, TRIGGER"
        }
        // Not a MySQL privilege; the RDS layer refuses it before it gets here.
        Privilege::DbOwner => "ALL PRIVILEGES",
    }
}

/// Revokes whatever `account` holds on `database`; holding nothing is fine.
async fn mysql_revoke_all(
    conn: &mut mysql_async::Conn,
    account: &str,
    database: &str,
) -> Result<(), ServerError> {
    let sql = format!(
        "REVOKE ALL PRIVILEGES ON {}.* FROM {}",
        my_ident(&grant_pattern(database)),
        my_account(account)
    );
    match conn.query_drop(sql).await {
        // ER_NONEXISTING_GRANT: nothing was granted there.
        Err(mysql_async::Error::Server(err)) if err.code == 1141 => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let server = DbServer::parse(Engine::MySql, "127.0.0.1:3306").unwrap();
        assert_eq!((server.host(), server.port()), ("127.0.0.1", 3306));
        let server = DbServer::parse(Engine::PostgreSql, "[::1]:5432").unwrap();
        assert_eq!((server.host(), server.port()), ("::1", 5432));
        assert_eq!(DbServer::parse(Engine::MySql, "localhost"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(pg_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(pg_literal("it's"), "'it''s'");
        assert_eq!(my_ident("a`b"), "`a``b`");
        assert_eq!(my_literal("a\\'b"), "'a\\\\''b'");
        assert_eq!(grant_pattern("app_db%"), "app\\_db\\%");
        assert_eq!(pg_owner_role("app_db"), "app_db:owner");
    }
}
