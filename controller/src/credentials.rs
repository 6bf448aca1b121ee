//! Platform credentials (Service Manager): generated once, stored only as a slow hash, and
//! checked on every OSB request without paying for the hash each time.
//!
//! A platform's password is 32 random bytes, shown once when it is registered or
//! regenerated; the store keeps its argon2id hash (PHC string), so a copy of the store or
//! of etcd does not let anyone call as the platform. Verifying argon2 costs tens of
//! milliseconds by design, which every OSB request cannot pay: a password verified once is
//! remembered as its SHA-256 digest, tied to the platform record it was verified against.
//! Later requests compare digests in constant time; a regenerated password or a deleted
//! platform changes the record and the memory no longer matches.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use skybroker_config::{Secret, ServerConfig};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use skybroker_storage::{Platform, StateMap};
use subtle::ConstantTimeEq;

/// Whether `encoded` (the base64 part of a `Basic` header) holds exactly `username:password`.
pub fn basic_credentials_match(encoded: &str, username: &str, password: &str) -> bool {
    // Decoded on the stack: credentials are short, and this runs on every request. Longer
    // ones (still valid) take the allocating path.
    let encoded = encoded.trim();
    let mut buffer = [0u8; 384];
    let decoded: std::borrow::Cow<'_, [u8]> =
        match base64::engine::general_purpose::STANDARD.decode_slice(encoded, &mut buffer) {
            Ok(len) => std::borrow::Cow::Borrowed(&buffer[..len]),
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                match base64::engine::general_purpose::STANDARD.decode(encoded) {
                    Ok(decoded) => std::borrow::Cow::Owned(decoded),
                    Err(_) => return false,
                }
            }
            Err(base64::DecodeSliceError::DecodeError(_)) => return false,
        };
    let Some(split) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, pass) = (&decoded[..split], &decoded[split + 1..]);
    // Both compared in constant time, and both always compared.
    let user_ok = user.ct_eq(username.as_bytes());
    let pass_ok = pass.ct_eq(password.as_bytes());
    bool::from(user_ok & pass_ok)
}

/// Whether `token` (a bearer token as sent) is one of `tokens`, compared in constant time
/// with every one of them.
pub fn bearer_matches(token: &str, tokens: &[skybroker_config::Secret]) -> bool {
    let token = token.trim().as_bytes();
    !token.is_empty()
        && bool::from(tokens.iter().fold(subtle::Choice::from(0), |found, t| {
            found | token.ct_eq(t.expose().as_bytes())
        }))
}

/// The broker's own secrets that may change while it runs, read from mounted files: the
/// password (`server.password_file`, when the password came from it and not from the
/// environment) and the admin tokens (`admin_tokens` and `server.admin_token_file`). Every
/// request reads the current ones (an atomic load); [`LiveSecrets::reload`] reads the files
/// again, so a rotated secret takes effect without a restart and the old one stops working.
#[derive(Debug)]
pub struct LiveSecrets {
    password: ArcSwap<Option<Secret>>,
    admin_tokens: ArcSwap<Vec<Secret>>,
    /// The password's file, when the password came from it.
    password_file: Option<std::path::PathBuf>,
    token_file: Option<std::path::PathBuf>,
    configured_tokens: Vec<Secret>,
}

/// A secret file's text without its trailing newline (as `password_file` is read at start).
fn read_secret(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?
        .trim_end_matches(['\r', '\n'])
        .to_owned())
}

/// The tokens of a token file: one per line, blank lines ignored.
fn read_tokens(path: &Path) -> std::io::Result<Vec<Secret>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(Secret::new)
        .collect())
}

impl LiveSecrets {
    /// The secrets `server` configures, the token file read.
    ///
    /// # Errors
    /// The token file cannot be read.
    pub fn new(server: &ServerConfig) -> Result<LiveSecrets, String> {
        // The password came from its file unless the environment set another one.
        let password_file = server.password_file.clone().filter(|path| {
            let current = server.password.as_ref().map(|p| p.expose().to_owned());
            read_secret(path).ok() == current
        });
        let mut tokens = server.admin_tokens.clone();
        if let Some(path) = &server.admin_token_file {
            tokens.extend(
                read_tokens(path)
                    .map_err(|err| format!("server.admin_token_file {}: {err}", path.display()))?,
            );
        }
        Ok(LiveSecrets {
            password: ArcSwap::from_pointee(server.password.clone()),
            admin_tokens: ArcSwap::from_pointee(tokens),
            password_file,
            token_file: server.admin_token_file.clone(),
            configured_tokens: server.admin_tokens.clone(),
        })
    }

    /// The broker's password now (a guard, not a copy: every request reads it).
    pub fn password(&self) -> arc_swap::Guard<Arc<Option<Secret>>> {
        self.password.load()
    }

    /// The admin tokens now.
    pub fn admin_tokens(&self) -> Arc<Vec<Secret>> {
        self.admin_tokens.load_full()
    }

    /// Reads the files again; says which secrets changed (never their values). A file that
    /// cannot be read (a secret being swapped) keeps the current secret.
    pub fn reload(&self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if let Some(path) = &self.password_file {
            match read_secret(path) {
                Ok(text) if !text.is_empty() => {
                    let current = self.password();
                    if current.as_ref().as_ref().map(Secret::expose) != Some(text.as_str()) {
                        self.password.store(Arc::new(Some(Secret::new(text))));
                        changed.push("the password");
                    }
                }
                Ok(_) => log::warn!("{} is empty; keeping the password", path.display()),
                Err(err) => log::warn!("{}: {err}; keeping the password", path.display()),
            }
        }
        if let Some(path) = &self.token_file {
            match read_tokens(path) {
                Ok(mut tokens) => {
                    tokens.splice(0..0, self.configured_tokens.iter().cloned());
                    let current = self.admin_tokens();
                    let same = current.len() == tokens.len()
                        && current
                            .iter()
                            .zip(&tokens)
                            .all(|(a, b)| a.expose() == b.expose());
                    if !same {
                        self.admin_tokens.store(Arc::new(tokens));
                        changed.push("the admin tokens");
                    }
                }
                Err(err) => log::warn!("{}: {err}; keeping the admin tokens", path.display()),
            }
        }
        changed
    }

    /// Whether any secret comes from a file to watch.
    pub fn has_files(&self) -> bool {
        self.password_file.is_some() || self.token_file.is_some()
    }
}

/// Reads the secret files every `every` until `stop`, logging what changed.
pub async fn watch_secret_files(
    secrets: Arc<LiveSecrets>,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
        for what in secrets.reload() {
            log::info!(
                "{what} changed in its file: the new one is in effect, the old one no longer is"
            );
        }
    }
}

/// A new random secret: 32 bytes, URL-safe base64 (43 characters).
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The argon2id hash of `password`, as a PHC string.
///
/// # Errors
/// The hasher failed (no randomness for the salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| format!("hashing a password: {err}"))
}

/// Whether `password` is the one `hash` was made of (slow: argon2).
fn verify(password: &[u8], hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok())
}

/// A password verified once: its digest, and the record it was verified against.
#[derive(Debug)]
struct Verified {
    platform_id: String,
    updated_at: u64,
    digest: [u8; 32],
}

/// The platforms' logins verified so far.
#[derive(Debug, Default)]
pub struct PlatformLogins {
    verified: Mutex<HashMap<String, Verified>>,
}

impl PlatformLogins {
    /// The id of the platform `username` and `password` log in as, if they are its
    /// current credentials (slow the first time: see [`PlatformLogins::verify`]).
    pub fn check(&self, state: &StateMap, username: &str, password: &[u8]) -> Option<String> {
        self.remembered(state, username, password)
            .or_else(|| self.verify(state, username, password))
    }

    /// The platform these credentials were verified for before, if they still are its
    /// current ones: quick (a digest and a map lookup).
    pub fn remembered(&self, state: &StateMap, username: &str, password: &[u8]) -> Option<String> {
        let digest: [u8; 32] = Sha256::digest(password).into();
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        let known = verified.get(username)?;
        let current = state.platform(&known.platform_id)?;
        let same_record = current.updated_at == known.updated_at && current.username == username;
        (same_record && bool::from(known.digest.ct_eq(&digest))).then(|| known.platform_id.clone())
    }

    /// Verifies the credentials against the platform's stored hash and remembers them when
    /// they hold. Slow on purpose (argon2): run it off the async runtime's threads.
    pub fn verify(&self, state: &StateMap, username: &str, password: &[u8]) -> Option<String> {
        let digest: [u8; 32] = Sha256::digest(password).into();
        let platform: Platform = state
            .platforms()
            .into_iter()
            .find(|platform| platform.username == username)?;
        if !verify(password, &platform.password_hash) {
            return None;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified.insert(
            username.to_owned(),
            Verified {
                platform_id: platform.id.clone(),
                updated_at: platform.updated_at,
                digest,
            },
        );
        Some(platform.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skybroker_storage::{Change, MemoryStore, RegistryRecord};
    use std::sync::Arc;

    fn platform(password: &str, updated_at: u64) -> Platform {
        Platform {
            id: "p-1".into(),
            name: "cf".into(),
            kind: "cloudfoundry".into(),
            description: String::new(),
            username: "platform-p-1".into(),
            password_hash: hash_password(password).unwrap(),
            labels: Default::default(),
            created_at: 1,
            updated_at,
        }
    }

    #[test]
    fn secrets_are_long_and_never_repeat() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn a_regenerated_password_replaces_the_old_one_at_once() {
        let state = StateMap::open(Arc::new(MemoryStore::new())).await.unwrap();
        let put = |p: Platform| vec![Change::PutRegistry(RegistryRecord::Platform(p))];
        state.commit(put(platform("first", 1))).await.unwrap();
        let logins = PlatformLogins::default();
        assert_eq!(
            logins.check(&state, "platform-p-1", b"first").as_deref(),
            Some("p-1")
        );
        // Remembered: the second check takes the fast path, same answer.
        assert_eq!(
            logins.check(&state, "platform-p-1", b"first").as_deref(),
            Some("p-1")
        );
        assert_eq!(logins.check(&state, "platform-p-1", b"wrong"), None);
        assert_eq!(logins.check(&state, "someone-else", b"first"), None);

        state.commit(put(platform("second", 2))).await.unwrap();
        assert_eq!(
            logins.check(&state, "platform-p-1", b"first"),
            None,
            "the old one stops"
        );
        assert_eq!(
            logins.check(&state, "platform-p-1", b"second").as_deref(),
            Some("p-1")
        );
    }
}
