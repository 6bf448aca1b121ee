//! TLS for the HTTP clients of providers that talk to a server over HTTPS (Alibaba Cloud's
//! APIs, external OSB brokers): rustls on the ring provider, which the rest of the workspace
//! uses, with the platform's trusted roots.

use std::sync::Arc;

/// The rustls configuration: the ring provider and the platform's trusted roots. Loading
/// roots fails on a system without any; that only matters when an endpoint is https
/// (`needs_roots`), so plain-http set-ups (tests, fakes) work without them, and an https
/// endpoint then fails its handshake with a clear error.
///
/// # Errors
/// The message says what is missing.
pub(crate) fn client_config(needs_roots: bool) -> Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = || {
        rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS: {err}"))
    };
    match builder()?.with_platform_verifier() {
        Ok(builder) => Ok(builder.with_no_client_auth()),
        Err(err) if needs_roots => Err(format!(
            "TLS: cannot load the system's trusted certificates (install ca-certificates): {err}"
        )),
        Err(_) => Ok(builder()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()),
    }
}
