//! Signature V3 as the gateway checks it: each broken request gets the real code.

use reqwest::StatusCode;
use time::OffsetDateTime;

use crate::client::{Call, Client, Key, Tamper, RAM};
use crate::start;

fn get_user_missing() -> Call {
    Call::new(RAM, "GetUser", &[("UserName", "nobody")])
}

#[tokio::test]
async fn a_signed_call_is_accepted_with_the_real_answer_shape() {
    let (_fake, client) = start().await;
    let created = client
        .ok(
            RAM,
            "CreateUser",
            &[("UserName", "alice"), ("DisplayName", "Alice A.")],
        )
        .await;
    assert_eq!(created["User"]["UserName"], "alice");
    assert_eq!(created["User"]["DisplayName"], "Alice A.");
    assert!(created["RequestId"]
        .as_str()
        .is_some_and(|id| id.len() == 36));

    // A product error has the gateway's error shape.
    let (status, body) = client.send(&get_user_missing(), Tamper::None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["Code"], "EntityNotExist.User");
    assert_eq!(body["HostId"], "ram.aliyuncs.com");
    for field in ["RequestId", "Message", "Recommend"] {
        assert!(body[field].is_string(), "{field} in {body}");
    }
}

#[tokio::test]
async fn parameters_may_come_in_a_form_body() {
    let (_fake, client) = start().await;
    let mut call = Call::new(RAM, "CreateUser", &[]);
    call.form = vec![
        ("UserName".to_owned(), "bob".to_owned()),
        (
            "Comments".to_owned(),
            "made from a form body: a+b=c & more".to_owned(),
        ),
    ];
    let (status, body) = client.send(&call, Tamper::None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["User"]["Comments"],
        "made from a form body: a+b=c & more"
    );
}

#[tokio::test]
async fn a_changed_signature_does_not_match() {
    let (_fake, client) = start().await;
    let (status, body) = client.send(&get_user_missing(), Tamper::Signature).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["Code"], "SignatureDoesNotMatch");
    let message = body["Message"].as_str().unwrap();
    assert!(
        message.starts_with("Specified signature does not match our calculation. server string to sign is:ACS3-HMAC-SHA256\n"),
        "{message}"
    );
}

#[tokio::test]
async fn a_body_other_than_the_signed_one_does_not_match() {
    let (_fake, client) = start().await;
    let (status, body) = client.send(&get_user_missing(), Tamper::Body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["Code"], "SignatureDoesNotMatch");
}

#[tokio::test]
async fn a_wrong_secret_does_not_match_and_an_unknown_key_is_not_found() {
    let (fake, client) = start().await;
    let wrong_secret = Client::new(
        &fake.rpc_url(),
        Key {
            id: client.key.id.clone(),
            secret: "not-the-secret".to_owned(),
        },
    );
    let (status, body) = wrong_secret.send(&get_user_missing(), Tamper::None).await;
    assert_eq!(
        (status.as_u16(), body["Code"].as_str()),
        (400, Some("SignatureDoesNotMatch"))
    );

    let unknown = Client::new(
        &fake.rpc_url(),
        Key {
            id: "LTAI5tNoSuchKey000000000".to_owned(),
            secret: "x".to_owned(),
        },
    );
    let (status, body) = unknown.send(&get_user_missing(), Tamper::None).await;
    assert_eq!(
        (status.as_u16(), body["Code"].as_str()),
        (404, Some("InvalidAccessKeyId.NotFound"))
    );
}

#[tokio::test]
async fn a_stale_or_future_date_is_expired() {
    let (_fake, client) = start().await;
    for offset in [time::Duration::minutes(-16), time::Duration::minutes(16)] {
        let mut call = get_user_missing();
        call.date = OffsetDateTime::now_utc() + offset;
        let (status, body) = client.send(&call, Tamper::None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["Code"], "InvalidTimeStamp.Expired", "{offset}");
    }
    // Within the window is fine.
    let mut call = get_user_missing();
    call.date = OffsetDateTime::now_utc() - time::Duration::minutes(14);
    let (status, body) = client.send(&call, Tamper::None).await;
    assert_eq!(body["Code"], "EntityNotExist.User", "{status}");
}

#[tokio::test]
async fn a_nonce_is_single_use() {
    let (_fake, client) = start().await;
    let call = Call::new(RAM, "CreateUser", &[("UserName", "carol")]);
    let (status, _) = client.send(&call, Tamper::None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = client.send(&call, Tamper::None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["Code"], "SignatureNonceUsed");
}

#[tokio::test]
async fn incomplete_signatures_are_refused() {
    let (fake, client) = start().await;
    for tamper in [Tamper::DropNonce, Tamper::UnsignedAcsHeader] {
        let (status, body) = client.send(&get_user_missing(), tamper).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{tamper:?}");
        assert_eq!(body["Code"], "IncompleteSignature", "{tamper:?}");
    }
    // No Authorization at all.
    let response = {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }
    .post(format!("{}/?UserName=x", fake.rpc_url()))
    .header("x-acs-action", "GetUser")
    .header("x-acs-version", RAM)
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["Code"], "IncompleteSignature");
}

#[tokio::test]
async fn unknown_versions_and_actions() {
    let (_fake, client) = start().await;
    let (status, body) = client
        .send(&Call::new("2099-01-01", "GetUser", &[]), Tamper::None)
        .await;
    assert_eq!(
        (status.as_u16(), body["Code"].as_str()),
        (400, Some("InvalidVersion"))
    );
    let (status, body) = client
        .send(&Call::new(RAM, "CreateGroup", &[]), Tamper::None)
        .await;
    assert_eq!(
        (status.as_u16(), body["Code"].as_str()),
        (404, Some("InvalidAction.NotFound"))
    );
}
