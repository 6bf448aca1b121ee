//! What the fake OSS holds: buckets with their settings, and the objects in them.

use std::collections::BTreeMap;

use axum::body::Bytes;
use time::OffsetDateTime;

/// A bucket's canned ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acl {
    /// Only the owner's account (and RAM identities it allows).
    Private,
    /// Anyone may read objects.
    PublicRead,
    /// Anyone may read, write and delete objects.
    PublicReadWrite,
}

impl Acl {
    /// Parses an `x-oss-acl` value.
    pub fn parse(value: &str) -> Option<Acl> {
        match value {
            "private" => Some(Acl::Private),
            "public-read" => Some(Acl::PublicRead),
            "public-read-write" => Some(Acl::PublicReadWrite),
            _ => None,
        }
    }

    /// The `x-oss-acl` / `Grant` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Acl::Private => "private",
            Acl::PublicRead => "public-read",
            Acl::PublicReadWrite => "public-read-write",
        }
    }

    /// Whether this ACL lets anyone do `action` (a RAM action name such as `oss:GetObject`).
    pub fn grants(self, action: &str) -> bool {
        match self {
            Acl::Private => false,
            Acl::PublicRead => action == "oss:GetObject",
            Acl::PublicReadWrite => matches!(
                action,
                "oss:GetObject" | "oss:PutObject" | "oss:DeleteObject"
            ),
        }
    }
}

/// The storage classes a bucket may be created with.
pub const STORAGE_CLASSES: [&str; 5] = [
    "Standard",
    "IA",
    "Archive",
    "ColdArchive",
    "DeepColdArchive",
];

/// The redundancy types a bucket may be created with.
pub const REDUNDANCY_TYPES: [&str; 2] = ["LRS", "ZRS"];

/// One bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// When it was created.
    pub created: OffsetDateTime,
    /// `Standard`, `IA`, ...
    pub storage_class: String,
    /// `LRS` or `ZRS`.
    pub redundancy: String,
    /// Its canned ACL.
    pub acl: Acl,
    /// Its objects by key, in key order (the order listings return).
    pub objects: BTreeMap<String, Object>,
}

/// One object.
#[derive(Debug, Clone)]
pub struct Object {
    /// The content.
    pub data: Bytes,
    /// `"<upper-case hex MD5>"`, quotes included, as OSS sends it.
    pub etag: String,
    /// The CRC-64/ECMA-182 of the content, as `x-oss-hash-crc64ecma` carries it (decimal).
    pub crc64: u64,
    /// The `Content-Type` it was stored with.
    pub content_type: String,
    /// When it was last written.
    pub last_modified: OffsetDateTime,
    /// `x-oss-meta-*` headers, names lower case.
    pub metadata: BTreeMap<String, String>,
}
