//! The dashboard's HTML (maud): the page, and the live part the script swaps in.

use maud::{html, Markup, DOCTYPE};
use skybroker_storage::{Operation, ServiceInstance};

use super::Snapshot;

/// The store's own description: where, how big, which version; a cluster's members with the
/// leader marked.
fn store_status(status: &skybroker_storage::StoreStatus) -> Markup {
    html! {
        @if let Some(location) = &status.location {
            p .detail { code { (location) } }
        }
        @if status.version.is_some() || status.size_bytes.is_some() {
            p .detail {
                @if let Some(version) = &status.version { "version " (version) " " }
                @if let Some(size) = status.size_bytes { (format!("{:.1} MB", size as f64 / 1e6)) " on disk" }
            }
        }
        @if !status.members.is_empty() {
            ul .members {
                @for member in &status.members {
                    li .leader[member.leader] {
                        (if member.name.is_empty() { "(starting)" } else { member.name.as_str() })
                        @if member.leader { " · leader" }
                        @if member.learner { " · learner" }
                        " " code { (member.client_urls.join(", ")) }
                    }
                }
            }
        }
    }
}

/// `1.2 s`, `3 min`, `2.5 h` from milliseconds.
fn span(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// The whole page: the frame, and the live part inside it.
pub fn page(snapshot: &Snapshot) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Skybroker" }
                link rel="stylesheet" href="/dashboard/dashboard.css";
            }
            body {
                header {
                    h1 { "Skybroker" }
                    span #refreshed { "live" }
                }
                main #live { (live(snapshot)) }
                script src="/dashboard/dashboard.js" {}
            }
        }
    }
}

/// What refreshes every two seconds.
pub fn live(snapshot: &Snapshot) -> Markup {
    let dispatcher = &snapshot.sample.dispatcher;
    let counts = &snapshot.sample.counts;
    let operations = &snapshot.sample.operations;
    let store = &snapshot.store;
    html! {
        section .cards {
            div .card #store .(if store.health.is_ok() { "ok" } else { "bad" }) {
                h2 { "Store" }
                p .big { (store.kind) }
                p { (match &store.health { Ok(()) => "answering".to_owned(), Err(err) => err.clone() }) }
                @if let Some(took) = store.last_commit {
                    p { "last commit " (format!("{:.1} ms", took.as_secs_f64() * 1000.0)) }
                }
                @if let Some(status) = &store.status {
                    (store_status(status))
                }
            }
            div .card {
                h2 { "Queue" }
                p .big #queue { (dispatcher.queue_depth) " / " (dispatcher.capacity) }
                p { "workers busy " span #busy { (dispatcher.busy_workers) " / " (dispatcher.workers) } }
            }
            div .card {
                h2 { "Operations" }
                p .big #in-flight { (snapshot.in_flight_total) " in flight" }
                p { (operations.succeeded) " succeeded, " (operations.failed) " failed (kept)" }
            }
            div .card {
                h2 { "Records" }
                p .big { (counts.instances) " instances" }
                p { (counts.bindings) " bindings, " (counts.operations) " operation records" }
            }
        }
        section .two {
            (chart(
                "Operations per minute, last hour",
                "operations-chart",
                &[
                    ("started", "#3e7bfa", snapshot.history.iter().map(|m| m.started).collect()),
                    ("succeeded", "#2f9e44", snapshot.history.iter().map(|m| m.succeeded).collect()),
                    ("failed", "#e03131", snapshot.history.iter().map(|m| m.failed).collect()),
                ],
            ))
            (chart(
                "Queue depth, last hour",
                "queue-chart",
                &[("deepest", "#7048e8", snapshot.history.iter().map(|m| m.queue_max as u64).collect())],
            ))
        }
        section {
            h2 { "Operations in flight" }
            @if snapshot.in_flight.is_empty() {
                p .empty { "none" }
            } @else {
                table #operations {
                    thead { tr { th { "operation" } th { "kind" } th { "instance" } th { "age" } th { "attempts" } th { "next poll" } th { "deadline" } } }
                    tbody {
                        @for (operation, due) in &snapshot.in_flight {
                            tr data-operation=(operation.id.as_str()) {
                                td { code { (operation.id.as_str()) } }
                                td { (operation.kind.name()) }
                                td { code { (operation.instance_id.as_str()) } }
                                td { (span(snapshot.now.saturating_sub(operation.created_at))) }
                                td { (operation.attempts) }
                                td { (due.map_or("on a worker".to_owned(), |due| format!("in {}", span(due.saturating_sub(snapshot.now))))) }
                                td { "in " (span(operation.deadline.saturating_sub(snapshot.now))) }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Last failures" }
            @if snapshot.failures.is_empty() {
                p .empty { "none" }
            } @else {
                table #failures {
                    thead { tr { th { "operation" } th { "kind" } th { "instance" } th { "ended" } th { "error" } } }
                    tbody { @for operation in &snapshot.failures { (failure(operation, snapshot.now)) } }
                }
            }
        }
        section {
            h2 { "Instances" }
            form .filter method="get" action="/dashboard" {
                input type="search" name="q" placeholder="instance id" value=(snapshot.filter.q);
                input name="service" placeholder="service" value=(snapshot.filter.service);
                input name="plan" placeholder="plan" value=(snapshot.filter.plan);
                select name="state" {
                    @for state in ["", "ready", "provisioning", "updating", "deprovisioning", "provisionfailed"] {
                        option value=(state) selected[snapshot.filter.state == state] {
                            (if state.is_empty() { "any state" } else { state })
                        }
                    }
                }
                button type="submit" { "filter" }
            }
            table #instances {
                thead { tr { th { "instance" } th { "service" } th { "plan" } th { "state" } th { "platform" } th { "age" } } }
                tbody { @for instance in &snapshot.instances.0 { (instance_row(instance, snapshot)) } }
            }
            nav .paging {
                @if snapshot.after.is_some() {
                    a href=(format!("/dashboard?{}", snapshot.filter.query().trim_start_matches('&'))) { "first page" }
                }
                @if snapshot.instances.1 {
                    @if let Some(last) = snapshot.instances.0.last() {
                        a href=(format!("/dashboard?after={}{}", form_urlencoded::byte_serialize(last.id.as_bytes()).collect::<String>(), snapshot.filter.query())) { "next page" }
                    }
                }
            }
        }
        section .two {
            div {
                h2 { "Brokers" }
                table #brokers {
                    thead { tr { th { "name" } th { "URL" } th { "offerings" } } }
                    tbody {
                        tr { td { "skybroker (built-in)" } td { "-" } td { "configured" } }
                        @for broker in &snapshot.brokers {
                            tr { td { (broker.name) } td { code { (broker.broker_url) } } td { (broker.services.len()) } }
                        }
                    }
                }
            }
            div {
                h2 { "Platforms" }
                @if snapshot.platforms.is_empty() {
                    p .empty { "none registered" }
                } @else {
                    table #platforms {
                        thead { tr { th { "name" } th { "type" } } }
                        tbody { @for platform in &snapshot.platforms { tr { td { (platform.name) } td { (platform.kind) } } } }
                    }
                }
            }
        }
    }
}

/// Width and height of a chart's drawing area.
const CHART: (f64, f64) = (560.0, 110.0);

/// A line chart of per-minute `series` (label, colour, values oldest first), drawn as SVG on
/// the server. Each series' total is in a `data-` attribute and the legend.
fn chart(title: &str, id: &str, series: &[(&str, &str, Vec<u64>)]) -> Markup {
    let (width, height) = CHART;
    let top = series
        .iter()
        .flat_map(|(_, _, values)| values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let points = |values: &[u64]| -> String {
        let step = width / (values.len().max(2) - 1) as f64;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = i as f64 * step;
                let y = height - (*v as f64 / top as f64) * (height - 4.0) - 2.0;
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        div .chart #(id) {
            h2 { (title) }
            svg viewBox=(format!("-34 -6 {} {}", width + 40.0, height + 24.0)) role="img" aria-label=(title) {
                line x1="0" y1=(height) x2=(width) y2=(height) stroke="#cbd2d9" {}
                line x1="0" y1="0" x2="0" y2=(height) stroke="#cbd2d9" {}
                text x="-6" y="8" text-anchor="end" font-size="10" fill="#7b8794" { (top) }
                text x="-6" y=(height) text-anchor="end" font-size="10" fill="#7b8794" { "0" }
                text x="0" y=(height + 14.0) font-size="10" fill="#7b8794" { "-60 min" }
                text x=(width) y=(height + 14.0) text-anchor="end" font-size="10" fill="#7b8794" { "now" }
                @for (label, colour, values) in series {
                    polyline points=(points(values)) fill="none" stroke=(colour) stroke-width="1.8" data-series=(label) {}
                }
            }
            p .legend {
                @for (label, colour, values) in series {
                    span style=(format!("color: {colour}")) data-total=(values.iter().sum::<u64>()) data-series=(label) {
                        "■ " (label) " " (values.iter().sum::<u64>())
                    }
                    " "
                }
            }
        }
    }
}

fn failure(operation: &Operation, now: u64) -> Markup {
    let error = operation
        .failure
        .as_ref()
        .map_or("", |failure| failure.description.as_str());
    html! {
        tr data-operation=(operation.id.as_str()) {
            td { code { (operation.id.as_str()) } }
            td { (operation.kind.name()) }
            td { code { (operation.instance_id.as_str()) } }
            td { (operation.finished_at.map_or("-".to_owned(), |at| format!("{} ago", span(now.saturating_sub(at))))) }
            td .error { (error) }
        }
    }
}

fn instance_row(instance: &ServiceInstance, snapshot: &Snapshot) -> Markup {
    // Names when the catalog still has the plan, ids otherwise.
    let (service, plan) = snapshot
        .names
        .get(instance.plan_id.as_str())
        .cloned()
        .unwrap_or_else(|| {
            (
                instance.service_id.to_string(),
                instance.plan_id.to_string(),
            )
        });
    html! {
        tr data-instance=(instance.id.as_str()) {
            td { code { (instance.id.as_str()) } }
            td { (service) }
            td { (plan) }
            td .state { (format!("{:?}", instance.state).to_lowercase()) }
            td { (instance.platform_id.as_deref().unwrap_or("-")) }
            td { (span(snapshot.now.saturating_sub(instance.created_at))) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_people_write_them() {
        assert_eq!(span(1_500), "1.5 s");
        assert_eq!(span(180_000), "3 min");
        assert_eq!(span(9_000_000), "2.5 h");
    }
}
