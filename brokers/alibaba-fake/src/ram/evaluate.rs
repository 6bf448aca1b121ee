//! Policy evaluation, which every endpoint of the fake uses to authorize a call: the root
//! may do everything; a user what a statement of its attached policies allows, unless one
//! denies it; a role session what its role's policies allow, and, when the session was
//! given a policy, only what that policy allows too. Actions match case-insensitively, resources case-sensitively, both with
//! `*`/`?` wildcards; a statement with a `Condition` never allows and always denies.

use super::document::{parse_policy, Effect, Statement};
use super::policy::{system_policy, PolicyType};
use super::state::Ram;
use super::user::Principal;

/// The outcome of evaluating a principal's policies for one action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some statement allows it and none denies it.
    Allow,
    /// No statement allows it.
    ImplicitDeny,
    /// A statement denies it.
    ExplicitDeny,
}

impl Statement {
    /// Whether the statement covers `action` on `resource` (ignoring its condition).
    fn covers(&self, action: &str, resource: &str) -> bool {
        let action = action.to_ascii_lowercase();
        self.actions
            .iter()
            .any(|pattern| wildcard_match(&pattern.to_ascii_lowercase(), &action))
            && self
                .resources
                .iter()
                .any(|pattern| wildcard_match(pattern, resource))
    }
}

impl Ram {
    /// Whether the principal may do `action` (e.g. `oss:GetObject`) on `resource` (e.g.
    /// `acs:oss:*:*:mybucket/obj`): the root always; a user when an attached policy has a
    /// matching `Allow` and none has a matching `Deny`.
    pub fn allows(&self, principal: &Principal, action: &str, resource: &str) -> bool {
        self.decide(principal, action, resource) == Decision::Allow
    }

    /// Like [`Ram::allows`], but tells an explicit `Deny` from the absence of an `Allow`
    /// (the RPC endpoint reports which in `AccessDeniedDetail.NoPermissionType`).
    pub fn decide(&self, principal: &Principal, action: &str, resource: &str) -> Decision {
        let (attached, session_policy) = match principal {
            Principal::Root => return Decision::Allow,
            Principal::User(name) => match self.users.get(name) {
                Some(user) => (&user.policies, None),
                None => return Decision::ImplicitDeny,
            },
            Principal::AssumedRole {
                role,
                access_key_id,
                ..
            } => match self.roles.get(role) {
                Some(found) => (
                    &found.policies,
                    self.sessions
                        .get(access_key_id)
                        .and_then(|session| session.policy.as_ref())
                        .map(|policy| &policy.0),
                ),
                None => return Decision::ImplicitDeny,
            },
        };
        let statements: Vec<Statement> = attached
            .keys()
            .flat_map(|(policy_type, policy_name)| self.statements(*policy_type, policy_name))
            .collect();
        let identity = evaluate(&statements, action, resource);
        match session_policy {
            None => identity,
            Some(session) => match (identity, evaluate(session, action, resource)) {
                (Decision::ExplicitDeny, _) | (_, Decision::ExplicitDeny) => Decision::ExplicitDeny,
                (Decision::Allow, Decision::Allow) => Decision::Allow,
                _ => Decision::ImplicitDeny,
            },
        }
    }

    /// The statements of a policy (none for a policy that no longer exists).
    fn statements(&self, policy_type: PolicyType, name: &str) -> Vec<Statement> {
        match policy_type {
            PolicyType::Custom => self
                .policies
                .get(name)
                .map(|policy| policy.statements.clone())
                .unwrap_or_default(),
            PolicyType::System => system_policy(name)
                .and_then(|(_, document)| parse_policy(document).ok())
                .unwrap_or_default(),
        }
    }
}

/// The decision of one set of statements.
fn evaluate(statements: &[Statement], action: &str, resource: &str) -> Decision {
    let mut decision = Decision::ImplicitDeny;
    for statement in statements {
        if !statement.covers(action, resource) {
            continue;
        }
        match statement.effect {
            // A conditional Deny is applied as if its condition held: fail closed.
            Effect::Deny => return Decision::ExplicitDeny,
            Effect::Allow if !statement.conditional => decision = Decision::Allow,
            Effect::Allow => {}
        }
    }
    decision
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters (none
/// included) and `?` for exactly one.
///
/// Greedy with backtracking to the last `*`: linear in practice, and never worse than
/// quadratic.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently stands in for.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            // Let the last `*` swallow one more character and retry.
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram_with_user(user: &str, document: &str) -> Ram {
        let mut ram = Ram::new("root", "secret");
        ram.create_user(user, "", "").unwrap();
        ram.create_policy("p", document, "").unwrap();
        ram.attach_policy(user, PolicyType::Custom, "p").unwrap();
        ram
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("oss:Get*", "oss:GetObject"));
        assert!(!wildcard_match("oss:Get*", "oss:PutObject"));
        assert!(wildcard_match("acs:oss:*:*:b/*", "acs:oss:*:*:b/dir/obj"));
        assert!(!wildcard_match("acs:oss:*:*:b/*", "acs:oss:*:*:bb/obj"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*a*b*", "xxaxxbxx"));
        assert!(!wildcard_match("*a*b", "xxaxxbxxc"));
    }

    #[test]
    fn root_may_do_everything_and_users_what_policies_allow() {
        let ram = ram_with_user(
            "u1",
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["oss:Get*","oss:PutObject"],"Resource":["acs:oss:*:*:bucket/*"]}]}"#,
        );
        assert!(ram.allows(&Principal::Root, "oss:DeleteBucket", "acs:oss:*:*:x"));
        let user = Principal::User("u1".to_owned());
        assert!(ram.allows(&user, "oss:GetObject", "acs:oss:*:*:bucket/a/b"));
        assert!(ram.allows(&user, "oss:getobject", "acs:oss:*:*:bucket/a"));
        assert!(ram.allows(&user, "oss:PutObject", "acs:oss:*:*:bucket/a"));
        assert!(!ram.allows(&user, "oss:DeleteObject", "acs:oss:*:*:bucket/a"));
        assert!(!ram.allows(&user, "oss:GetObject", "acs:oss:*:*:other/a"));
        assert!(!ram.allows(&Principal::User("nobody".to_owned()), "oss:GetObject", "*"));
    }

    #[test]
    fn deny_wins_and_conditions_fail_closed() {
        let ram = ram_with_user(
            "u1",
            r#"{"Version":"1","Statement":[
                {"Effect":"Allow","Action":"oss:*","Resource":"*"},
                {"Effect":"Deny","Action":"oss:DeleteObject","Resource":"acs:oss:*:*:bucket/keep/*"},
                {"Effect":"Allow","Action":"rds:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.1"}}},
                {"Effect":"Deny","Action":"oss:PutObject","Resource":"*","Condition":{"Bool":{"acs:SecureTransport":"false"}}}
            ]}"#,
        );
        let user = Principal::User("u1".to_owned());
        assert!(ram.allows(&user, "oss:DeleteObject", "acs:oss:*:*:bucket/tmp/x"));
        assert!(!ram.allows(&user, "oss:DeleteObject", "acs:oss:*:*:bucket/keep/x"));
        assert!(!ram.allows(&user, "rds:DescribeDBInstances", "*"));
        assert!(!ram.allows(&user, "oss:PutObject", "acs:oss:*:*:bucket/x"));
    }

    #[test]
    fn system_policies_grant() {
        let mut ram = Ram::new("root", "secret");
        ram.create_user("u1", "", "").unwrap();
        ram.attach_policy("u1", PolicyType::System, "AliyunRDSReadOnlyAccess")
            .unwrap();
        let user = Principal::User("u1".to_owned());
        assert!(ram.allows(
            &user,
            "rds:DescribeDBInstances",
            "acs:rds:cn-hangzhou:1:dbinstance/x"
        ));
        assert!(!ram.allows(
            &user,
            "rds:DeleteDBInstance",
            "acs:rds:cn-hangzhou:1:dbinstance/x"
        ));
        let err = ram
            .attach_policy("u1", PolicyType::System, "NoSuchPolicy")
            .unwrap_err();
        assert_eq!(err.code, "EntityNotExist.Policy");
    }
}
