//! The operator dashboard (issue #19), over HTTP: access, what it shows, and the live part
//! changing as operations run, without the page being loaded again.

use reqwest::StatusCode;
use skybroker_config::Secret;

use crate::harness::*;

const TOKEN: &str = "dashboard-admin-token-0123456789";

async fn get(
    broker: &Broker,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let mut request = broker.client.get(format!("{}{path}", broker.metrics_url()));
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.expect("an answer");
    let status = response.status();
    let headers = response.headers().clone();
    (status, response.text().await.unwrap(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_operations_as_they_run() {
    let mut config = fast_config(800);
    config.server.admin_tokens = vec![Secret::new(TOKEN)];
    let broker = Broker::with_config(config).await;

    // No anonymous access; a browser is asked for basic credentials.
    let (status, _, headers) = get(&broker, "/dashboard", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let (status, _, _) = get(&broker, "/dashboard", Some((USER, "wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get(&broker, "/dashboard/live", Some(("anyone", "guess"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The broker's credentials, or an admin token as the password (or as a bearer token).
    let (status, page, _) = get(&broker, "/dashboard", Some((USER, PASSWORD))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<main id=\"live\">"), "{page}");
    let (status, _, _) = get(&broker, "/dashboard", Some(("admin", TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    let response = broker
        .client
        .get(format!("{}/dashboard/live", broker.metrics_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // An async provision in flight shows with its operation, then turns ready.
    let instance = new_id("dash");
    let (status, body) = broker
        .put_instance(&instance, &provision_body(ASYNC), true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let operation = body["operation"].as_str().unwrap().to_owned();
    let (_, live, _) = get(&broker, "/dashboard/live", Some((USER, PASSWORD))).await;
    let operations = live.split("id=\"operations\"").nth(1).unwrap_or_default();
    assert!(operations.contains(&operation), "in flight: {live}");
    let done = broker.wait_instance(&instance, &operation).await;
    assert_eq!(done["state"], "succeeded");
    let (_, live, _) = get(&broker, "/dashboard/live", Some((USER, PASSWORD))).await;
    assert!(
        !live.contains(&format!("data-operation=\"{operation}\"")),
        "no longer in flight: {live}"
    );
    let row = live
        .split(&format!("data-instance=\"{instance}\""))
        .nth(1)
        .expect("the instance is listed");
    assert!(
        row.split("</tr>").next().unwrap().contains(">ready<"),
        "{row}"
    );

    // A failed operation shows with its error.
    let failing = new_id("dash-fail");
    let (status, body) = broker
        .put_instance(&failing, &provision_body(FAIL), true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let failed_op = body["operation"].as_str().unwrap().to_owned();
    let done = broker.wait_instance(&failing, &failed_op).await;
    assert_eq!(done["state"], "failed");
    let (_, live, _) = get(&broker, "/dashboard/live", Some((USER, PASSWORD))).await;
    let failures = live
        .split("id=\"failures\"")
        .nth(1)
        .expect("a failures table");
    assert!(failures.contains(&failed_op), "{live}");
    assert!(
        failures.contains("always fails"),
        "the error is shown: {live}"
    );

    // The script and the style sheet come from the binary.
    let (status, script, headers) =
        get(&broker, "/dashboard/dashboard.js", Some((USER, PASSWORD))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    assert!(script.contains("/dashboard/live"));
    broker.stop().await;
}
