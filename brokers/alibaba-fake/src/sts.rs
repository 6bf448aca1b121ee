//! STS (API version 2015-04-01): temporary credentials for RAM roles, on the RPC endpoint.
//!
//! Three actions, checked as the real service documents them:
//! - `AssumeRole`, ACS3-signed by a RAM user or a role session (the account's own key is
//!   refused: STS only lets RAM identities assume roles). The caller's policies must allow
//!   `sts:AssumeRole` on the role (`acs:ram:*:<account>:role/<name>`; the exact ARN, with an
//!   empty region, is matched too), the role must exist and its trust policy must name the
//!   caller, with `sts:ExternalId` when its conditions ask for one. `RoleSessionName` is 2 to
//!   64 of `[A-Za-z0-9.@_-]`, `DurationSeconds` 900 up to the role's `MaxSessionDuration`,
//!   and an optional `Policy` (at most 1024 bytes) narrows the session.
//! - `AssumeRoleWithOIDC`, anonymous (no signature: the token authenticates). The
//!   `OIDCProviderArn` must name a provider registered in the fake's RAM
//!   ([`crate::ram::Ram::add_oidc_provider`]), and the token must be a well-formed JWT that
//!   has not expired, whose `iss` is the provider's issuer and whose `aud` names one of its
//!   client ids; the role's trust policy must name the provider (`Federated`), with its
//!   `oidc:iss`, `oidc:aud`, `oidc:sub` conditions. **The token's signature is not
//!   verified**: the real service fetches the issuer's keys (its JWKS) from the internet,
//!   which a fake on loopback cannot reproduce; tests make unsigned tokens with the claims
//!   they need.
//! - `GetCallerIdentity`, signed by anyone: who the key belongs to.
//!
//! The credentials issued are an `STS.…` AccessKey, its secret, a security token and an
//! expiry (ISO 8601, UTC). From then on every endpoint of the fake accepts requests signed
//! with that key only together with the token (see [`crate::ram::KeyHolder`]) and until it
//! expires, and authorizes them with the role's policies.
//!
//! Error codes are the ones STS's API reference lists for these actions
//! (`InvalidParameter.RoleArn`, `InvalidParameter.RoleSessionName`,
//! `InvalidParameter.DurationSeconds`, `InvalidParameter.PolicyGrammar`,
//! `InvalidParameter.PolicySize`, `NoPermission`, `EntityNotExist.Role`, and for OIDC
//! `EntityNotExist.OIDCProvider`, `AuthenticationFail.OIDCToken.Invalid`,
//! `AuthenticationFail.OIDCToken.Expired`).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::api::{self, ApiError, Params};
use crate::ram::{self, Principal, SessionPolicy, Truster, ACCOUNT_ID};
use crate::{lock, Shared};

/// The STS actions this fake answers.
pub const ACTIONS: &[&str] = &["AssumeRole", "AssumeRoleWithOIDC", "GetCallerIdentity"];

/// The actions called without a signature.
pub const ANONYMOUS_ACTIONS: &[&str] = &["AssumeRoleWithOIDC"];

/// The shortest session STS grants, in seconds.
const MIN_DURATION: u64 = 900;
/// The session length when `DurationSeconds` is not given.
const DEFAULT_DURATION: u64 = 3600;
/// The longest session policy, in bytes.
const MAX_SESSION_POLICY: usize = 1024;

/// Answers one STS action. `caller` is who signed it (`None` for anonymous calls).
pub fn handle(
    shared: &Shared,
    action: &str,
    params: &Params,
    caller: Option<&Principal>,
    now: OffsetDateTime,
) -> Result<Value, ApiError> {
    match (action, caller) {
        ("AssumeRole", Some(caller)) => assume_role(shared, params, caller, now),
        ("AssumeRoleWithOIDC", _) => assume_role_with_oidc(shared, params, now),
        ("GetCallerIdentity", Some(caller)) => get_caller_identity(shared, caller),
        // The endpoint lets only ANONYMOUS_ACTIONS through unsigned.
        _ => Err(ApiError::new(
            400,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards.",
        )),
    }
}

fn no_permission() -> ApiError {
    ApiError::new(
        403,
        "NoPermission",
        "You are not authorized to do this action. You should be authorized by RAM.",
    )
}

/// The role name of `acs:ram::<this account>:role/<name>`; `None` for another account's
/// role (this fake has one account, so such roles never exist).
fn parse_role_arn(arn: &str) -> Result<Option<&str>, ApiError> {
    let wrongly_formed = || {
        ApiError::new(
            400,
            "InvalidParameter.RoleArn",
            "The parameter RoleArn is wrongly formed.",
        )
    };
    let rest = arn.strip_prefix("acs:ram::").ok_or_else(wrongly_formed)?;
    let (account, name) = rest.split_once(":role/").ok_or_else(wrongly_formed)?;
    if account.is_empty() || !account.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return Err(wrongly_formed());
    }
    Ok((account == ACCOUNT_ID).then_some(name))
}

/// `RoleSessionName`: 2 to 64 letters, digits, `.`, `@`, `-`, `_`.
fn check_session_name(name: &str) -> Result<(), ApiError> {
    let valid = (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName is wrongly formed.",
        ))
    }
}

/// `DurationSeconds`: 900 up to the role's maximum.
fn check_duration(params: &Params, max: u64) -> Result<u64, ApiError> {
    let duration = params
        .integer("DurationSeconds")?
        .unwrap_or(DEFAULT_DURATION as i64);
    match u64::try_from(duration) {
        Ok(duration) if (MIN_DURATION..=max).contains(&duration) => Ok(duration),
        _ => Err(ApiError::new(
            400,
            "InvalidParameter.DurationSeconds",
            format!(
                "The Min/Max value of DurationSeconds is {}min/{}s.",
                MIN_DURATION / 60,
                max
            ),
        )),
    }
}

/// The optional session policy.
fn session_policy(params: &Params) -> Result<Option<SessionPolicy>, ApiError> {
    let Some(document) = params.get("Policy") else {
        return Ok(None);
    };
    if document.len() > MAX_SESSION_POLICY {
        return Err(ApiError::new(
            400,
            "InvalidParameter.PolicySize",
            "The size of Policy must be smaller than 1024 bytes.",
        ));
    }
    SessionPolicy::parse(document).map(Some).map_err(|_| {
        ApiError::new(
            400,
            "InvalidParameter.PolicyGrammar",
            "The parameter Policy has not passed grammar check.",
        )
    })
}

/// The answer of both AssumeRole actions.
fn issued_json(
    issued: &ram::Issued,
    role: &str,
    role_id: &str,
    session_name: &str,
) -> serde_json::Map<String, Value> {
    let answer = json!({
        "Credentials": {
            "AccessKeyId": issued.access_key_id,
            "AccessKeySecret": issued.access_key_secret,
            "SecurityToken": issued.security_token,
            "Expiration": api::iso8601(issued.expiration),
        },
        "AssumedRoleUser": {
            "Arn": format!("{}/{session_name}", ram::role_arn(role)),
            "AssumedRoleId": format!("{role_id}:{session_name}"),
        },
    });
    match answer {
        Value::Object(object) => object,
        _ => serde_json::Map::new(),
    }
}

/// `AssumeRole`.
fn assume_role(
    shared: &Shared,
    params: &Params,
    caller: &Principal,
    now: OffsetDateTime,
) -> Result<Value, ApiError> {
    let role_arn = params.required("RoleArn")?;
    let session_name = params.required("RoleSessionName")?;
    let role = parse_role_arn(role_arn)?;
    check_session_name(session_name)?;
    let policy = session_policy(params)?;
    if let Some(external_id) = params.get("ExternalId") {
        let valid = (2..=1224).contains(&external_id.len())
            && external_id.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '=' | ',' | '.' | '@' | ':' | '/' | '-' | '_')
            });
        if !valid {
            return Err(ApiError::invalid("ExternalId"));
        }
    }
    // STS lets RAM identities assume roles, not the account itself.
    if *caller == Principal::Root {
        return Err(no_permission());
    }
    let mut ram = lock(&shared.ram);
    // The caller's own policies must allow it, on the role's ARN in either spelling.
    let decisions = [
        format!("acs:ram:*:{ACCOUNT_ID}:role/{}", role.unwrap_or("*")),
        role_arn.to_owned(),
    ]
    .map(|resource| ram.decide(caller, "sts:AssumeRole", &resource));
    let allowed = decisions.contains(&ram::Decision::Allow)
        && !decisions.contains(&ram::Decision::ExplicitDeny);
    if !allowed {
        return Err(no_permission());
    }
    let role = role.ok_or_else(role_not_found)?;
    let mut context = BTreeMap::new();
    if let Some(external_id) = params.get("ExternalId") {
        context.insert("sts:ExternalId", vec![external_id.to_owned()]);
    }
    let truster = Truster::Ram(match caller {
        Principal::AssumedRole { role, .. } => ram::role_arn(role),
        other => other.arn(),
    });
    let session = Session {
        role,
        session_name,
        policy,
        now,
    };
    let answer = session.issue(&mut ram, &truster, &context, params, &caller.arn())?;
    Ok(Value::Object(answer))
}

/// A session asked for by AssumeRole or AssumeRoleWithOIDC, once the caller is known.
struct Session<'a> {
    role: &'a str,
    session_name: &'a str,
    policy: Option<SessionPolicy>,
    now: OffsetDateTime,
}

impl Session<'_> {
    /// Issues the session if the role exists and its trust policy lets `truster` in with
    /// `context`, for as long as `DurationSeconds` asks within the role's maximum; the answer's
    /// fields. `who` names the caller in the log.
    fn issue(
        self,
        ram: &mut ram::Ram,
        truster: &Truster,
        context: &BTreeMap<&str, Vec<String>>,
        params: &Params,
        who: &str,
    ) -> Result<serde_json::Map<String, Value>, ApiError> {
        let Session {
            role,
            session_name,
            policy,
            now,
        } = self;
        let assumable = ram
            .assumable(role, truster, context)
            .ok_or_else(role_not_found)?;
        if !assumable.trusted {
            return Err(no_permission());
        }
        let duration = check_duration(params, assumable.max_session_duration)?;
        let issued = ram.issue_session(
            role,
            session_name,
            Duration::from_secs(duration),
            policy,
            now,
        );
        log::info!(
            "STS: {who} assumed {role} as {session_name}: {} until {}",
            issued.access_key_id,
            api::iso8601(issued.expiration)
        );
        Ok(issued_json(&issued, role, &assumable.role_id, session_name))
    }
}

fn role_not_found() -> ApiError {
    ApiError::new(404, "EntityNotExist.Role", "The specified Role not exists.")
}

/// The claims of a JWT that `AssumeRoleWithOIDC` looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcClaims {
    /// `iss`.
    pub issuer: String,
    /// `aud`, a string or a list.
    pub audiences: Vec<String>,
    /// `sub`.
    pub subject: String,
    /// `exp`, seconds since the epoch.
    pub expires: i64,
    /// `iat`, seconds since the epoch (0 when absent).
    pub issued: i64,
}

fn invalid_token(why: &str) -> ApiError {
    ApiError::new(
        401,
        "AuthenticationFail.OIDCToken.Invalid",
        format!("The OIDCToken is invalid: {why}."),
    )
}

/// Reads a JWT's header and claims (three base64url parts; the signature is not checked, see
/// the module docs).
///
/// # Errors
/// `AuthenticationFail.OIDCToken.Invalid` for anything that is not a JWT with `iss`, `aud`,
/// `sub` and `exp`.
pub fn parse_jwt(token: &str) -> Result<OidcClaims, ApiError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(invalid_token("not a JSON Web Token"));
    };
    let decode = |part: &str| -> Result<Value, ApiError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| invalid_token("a part is not base64url"))?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| invalid_token("a part is not a JSON object"))
    };
    let header = decode(header)?;
    if header["alg"].as_str().unwrap_or_default().is_empty() || signature.is_empty() {
        return Err(invalid_token("no algorithm or no signature"));
    }
    let claims = decode(claims)?;
    let text = |name: &str| {
        claims[name]
            .as_str()
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| invalid_token(&format!("no {name} claim")))
    };
    let audiences = match &claims["aud"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if audiences.is_empty() {
        return Err(invalid_token("no aud claim"));
    }
    Ok(OidcClaims {
        issuer: text("iss")?,
        audiences,
        subject: text("sub")?,
        expires: claims["exp"]
            .as_i64()
            .ok_or_else(|| invalid_token("no exp claim"))?,
        issued: claims["iat"].as_i64().unwrap_or(0),
    })
}

/// `AssumeRoleWithOIDC`.
fn assume_role_with_oidc(
    shared: &Shared,
    params: &Params,
    now: OffsetDateTime,
) -> Result<Value, ApiError> {
    let role_arn = params.required("RoleArn")?;
    let provider_arn = params.required("OIDCProviderArn")?;
    let token = params.required("OIDCToken")?;
    let role = parse_role_arn(role_arn)?;
    let session_name = params.get("RoleSessionName").unwrap_or("oidc-session");
    check_session_name(session_name)?;
    let policy = session_policy(params)?;
    let provider_name = provider_arn
        .strip_prefix(&format!("acs:ram::{ACCOUNT_ID}:oidc-provider/"))
        .filter(|name| !name.is_empty());
    let ram = lock(&shared.ram);
    let provider = provider_name
        .and_then(|name| ram.oidc_provider(name))
        .ok_or_else(|| {
            ApiError::new(
                404,
                "EntityNotExist.OIDCProvider",
                "The specified OIDC provider does not exist.",
            )
        })?;
    let claims = parse_jwt(token)?;
    if claims.expires <= now.unix_timestamp() {
        return Err(ApiError::new(
            401,
            "AuthenticationFail.OIDCToken.Expired",
            "This JsonWebToken is expired.",
        ));
    }
    if claims.issuer != provider.issuer {
        return Err(invalid_token("its issuer is not the OIDC provider's"));
    }
    if !claims
        .audiences
        .iter()
        .any(|audience| provider.client_ids.contains(audience))
    {
        return Err(invalid_token(
            "its audience is none of the OIDC provider's client ids",
        ));
    }
    drop(ram);
    let role = role.ok_or_else(role_not_found)?;
    let context = BTreeMap::from([
        ("oidc:iss", vec![claims.issuer.clone()]),
        ("oidc:aud", claims.audiences.clone()),
        ("oidc:sub", vec![claims.subject.clone()]),
    ]);
    let mut ram = lock(&shared.ram);
    let truster = Truster::Federated(provider_arn.to_owned());
    let session = Session {
        role,
        session_name,
        policy,
        now,
    };
    let who = format!("OIDC subject {}", claims.subject);
    let mut answer = session.issue(&mut ram, &truster, &context, params, &who)?;
    let at = |seconds: i64| {
        OffsetDateTime::from_unix_timestamp(seconds)
            .map(api::iso8601)
            .unwrap_or_default()
    };
    answer.insert(
        "OIDCTokenInfo".to_owned(),
        json!({
            "Subject": claims.subject,
            "Issuer": claims.issuer,
            "ClientIds": claims.audiences.join(","),
            "ExpirationTime": at(claims.expires),
            "IssuanceTime": at(claims.issued),
        }),
    );
    Ok(Value::Object(answer))
}

/// `GetCallerIdentity`.
fn get_caller_identity(shared: &Shared, caller: &Principal) -> Result<Value, ApiError> {
    let ram = lock(&shared.ram);
    let answer = match caller {
        Principal::Root => json!({
            "IdentityType": "Account",
            "AccountId": ACCOUNT_ID,
            "PrincipalId": ACCOUNT_ID,
            "Arn": caller.arn(),
        }),
        Principal::User(name) => {
            let user_id = ram.user_id(name).unwrap_or_default();
            json!({
                "IdentityType": "RAMUser",
                "AccountId": ACCOUNT_ID,
                "UserId": user_id,
                "PrincipalId": user_id,
                "Arn": caller.arn(),
            })
        }
        Principal::AssumedRole { role, session, .. } => {
            let role_id = ram.role_id(role).unwrap_or_default();
            json!({
                "IdentityType": "AssumedRoleUser",
                "AccountId": ACCOUNT_ID,
                "RoleId": role_id,
                "PrincipalId": format!("{role_id}:{session}"),
                "Arn": caller.arn(),
            })
        }
    };
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unsigned JWT with these claims (the fake does not check signatures).
    pub fn jwt(claims: &Value) -> String {
        let encode = |value: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
        };
        format!(
            "{}.{}.c2lnbmF0dXJl",
            encode(&json!({"alg": "RS256", "kid": "k1"})),
            encode(claims)
        )
    }

    #[test]
    fn jwts_are_parsed() {
        let token = jwt(&json!({"iss": "https://oidc.example", "aud": ["a", "b"],
            "sub": "system:serviceaccount:ns:sa", "exp": 2_000_000_000, "iat": 1_700_000_000}));
        let claims = parse_jwt(&token).unwrap();
        assert_eq!(claims.issuer, "https://oidc.example");
        assert_eq!(claims.audiences, ["a", "b"]);
        assert_eq!(claims.subject, "system:serviceaccount:ns:sa");
        assert_eq!(claims.expires, 2_000_000_000);
        for bad in [
            "not-a-jwt".to_owned(),
            "a.b.c".to_owned(),
            jwt(&json!({"iss": "x", "sub": "s", "exp": 1})),
            jwt(&json!({"aud": "x", "sub": "s", "exp": 1})),
            jwt(&json!({"iss": "x", "aud": "a", "sub": "s"})),
        ] {
            let err = parse_jwt(&bad).unwrap_err();
            assert_eq!(err.code, "AuthenticationFail.OIDCToken.Invalid", "{bad}");
        }
    }

    #[test]
    fn role_arns() {
        assert_eq!(
            parse_role_arn(&format!("acs:ram::{ACCOUNT_ID}:role/r1")).unwrap(),
            Some("r1")
        );
        assert_eq!(parse_role_arn("acs:ram::999:role/r1").unwrap(), None);
        for bad in [
            "r1",
            "acs:ram::x:role/r1",
            "acs:ram::1:user/u",
            "acs:ram::1:role/",
        ] {
            assert_eq!(
                parse_role_arn(bad).unwrap_err().code,
                "InvalidParameter.RoleArn"
            );
        }
    }
}
