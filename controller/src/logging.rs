//! Log output: `env_logger` in its human format (the default), or JSON lines for log
//! collectors (`SKYBROKER_LOG_FORMAT=json`), one object per record.
//!
//! A JSON line carries the time, level, target and message, the record's key-values (the
//! access log adds `method`, `route`, `status`, `duration_ms`), and the OSB request identity
//! (`X-Broker-API-Request-Identity`) of the request being handled when the record was
//! written, so every line a request causes can be found by it. The identity travels in a
//! tokio task-local set by the API's outermost layer: records written by the engine or a
//! worker, which serve no single request, have none.
//!
//! The format is chosen from the environment, not the configuration file, because logging
//! starts before the configuration is read, so that loading it can already log in the chosen
//! format. Nothing here adds content to a record: what is logged stays free of secrets
//! wherever it is written.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::Arc;

use log::kv::{Key, Value, VisitSource};
use log::Record;

/// The variable that picks the format.
pub const FORMAT_VAR: &str = "SKYBROKER_LOG_FORMAT";

tokio::task_local! {
    /// The identity of the request the current task serves.
    static REQUEST_IDENTITY: Arc<str>;
}

/// How log records are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `env_logger`'s default, for people: `[time LEVEL target] message`.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A log format name that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{FORMAT_VAR}: unknown log format {0:?} (options are: human, json)")]
pub struct UnknownLogFormat(pub String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "human" | "text" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownLogFormat(text.to_owned())),
        }
    }
}

/// Installs the process logger from `env` (main hands over the process environment):
/// `RUST_LOG` filters (default `info`), `RUST_LOG_STYLE` colours the human format, and
/// [`FORMAT_VAR`] picks the format.
///
/// # Errors
/// [`FORMAT_VAR`] names no format. A logger already installed is left as it is.
pub fn init(env: &HashMap<String, String>) -> Result<LogFormat, UnknownLogFormat> {
    let format = match env.get(FORMAT_VAR) {
        Some(name) => name.parse()?,
        None => LogFormat::Human,
    };
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(env.get("RUST_LOG").map_or("info", String::as_str));
    if let Some(style) = env.get("RUST_LOG_STYLE") {
        builder.parse_write_style(style);
    }
    if format == LogFormat::Json {
        builder.format(|out, record| {
            let timestamp = out.timestamp_millis();
            let identity = request_identity();
            write_json(out, &timestamp, record, identity.as_deref())
        });
    }
    let _ = builder.try_init();
    Ok(format)
}

/// Runs `work` with `identity` as the request identity of everything it logs.
pub async fn with_request_identity<F: Future>(identity: Option<String>, work: F) -> F::Output {
    match identity {
        Some(identity) => REQUEST_IDENTITY.scope(identity.into(), work).await,
        None => work.await,
    }
}

/// The request identity of the task running now, if it serves a request that has one.
pub fn request_identity() -> Option<Arc<str>> {
    REQUEST_IDENTITY.try_with(Arc::clone).ok()
}

/// Writes `record` as one JSON line: `timestamp`, `level`, `target`, `message`, then
/// `request_identity` when there is one, then the record's key-values.
pub fn write_json(
    out: &mut impl Write,
    timestamp: &dyn Display,
    record: &Record<'_>,
    request_identity: Option<&str>,
) -> io::Result<()> {
    let mut line = String::with_capacity(256);
    line.push_str("{\"timestamp\":");
    push_json_string(&mut line, &timestamp.to_string());
    line.push_str(",\"level\":");
    push_json_string(&mut line, record.level().as_str());
    line.push_str(",\"target\":");
    push_json_string(&mut line, record.target());
    line.push_str(",\"message\":");
    push_json_string(&mut line, &record.args().to_string());
    if let Some(identity) = request_identity {
        line.push_str(",\"request_identity\":");
        push_json_string(&mut line, identity);
    }
    // A key-value that fails to render is dropped, never the line.
    let _ = record.key_values().visit(&mut Fields(&mut line));
    line.push_str("}\n");
    out.write_all(line.as_bytes())
}

/// Appends `text` as a JSON string (serde_json escapes; a `&str` always serializes).
fn push_json_string(line: &mut String, text: &str) {
    line.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned()));
}

/// Appends key-values as JSON members: numbers and booleans as such, the rest as strings.
struct Fields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.0.push(',');
        push_json_string(self.0, key.as_str());
        self.0.push(':');
        let number = value
            .to_u64()
            .map(serde_json::Value::from)
            .or_else(|| value.to_i64().map(serde_json::Value::from))
            .or_else(|| {
                value
                    .to_f64()
                    .and_then(|f| serde_json::Number::from_f64(f).map(Into::into))
            })
            .or_else(|| value.to_bool().map(serde_json::Value::from));
        match number {
            Some(number) => self.0.push_str(&number.to_string()),
            None => push_json_string(self.0, &value.to_string()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(record: &Record<'_>, identity: Option<&str>) -> serde_json::Value {
        let mut out = Vec::new();
        write_json(&mut out, &"2026-01-02T03:04:05.678Z", record, identity).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text:?}"
        );
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
    }

    #[test]
    fn a_record_is_one_json_object_with_identity_and_key_values() {
        let kvs: [(&str, Value<'_>); 4] = [
            ("route", Value::from("/v2/catalog")),
            ("status", Value::from(200u16)),
            ("duration_ms", Value::from(1.5f64)),
            ("method", Value::from("GET")),
        ];
        let args = format_args!("GET /v2/catalog 200 \"quoted\"\nsecond line");
        let record = Record::builder()
            .args(args)
            .level(log::Level::Info)
            .target("skybroker::api")
            .key_values(&kvs)
            .build();
        let json = line(&record, Some("req-\"42\""));
        assert_eq!(json["timestamp"], "2026-01-02T03:04:05.678Z");
        assert_eq!(json["level"], "INFO");
        assert_eq!(json["target"], "skybroker::api");
        assert_eq!(
            json["message"],
            "GET /v2/catalog 200 \"quoted\"\nsecond line"
        );
        assert_eq!(json["request_identity"], "req-\"42\"");
        assert_eq!(json["route"], "/v2/catalog");
        assert_eq!(json["status"], 200);
        assert_eq!(json["duration_ms"], 1.5);
        assert_eq!(json["method"], "GET");
    }

    #[test]
    fn without_identity_the_field_is_absent() {
        let record = Record::builder()
            .args(format_args!("scanner stopped"))
            .level(log::Level::Debug)
            .target("skybroker::engine")
            .build();
        let json = line(&record, None);
        assert_eq!(json["level"], "DEBUG");
        assert!(json.get("request_identity").is_none(), "{json}");
    }

    #[test]
    fn formats_parse_and_unknown_ones_are_refused() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!(" JSON ".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("human".parse::<LogFormat>().unwrap(), LogFormat::Human);
        let err = "yaml".parse::<LogFormat>().unwrap_err().to_string();
        assert!(
            err.contains(FORMAT_VAR) && err.contains("human, json"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_identity_is_visible_inside_the_scope_only() {
        assert!(request_identity().is_none());
        let seen = with_request_identity(Some("r-1".to_owned()), async {
            tokio::task::yield_now().await;
            request_identity()
        })
        .await;
        assert_eq!(seen.as_deref(), Some("r-1"));
        assert!(request_identity().is_none());
        let none = with_request_identity(None, async { request_identity() }).await;
        assert!(none.is_none());
    }
}
