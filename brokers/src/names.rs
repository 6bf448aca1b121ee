//! Names and generated secrets, the same for every provider.
//!
//! Why one module: every plugin must be idempotent (a call repeated after a crash adopts what
//! the first one created), so every resource it creates is named deterministically from the
//! OSB id it belongs to, never from anything else a request carries. Writing the rule once
//! keeps the local databases and the clouds alike, and keeps hostile ids harmless everywhere:
//! a name is a fixed prefix plus hex digits of a hash, so it is valid in SQL identifiers, S3
//! bucket names, RDS identifiers and IAM user names alike, whatever the id contained.
//!
//! Secrets a plugin generates (passwords, and keys a cloud hands out) travel in
//! [`skybroker_config::Secret`], whose `Debug` prints `******`, so no `{:?}` can leak them.

use crate::SettingsError;
use sha2::{Digest, Sha256};

/// Hex digits of the id's SHA-256 that a name carries (80 bits: collisions are not a concern
/// at any realistic number of instances).
const HASH_HEX_DIGITS: usize = 20;

/// The first [`HASH_HEX_DIGITS`] hex digits of SHA-256 of `id`.
fn id_hash(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    digest
        .iter()
        .take(HASH_HEX_DIGITS / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A deterministic, safe name for a database resource: `prefix_` plus 20 hex digits of
/// SHA-256 of `id` (`[a-z0-9_]` only, fit for unquoted SQL identifiers).
pub fn resource_name(prefix: &str, id: &str) -> String {
    format!("{prefix}_{}", id_hash(id))
}

/// A deterministic, safe name for a cloud resource: `prefix-` plus 20 hex digits of SHA-256
/// of `id`. With a prefix that [`check_cloud_prefix`] accepts, the result is a valid S3
/// bucket name, RDS instance identifier and IAM user name.
pub fn cloud_name(prefix: &str, id: &str) -> String {
    format!("{prefix}-{}", id_hash(id))
}

/// Longest prefix [`cloud_name`] accepts: S3 bucket names and RDS identifiers end at 63
/// characters, and a suffix (`-final`, a snapshot's) must still fit.
pub const MAX_CLOUD_PREFIX: usize = 30;

/// Checks a prefix for [`cloud_name`]: a lowercase letter, then lowercase letters, digits
/// and single hyphens, at most [`MAX_CLOUD_PREFIX`] characters, not ending in a hyphen.
pub fn check_cloud_prefix(prefix: &str) -> Result<(), SettingsError> {
    let valid = prefix.len() <= MAX_CLOUD_PREFIX
        && prefix
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !prefix.ends_with('-')
        && !prefix.contains("--");
    if valid {
        Ok(())
    } else {
        Err(SettingsError::invalid(format!(
            "name prefix {prefix:?} must start with a lowercase letter and hold only lowercase \
             letters, digits and single hyphens, at most {MAX_CLOUD_PREFIX} characters"
        )))
    }
}

/// Whether `region` has the shape of a cloud region id (`eu-west-1`, `cn-hangzhou`): lower-case
/// letters, digits and `-`, as it becomes part of host names and signatures.
pub fn is_region_id(region: &str) -> bool {
    !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A strong random password: 256 bits as 64 hex digits (safe in any SQL literal and URI).
pub fn new_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_names_are_valid_everywhere_whatever_the_id() {
        let hostile = "x'; DROP DATABASE postgres; -- ünïcødé \" ` /../";
        let name = cloud_name("skybroker", hostile);
        assert_eq!(name, cloud_name("skybroker", hostile));
        assert_ne!(name, cloud_name("skybroker", "other"));
        assert_eq!(name.len(), "skybroker-".len() + 20);
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        // The database flavour shares the hash, so both name the same id alike.
        assert_eq!(
            resource_name("sbi", hostile)[4..],
            name["skybroker-".len()..]
        );
    }

    #[test]
    fn prefixes_are_checked() {
        for good in ["skybroker", "acme-prod-1", "a"] {
            assert!(check_cloud_prefix(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Sky",
            "1sky",
            "sky-",
            "sky--broker",
            "sky_broker",
            &"a".repeat(31),
        ] {
            assert!(check_cloud_prefix(bad).is_err(), "{bad}");
        }
    }
}
