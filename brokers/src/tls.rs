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

/// [`client_config`] for one server: trusting `ca_pem` instead of the system's roots when it
/// is given, and presenting `identity` (certificate chain and private key, PEM) when asked.
///
/// # Errors
/// PEM that holds no certificate or no key, or a key rustls cannot use.
pub(crate) fn client_config_for(
    ca_pem: Option<&str>,
    identity: Option<(&str, &str)>,
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?;
    let builder = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|err| format!("ca_certificate: {err}"))?;
                roots
                    .add(cert)
                    .map_err(|err| format!("ca_certificate: {err}"))?;
            }
            if roots.is_empty() {
                return Err("ca_certificate holds no certificate".to_owned());
            }
            builder.with_root_certificates(roots)
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt as _;
            builder
                .with_platform_verifier()
                .map_err(|err| format!("TLS: the system's trusted certificates: {err}"))?
        }
    };
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_pem, key_pem)) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|err| format!("client_certificate: {err}"))?;
            if chain.is_empty() {
                return Err("client_certificate holds no certificate".to_owned());
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|err| format!("client_key: {err}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| format!("client certificate and key: {err}"))
        }
    }
}
