//! The Service Manager's proxy (issue #18): a second broker registered as an external one,
//! and the same workloads sent through the central broker and straight to the external one,
//! in one run, on the same machine.
//!
//! What "through" means here: the central broker serves the catalog from its own copy (fetched
//! at registration), accepts a provision by persisting it and answering 202 at once (its
//! engine then calls the external broker on a worker), and answers `last_operation` from its
//! map while its engine polls the external broker in the background. So the ratios say what a
//! platform sees; the external broker's own work for the central one runs on the same cores
//! during the measurement and is part of the price.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};

use crate::http::{self, Backend, HttpResult};
use crate::load::{self, OsbHeaders, Plan, Workload};
use crate::load::{PASSWORD, USER};
use crate::process::Server;

/// The external broker's catalog: the sandbox with ids of its own.
const EXTERNAL_PREFIX: &str = "e1e1e1e1-7b44-4a0e-9a6a-5a1d1c0f";
const EXTERNAL_SERVICE: &str = "e1e1e1e1-7b44-4a0e-9a6a-5a1d1c0f0001";
const EXTERNAL_ASYNC: &str = "e1e1e1e1-7b44-4a0e-9a6a-5a1d1c0f1002";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// Measures catalog, async provisions and last_operation direct and through; appends the
/// results (the "through" ones note their share of "direct").
pub async fn run(
    bin: &Path,
    work: &Path,
    level: &str,
    (measured, warmup): (Plan, Plan),
    in_flight: usize,
) -> anyhow::Result<Vec<HttpResult>> {
    let fresh = |name: &str| -> anyhow::Result<std::path::PathBuf> {
        let dir = work.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        Ok(dir)
    };
    let base = http::broker_config(Backend::Embedded, None)?;
    let external_config = base
        .replace("5c7e4d1b-7b44-4a0e-9a6a-5a1d1c0f", EXTERNAL_PREFIX)
        .replace("name = \"sandbox\"", "name = \"external-sandbox\"");
    let external = Server::broker(
        bin,
        &external_config,
        work,
        &fresh("data-proxy-external")?,
        level,
        "broker-external",
    )?;
    let mut central_config: toml::Table = toml::from_str(&base)?;
    central_config
        .entry("server")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .context("[server] is a table")?
        .insert(
            "admin_tokens".into(),
            toml::Value::Array(vec![ADMIN_TOKEN.into()]),
        );
    let central = Server::broker(
        bin,
        &toml::to_string(&central_config)?,
        work,
        &fresh("data-proxy-central")?,
        level,
        "broker-central",
    )?;
    let registration = serde_json::json!({
        "name": "external",
        "broker_url": format!("http://{}", external.addr),
        "credentials": {"basic": {"username": USER, "password": PASSWORD}},
    });
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/service_brokers")
        .header(hyper::header::HOST, central.addr.to_string())
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {ADMIN_TOKEN}"),
        )
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(registration.to_string())))?;
    let (status, body) = load::one(central.addr, request).await?;
    anyhow::ensure!(
        status == StatusCode::CREATED,
        "registering the external broker: {status} {}",
        String::from_utf8_lossy(&body)
    );

    let mut results = Vec::new();
    let direct_headers = OsbHeaders::new(external.addr);
    let through_headers = OsbHeaders::new(central.addr);
    let pair = |name: &str,
                direct: Arc<dyn Workload>,
                through: Arc<dyn Workload>,
                warm: (Arc<dyn Workload>, Arc<dyn Workload>)| {
        (name.to_owned(), direct, through, warm)
    };
    let catalog = |headers: &OsbHeaders| -> Arc<dyn Workload> {
        Arc::new(http::Catalog {
            headers: headers.clone(),
        })
    };
    let provision = |headers: &OsbHeaders, prefix: &str| -> Arc<dyn Workload> {
        Arc::new(http::Provision::of(
            headers.clone(),
            prefix,
            false,
            EXTERNAL_SERVICE,
            EXTERNAL_ASYNC,
        ))
    };
    let scenarios = [
        pair(
            "P1. catalog",
            catalog(&direct_headers),
            catalog(&through_headers),
            (catalog(&direct_headers), catalog(&through_headers)),
        ),
        pair(
            "P2. async provision",
            provision(&direct_headers, "direct"),
            provision(&through_headers, "through"),
            (
                provision(&direct_headers, "direct-warmup"),
                provision(&through_headers, "through-warmup"),
            ),
        ),
    ];
    for (name, direct, through, (warm_direct, warm_through)) in scenarios {
        eprintln!("== {name}: direct, then through the central broker");
        let direct = http::measure(
            &format!("{name}, direct to the external broker"),
            &external,
            measured,
            Some((warmup, warm_direct)),
            direct,
        )
        .await?;
        let mut through = http::measure(
            &format!("{name}, through the central broker"),
            &central,
            measured,
            Some((warmup, warm_through)),
            through,
        )
        .await?;
        note_ratio(&mut through, &direct);
        results.push(direct);
        results.push(through);
    }

    // last_operation on provisions in flight, accepted each way.
    let mut polls = Vec::new();
    for (server, headers, prefix) in [
        (&external, &direct_headers, "poll-direct"),
        (&central, &through_headers, "poll-through"),
    ] {
        let seeding = Arc::new(http::Provision::of(
            headers.clone(),
            prefix,
            true,
            EXTERNAL_SERVICE,
            EXTERNAL_ASYNC,
        ));
        let seed = Plan {
            connections: measured.connections,
            duration: Duration::from_secs(120),
            max_requests: in_flight as u64,
        };
        load::run(server.addr, seed, seeding.clone()).await;
        let accepted = seeding.accepted();
        anyhow::ensure!(!accepted.is_empty(), "no provision accepted for {prefix}");
        polls.push(Arc::new(http::LastOperation::of(
            headers.clone(),
            &accepted,
            EXTERNAL_SERVICE,
            EXTERNAL_ASYNC,
        )) as Arc<dyn Workload>);
    }
    eprintln!("== P3. last_operation: direct, then through the central broker");
    let direct = http::measure(
        "P3. last_operation, direct to the external broker",
        &external,
        measured,
        Some((warmup, Arc::clone(&polls[0]))),
        Arc::clone(&polls[0]),
    )
    .await?;
    let mut through = http::measure(
        "P3. last_operation, through the central broker",
        &central,
        measured,
        Some((warmup, Arc::clone(&polls[1]))),
        Arc::clone(&polls[1]),
    )
    .await?;
    note_ratio(&mut through, &direct);
    results.push(direct);
    results.push(through);
    central.stop()?;
    external.stop()?;
    Ok(results)
}

/// Adds "x% of direct (p99 y× direct's)" to a "through" result.
fn note_ratio(through: &mut HttpResult, direct: &HttpResult) {
    let share = through.measured.per_second() / direct.measured.per_second().max(1e-9);
    let p99 = through.measured.quantile(0.99).as_secs_f64()
        / direct.measured.quantile(0.99).as_secs_f64().max(1e-9);
    let prefix = if through.note.is_empty() { "" } else { "; " };
    through.note = format!(
        "{:.0}% of direct, p99 {p99:.2}× direct's{prefix}{}",
        share * 100.0,
        through.note
    );
}
