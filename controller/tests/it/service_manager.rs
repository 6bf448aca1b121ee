//! The Service Manager (issue #18), black box: a second, real Skybroker process with the
//! sandbox (its own port, data dir and catalog ids) registered over HTTP as an external
//! broker; platforms registered with credentials of their own; visibilities; provision,
//! bind, poll, unbind and deprovision through the central broker's `/v2`, forwarded to the
//! external one; tracking in `/v1/service_instances`; and every refusal.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skybroker_config::Secret;

use crate::harness::*;
use crate::servers::Serve;

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
/// The external broker's catalog: the built-in sandbox with other ids and names.
const EXTERNAL_PREFIX: &str = "e1e1e1e1-7b44-4a0e-9a6a-5a1d1c0f";
const EXTERNAL_SERVICE: &str = "e1e1e1e1-7b44-4a0e-9a6a-5a1d1c0f0001";
const EXTERNAL_SYNC: &str = "e1e1e1e1-7b44-4a0e-9a6a-5a1d1c0f1001";
const EXTERNAL_ASYNC: &str = "e1e1e1e1-7b44-4a0e-9a6a-5a1d1c0f1002";

/// The external broker: the built-in configuration with its ids and name changed.
async fn external(dir: &std::path::Path) -> Serve {
    external_with(dir, "").await
}

/// [`external`], its catalog's offering followed by `more` (TOML: plans to add).
async fn external_with(dir: &std::path::Path, more: &str) -> Serve {
    let config = skybroker_config::DEFAULT_CONFIG
        .replace("5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f", EXTERNAL_PREFIX)
        .replace("name = \"sandbox\"", "name = \"external-sandbox\"")
        .replace("delay_ms = 1000", "delay_ms = 300")
        + more;
    let path = dir.join("external.toml");
    std::fs::write(&path, config).expect("write the external broker's configuration");
    Serve::start(&path, &dir.join("external-data"), &[]).await
}

/// A plan the external broker offers once restarted with it.
const ADDED_PLAN: &str = "e1e1e1e1-7b44-4a0e-9a6a-5a1d1c0f1099";

/// The central broker, with an admin token.
async fn central() -> Broker {
    let mut config = fast_config(300);
    config.server.admin_tokens = vec![Secret::new(ADMIN_TOKEN)];
    Broker::with_config(config).await
}

/// A `/v1` call with `token`.
async fn admin_as(
    broker: &Broker,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = broker
        .client
        .request(method, format!("{}/v1{path}", broker.url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    broker.send(request).await
}

async fn admin(
    broker: &Broker,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    admin_as(broker, ADMIN_TOKEN, method, path, body).await
}

/// An OSB call on the central broker as a platform.
fn as_platform(
    broker: &Broker,
    (username, password): &(String, String),
    method: Method,
    path: &str,
) -> reqwest::RequestBuilder {
    broker
        .client
        .request(method, format!("{}{path}", broker.url))
        .basic_auth(username, Some(password))
        .header("X-Broker-API-Version", "2.17")
}

/// Registers a platform; its credentials.
async fn platform(broker: &Broker, name: &str) -> (String, (String, String)) {
    let (status, body) = admin(
        broker,
        Method::POST,
        "/platforms",
        Some(json!({"name": name, "type": "cloudfoundry"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let basic = &body["credentials"]["basic"];
    let password = basic["password"].as_str().expect("a password").to_owned();
    assert!(password.len() >= 43, "32 random bytes at least: {password}");
    (
        body["id"].as_str().unwrap().to_owned(),
        (basic["username"].as_str().unwrap().to_owned(), password),
    )
}

/// The Service Manager id of the plan whose catalog id is `catalog_id`.
async fn sm_plan(broker: &Broker, catalog_id: &str) -> String {
    let (status, body) = admin(broker, Method::GET, "/service_plans", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|plan| plan["catalog_id"] == catalog_id)
        .and_then(|plan| plan["id"].as_str())
        .unwrap_or_else(|| panic!("no plan {catalog_id} in {body}"))
        .to_owned()
}

/// Polls an operation through the central broker as a platform until it ends.
async fn wait(
    broker: &Broker,
    credentials: &(String, String),
    path: &str,
    operation: &str,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = broker
            .send(as_platform(
                broker,
                credentials,
                Method::GET,
                &format!("{path}/last_operation?operation={operation}"),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["state"] != "in progress" {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} still in progress"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_broker_serves_platforms_through_the_central_one() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut ext = external(dir.path()).await;
    let broker = central().await;

    // Register the external broker.
    let registration = json!({
        "name": "external",
        "broker_url": ext.api,
        "credentials": {"basic": {"username": USER, "password": PASSWORD}},
    });
    let (status, body) = admin(
        &broker,
        Method::POST,
        "/service_brokers",
        Some(registration.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}\n{}", ext.output());
    let broker_id = body["id"].as_str().unwrap().to_owned();
    assert!(body.get("credentials").is_none(), "never shown: {body}");
    let (status, _) = admin(
        &broker,
        Method::POST,
        "/service_brokers",
        Some(registration),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a second broker of the same name"
    );

    // Two platforms; the async plan visible to the first only.
    let (cf_id, cf) = platform(&broker, "cf-eu").await;
    let (_k8s_id, k8s) = platform(&broker, "k8s-us").await;
    let plan = sm_plan(&broker, EXTERNAL_ASYNC).await;
    let (status, body) = admin(
        &broker,
        Method::POST,
        "/visibilities",
        Some(json!({"service_plan_id": plan, "platform_id": cf_id})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Each platform's catalog holds what it sees; the broker's own credentials see all.
    let (status, catalog) = broker
        .send(as_platform(&broker, &cf, Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(status, StatusCode::OK, "{catalog}");
    let services = catalog["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "{catalog}");
    assert_eq!(services[0]["id"], EXTERNAL_SERVICE);
    let plans: Vec<&Value> = services[0]["plans"].as_array().unwrap().iter().collect();
    assert_eq!(plans.len(), 1, "{catalog}");
    assert_eq!(plans[0]["id"], EXTERNAL_ASYNC);
    let (_, catalog) = broker
        .send(as_platform(&broker, &k8s, Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(catalog["services"], json!([]), "nothing visible to k8s-us");
    let (_, catalog) = broker
        .send(broker.request(Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(
        catalog["services"].as_array().unwrap().len(),
        2,
        "{catalog}"
    );

    // A platform without visibility cannot use the plan; wrong credentials are 401.
    let instance = new_id("sm");
    let provision = json!({
        "service_id": EXTERNAL_SERVICE, "plan_id": EXTERNAL_ASYNC,
        "context": {"platform": "cloudfoundry", "organization_guid": "org", "space_guid": "space"},
    });
    let path = format!("/v2/service_instances/{instance}");
    let (status, body) = broker
        .send(
            as_platform(
                &broker,
                &k8s,
                Method::PUT,
                &format!("{path}?accepts_incomplete=true"),
            )
            .json(&provision),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["description"].is_string());
    let wrong = (cf.0.clone(), "not-the-password".to_owned());
    let (status, _) = broker
        .send(as_platform(&broker, &wrong, Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Provision through the central broker: forwarded, polled, tracked.
    let (status, body) = broker
        .send(
            as_platform(
                &broker,
                &cf,
                Method::PUT,
                &format!("{path}?accepts_incomplete=true"),
            )
            .json(&provision),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let operation = body["operation"].as_str().unwrap().to_owned();
    let done = wait(&broker, &cf, &path, &operation).await;
    assert_eq!(done["state"], "succeeded", "{done}\n{}", ext.output());
    let (status, remote) = ext.call(Method::GET, &path, None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the external broker holds it: {remote}"
    );
    let (status, tracked) = admin(
        &broker,
        Method::GET,
        &format!("/service_instances/{instance}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tracked}");
    assert_eq!(tracked["broker_id"], broker_id.as_str());
    assert_eq!(tracked["service_plan_id"], plan.as_str());
    let (_, listed) = admin(&broker, Method::GET, "/service_instances", None).await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == instance.as_str()),
        "{listed}"
    );
    // The external broker saw who asked: the originating identity was passed on.
    assert!(
        ext.output().contains(&operation),
        "the request identity (our operation id) reached the external broker's log"
    );

    // A broker with instances is not deleted.
    let (status, body) = admin(
        &broker,
        Method::DELETE,
        &format!("/service_brokers/{broker_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Bind (asynchronous on the async plan), credentials fetched once it succeeded.
    let binding = new_id("smb");
    let binding_path = format!("{path}/service_bindings/{binding}");
    let (status, body) = broker
        .send(
            as_platform(
                &broker,
                &cf,
                Method::PUT,
                &format!("{binding_path}?accepts_incomplete=true"),
            )
            .json(&json!({"service_id": EXTERNAL_SERVICE, "plan_id": EXTERNAL_ASYNC})),
        )
        .await;
    let credentials = match status {
        StatusCode::ACCEPTED => {
            let operation = body["operation"].as_str().unwrap().to_owned();
            let done = wait(&broker, &cf, &binding_path, &operation).await;
            assert_eq!(done["state"], "succeeded", "{done}");
            let (status, fetched) = broker
                .send(as_platform(&broker, &cf, Method::GET, &binding_path))
                .await;
            assert_eq!(status, StatusCode::OK, "{fetched}");
            fetched["credentials"].clone()
        }
        StatusCode::CREATED => body["credentials"].clone(),
        other => panic!("bind answered {other}: {body}"),
    };
    let (status, remote) = ext.call(Method::GET, &binding_path, None).await;
    assert_eq!(status, StatusCode::OK, "{remote}");
    assert_eq!(
        credentials, remote["credentials"],
        "the external broker's credentials"
    );

    // The binding is tracked (without its credentials), and both can be labelled and found
    // by label; the provision is an operation of the instance, and of no other.
    let by_instance = format!("/service_bindings?fieldQuery=service_instance_id eq '{instance}'");
    let (status, listed) = admin(&broker, Method::GET, &by_instance, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["num_items"], 1, "{listed}");
    let tracked = &listed["items"][0];
    assert_eq!(tracked["id"], binding.as_str());
    assert_eq!(tracked["state"], "bound");
    assert_eq!(tracked["platform_id"], cf_id.as_str());
    assert_eq!(tracked["broker_id"], broker_id.as_str());
    assert!(
        tracked.get("credentials").is_none() && !listed.to_string().contains("password"),
        "no credentials in the Service Manager's view: {listed}"
    );
    for (resource, id) in [
        ("service_instances", &instance),
        ("service_bindings", &binding),
    ] {
        let (status, body) = admin(
            &broker,
            Method::PATCH,
            &format!("/{resource}/{id}"),
            Some(json!({"labels": [{"op": "add", "key": "team", "values": ["db"]}]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["labels"], json!({"team": ["db"]}), "{body}");
        let (_, found) = admin(
            &broker,
            Method::GET,
            &format!("/{resource}?labelQuery=team eq 'db'"),
            None,
        )
        .await;
        assert_eq!(found["num_items"], 1, "{found}");
        assert_eq!(found["items"][0]["id"], id.as_str());
        let (status, body) = admin(
            &broker,
            Method::PATCH,
            &format!("/{resource}/{id}"),
            Some(json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "nothing to change: {body}");
    }
    let (status, shown) = admin(
        &broker,
        Method::GET,
        &format!("/service_instances/{instance}/operations/{operation}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(
        (&shown["type"], &shown["state"], &shown["resource_id"]),
        (&json!("create"), &json!("succeeded"), &json!(instance))
    );
    let (status, _) = admin(
        &broker,
        Method::GET,
        &format!("/service_bindings/{binding}/operations/{operation}"),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the provision is not the binding's"
    );

    // Unbind and deprovision, forwarded; the external broker no longer has them.
    for (target, query) in [
        (
            &binding_path,
            format!("service_id={EXTERNAL_SERVICE}&plan_id={EXTERNAL_ASYNC}"),
        ),
        (
            &path,
            format!("service_id={EXTERNAL_SERVICE}&plan_id={EXTERNAL_ASYNC}"),
        ),
    ] {
        let (status, body) = broker
            .send(as_platform(
                &broker,
                &cf,
                Method::DELETE,
                &format!("{target}?accepts_incomplete=true&{query}"),
            ))
            .await;
        let operation = match status {
            StatusCode::ACCEPTED => body["operation"].as_str().unwrap().to_owned(),
            StatusCode::OK => String::new(),
            other => panic!("delete answered {other}: {body}"),
        };
        if !operation.is_empty() {
            let done = wait(&broker, &cf, target, &operation).await;
            assert_eq!(done["state"], "succeeded", "{done}");
        }
        let (status, _) = ext.call(Method::GET, target, None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{target} gone at the external broker"
        );
    }

    // A stopped external broker: a synchronous provision answers 502, nothing succeeded.
    let (_, sync_plan) = ((), sm_plan(&broker, EXTERNAL_SYNC).await);
    let (status, _) = admin(
        &broker,
        Method::POST,
        "/visibilities",
        Some(json!({"service_plan_id": sync_plan})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "visible to every platform");
    ext.kill9();
    let stopped = new_id("sm-stopped");
    let (status, body) = broker
        .send(
            as_platform(
                &broker,
                &cf,
                Method::PUT,
                &format!("/v2/service_instances/{stopped}"),
            )
            .json(
                &json!({"service_id": EXTERNAL_SERVICE, "plan_id": EXTERNAL_SYNC,
                              "context": {"platform": "cloudfoundry"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["description"]
            .as_str()
            .is_some_and(|d| d.contains("unreachable")),
        "{body}"
    );
    let (status, _) = broker
        .send(as_platform(
            &broker,
            &cf,
            Method::GET,
            &format!("/v2/service_instances/{stopped}"),
        ))
        .await;
    assert_ne!(status, StatusCode::OK, "never fetchable as existing");

    // The platform cleans up the failed instance (orphan mitigation) once the broker is back,
    // at a new address and with a plan more: PATCH points the registration there and fetches
    // the catalog again.
    let added = format!(
        "\n[[services.plans]]\nid = \"{ADDED_PLAN}\"\nname = \"added\"\n\
         description = \"Offered after the registration.\"\nsettings = {{ mode = \"sync\" }}\n"
    );
    let ext = external_with(dir.path(), &added).await;
    let (status, body) = admin(
        &broker,
        Method::PATCH,
        &format!("/service_brokers/{broker_id}"),
        Some(json!({"broker_url": ext.api})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let added_plan = sm_plan(&broker, ADDED_PLAN).await;
    let (_, catalog) = broker
        .send(broker.request(Method::GET, "/v2/catalog"))
        .await;
    assert!(
        catalog.to_string().contains(ADDED_PLAN),
        "the re-fetched catalog has the new plan ({added_plan}): {catalog}"
    );
    let (status, body) = broker
        .send(as_platform(
            &broker,
            &cf,
            Method::DELETE,
            &format!(
                "/v2/service_instances/{stopped}?service_id={EXTERNAL_SERVICE}&plan_id={EXTERNAL_SYNC}"
            ),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // With no instances left, the broker can go, and its plans with it.
    let (status, body) = admin(
        &broker,
        Method::DELETE,
        &format!("/service_brokers/{broker_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, catalog) = broker
        .send(broker.request(Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(
        catalog["services"].as_array().unwrap().len(),
        1,
        "{catalog}"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_store_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let ext = external(dir.path()).await;
    let broker = central().await;
    let register = |body: Value| admin(&broker, Method::POST, "/service_brokers", Some(body));

    // No token, a wrong token: 401 with an OSB body.
    let (status, body) = admin_as(&broker, "", Method::GET, "/service_brokers", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = admin_as(&broker, "guess", Method::GET, "/service_brokers", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["description"].is_string());
    // Platform credentials are not admin credentials.
    let (_, credentials) = platform(&broker, "cf").await;
    let (status, _) = broker
        .send(
            broker
                .client
                .get(format!("{}/v1/service_brokers", broker.url))
                .basic_auth(&credentials.0, Some(&credentials.1)),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Nobody listens there: 502 naming the URL.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (status, body) = register(json!({
        "name": "nowhere", "broker_url": closed,
        "credentials": {"basic": {"username": "u", "password": "p"}},
    }))
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["description"].as_str().unwrap().contains(&closed),
        "{body}"
    );

    // Wrong credentials at the external broker: 400 saying so.
    let (status, body) = register(json!({
        "name": "refused", "broker_url": ext.api,
        "credentials": {"basic": {"username": USER, "password": "wrong"}},
    }))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["description"].as_str().unwrap().contains("refused"),
        "{body}"
    );

    // The central broker itself: its catalog's ids clash with the built-in ones.
    let (status, body) = register(json!({
        "name": "myself", "broker_url": broker.url,
        "credentials": {"basic": {"username": USER, "password": PASSWORD}},
    }))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .contains("duplicate service id"),
        "{body}"
    );

    // Malformed requests.
    for bad in [
        json!({"broker_url": ext.api, "credentials": {"bearer": {"token": "t"}}}),
        json!({"name": "x", "broker_url": "ftp://nope", "credentials": {"bearer": {"token": "t"}}}),
        json!({"name": "x", "broker_url": ext.api}),
        json!({"name": "x", "broker_url": ext.api, "credentials": {"basic": {"username": "u"}}}),
    ] {
        let (status, body) = register(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = admin(&broker, Method::GET, "/service_brokers/no-such-id", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin(&broker, Method::GET, "/platforms/no-such-id", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // After all that, only the built-in broker is registered.
    let (status, body) = admin(&broker, Method::GET, "/service_brokers", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["num_items"], 1, "{body}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerated_platform_credentials_replace_the_old_ones() {
    let broker = central().await;
    let (id, old) = platform(&broker, "cf").await;
    let (status, _) = broker
        .send(as_platform(&broker, &old, Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = admin(
        &broker,
        Method::PATCH,
        &format!("/platforms/{id}?regenerate_credentials=true"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = (
        body["credentials"]["basic"]["username"]
            .as_str()
            .unwrap()
            .to_owned(),
        body["credentials"]["basic"]["password"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    assert_ne!(new.1, old.1);
    let (status, _) = broker
        .send(as_platform(&broker, &old, Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old password stopped working"
    );
    let (status, _) = broker
        .send(as_platform(&broker, &new, Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Listing and reading never show credentials again.
    let (_, listed) = admin(&broker, Method::GET, "/platforms", None).await;
    assert!(!listed.to_string().contains(&new.1), "{listed}");
    broker.stop().await;
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Instance ownership and sharing (issue #18 item 3): an instance belongs to the platform
/// that created it; another platform neither sees nor changes it until it is shared, and
/// then may bind to it, never update or delete it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_belong_to_their_platform_until_shared() {
    let broker = central().await;
    let (_, owner) = platform(&broker, "cf-owner").await;
    let (_, other) = platform(&broker, "cf-other").await;
    let plan = sm_plan(&broker, SYNC).await;
    let (status, _) = admin(
        &broker,
        Method::POST,
        "/visibilities",
        Some(json!({ "service_plan_id": plan })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let instance = new_id("owned");
    let path = format!("/v2/service_instances/{instance}");
    let (status, body) = broker
        .send(as_platform(&broker, &owner, Method::PUT, &path).json(&provision_body(SYNC)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Not shared: the other platform sees nothing and changes nothing.
    let delete = format!("{path}?service_id={SERVICE}&plan_id={SYNC}");
    let binding = format!("{path}/service_bindings/{}", new_id("b"));
    for (method, target, body, expected) in [
        (Method::GET, path.clone(), None, StatusCode::NOT_FOUND),
        (
            Method::GET,
            format!("{path}/last_operation"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            path.clone(),
            Some(provision_body(SYNC)),
            StatusCode::CONFLICT,
        ),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"service_id": SERVICE})),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            binding.clone(),
            Some(bind_body(SYNC)),
            StatusCode::NOT_FOUND,
        ),
        (Method::DELETE, delete.clone(), None, StatusCode::GONE),
    ] {
        let mut request = as_platform(&broker, &other, method.clone(), &target);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, body) = broker.send(request).await;
        assert_eq!(status, expected, "{method} {target}: {body}");
    }
    let (status, _) = broker.get_instance(&instance).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the broker's own credentials reach every instance"
    );

    // Shared: the other platform binds, reads and unbinds its binding; still no delete.
    let (status, body) = admin(
        &broker,
        Method::PATCH,
        &format!("/service_instances/{instance}"),
        Some(json!({"shared": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["shared"], true);
    let (status, body) = broker
        .send(as_platform(&broker, &other, Method::PUT, &binding).json(&bind_body(SYNC)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = broker
        .send(as_platform(&broker, &other, Method::GET, &binding))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = broker
        .send(as_platform(
            &broker,
            &other,
            Method::DELETE,
            &format!("{binding}?service_id={SERVICE}&plan_id={SYNC}"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = broker
        .send(as_platform(&broker, &other, Method::DELETE, &delete))
        .await;
    assert_eq!(status, StatusCode::GONE, "only the owner deprovisions");
    let (status, body) = broker
        .send(as_platform(&broker, &owner, Method::DELETE, &delete))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    broker.stop().await;
}

/// The body of a `/v1` answer against what the OpenAPI document says that operation answers
/// with that status (JSON Schema 2020-12, the document's components resolved).
fn conforms(doc: &Value, template: &str, method: &str, status: StatusCode, body: &Value) {
    let operation = &doc["paths"][template][method];
    assert!(
        operation.is_object(),
        "{method} {template} is not documented"
    );
    let response = &operation["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{method} {template} does not document {status}"
    );
    let mut schema = response["content"]["application/json"]["schema"].clone();
    assert!(
        schema.is_object(),
        "{method} {template} {status}: no schema"
    );
    schema["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&schema).expect("the documented schema compiles");
    let problems: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(
        problems.is_empty(),
        "{method} {template} {status}: {problems:?}\n{body}"
    );
}

/// Issue #18: the OpenAPI document at `/v1/openapi.json` covers every route, and real
/// answers (successes and refusals) match the schemas it gives for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_what_is_served() {
    let broker = central().await;
    let (status, doc) = broker
        .send(broker.client.get(format!("{}/v1/openapi.json", broker.url)))
        .await;
    assert_eq!(status, StatusCode::OK, "served without a token");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    for path in [
        "/v1/service_brokers",
        "/v1/service_brokers/{id}",
        "/v1/platforms",
        "/v1/platforms/{id}",
        "/v1/visibilities",
        "/v1/visibilities/{id}",
        "/v1/service_offerings",
        "/v1/service_offerings/{id}",
        "/v1/service_plans",
        "/v1/service_plans/{id}",
        "/v1/service_instances",
        "/v1/service_instances/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer",
        "{doc}"
    );

    let (status, platform) = admin(
        &broker,
        Method::POST,
        "/platforms",
        Some(json!({"name": "documented", "type": "kubernetes", "labels": {"env": ["dev"]}})),
    )
    .await;
    conforms(&doc, "/v1/platforms", "post", status, &platform);
    let id = platform["id"].as_str().unwrap().to_owned();
    let (status, body) = admin(&broker, Method::GET, "/platforms?max_items=1", None).await;
    conforms(&doc, "/v1/platforms", "get", status, &body);
    let (status, body) = admin(&broker, Method::GET, &format!("/platforms/{id}"), None).await;
    conforms(&doc, "/v1/platforms/{id}", "get", status, &body);
    let (status, body) = admin(&broker, Method::GET, "/service_brokers", None).await;
    conforms(&doc, "/v1/service_brokers", "get", status, &body);
    let (status, body) = admin(&broker, Method::GET, "/service_offerings", None).await;
    conforms(&doc, "/v1/service_offerings", "get", status, &body);
    let (status, plans) = admin(&broker, Method::GET, "/service_plans", None).await;
    conforms(&doc, "/v1/service_plans", "get", status, &plans);
    let plan = plans["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = admin(
        &broker,
        Method::GET,
        &format!("/service_plans/{plan}"),
        None,
    )
    .await;
    conforms(&doc, "/v1/service_plans/{id}", "get", status, &body);
    let (status, body) = admin(
        &broker,
        Method::POST,
        "/visibilities",
        Some(json!({"service_plan_id": plan, "platform_id": id})),
    )
    .await;
    conforms(&doc, "/v1/visibilities", "post", status, &body);
    let (status, body) = admin(&broker, Method::GET, "/visibilities", None).await;
    conforms(&doc, "/v1/visibilities", "get", status, &body);
    broker.provision_sync(&new_id("doc"), SYNC).await;
    let (status, instances) = admin(&broker, Method::GET, "/service_instances", None).await;
    conforms(&doc, "/v1/service_instances", "get", status, &instances);
    let instance = instances["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = admin(
        &broker,
        Method::PATCH,
        &format!("/service_instances/{instance}"),
        Some(json!({"shared": true})),
    )
    .await;
    conforms(&doc, "/v1/service_instances/{id}", "patch", status, &body);
    // Refusals are documented too.
    let (status, body) = admin(&broker, Method::GET, "/service_brokers/nope", None).await;
    conforms(&doc, "/v1/service_brokers/{id}", "get", status, &body);
    let (status, body) = admin(&broker, Method::POST, "/visibilities", Some(json!({}))).await;
    conforms(&doc, "/v1/visibilities", "post", status, &body);
    let (status, body) = admin_as(&broker, "wrong", Method::GET, "/platforms", None).await;
    conforms(&doc, "/v1/platforms", "get", status, &body);
    let (status, body) = admin(&broker, Method::DELETE, &format!("/platforms/{id}"), None).await;
    conforms(&doc, "/v1/platforms/{id}", "delete", status, &body);
    broker.stop().await;
}

/// Lists filter with `fieldQuery` and `labelQuery`, page with `max_items`/`token` and a
/// `Link` header, and labels change by PATCH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_page_and_labels_change() {
    let broker = central().await;
    for (name, kind, env) in [
        ("cf-a", "cloudfoundry", "dev"),
        ("cf-b", "cloudfoundry", "prod"),
        ("k8s-c", "kubernetes", "dev"),
    ] {
        let (status, body) = admin(
            &broker,
            Method::POST,
            "/platforms",
            Some(json!({"name": name, "type": kind, "labels": {"env": [env]}})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(
        platform_names(&broker, "fieldQuery=type%20eq%20'cloudfoundry'").await,
        ["cf-a", "cf-b"]
    );
    assert_eq!(
        platform_names(&broker, "labelQuery=env%20eq%20'dev'").await,
        ["cf-a", "k8s-c"]
    );
    assert_eq!(
        platform_names(
            &broker,
            "fieldQuery=type%20eq%20'cloudfoundry'&labelQuery=env%20notin%20('prod')"
        )
        .await,
        ["cf-a"]
    );
    let query = |q: &str| format!("/platforms?{q}");
    let (status, body) = admin(
        &broker,
        Method::GET,
        &query("fieldQuery=type%20like%20'x'"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Pages of one, followed by their token and announced by a Link header.
    let response = broker
        .client
        .get(format!("{}/v1/platforms?max_items=1", broker.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("rel=\"next\"") && link.contains("max_items=1"),
        "{link}"
    );
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(token) => format!("/platforms?max_items=1&token={token}"),
            None => "/platforms?max_items=1".to_owned(),
        };
        let (status, body) = admin(&broker, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(names_of(&body));
        match body["token"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["cf-a", "cf-b", "k8s-c"]);

    // Labels: add and remove values.
    let (_, body) = admin(
        &broker,
        Method::GET,
        &query("fieldQuery=name%20eq%20'cf-a'"),
        None,
    )
    .await;
    let id = body["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = admin(
        &broker,
        Method::PATCH,
        &format!("/platforms/{id}"),
        Some(json!({"labels": [
            {"op": "add", "key": "env", "values": ["staging"]},
            {"op": "remove", "key": "env", "values": ["dev"]},
            {"op": "add", "key": "team", "values": ["data"]},
        ]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["labels"],
        json!({"env": ["staging"], "team": ["data"]})
    );
    assert_eq!(
        platform_names(&broker, "labelQuery=team%20eq%20'data'").await,
        ["cf-a"]
    );
    broker.stop().await;
}

/// The names of a list answer's items, sorted.
fn names_of(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["items"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

/// The names of the platforms `/v1/platforms?{query}` lists.
async fn platform_names(broker: &Broker, query: &str) -> Vec<String> {
    let (status, body) = admin(broker, Method::GET, &format!("/platforms?{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    names_of(&body)
}

/// Follows an operation's `Location` until it is no longer in progress.
async fn operation_end(broker: &Broker, location: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let path = location.trim_start_matches("/v1");
        let (status, body) = admin(broker, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{location}: {body}");
        if body["state"] != "in progress" {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{location} never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `?async=true` (issue #18): 202 with the operation's `Location`; the operation ends
/// `succeeded` with the status a synchronous request would have got, or `failed` with its
/// description; a failed registration stores no broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asynchronous_registrations_are_followed_through_their_operations() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let ext = external(dir.path()).await;
    let broker = central().await;
    let register = |name: &str, url: &str| {
        let request = broker
            .client
            .post(format!("{}/v1/service_brokers?async=true", broker.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({
                "name": name, "broker_url": url,
                "credentials": {"basic": {"username": USER, "password": PASSWORD}},
            }));
        async move {
            let response = request.send().await.expect("an answer");
            let status = response.status();
            let location = response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, location, response.json::<Value>().await.unwrap())
        }
    };
    let (status, location, body) = register("async-ext", &ext.api).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let location = location.expect("a Location");
    assert_eq!(body["state"], "in progress");
    let done = operation_end(&broker, &location).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["status"], 201);
    let id = done["resource_id"].as_str().unwrap();
    let (status, registered) = admin(
        &broker,
        Method::GET,
        &format!("/service_brokers/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    assert_eq!(registered["name"], "async-ext");

    // Nobody listens there: the operation fails as the request would have, nothing stored.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (status, location, _) = register("async-nowhere", &closed).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let done = operation_end(&broker, &location.unwrap()).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["status"], 502);
    assert!(
        done["description"].as_str().unwrap().contains(&closed),
        "{done}"
    );
    let (_, listed) = admin(&broker, Method::GET, "/service_brokers", None).await;
    assert_eq!(
        listed["num_items"], 2,
        "the built-in one and async-ext: {listed}"
    );

    // Checks that need no broker still answer at once.
    let (status, _, _) = register("async-ext", &ext.api).await;
    assert_eq!(status, StatusCode::CONFLICT, "the name is taken");
    let (status, body) = admin(
        &broker,
        Method::POST,
        "/service_brokers?async=maybe",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    broker.stop().await;
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed (PEM).
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "external broker test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(names).unwrap();
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca,
        server: leaf(
            vec!["127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth),
    }
}

/// A TLS front for `backend` (`host:port`): presents the PKI's server certificate, requires a
/// client certificate signed by its CA, and passes the bytes through.
async fn tls_front(backend: String, pki: &Pki) -> String {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(pki.server.0.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(pki.server.1.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return; // no or a wrong client certificate
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

/// Mutual TLS towards an external broker (issue #18): with the client certificate and the
/// broker's CA in `credentials.tls`, registration and calls go through a front that requires
/// the certificate; without it the handshake fails and nothing is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_brokers_behind_mutual_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("a temp dir");
    let ext = external(dir.path()).await;
    let pki = pki();
    let url = tls_front(ext.api.trim_start_matches("http://").to_owned(), &pki).await;
    let broker = central().await;
    let registration = |name: &str, tls: Value| {
        json!({
            "name": name, "broker_url": url,
            "credentials": {"basic": {"username": USER, "password": PASSWORD}, "tls": tls},
        })
    };

    // The CA alone: the front asks for a certificate the broker does not have.
    let (status, body) = admin(
        &broker,
        Method::POST,
        "/service_brokers",
        Some(registration("no-cert", json!({"ca_certificate": pki.ca}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["description"].as_str().unwrap().contains(&url),
        "{body}"
    );
    // A key without its certificate is refused before anything is sent.
    let (status, body) = admin(
        &broker,
        Method::POST,
        "/service_brokers",
        Some(registration("half", json!({"client_key": pki.client.1}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = admin(
        &broker,
        Method::POST,
        "/service_brokers",
        Some(registration(
            "mtls",
            json!({"client_certificate": pki.client.0, "client_key": pki.client.1,
                   "ca_certificate": pki.ca}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let shown = body.to_string();
    assert!(
        !shown.contains("PRIVATE KEY"),
        "the key is never shown: {shown}"
    );

    // A synchronous provision through the central broker reaches the external one over TLS.
    let instance = new_id("mtls");
    let (status, body) = broker
        .send(
            broker
                .request(Method::PUT, &format!("/v2/service_instances/{instance}"))
                .json(
                    &json!({"service_id": EXTERNAL_SERVICE, "plan_id": EXTERNAL_SYNC,
                              "context": {"platform": "cloudfoundry"}}),
                ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}\n{}", ext.output());
    let (status, _) = ext
        .call(
            Method::GET,
            &format!("/v2/service_instances/{instance}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    broker.stop().await;
}

/// `skybroker admin …` with the central broker's address and admin token in the environment,
/// as an operator's shell has them; `env` adds more. Whether it succeeded, its stdout and
/// its stderr.
async fn admin_command(
    broker: &Broker,
    env: &[(&str, &str)],
    args: &[&str],
) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_skybroker"))
        .arg("admin")
        .args(args)
        .env("SKYBROKER_URL", &broker.url)
        .env("SKYBROKER_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run skybroker admin");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Issue #18 item 4: the operator's work through `skybroker admin` against a running central
/// broker: register an external broker (its password from the environment, never the command
/// line) and a platform, enable a plan for that platform by its names, list, share an
/// instance, disable the plan again; refusals are the server's words with exit status 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_command_does_an_operators_work() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let ext = external(dir.path()).await;
    let broker = central().await;
    let secret = [("EXT_PASSWORD", PASSWORD)];

    let (ok, out, err) = admin_command(
        &broker,
        &secret,
        &[
            "register-broker",
            "external",
            &ext.api,
            "--username",
            USER,
            "--password-env",
            "EXT_PASSWORD",
            "--label",
            "env=dev",
        ],
    )
    .await;
    assert!(ok, "{err}\n{}", ext.output());
    let registered: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(registered["name"], "external");
    assert_eq!(registered["labels"], json!({"env": ["dev"]}));
    assert!(!out.contains(PASSWORD), "the password is not echoed");

    let (ok, out, err) = admin_command(
        &broker,
        &[],
        &["register-platform", "cf-eu", "--type", "cloudfoundry"],
    )
    .await;
    assert!(ok, "{err}");
    let platform: Value = serde_json::from_str(&out).expect("JSON");
    let basic = &platform["credentials"]["basic"];
    let cf = (
        basic["username"].as_str().unwrap().to_owned(),
        basic["password"].as_str().unwrap().to_owned(),
    );
    let cf_id = platform["id"].as_str().unwrap().to_owned();

    // Enabled by the offering's and plan's names, for one platform.
    let (ok, _, err) = admin_command(
        &broker,
        &[],
        &[
            "enable-access",
            "external-sandbox/async",
            "--platform",
            "cf-eu",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (_, catalog) = broker
        .send(as_platform(&broker, &cf, Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(
        catalog["services"][0]["plans"][0]["id"], EXTERNAL_ASYNC,
        "{catalog}"
    );
    assert_eq!(catalog["services"][0]["plans"].as_array().unwrap().len(), 1);
    let (ok, out, _) = admin_command(&broker, &[], &["list-visibilities", "--json"]).await;
    assert!(ok);
    let visibilities: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(visibilities.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(visibilities[0]["platform_id"], cf_id.as_str());
    // A table: the registered broker beside the built-in one.
    let (ok, out, _) = admin_command(&broker, &[], &["list-brokers"]).await;
    assert!(ok);
    assert!(
        out.starts_with("id ") && out.contains("external") && out.ends_with("2 item(s)\n"),
        "{out}"
    );

    // Instances are listed and shared.
    let instance = new_id("cli");
    let mut provision = provision_body(EXTERNAL_SYNC);
    provision["service_id"] = json!(EXTERNAL_SERVICE);
    let (status, body) = broker.put_instance(&instance, &provision, false).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let query = format!("catalog_plan_id eq '{EXTERNAL_SYNC}'");
    let (ok, out, _) = admin_command(
        &broker,
        &[],
        &["list-instances", "--field-query", &query, "--json"],
    )
    .await;
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(listed.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(listed[0]["id"], instance.as_str());
    let (ok, out, err) = admin_command(&broker, &[], &["share-instance", &instance]).await;
    assert!(ok, "{err}");
    assert!(out.contains("\"shared\": true"), "{out}");

    // Refusals: the server's words, exit status 1.
    let (ok, _, err) = admin_command(&broker, &[], &["delete-broker", "external"]).await;
    assert!(!ok);
    assert!(err.contains("409") && err.contains("instance"), "{err}");
    let wrong = [("SKYBROKER_ADMIN_TOKEN", "wrong")];
    let (ok, _, err) = admin_command(&broker, &wrong, &["list-brokers"]).await;
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    let (ok, _, err) =
        admin_command(&broker, &[], &["enable-access", "external-sandbox/none"]).await;
    assert!(!ok);
    assert!(err.contains("no plan"), "{err}");

    // Disabled again: the platform sees nothing.
    let (ok, _, err) = admin_command(
        &broker,
        &[],
        &[
            "disable-access",
            "external-sandbox/async",
            "--platform",
            "cf-eu",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (_, catalog) = broker
        .send(as_platform(&broker, &cf, Method::GET, "/v2/catalog"))
        .await;
    assert_eq!(catalog["services"], json!([]), "{catalog}");
    broker.stop().await;
}
