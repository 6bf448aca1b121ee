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
    // The store card: its kind, the last commit's latency and, on etcd, the cluster with its
    // leader.
    let card = live
        .split("id=\"store\"")
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .expect("a store card");
    assert!(card.contains("last commit "), "{card}");
    if std::env::var("SKYBROKER_TEST_STORE").as_deref() == Ok("etcd") {
        assert!(card.contains(">etcd<"), "{card}");
        assert!(card.contains(" · leader"), "{card}");
        assert!(card.contains("version 3."), "{card}");
        let endpoint = std::env::var("SKYBROKER_TEST_ETCD").unwrap();
        assert!(card.contains(&endpoint), "{card}");
    } else {
        assert!(card.contains(">memory<"), "{card}");
    }
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

    // The instances filter by state, id, plan name; the live part keeps the filter.
    let listed = |live: &str, id: &str| live.contains(&format!("data-instance=\"{id}\""));
    let (_, ready, _) = get(
        &broker,
        "/dashboard/live?state=ready",
        Some((USER, PASSWORD)),
    )
    .await;
    assert!(
        listed(&ready, &instance) && !listed(&ready, &failing),
        "{ready}"
    );
    let (_, by_id, _) = get(
        &broker,
        &format!("/dashboard/live?q={}", &failing[..12]),
        Some((USER, PASSWORD)),
    )
    .await;
    assert!(
        listed(&by_id, &failing) && !listed(&by_id, &instance),
        "{by_id}"
    );
    let (_, by_plan, _) = get(
        &broker,
        "/dashboard/live?plan=async",
        Some((USER, PASSWORD)),
    )
    .await;
    assert!(
        listed(&by_plan, &instance) && !listed(&by_plan, &failing),
        "{by_plan}"
    );

    // The chart counts them this hour: two started, one succeeded, one failed.
    let chart = live
        .split("id=\"operations-chart\"")
        .nth(1)
        .expect("the operations chart");
    let legend = chart
        .split("class=\"legend\"")
        .nth(1)
        .expect("the chart's legend");
    let total = |series: &str| -> u64 {
        let at = legend
            .find(&format!("data-series=\"{series}\">"))
            .expect("a legend entry");
        let before = &legend[..at];
        let start = before.rfind("data-total=\"").expect("a total") + "data-total=\"".len();
        before[start..].split('"').next().unwrap().parse().unwrap()
    };
    assert!(total("started") >= 2, "{chart}");
    assert!(total("succeeded") >= 1, "{chart}");
    assert!(total("failed") >= 1, "{chart}");
    assert!(chart.contains("<polyline"), "{chart}");

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

/// Issue #19: a real headless Chromium on the dashboard. After a provision the page shows the
/// operation in flight; the same page, never reloaded, then shows the instance ready; a failed
/// operation shows its error; wrong credentials get nothing; a screenshot is written under
/// the test's temp dir.
///
/// Chromium is started before the provision it is to watch: on a loaded machine its start
/// alone can outlast the operation, and the page must load while the operation is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_an_operation_finish_without_reloading() {
    let Some(chromium) = crate::servers::server("SKYBROKER_TEST_CHROMIUM") else {
        return;
    };
    let broker = Broker::with_config(fast_config(4000)).await;
    let base = broker.metrics_url().replace("http://", "");
    let dir = tempfile::tempdir().expect("a temp dir");
    let shot = dir.path().join("dashboard.png");
    let (started, browser_started) = tokio::sync::oneshot::channel();
    let (watch, to_watch) = tokio::sync::oneshot::channel::<(String, String)>();
    let browser = {
        let shot = shot.clone();
        tokio::task::spawn_blocking(move || browse(&chromium, &base, started, to_watch, &shot))
    };

    let failing = new_id("browser-fail");
    let (status, body) = broker
        .put_instance(&failing, &provision_body(FAIL), true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let failed_op = body["operation"].as_str().unwrap().to_owned();
    assert_eq!(
        broker.wait_instance(&failing, &failed_op).await["state"],
        "failed"
    );
    browser_started.await.expect("Chromium starts");
    let instance = new_id("browser");
    let (status, body) = broker
        .put_instance(&instance, &provision_body(ASYNC), true)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let operation = body["operation"].as_str().unwrap().to_owned();
    watch
        .send((instance, operation))
        .expect("the browser waits for its operation");

    let seen = browser.await.expect("the browser task");
    assert!(
        seen.in_flight_at_load,
        "the operation in flight when the page loaded"
    );
    assert_eq!(
        seen.state_later, "ready",
        "the same page, refreshed in place"
    );
    assert_eq!(seen.loads, 1, "never reloaded");
    assert!(
        seen.failure_error.contains("always fails"),
        "{}",
        seen.failure_error
    );
    assert!(
        seen.refused.contains("authentication required")
            || seen.refused.contains("ERR_INVALID_AUTH_CREDENTIALS"),
        "{}",
        seen.refused
    );
    assert!(
        !seen.refused.contains("Operations in flight"),
        "{}",
        seen.refused
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    // SKYBROKER_DASHBOARD_SCREENSHOT=controller/dashboard.png refreshes the README's picture.
    if let Ok(keep) = std::env::var("SKYBROKER_DASHBOARD_SCREENSHOT") {
        std::fs::write(&keep, &png).expect("write the screenshot");
    }
    broker.stop().await;
}

/// What the browser saw.
struct Seen {
    in_flight_at_load: bool,
    state_later: String,
    loads: u64,
    failure_error: String,
    refused: String,
}

/// Drives Chromium on the dashboard at `base` (`host:port`) with the test's credentials.
/// It says when Chromium has a tab open (`started`), then waits for the instance and the
/// operation to watch (`to_watch`).
fn browse(
    chromium: &str,
    base: &str,
    started: tokio::sync::oneshot::Sender<()>,
    to_watch: tokio::sync::oneshot::Receiver<(String, String)>,
    shot: &std::path::Path,
) -> Seen {
    use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
    use headless_chrome::{Browser, LaunchOptions};
    let options = LaunchOptions::default_builder()
        .path(Some(chromium.into()))
        .sandbox(false)
        .window_size(Some((1280, 900)))
        .build()
        .expect("launch options");
    let browser = Browser::new(options).expect("Chromium starts");
    let tab = browser.new_tab().expect("a tab");
    started.send(()).expect("the test waits for Chromium");
    let (instance, operation) = to_watch.blocking_recv().expect("an operation to watch");
    let eval = |expression: &str| -> serde_json::Value {
        tab.evaluate(expression, false)
            .expect("evaluates")
            .value
            .unwrap_or(serde_json::Value::Null)
    };
    tab.navigate_to(&format!("http://{USER}:{PASSWORD}@{base}/dashboard"))
        .expect("navigates")
        .wait_until_navigated()
        .expect("loads");
    let in_flight_at_load = eval(&format!(
        "document.querySelector('#operations [data-operation=\"{operation}\"]') !== null"
    )) == serde_json::Value::Bool(true);
    // Marks this page: a reload would lose the mark.
    eval("window.__seen = 1");
    let state = format!(
        "(document.querySelector('[data-instance=\"{instance}\"] .state') || {{}}).textContent || ''"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut state_later = String::new();
    while std::time::Instant::now() < deadline {
        state_later = eval(&state).as_str().unwrap_or_default().to_owned();
        if state_later == "ready" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let loads = if eval("window.__seen") == serde_json::json!(1) {
        1
    } else {
        2
    };
    let failure_error =
        eval("(document.querySelector('#failures .error') || {}).textContent || ''")
            .as_str()
            .unwrap_or_default()
            .to_owned();
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .expect("a screenshot");
    std::fs::write(shot, png).expect("write the screenshot");
    // Wrong credentials: the page never comes (Chromium reports the refused login as such).
    let other = browser.new_tab().expect("a second tab");
    let refused = match other
        .navigate_to(&format!("http://intruder:guess@{base}/dashboard"))
        .and_then(|tab| tab.wait_until_navigated())
    {
        Ok(tab) => tab.get_content().unwrap_or_default(),
        Err(err) => err.to_string(),
    };
    Seen {
        in_flight_at_load,
        state_later,
        loads,
        failure_error,
        refused,
    }
}
