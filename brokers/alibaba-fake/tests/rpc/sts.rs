//! STS over HTTP: what AssumeRole and AssumeRoleWithOIDC check before they hand out
//! credentials, and what the temporary keys may do afterwards.

use base64::Engine as _;
use serde_json::{json, Value};
use skybroker_alibaba_fake::ram::ACCOUNT_ID;

use crate::client::{Client, Key, RAM, RDS, STS};
use crate::start;

/// A user allowed `sts:AssumeRole` on every role, and its client.
async fn assuming_user(fake_url: &str, root: &Client, name: &str) -> Client {
    root.ok(RAM, "CreateUser", &[("UserName", name)]).await;
    root.ok(
        RAM,
        "AttachPolicyToUser",
        &[
            ("PolicyType", "System"),
            ("PolicyName", "AliyunSTSAssumeRoleAccess"),
            ("UserName", name),
        ],
    )
    .await;
    let key = root.ok(RAM, "CreateAccessKey", &[("UserName", name)]).await;
    Client::new(fake_url, key_of(&key["AccessKey"]))
}

fn key_of(fields: &Value) -> Key {
    Key {
        id: fields["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: fields["AccessKeySecret"].as_str().unwrap().to_owned(),
    }
}

/// A role trusting `principal` (a trust statement's `Principal`), allowed to read RDS.
async fn reader_role(root: &Client, name: &str, principal: Value, max: Option<&str>) {
    let trust = json!({"Version": "1", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal,
    }]})
    .to_string();
    let mut params = vec![("RoleName", name), ("AssumeRolePolicyDocument", &trust)];
    if let Some(max) = max {
        params.push(("MaxSessionDuration", max));
    }
    root.ok(RAM, "CreateRole", &params).await;
    root.ok(
        RAM,
        "AttachPolicyToRole",
        &[
            ("PolicyType", "System"),
            ("PolicyName", "AliyunRDSReadOnlyAccess"),
            ("RoleName", name),
        ],
    )
    .await;
}

/// An AssumeRole by `client` that must fail: its status and code.
async fn err(client: &Client, params: Vec<(String, String)>) -> (u16, String) {
    let borrowed: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    client.err(STS, "AssumeRole", &borrowed).await
}

fn arn(role: &str) -> String {
    format!("acs:ram::{ACCOUNT_ID}:role/{role}")
}

#[tokio::test]
async fn assume_role_checks_its_caller_the_role_and_the_parameters() {
    let (fake, root) = start().await;
    let user = assuming_user(&fake.rpc_url(), &root, "deployer").await;
    reader_role(
        &root,
        "reader",
        json!({"RAM": [format!("acs:ram::{ACCOUNT_ID}:user/deployer")]}),
        Some("7200"),
    )
    .await;
    reader_role(
        &root,
        "others-only",
        json!({"RAM": [format!("acs:ram::{ACCOUNT_ID}:user/someone")]}),
        None,
    )
    .await;
    let reader = arn("reader");
    let assume = |role: &str, name: &str, duration: &str| {
        vec![
            ("RoleArn".to_owned(), role.to_owned()),
            ("RoleSessionName".to_owned(), name.to_owned()),
            ("DurationSeconds".to_owned(), duration.to_owned()),
        ]
    };
    // The account's own key may not assume roles; a user without the permission neither.
    assert_eq!(
        err(&root, assume(&reader, "s1", "900")).await,
        (403, "NoPermission".to_owned())
    );
    root.ok(RAM, "CreateUser", &[("UserName", "nobody")]).await;
    let nobody_key = root
        .ok(RAM, "CreateAccessKey", &[("UserName", "nobody")])
        .await;
    let nobody = Client::new(&fake.rpc_url(), key_of(&nobody_key["AccessKey"]));
    assert_eq!(
        err(&nobody, assume(&reader, "s1", "900")).await,
        (403, "NoPermission".to_owned())
    );

    for (params, expected) in [
        (
            assume("reader", "s1", "900"),
            (400, "InvalidParameter.RoleArn"),
        ),
        (
            assume(&reader, "a", "900"),
            (400, "InvalidParameter.RoleSessionName"),
        ),
        (
            assume(&reader, "bad name", "900"),
            (400, "InvalidParameter.RoleSessionName"),
        ),
        (
            assume(&reader, "s1", "899"),
            (400, "InvalidParameter.DurationSeconds"),
        ),
        (
            assume(&reader, "s1", "7201"),
            (400, "InvalidParameter.DurationSeconds"),
        ),
        (
            assume(&arn("missing"), "s1", "900"),
            (404, "EntityNotExist.Role"),
        ),
        (
            assume(&arn("others-only"), "s1", "900"),
            (403, "NoPermission"),
        ),
        (
            vec![("RoleSessionName".to_owned(), "s1".to_owned())],
            (400, "MissingParameter"),
        ),
    ] {
        let got = err(&user, params.clone()).await;
        assert_eq!((got.0, got.1.as_str()), expected, "{params:?}");
    }

    // The role's maximum (7200 here) is allowed; the credentials have the real shape.
    let borrowed = assume(&reader, "deployer@ci", "7200");
    let borrowed: Vec<(&str, &str)> = borrowed
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let answer = user.ok(STS, "AssumeRole", &borrowed).await;
    let credentials = &answer["Credentials"];
    assert!(credentials["AccessKeyId"]
        .as_str()
        .unwrap()
        .starts_with("STS."));
    assert!(!credentials["SecurityToken"].as_str().unwrap().is_empty());
    let expiration = credentials["Expiration"].as_str().unwrap();
    assert!(
        expiration.len() == 20 && expiration.ends_with('Z'),
        "{expiration}"
    );
    assert_eq!(
        answer["AssumedRoleUser"]["Arn"],
        format!("{reader}/deployer@ci")
    );
    assert!(answer["RequestId"].is_string());
}

#[tokio::test]
async fn temporary_keys_need_their_token_and_act_with_the_role() {
    let (fake, root) = start().await;
    let user = assuming_user(&fake.rpc_url(), &root, "deployer").await;
    reader_role(
        &root,
        "reader",
        json!({"RAM": [format!("acs:ram::{ACCOUNT_ID}:root")]}),
        None,
    )
    .await;
    let answer = user
        .ok(
            STS,
            "AssumeRole",
            &[("RoleArn", &arn("reader")), ("RoleSessionName", "s1")],
        )
        .await;
    let credentials = &answer["Credentials"];
    let token = credentials["SecurityToken"].as_str().unwrap().to_owned();
    let mut session = Client::new(&fake.rpc_url(), key_of(credentials));
    let list = [("RegionId", "cn-hangzhou")];

    // Without its token the key is refused; with another token too.
    assert_eq!(
        session.err(RDS, "DescribeDBInstances", &list).await,
        (400, "MissingSecurityToken".to_owned())
    );
    session.security_token = Some(format!("{token}x"));
    assert_eq!(
        session.err(RDS, "DescribeDBInstances", &list).await,
        (400, "InvalidSecurityToken.MismatchWithAccessKey".to_owned())
    );

    // With it, the role's policy decides: reads yes, writes and RAM no.
    session.security_token = Some(token.clone());
    session.ok(RDS, "DescribeDBInstances", &list).await;
    assert_eq!(
        session
            .err(RAM, "ListAccessKeys", &[("UserName", "deployer")])
            .await,
        (403, "NoPermission".to_owned())
    );
    let identity = session.ok(STS, "GetCallerIdentity", &[]).await;
    assert_eq!(identity["IdentityType"], "AssumedRoleUser");
    assert_eq!(
        identity["Arn"],
        format!("acs:ram::{ACCOUNT_ID}:assumed-role/reader/s1")
    );

    // A long-lived key with a token is refused.
    let mut with_token = Client::new(&fake.rpc_url(), user.key.clone());
    with_token.security_token = Some(token.clone());
    assert_eq!(
        with_token.err(RDS, "DescribeDBInstances", &list).await,
        (400, "InvalidSecurityToken.MismatchWithAccessKey".to_owned())
    );

    // Once the session ends, the key is refused as expired.
    reqwest::Client::new()
        .post(format!("{}/__fake/expire-sessions", fake.rpc_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        session.err(RDS, "DescribeDBInstances", &list).await,
        (400, "InvalidSecurityToken.Expired".to_owned())
    );
    let sessions = &fake.snapshot()["ram"]["sessions"];
    assert_eq!(sessions[0]["role"], "reader");
    assert!(!sessions.to_string().contains(&token));
}

/// An unsigned JWT (the fake does not verify signatures).
fn jwt(claims: Value) -> String {
    let encode =
        |value: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.c2ln",
        encode(json!({"alg": "RS256"})),
        encode(claims)
    )
}

/// AssumeRoleWithOIDC as Alibaba's credential tools send it: unsigned, the common
/// parameters in the query and the call's in a form body.
async fn assume_with_oidc(url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{url}/?Action=AssumeRoleWithOIDC&Version={STS}&Format=JSON&Timestamp=2024-05-01T12%3A00%3A00Z"
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form.iter()
                .map(|(name, value)| {
                    let encode = |text: &str| {
                        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                            .to_string()
                    };
                    format!("{}={}", encode(name), encode(value))
                })
                .collect::<Vec<_>>()
                .join("&"),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn assume_role_with_oidc_checks_the_provider_and_the_token() {
    let (fake, root) = start().await;
    let issuer = "https://oidc.example/cluster-1";
    let provider = fake.add_oidc_provider("cluster-1", issuer, &["sts.aliyuncs.com"]);
    reader_role(
        &root,
        "pods",
        json!({"Federated": [provider.clone()]}),
        None,
    )
    .await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = |iss: &str, aud: &str, exp: i64| {
        jwt(json!({"iss": iss, "aud": aud, "sub": "system:serviceaccount:ns:sa", "exp": exp}))
    };
    let good = token(issuer, "sts.aliyuncs.com", now + 600);
    let role = arn("pods");
    let call = |provider: &str, token: &str| {
        vec![
            ("RoleArn".to_owned(), role.clone()),
            ("OIDCProviderArn".to_owned(), provider.to_owned()),
            ("OIDCToken".to_owned(), token.to_owned()),
            ("RoleSessionName".to_owned(), "pod-1".to_owned()),
        ]
    };
    let unknown_provider = format!("acs:ram::{ACCOUNT_ID}:oidc-provider/other");
    for (form, expected) in [
        (
            call(&unknown_provider, &good),
            (404, "EntityNotExist.OIDCProvider"),
        ),
        (
            call(&provider, "not.a.jwt"),
            (401, "AuthenticationFail.OIDCToken.Invalid"),
        ),
        (
            call(
                &provider,
                &token("https://evil.example", "sts.aliyuncs.com", now + 600),
            ),
            (401, "AuthenticationFail.OIDCToken.Invalid"),
        ),
        (
            call(&provider, &token(issuer, "someone-else", now + 600)),
            (401, "AuthenticationFail.OIDCToken.Invalid"),
        ),
        (
            call(&provider, &token(issuer, "sts.aliyuncs.com", now - 1)),
            (401, "AuthenticationFail.OIDCToken.Expired"),
        ),
    ] {
        let borrowed: Vec<(&str, &str)> = form
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let (status, body) = assume_with_oidc(&fake.rpc_url(), &borrowed).await;
        assert_eq!(
            (status, body["Code"].as_str().unwrap_or_default()),
            expected,
            "{body}"
        );
    }

    let form = call(&provider, &good);
    let borrowed: Vec<(&str, &str)> = form
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let (status, body) = assume_with_oidc(&fake.rpc_url(), &borrowed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["OIDCTokenInfo"]["Issuer"], issuer);
    let mut session = Client::new(&fake.rpc_url(), key_of(&body["Credentials"]));
    session.security_token = body["Credentials"]["SecurityToken"]
        .as_str()
        .map(str::to_owned);
    session
        .ok(RDS, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
        .await;

    // Other actions are never anonymous.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/?Action=AssumeRole&Version={STS}",
            fake.rpc_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Code"], "IncompleteSignature");
}

#[tokio::test]
async fn the_metadata_service_serves_the_instance_role_in_hardened_mode() {
    let (fake, root) = crate::start_with(skybroker_alibaba_fake::FakeConfig {
        ecs_ram_role: Some("instance-role".to_owned()),
        ..skybroker_alibaba_fake::FakeConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let base = fake.metadata_url();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.header("X-aliyun-ecs-metadata-token", token);
        }
        request.send()
    };
    let list = "/latest/meta-data/ram/security-credentials/";
    // No token, no answer (hardened mode).
    assert_eq!(get(list, None).await.unwrap().status().as_u16(), 401);
    let bad_ttl = http
        .put(format!("{base}/latest/api/token"))
        .header("X-aliyun-ecs-metadata-token-ttl-seconds", "999999")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_ttl.status().as_u16(), 400);
    let token = http
        .put(format!("{base}/latest/api/token"))
        .header("X-aliyun-ecs-metadata-token-ttl-seconds", "60")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let name = get(list, Some(&token)).await.unwrap().text().await.unwrap();
    assert_eq!(name, "instance-role");
    // The role does not exist in RAM yet.
    let path = format!("{list}instance-role");
    assert_eq!(
        get(&path, Some(&token)).await.unwrap().status().as_u16(),
        404
    );

    reader_role(
        &root,
        "instance-role",
        json!({"Service": ["ecs.aliyuncs.com"]}),
        None,
    )
    .await;
    let document: Value = serde_json::from_str(
        &get(&path, Some(&token))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(document["Code"], "Success");
    for field in [
        "AccessKeyId",
        "AccessKeySecret",
        "SecurityToken",
        "Expiration",
        "LastUpdated",
    ] {
        assert!(document[field].is_string(), "{field} in {document}");
    }
    // Asked again, the same credentials (rotated only after half their life).
    let again: Value = serde_json::from_str(
        &get(&path, Some(&token))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(again["AccessKeyId"], document["AccessKeyId"]);
    let mut session = Client::new(&fake.rpc_url(), key_of(&document));
    session.security_token = document["SecurityToken"].as_str().map(str::to_owned);
    session
        .ok(RDS, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
        .await;
    // Another role name is not the instance's.
    assert_eq!(
        get(&format!("{list}other"), Some(&token))
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}
