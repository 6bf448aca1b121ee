//! Black-box OSB conformance tests: each test starts a real broker on an ephemeral port (memory
//! store unless it says otherwise) and drives it over HTTP. Every test names the checklist
//! items (`OSB-…`) and decisions (`D-…`) it covers.

mod alibaba;
mod aws;
mod aws_credentials;
mod bindings;
mod catalog;
mod concurrency;
mod dashboard;
mod harness;
mod headers;
mod hostile;
mod instances;
mod last_operation;
mod lifecycle;
mod local_db;
mod metrics;
mod replicas;
mod secrets;
mod servers;
mod service_manager;
