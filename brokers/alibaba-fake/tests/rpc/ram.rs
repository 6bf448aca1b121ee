//! RAM over HTTP, and RAM users' keys calling RDS and RAM under their policies.

use crate::client::{Client, Key, RAM, RDS};
use crate::{mysql_instance, start};

#[tokio::test]
async fn a_binding_user_lives_and_dies() {
    let (fake, root) = start().await;
    root.ok(RAM, "CreateUser", &[("UserName", "sb-binding-1")])
        .await;
    let key = root
        .ok(RAM, "CreateAccessKey", &[("UserName", "sb-binding-1")])
        .await;
    let key_id = key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned();
    assert!(key_id.starts_with("LTAI"));
    let document = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["rds:Describe*"],"Resource":"*"}]}"#;
    root.ok(
        RAM,
        "CreatePolicy",
        &[("PolicyName", "sb-binding-1"), ("PolicyDocument", document)],
    )
    .await;
    let attach = [
        ("PolicyType", "Custom"),
        ("PolicyName", "sb-binding-1"),
        ("UserName", "sb-binding-1"),
    ];
    root.ok(RAM, "AttachPolicyToUser", &attach).await;

    let snapshot = fake.snapshot();
    let user = &snapshot["ram"]["users"][0];
    assert_eq!(user["name"], "sb-binding-1");
    assert_eq!(user["access_keys"][0], key_id.as_str());
    assert_eq!(user["policies"][0]["name"], "sb-binding-1");
    assert!(!snapshot
        .to_string()
        .contains(key["AccessKey"]["AccessKeySecret"].as_str().unwrap()));

    let (status, code) = root
        .err(RAM, "DeleteUser", &[("UserName", "sb-binding-1")])
        .await;
    assert_eq!(
        (status, code.as_str()),
        (409, "DeleteConflict.User.AccessKey")
    );
    root.ok(
        RAM,
        "DeleteAccessKey",
        &[("UserName", "sb-binding-1"), ("UserAccessKeyId", &key_id)],
    )
    .await;
    let (status, code) = root
        .err(RAM, "DeleteUser", &[("UserName", "sb-binding-1")])
        .await;
    assert_eq!((status, code.as_str()), (409, "DeleteConflict.User.Policy"));
    let (status, code) = root
        .err(RAM, "DeletePolicy", &[("PolicyName", "sb-binding-1")])
        .await;
    assert_eq!((status, code.as_str()), (409, "DeleteConflict.Policy.User"));
    root.ok(RAM, "DetachPolicyFromUser", &attach).await;
    root.ok(RAM, "DeletePolicy", &[("PolicyName", "sb-binding-1")])
        .await;
    root.ok(RAM, "DeleteUser", &[("UserName", "sb-binding-1")])
        .await;
    assert_eq!(fake.snapshot()["ram"]["users"], serde_json::json!([]));
}

#[tokio::test]
async fn user_keys_are_held_to_their_policies_and_die_with_deletion() {
    let (fake, root) = start().await;
    root.ok(RAM, "CreateUser", &[("UserName", "reader")]).await;
    let key = root
        .ok(RAM, "CreateAccessKey", &[("UserName", "reader")])
        .await;
    let reader = Client::new(
        &fake.rpc_url(),
        Key {
            id: key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
            secret: key["AccessKey"]["AccessKeySecret"]
                .as_str()
                .unwrap()
                .to_owned(),
        },
    );

    // No policy: nothing is allowed.
    let (status, code) = reader
        .err(RDS, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
        .await;
    assert_eq!((status, code.as_str()), (403, "Forbidden.RAM"));

    root.ok(
        RAM,
        "AttachPolicyToUser",
        &[
            ("PolicyType", "System"),
            ("PolicyName", "AliyunRDSReadOnlyAccess"),
            ("UserName", "reader"),
        ],
    )
    .await;
    reader
        .ok(RDS, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
        .await;
    let (status, body) = reader
        .send(
            &crate::client::Call::new(RDS, "CreateDBInstance", &mysql_instance("x")),
            crate::client::Tamper::None,
        )
        .await;
    assert_eq!(status.as_u16(), 403);
    assert_eq!(body["Code"], "Forbidden.RAM");
    assert_eq!(
        body["AccessDeniedDetail"]["AuthAction"],
        "rds:CreateDBInstance"
    );
    assert_eq!(
        body["AccessDeniedDetail"]["NoPermissionType"],
        "ImplicitDeny"
    );
    let (status, code) = reader.err(RAM, "GetUser", &[("UserName", "reader")]).await;
    assert_eq!((status, code.as_str()), (403, "NoPermission"));

    // An explicit Deny wins over the system policy's Allow.
    let deny = r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"rds:DescribeDBInstances","Resource":"*"}]}"#;
    root.ok(
        RAM,
        "CreatePolicy",
        &[("PolicyName", "no-listing"), ("PolicyDocument", deny)],
    )
    .await;
    root.ok(
        RAM,
        "AttachPolicyToUser",
        &[
            ("PolicyType", "Custom"),
            ("PolicyName", "no-listing"),
            ("UserName", "reader"),
        ],
    )
    .await;
    let (status, body) = reader
        .send(
            &crate::client::Call::new(RDS, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")]),
            crate::client::Tamper::None,
        )
        .await;
    assert_eq!(status.as_u16(), 403);
    assert_eq!(
        body["AccessDeniedDetail"]["NoPermissionType"],
        "ExplicitDeny"
    );

    // A deleted key stops working at once.
    root.ok(
        RAM,
        "DeleteAccessKey",
        &[("UserName", "reader"), ("UserAccessKeyId", &reader.key.id)],
    )
    .await;
    let (status, code) = reader
        .err(RDS, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
        .await;
    assert_eq!(
        (status, code.as_str()),
        (404, "InvalidAccessKeyId.NotFound")
    );
}

#[tokio::test]
async fn malformed_policies_and_limits() {
    let (_fake, root) = start().await;
    let (status, code) = root
        .err(
            RAM,
            "CreatePolicy",
            &[
                ("PolicyName", "p"),
                ("PolicyDocument", r#"{"Version":"1"}"#),
            ],
        )
        .await;
    assert_eq!((status, code.as_str()), (400, "MalformedPolicyDocument"));
    root.ok(RAM, "CreateUser", &[("UserName", "u")]).await;
    root.ok(RAM, "CreateAccessKey", &[("UserName", "u")]).await;
    root.ok(RAM, "CreateAccessKey", &[("UserName", "u")]).await;
    let (status, code) = root.err(RAM, "CreateAccessKey", &[("UserName", "u")]).await;
    assert_eq!(
        (status, code.as_str()),
        (409, "LimitExceeded.User.AccessKey")
    );
    let (status, code) = root.err(RAM, "CreateUser", &[("UserName", "u")]).await;
    assert_eq!((status, code.as_str()), (409, "EntityAlreadyExists.User"));
}
