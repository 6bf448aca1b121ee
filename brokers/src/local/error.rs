//! What can be wrong with a local provider's section; every variant names the key at fault,
//! and `check-config` prints it with the section's location.

use std::path::PathBuf;

/// A `[providers.<name>]` section of kind `postgres` or `mysql` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key is missing, unknown or of the wrong type.
    #[error("{0}")]
    Settings(serde_json::Error),
    /// `ca_file` cannot be read.
    #[error("ca_file {}: {source}", path.display())]
    CaFile {
        /// The file named.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// `tls = "verify_full"` without the CA to verify against.
    #[error("tls = \"verify_full\" needs ca_file (the CA that signed the server's certificate)")]
    VerifyFullWithoutCa,
}
