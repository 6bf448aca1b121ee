//! Throughput against concurrency (issue #20): the minimal hyper server, the catalog and
//! async provisions on the embedded store, each at 1, 4, 16, 64 and 256 connections in one
//! run; printed as a table and drawn as an SVG line chart for `bench/README.md`.
//!
//! Why a sweep: one figure at 64 connections hides where the broker saturates and how its
//! latency grows past that point; the curves against the limit's show both. The provisions
//! of every point go to one broker, so later points run on a larger store (as a broker in
//! service does); the catalog costs the same at any size.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use plotters::prelude::*;

use crate::http::{self, Backend};
use crate::load::{OsbHeaders, Plan, Workload};
use crate::process::Server;

/// One measured point.
#[derive(Debug, Clone)]
pub struct SweepPoint {
    /// `limit`, `catalog` or `async provision`.
    pub series: &'static str,
    /// Concurrent connections.
    pub connections: usize,
    /// Answered requests per second.
    pub per_second: f64,
    /// 99th percentile latency.
    pub p99: Duration,
}

/// The series, in the order they are drawn, with their colours.
const SERIES: [(&str, RGBColor); 3] = [
    ("limit (hyper, catalog bytes)", RGBColor(123, 135, 148)),
    ("catalog", RGBColor(31, 119, 180)),
    ("async provision (embedded store)", RGBColor(214, 39, 40)),
];

/// Measures every series at every connection count, `seconds` each (after a short warm-up).
pub async fn run(
    bin: &Path,
    work_dir: &Path,
    log_level: &str,
    connections: &[usize],
    seconds: f64,
) -> anyhow::Result<Vec<SweepPoint>> {
    let data_dir = work_dir.join("data-sweep");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)?;
    }
    let config = http::broker_config(Backend::Embedded, None)?;
    let broker = Server::broker(bin, &config, work_dir, &data_dir, log_level, "broker-sweep")?;
    let catalog = http::fetch_catalog(broker.addr).await?;
    let body_file = work_dir.join("catalog.json");
    std::fs::write(&body_file, &catalog)?;
    let limit = Server::limit(&body_file)?;
    let headers = OsbHeaders::new(broker.addr);
    let mut points = Vec::new();
    for &connections in connections {
        let plan = |seconds: f64| Plan {
            connections,
            duration: Duration::from_secs_f64(seconds),
            max_requests: 10_000_000,
        };
        let workloads: [(&'static str, &Server, Arc<dyn Workload>); 3] = [
            (
                SERIES[0].0,
                &limit,
                Arc::new(http::Catalog {
                    headers: OsbHeaders::new(limit.addr),
                }),
            ),
            (
                SERIES[1].0,
                &broker,
                Arc::new(http::Catalog {
                    headers: headers.clone(),
                }),
            ),
            (
                SERIES[2].0,
                &broker,
                Arc::new(http::Provision::new(
                    headers.clone(),
                    &format!("sweep-{connections}"),
                    false,
                )),
            ),
        ];
        for (series, server, workload) in workloads {
            eprintln!("== sweep: {series}, {connections} connection(s)");
            let warmup = Some((plan(0.5), Arc::clone(&workload)));
            let result = http::measure(series, server, plan(seconds), warmup, workload).await?;
            points.push(SweepPoint {
                series,
                connections,
                per_second: result.measured.per_second(),
                p99: result.measured.quantile(0.99),
            });
        }
    }
    limit.stop()?;
    broker.stop()?;
    std::fs::remove_dir_all(&data_dir)?;
    Ok(points)
}

/// A font for the chart's text: plotters lays text out with real glyph metrics, and the SVG
/// names the same family, so any sans-serif TrueType file the machine has will do.
fn register_font() -> anyhow::Result<()> {
    const CANDIDATES: [&str; 3] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ];
    let bytes = CANDIDATES
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no TrueType font for the chart (looked for {CANDIDATES:?}); \
                 install Debian's fonts-dejavu-core"
            )
        })?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("the font could not be read"))?;
    Ok(())
}

/// Draws requests/s against connections (log scale), one line per series, into `path`.
pub fn plot(points: &[SweepPoint], subtitle: &str, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let max_connections = points.iter().map(|p| p.connections).max().unwrap_or(1) as f64;
    let top = points.iter().map(|p| p.per_second).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (820, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("Skybroker: requests/s against concurrent connections — {subtitle}"),
        ("sans-serif", 16),
    )?;
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..max_connections * 1.25).log_scale(), 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("concurrent keep-alive connections (log scale)")
        .y_desc("requests/s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .draw()?;
    for (name, colour) in SERIES {
        let line: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.series == name)
            .map(|p| (p.connections as f64, p.per_second))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart.draw_series(
            line.iter()
                .map(|&(x, y)| Circle::new((x, y), 3, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart is an SVG with one line per series (where a font exists to lay it out).
    #[test]
    fn the_chart_has_a_line_per_series() {
        if register_font().is_err() {
            eprintln!("skipped: no TrueType font on this machine");
            return;
        }
        let points: Vec<SweepPoint> = SERIES
            .iter()
            .flat_map(|(series, _)| {
                [1, 4, 16].map(|connections| SweepPoint {
                    series,
                    connections,
                    per_second: 1000.0 * connections as f64,
                    p99: Duration::from_millis(1),
                })
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sweep.svg");
        plot(&points, "test", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        for (name, RGBColor(r, g, b)) in SERIES {
            assert!(svg.contains(name), "{name} in the legend");
            let stroke = format!("#{r:02X}{g:02X}{b:02X}");
            assert!(
                svg.to_uppercase().contains(&stroke),
                "a line in {stroke} for {name}"
            );
        }
    }
}
