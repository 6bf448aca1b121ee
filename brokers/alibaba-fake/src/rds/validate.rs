//! The parameter checks, with the codes the real service answers: engine versions,
//! instance classes, storage size and type, IP allow-lists, database and account names,
//! character sets and passwords, and the names RDS keeps for itself.

use std::net::Ipv4Addr;

use super::engine::Engine;
use crate::api::ApiError;

/// Storage types `CreateDBInstance` accepts.
pub(super) const STORAGE_TYPES: &[&str] = &[
    "local_ssd",
    "cloud_ssd",
    "cloud_essd",
    "cloud_essd2",
    "cloud_essd3",
    "general_essd",
];

/// Database names RDS keeps for itself.
const FORBIDDEN_DB_NAMES: &[&str] = &[
    "mysql",
    "information_schema",
    "performance_schema",
    "sys",
    "postgres",
    "template0",
    "template1",
];

/// Account names RDS keeps for itself.
const FORBIDDEN_ACCOUNT_NAMES: &[&str] = &[
    "root",
    "admin",
    "aliyun_root",
    "mysql",
    "postgres",
    "replicator",
    "rdsadmin",
];

/// The special characters RDS passwords may contain.
const PASSWORD_SPECIALS: &str = "!@#$%^&*()_+-=";

/// Accepts a supported version (`15` for PostgreSQL counts as `15.0`).
pub(super) fn canonical_version(engine: Engine, version: &str) -> Result<String, ApiError> {
    let version = match engine {
        Engine::PostgreSql if !version.contains('.') => format!("{version}.0"),
        _ => version.to_owned(),
    };
    if engine.versions().contains(&version.as_str()) {
        Ok(version)
    } else {
        Err(ApiError::new(
            400,
            "InvalidEngineVersion.Malformed",
            "The specified parameter EngineVersion is not valid.",
        ))
    }
}

/// Checks a class for `engine`; true for the `*.fail` classes whose creation fails.
pub(super) fn check_class(engine: Engine, class: &str) -> Result<bool, ApiError> {
    let well_formed = !class.is_empty()
        && class
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.')
        && class.split('.').all(|part| !part.is_empty());
    if !well_formed {
        return Err(ApiError::new(
            400,
            "InvalidDBInstanceClass.Malformed",
            "The specified parameter DBInstanceClass is not valid.",
        ));
    }
    let family = engine
        .class_prefixes()
        .iter()
        .any(|prefix| class.len() > prefix.len() && class.starts_with(prefix));
    if !family {
        return Err(ApiError::new(
            400,
            "InvalidDBInstanceClass.NotFound",
            "Specified DB instance class is not found.",
        ));
    }
    Ok(class.ends_with(".fail"))
}

pub(super) fn check_storage(storage: i64) -> Result<(), ApiError> {
    if (5..=64000).contains(&storage) && storage % 5 == 0 {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InvalidDBInstanceStorage",
            "The specified DBInstanceStorage is invalid.",
        ))
    }
}

/// A comma-separated list of up to 1000 distinct IPv4 addresses or CIDR blocks.
pub(super) fn check_security_ips(list: &str) -> Result<(), ApiError> {
    let invalid = || {
        ApiError::new(
            400,
            "InvalidSecurityIPList.Format",
            "The specified parameter securityIPList is not valid.",
        )
    };
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    if entries.len() > 1000 {
        return Err(invalid());
    }
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        let (address, prefix) = entry.split_once('/').unwrap_or((entry, "32"));
        let prefix_ok = prefix.parse::<u8>().is_ok_and(|p| p <= 32);
        if address.parse::<Ipv4Addr>().is_err() || !prefix_ok || !seen.insert(entry) {
            return Err(invalid());
        }
    }
    Ok(())
}

pub(super) fn check_db_name(name: &str, engine: Engine) -> Result<(), ApiError> {
    let max = match engine {
        Engine::MySql => 64,
        Engine::PostgreSql => 63,
    };
    let bytes = name.as_bytes();
    let valid = (2..=max).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if !valid {
        return Err(ApiError::new(
            400,
            "InvalidDBName.Format",
            "Specified DB name is not valid.",
        ));
    }
    if FORBIDDEN_DB_NAMES.contains(&name) {
        return Err(ApiError::new(
            400,
            "InvalidDBName.Forbid",
            "Specified DB name is a keyword in RDS.",
        ));
    }
    Ok(())
}

/// MySQL: `utf8`, `gbk`, `latin1`, `utf8mb4`. PostgreSQL: `ENCODING[,COLLATE[,CTYPE]]`
/// with one of the encodings RDS lists and locale names of letters, digits, `_`, `.`, `-`, `@`.
pub(super) fn check_charset(charset: &str, engine: Engine) -> Result<(), ApiError> {
    const PG_ENCODINGS: &[&str] = &[
        "KOI8U",
        "UTF8",
        "WIN866",
        "WIN874",
        "WIN1250",
        "WIN1251",
        "WIN1252",
        "WIN1253",
        "WIN1254",
        "WIN1255",
        "WIN1256",
        "WIN1257",
        "WIN1258",
        "EUC_CN",
        "EUC_KR",
        "EUC_TW",
        "EUC_JP",
        "EUC_JIS_2004",
        "KOI8R",
        "MULE_INTERNAL",
        "LATIN1",
        "LATIN2",
        "LATIN3",
        "LATIN4",
        "LATIN5",
        "LATIN6",
        "LATIN7",
        "LATIN8",
        "LATIN9",
        "LATIN10",
        "ISO_8859_5",
        "ISO_8859_6",
        "ISO_8859_7",
        "ISO_8859_8",
        "SQL_ASCII",
    ];
    let valid = match engine {
        Engine::MySql => ["utf8", "gbk", "latin1", "utf8mb4"].contains(&charset),
        Engine::PostgreSql => {
            let parts: Vec<&str> = charset.split(',').map(str::trim).collect();
            let locale_ok = |locale: &&str| {
                !locale.is_empty()
                    && locale
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
            };
            parts.len() <= 3 && PG_ENCODINGS.contains(&parts[0]) && parts[1..].iter().all(locale_ok)
        }
    };
    if valid {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InvalidCharacterSetName.Format",
            "Specified character set name is not valid.",
        ))
    }
}

pub(super) fn check_account_name(
    name: &str,
    engine: Engine,
    version: &str,
) -> Result<(), ApiError> {
    let max = match engine {
        Engine::MySql if version == "5.6" || version == "5.5" => 16,
        Engine::MySql => 32,
        Engine::PostgreSql => 63,
    };
    let letter = |b: &u8| match engine {
        Engine::MySql => b.is_ascii_alphabetic(),
        Engine::PostgreSql => b.is_ascii_lowercase(),
    };
    let bytes = name.as_bytes();
    let valid = (2..=max).contains(&bytes.len())
        && letter(&bytes[0])
        && (letter(&bytes[bytes.len() - 1]) || bytes[bytes.len() - 1].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| letter(b) || b.is_ascii_digit() || *b == b'_');
    if !valid {
        return Err(ApiError::new(
            400,
            "InvalidAccountName.Malformed",
            "The specified parameter \"AccountName\" is not valid.",
        ));
    }
    if FORBIDDEN_ACCOUNT_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ApiError::new(
            400,
            "InvalidAccountName.Forbid",
            "Specified account name is a keyword in RDS.",
        ));
    }
    Ok(())
}

/// 8 to 32 characters, each an upper-case or lower-case letter, a digit or one of
/// [`PASSWORD_SPECIALS`], with at least three of those four kinds.
pub(super) fn check_password(password: &str) -> Result<(), ApiError> {
    let malformed = || {
        ApiError::new(
            400,
            "InvalidAccountPassword.Malformed",
            "The specified parameter \"AccountPassword\" is not valid.",
        )
    };
    if !(8..=32).contains(&password.chars().count()) {
        return Err(malformed());
    }
    let mut kinds = [false; 4];
    for c in password.chars() {
        let kind = if c.is_ascii_uppercase() {
            0
        } else if c.is_ascii_lowercase() {
            1
        } else if c.is_ascii_digit() {
            2
        } else if PASSWORD_SPECIALS.contains(c) {
            3
        } else {
            return Err(malformed());
        };
        kinds[kind] = true;
    }
    if kinds.iter().filter(|kind| **kind).count() < 3 {
        return Err(malformed());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_follow_the_engine() {
        assert!(check_account_name("App_User1", Engine::MySql, "8.0").is_ok());
        assert!(check_account_name("App_User1", Engine::PostgreSql, "15.0").is_err());
        assert!(check_account_name("a_seventeen_chars", Engine::MySql, "5.6").is_err());
        assert!(check_account_name("a_seventeen_chars", Engine::MySql, "5.7").is_ok());
    }
}
