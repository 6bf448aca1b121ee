//! The sandbox's plan settings (see the table in the module above): parsed and checked once
//! per call, from the plan's `settings` object.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::{OperationKind, OperationRequest, Progress, SettingsError};

/// How a plan behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Sync,
    Async,
    Fail,
}

/// A plan's `settings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    mode: Mode,
    #[serde(default)]
    pub(super) delay_ms: Option<u64>,
    #[serde(default)]
    pub(super) failure_rate: f64,
    #[serde(default)]
    pub(super) failure_message: Option<String>,
    #[serde(default)]
    pub(super) missing_on_delete: bool,
    /// Bindings expire this long after they are made (`metadata.expires_at`, with
    /// `renew_before` at half the time), as short-lived credentials do.
    #[serde(default)]
    pub(super) binding_ttl_secs: Option<u64>,
}

impl Settings {
    pub(super) fn parse(value: &Value) -> Result<Settings, SettingsError> {
        let settings: Settings = serde_json::from_value(value.clone())?;
        if !(0.0..=1.0).contains(&settings.failure_rate) {
            return Err(SettingsError::invalid(format!(
                "failure_rate {} is not within 0.0..=1.0",
                settings.failure_rate
            )));
        }
        Ok(settings)
    }

    pub(super) fn is_async(&self, kind: OperationKind) -> bool {
        match self.mode {
            Mode::Sync => false,
            Mode::Async => true,
            Mode::Fail => kind == OperationKind::Provision,
        }
    }

    pub(super) fn delay(&self, kind: OperationKind) -> Duration {
        let default = if self.is_async(kind) { 1000 } else { 0 };
        Duration::from_millis(self.delay_ms.unwrap_or(default))
    }

    /// Whether this operation ends failed: always on `fail` plans' provisions, otherwise by
    /// `failure_rate`, decided from the operation id so repeats agree.
    pub(super) fn fails(&self, request: &OperationRequest) -> bool {
        if self.mode == Mode::Fail && request.kind == OperationKind::Provision {
            return true;
        }
        if self.failure_rate <= 0.0 {
            return false;
        }
        // FNV-1a: a stable hash (std's hasher is seeded per process).
        let hash = request
            .operation_id
            .bytes()
            .fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
            });
        (hash % 10_000) as f64 / 10_000.0 < self.failure_rate
    }

    pub(super) fn failure(&self) -> Progress {
        Progress::Failed {
            description: self
                .failure_message
                .clone()
                .unwrap_or_else(|| "the sandbox simulated a provider failure".to_owned()),
            instance_usable: None,
            update_repeatable: None,
        }
    }
}
