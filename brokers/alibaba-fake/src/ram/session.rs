//! Role sessions: the temporary AccessKeys STS issues (`STS.…`), each with the security token
//! it must travel with and an expiry, acting with the permissions of the role it was issued
//! for (narrowed by the session policy, when the caller gave one).
//!
//! Every endpoint authenticates through [`Ram::signer`]: it finds the secret a signature is
//! checked with, and for a session key [`KeyHolder::check_token`] then demands the token
//! (`x-acs-security-token` on RPC calls, `x-oss-security-token` on OSS calls). A session
//! stops working when it expires, when its role is deleted, and when a test calls
//! [`Ram::expire_sessions`].

use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::document::{parse_policy, Statement};
use super::state::Ram;
use super::user::Principal;
use crate::api;

/// How long an expired session is remembered (so that its key is answered "token expired",
/// not "unknown key"); older ones are forgotten when new ones are issued.
const REMEMBER_EXPIRED: Duration = Duration::from_secs(3600);

/// A session of a role.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// The role's name.
    pub(super) role: String,
    /// The caller's `RoleSessionName`.
    pub(super) session_name: String,
    /// The temporary key's secret.
    secret: String,
    /// The security token issued with it.
    token: String,
    /// When it stops working.
    pub(super) expiration: OffsetDateTime,
    /// The session policy given to AssumeRole, if any: it can only narrow the role's.
    pub(super) policy: Option<SessionPolicy>,
}

/// A session policy (AssumeRole's `Policy`), validated.
#[derive(Debug, Clone)]
pub struct SessionPolicy(pub(super) Vec<Statement>);

impl SessionPolicy {
    /// Parses a policy document.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(document: &str) -> Result<SessionPolicy, String> {
        parse_policy(document).map(SessionPolicy)
    }
}

/// Temporary credentials as STS hands them out.
#[derive(Debug, Clone)]
pub struct Issued {
    /// `STS.` and 25 letters and digits.
    pub access_key_id: String,
    /// The secret.
    pub access_key_secret: String,
    /// The token every request signed with the key must carry.
    pub security_token: String,
    /// When they stop working.
    pub expiration: OffsetDateTime,
}

/// Why a request's security token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// A session key without its token.
    Missing,
    /// A token that is not the key's (or a token with a long-lived key).
    Mismatch,
    /// The session has expired.
    Expired,
}

/// Who holds a key and how to check what they sent.
#[derive(Debug, Clone)]
pub struct KeyHolder {
    /// Whose key it is.
    pub principal: Principal,
    /// The secret signatures are checked with.
    pub secret: String,
    /// For a session key: its token and expiry.
    session: Option<(String, OffsetDateTime)>,
}

impl KeyHolder {
    /// Checks the token sent with a request signed by this key.
    ///
    /// # Errors
    /// Which way the token is wrong.
    pub fn check_token(&self, sent: Option<&str>, now: OffsetDateTime) -> Result<(), TokenProblem> {
        match (&self.session, sent) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(TokenProblem::Mismatch),
            (Some(_), None) => Err(TokenProblem::Missing),
            (Some((token, _)), Some(sent)) if token != sent => Err(TokenProblem::Mismatch),
            (Some((_, expiration)), Some(_)) if now >= *expiration => Err(TokenProblem::Expired),
            (Some(_), Some(_)) => Ok(()),
        }
    }
}

impl Ram {
    /// The holder of an access key (the root's, a user's or a session's); `None` for
    /// unknown or deleted keys.
    pub fn signer(&self, access_key_id: &str) -> Option<KeyHolder> {
        if let Some((principal, secret)) = self.lookup_key(access_key_id) {
            return Some(KeyHolder {
                principal,
                secret,
                session: None,
            });
        }
        let session = self.sessions.get(access_key_id)?;
        Some(KeyHolder {
            principal: Principal::AssumedRole {
                role: session.role.clone(),
                session: session.session_name.clone(),
                access_key_id: access_key_id.to_owned(),
            },
            secret: session.secret.clone(),
            session: Some((session.token.clone(), session.expiration)),
        })
    }

    /// Issues a session of `role` (which the caller checked exists and trusts them).
    pub fn issue_session(
        &mut self,
        role: &str,
        session_name: &str,
        duration: Duration,
        policy: Option<SessionPolicy>,
        now: OffsetDateTime,
    ) -> Issued {
        self.sessions
            .retain(|_, session| now < session.expiration + REMEMBER_EXPIRED);
        // Whole seconds, as the `Expiration` the answer shows.
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let issued = Issued {
            access_key_id: format!("STS.{}", api::random_string(api::ALNUM, 25)),
            access_key_secret: api::random_string(api::ALNUM, 44),
            security_token: format!("CAIS{}", api::random_string(api::ALNUM, 180)),
            expiration: now + duration,
        };
        self.sessions.insert(
            issued.access_key_id.clone(),
            Session {
                role: role.to_owned(),
                session_name: session_name.to_owned(),
                secret: issued.access_key_secret.clone(),
                token: issued.security_token.clone(),
                expiration: issued.expiration,
                policy,
            },
        );
        issued
    }

    /// Ends every session now (a test hook: their keys are then refused as expired).
    pub fn expire_sessions(&mut self, now: OffsetDateTime) {
        for session in self.sessions.values_mut() {
            session.expiration = session.expiration.min(now);
        }
    }

    /// The sessions, for the snapshot (no secrets, no tokens).
    pub(super) fn sessions_snapshot(&self) -> Vec<Value> {
        self.sessions
            .iter()
            .map(|(id, session)| {
                json!({
                    "access_key_id": id,
                    "role": session.role,
                    "session_name": session.session_name,
                    "expiration": api::iso8601(session.expiration),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_need_their_token_until_they_expire() {
        let mut ram = Ram::new("root", "secret");
        let now = time::macros::datetime!(2024-05-01 12:00:00 UTC);
        let issued = ram.issue_session("r", "s", Duration::from_secs(900), None, now);
        assert!(issued.access_key_id.starts_with("STS."));
        let holder = ram.signer(&issued.access_key_id).unwrap();
        assert_eq!(holder.secret, issued.access_key_secret);
        assert!(matches!(holder.principal, Principal::AssumedRole { ref role, .. } if role == "r"));
        let token = issued.security_token.as_str();
        assert_eq!(holder.check_token(Some(token), now), Ok(()));
        assert_eq!(holder.check_token(None, now), Err(TokenProblem::Missing));
        assert_eq!(
            holder.check_token(Some("CAISother"), now),
            Err(TokenProblem::Mismatch)
        );
        let later = now + Duration::from_secs(900);
        assert_eq!(
            holder.check_token(Some(token), later),
            Err(TokenProblem::Expired)
        );

        ram.expire_sessions(now);
        let holder = ram.signer(&issued.access_key_id).unwrap();
        assert_eq!(
            holder.check_token(Some(token), now),
            Err(TokenProblem::Expired)
        );

        // A long-lived key takes no token.
        let root = ram.signer("root").unwrap();
        assert_eq!(root.check_token(None, now), Ok(()));
        assert_eq!(
            root.check_token(Some(token), now),
            Err(TokenProblem::Mismatch)
        );

        // Long-expired sessions are forgotten when others are issued.
        ram.issue_session(
            "r",
            "s",
            Duration::from_secs(900),
            None,
            now + Duration::from_secs(7200),
        );
        assert!(ram.signer(&issued.access_key_id).is_none());
    }
}
