//! The two database engines and the privileges an account may hold: the names the API
//! uses for them, and what each engine accepts (versions, class families, instance id
//! prefix, the made-up endpoint of an instance on no real server).

use crate::api::ApiError;

/// A database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// MySQL (MariaDB on the test server speaks the same SQL).
    MySql,
    /// PostgreSQL.
    PostgreSql,
}

impl Engine {
    pub(super) fn parse(value: &str) -> Result<Engine, ApiError> {
        if value.eq_ignore_ascii_case("MySQL") {
            Ok(Engine::MySql)
        } else if value.eq_ignore_ascii_case("PostgreSQL") {
            Ok(Engine::PostgreSql)
        } else {
            Err(ApiError::new(
                400,
                "InvalidEngine.Malformed",
                "Specified engine is not valid.",
            ))
        }
    }

    /// The name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            Engine::MySql => "MySQL",
            Engine::PostgreSql => "PostgreSQL",
        }
    }

    pub(super) fn versions(self) -> &'static [&'static str] {
        match self {
            Engine::MySql => &["5.5", "5.6", "5.7", "8.0"],
            Engine::PostgreSql => &[
                "10.0", "11.0", "12.0", "13.0", "14.0", "15.0", "16.0", "17.0",
            ],
        }
    }

    pub(super) fn id_prefix(self) -> &'static str {
        match self {
            Engine::MySql => "rm-",
            Engine::PostgreSql => "pgm-",
        }
    }

    pub(super) fn class_prefixes(self) -> &'static [&'static str] {
        match self {
            Engine::MySql => &["mysql.", "rds.mysql."],
            Engine::PostgreSql => &["pg.", "rds.pg."],
        }
    }

    pub(super) fn default_endpoint(self, id: &str) -> (String, u16) {
        match self {
            Engine::MySql => (format!("{id}.mysql.rds.aliyuncs.com"), 3306),
            Engine::PostgreSql => (format!("{id}.pg.rds.aliyuncs.com"), 5432),
        }
    }
}

/// An account's privilege on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Read and write, including DDL (MySQL).
    ReadWrite,
    /// Read only (MySQL).
    ReadOnly,
    /// DDL only (MySQL).
    DdlOnly,
    /// DML only (MySQL).
    DmlOnly,
    /// Owner of the database (PostgreSQL).
    DbOwner,
}

impl Privilege {
    /// Parses an `AccountPrivilege` value valid for `engine`.
    pub(super) fn parse(value: &str, engine: Engine) -> Result<Privilege, ApiError> {
        let privilege = match (value, engine) {
            ("ReadWrite", Engine::MySql) => Privilege::ReadWrite,
            ("ReadOnly", Engine::MySql) => Privilege::ReadOnly,
            ("DDLOnly", Engine::MySql) => Privilege::DdlOnly,
            ("DMLOnly", Engine::MySql) => Privilege::DmlOnly,
            ("DBOwner", Engine::PostgreSql) => Privilege::DbOwner,
            _ => {
                return Err(ApiError::new(
                    400,
                    "InvalidAccountPrivilege.Malformed",
                    "Specified account privilege is not valid.",
                ))
            }
        };
        Ok(privilege)
    }

    /// The name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            Privilege::ReadWrite => "ReadWrite",
            Privilege::ReadOnly => "ReadOnly",
            Privilege::DdlOnly => "DDLOnly",
            Privilege::DmlOnly => "DMLOnly",
            Privilege::DbOwner => "DBOwner",
        }
    }

    /// `AccountPrivilegeDetail`: what the privilege amounts to.
    pub(super) fn detail(self) -> &'static str {
        match self {
            Privilege::ReadWrite => "SELECT,INSERT,UPDATE,DELETE,CREATE,DROP,REFERENCES,INDEX,ALTER,CREATE TEMPORARY TABLES,LOCK TABLES,EXECUTE,CREATE VIEW,SHOW VIEW,CREATE ROUTINE,ALTER ROUTINE,EVENT,TRIGGER",
            Privilege::ReadOnly => "SELECT,LOCK TABLES,SHOW VIEW",
            Privilege::DdlOnly => "CREATE,DROP,INDEX,ALTER,CREATE TEMPORARY TABLES,LOCK TABLES,CREATE VIEW,SHOW VIEW,CREATE ROUTINE,ALTER ROUTINE,EVENT,TRIGGER",
            Privilege::DmlOnly => "SELECT,INSERT,UPDATE,DELETE,CREATE TEMPORARY TABLES,LOCK TABLES,EXECUTE,SHOW VIEW,EVENT,TRIGGER",
            Privilege::DbOwner => "ALL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_only_knows_db_owner() {
        assert_eq!(
            Privilege::parse("DBOwner", Engine::PostgreSql).unwrap(),
            Privilege::DbOwner
        );
        assert!(Privilege::parse("ReadOnly", Engine::PostgreSql).is_err());
        assert!(Privilege::parse("DBOwner", Engine::MySql).is_err());
    }
}
