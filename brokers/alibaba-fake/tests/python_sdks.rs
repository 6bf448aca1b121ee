//! The official Alibaba Cloud Python SDKs against the fake: `tests/sdk/proof.py` makes real
//! RDS, RAM and OSS calls with alibabacloud-rds20140815, alibabacloud-ram20150501 and
//! alibabacloud-oss-v2, which must be accepted, and one call per SDK with one byte of its
//! signature changed, which must be refused with `SignatureDoesNotMatch`.
//!
//! With alibabacloud-sts20150401 a RAM user made by the proof assumes a role, and the RDS
//! SDK uses the temporary key and its security token: reads the role allows are accepted;
//! a write it does not allow, another token and an ended session are refused, each with the
//! code the proof expects (`Forbidden.RAM`, `InvalidSecurityToken.MismatchWithAccessKey`,
//! `InvalidSecurityToken.Expired`).
//!
//! Needs `SKYBROKER_TEST_ALIBABA_PYTHON`: a python3 whose environment has
//! `tests/sdk/requirements.txt` installed (test.sh's `ensure_alibaba_sdks` makes one).
//! Without it the test says so loudly and passes, except in CI (`CI=true`), where a
//! skipped proof is a failure.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use skybroker_alibaba_fake::{FakeAlibaba, FakeConfig};

/// The python to run the proof with, or `None` (after saying so) when the test is skipped.
fn python() -> Option<String> {
    match std::env::var("SKYBROKER_TEST_ALIBABA_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "SKYBROKER_TEST_ALIBABA_PYTHON is not set: in CI the Python SDK proof must run \
                 (test.sh's ensure_alibaba_sdks sets it up)"
            );
            eprintln!(
                "\n*** SKIPPED: the official Alibaba Cloud Python SDK proof did not run.\n\
                 *** Set SKYBROKER_TEST_ALIBABA_PYTHON to a python3 with \
                 brokers/alibaba-fake/tests/sdk/requirements.txt installed (./test.sh does).\n"
            );
            None
        }
    }
}

#[tokio::test]
async fn the_official_python_sdks_are_accepted_and_one_changed_byte_is_refused() {
    let Some(python) = python() else { return };
    let config = FakeConfig::default();
    let fake = FakeAlibaba::start(config.clone())
        .await
        .expect("the fake starts");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/proof.py");

    let mut command = tokio::process::Command::new(&python);
    command
        .arg(&script)
        .args(["--rpc-url", &fake.rpc_url()])
        .args(["--oss-url", &fake.oss_url()])
        .args(["--region", &config.region])
        .args(["--access-key-id", &config.access_key_id])
        .args(["--access-key-secret", &config.access_key_secret])
        // Loopback calls must not be sent to a proxy configured for the machine.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .kill_on_drop(true);
    for variable in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        command.env_remove(variable);
    }
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("proof.py finishes within 3 minutes")
        .unwrap_or_else(|err| panic!("{python} runs: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "proof.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let result: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("proof.py printed no JSON ({err}):\n{stdout}\n{stderr}"));
    assert_eq!(result["ok"], true, "{result:#}");

    // Every call as expected: each accepted call succeeded, each tampered one was refused
    // for its signature, each expected refusal had its code, and each SDK has the first two.
    let calls = result["calls"].as_array().expect("calls");
    for call in calls {
        if call["tampered"] == true {
            assert_eq!(call["accepted"], false, "tampered call accepted: {call:#}");
            assert_eq!(call["code"], "SignatureDoesNotMatch", "{call:#}");
        } else if call["refused"] == true {
            assert_eq!(call["accepted"], false, "call accepted: {call:#}");
            assert_eq!(call["code"], call["expected_code"], "{call:#}");
        } else {
            assert_eq!(call["accepted"], true, "call refused: {call:#}");
        }
    }
    let refusals: Vec<&str> = calls
        .iter()
        .filter(|c| c["sdk"] == "sts" && c["refused"] == true)
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert_eq!(
        refusals,
        [
            "Forbidden.RAM",
            "InvalidSecurityToken.MismatchWithAccessKey",
            "InvalidSecurityToken.Expired"
        ],
        "{result:#}"
    );
    for sdk in ["rds", "ram", "oss", "sts"] {
        let of_sdk = |tampered: bool| {
            calls
                .iter()
                .filter(|c| c["sdk"] == sdk && c["tampered"] == tampered)
                .count()
        };
        assert!(
            of_sdk(false) >= 2,
            "{sdk}: too few accepted calls in {result:#}"
        );
        assert_eq!(
            of_sdk(true),
            1,
            "{sdk}: one tampered call expected in {result:#}"
        );
    }

    // The SDKs signed the way they do by default, and the refused calls changed nothing.
    let algorithms = &result["signature_algorithms"];
    assert_eq!(algorithms["rds"], "ACS3-HMAC-SHA256", "{result:#}");
    assert_eq!(algorithms["ram"], "ACS3-HMAC-SHA256", "{result:#}");
    assert_eq!(algorithms["sts"], "ACS3-HMAC-SHA256", "{result:#}");
    assert_eq!(algorithms["oss"], "OSS4-HMAC-SHA256", "{result:#}");
    let snapshot = fake.snapshot();
    assert_eq!(
        snapshot["oss"]["buckets"],
        serde_json::json!([]),
        "{snapshot:#}"
    );
    eprintln!("Python SDK proof: {}", result["packages"]);
}
