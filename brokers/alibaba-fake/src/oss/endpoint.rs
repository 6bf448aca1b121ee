//! Which operation a request is: its address (path-style `/<bucket>/<key>` or
//! virtual-hosted `Host: <bucket>.<endpoint>`), method and sub-resource mapped onto one
//! closed set of endpoints, each with the RAM action and resource that authorize it.
//!
//! Pure functions of the request line and headers, so the table is tested without a socket.

use axum::http::{HeaderMap, Method, StatusCode};

use super::error::OssError;
use super::xml;

/// The longest object key OSS accepts, in bytes.
const MAX_KEY_BYTES: usize = 1023;

/// Query parameters that select another operation on the same address (OSS's
/// sub-resources). Any one this fake does not model answers `NotImplemented` rather than
/// being mistaken for the plain operation.
const SUB_RESOURCES: [&str; 33] = [
    "acl",
    "append",
    "bucketInfo",
    "cname",
    "comp",
    "cors",
    "delete",
    "encryption",
    "inventory",
    "lifecycle",
    "live",
    "location",
    "logging",
    "objectMeta",
    "partNumber",
    "policy",
    "position",
    "qos",
    "referer",
    "replication",
    "requestPayment",
    "restore",
    "stat",
    "style",
    "symlink",
    "tagging",
    "uploadId",
    "uploads",
    "versioning",
    "versionId",
    "versions",
    "website",
    "worm",
];

/// Where a request points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The bucket, `None` for service operations (`GET /`).
    pub bucket: Option<String>,
    /// The object key, decoded; `None` for bucket and service operations.
    pub key: Option<String>,
}

/// The decoded query parameters, in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string (`+` is a space, as HTML forms and the SDKs write it).
    ///
    /// # Errors
    /// `InvalidArgument` for a parameter that does not decode to UTF-8.
    pub fn parse(raw: &str) -> Result<Query, OssError> {
        let mut params = Vec::new();
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| {
                xml::percent_decode(text, true).ok_or_else(|| {
                    OssError::invalid_argument(format!("Query parameter {pair:?} is not UTF-8."))
                })
            };
            params.push((decode(name)?, decode(value)?));
        }
        Ok(Query(params))
    }

    /// The value of `name` (empty for a bare `?acl`), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// The address a request points at.
///
/// A host of the form `<bucket>.<domain>` (where the domain has a dot or is `localhost`,
/// and the first label is not an `oss-<region>` endpoint) is virtual-hosted; anything else
/// (an IP address, `localhost`, the bare endpoint) is path-style.
///
/// # Errors
/// `InvalidBucketName` or `InvalidObjectName` for names OSS refuses.
pub fn parse_address(host: &str, path: &str) -> Result<Address, OssError> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = match virtual_host_bucket(host) {
        Some(bucket) => (Some(bucket.to_owned()), path),
        None if path.is_empty() => (None, ""),
        None => {
            let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
            let bucket = xml::percent_decode(bucket, false)
                .ok_or_else(|| OssError::invalid_bucket_name(bucket))?;
            (Some(bucket), key)
        }
    };
    if let Some(bucket) = &bucket {
        if !valid_bucket_name(bucket) {
            return Err(OssError::invalid_bucket_name(bucket));
        }
    }
    let key = match key {
        "" => None,
        raw => {
            let key = xml::percent_decode(raw, false)
                .ok_or_else(|| OssError::invalid_object_name(raw))?;
            if key.len() > MAX_KEY_BYTES || key.starts_with('/') || key.starts_with('\\') {
                return Err(OssError::invalid_object_name(&key));
            }
            Some(key)
        }
    };
    Ok(Address { bucket, key })
}

/// The bucket of a virtual-hosted `Host` header, if it is one.
fn virtual_host_bucket(host: &str) -> Option<&str> {
    // Strip the port; an IPv6 literal (`[::1]:80`) is never virtual-hosted.
    if host.starts_with('[') {
        return None;
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _port)| name);
    if name.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let (first, rest) = name.split_once('.')?;
    let domain = rest.contains('.') || rest == "localhost";
    (domain && !first.starts_with("oss-") && !first.is_empty()).then_some(first)
}

/// OSS bucket names: 3 to 63 lower-case letters, digits and hyphens, not starting or
/// ending with a hyphen.
pub fn valid_bucket_name(name: &str) -> bool {
    let allowed = name
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    (3..=63).contains(&name.len()) && allowed && !name.starts_with('-') && !name.ends_with('-')
}

/// The operations the fake OSS serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /`.
    ListBuckets,
    /// `PUT /<bucket>`.
    PutBucket {
        /// The bucket to create.
        bucket: String,
    },
    /// `GET /<bucket>?bucketInfo`.
    GetBucketInfo {
        /// The bucket.
        bucket: String,
    },
    /// `GET /<bucket>?location`.
    GetBucketLocation {
        /// The bucket.
        bucket: String,
    },
    /// `GET /<bucket>?acl`.
    GetBucketAcl {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /<bucket>?acl`.
    PutBucketAcl {
        /// The bucket.
        bucket: String,
    },
    /// `DELETE /<bucket>`.
    DeleteBucket {
        /// The bucket.
        bucket: String,
    },
    /// `GET /<bucket>` (marker-based listing).
    ListObjects {
        /// The bucket.
        bucket: String,
    },
    /// `GET /<bucket>?list-type=2`.
    ListObjectsV2 {
        /// The bucket.
        bucket: String,
    },
    /// `POST /<bucket>?delete`.
    DeleteMultipleObjects {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /<bucket>/<key>`.
    PutObject {
        /// The bucket.
        bucket: String,
        /// The object.
        key: String,
    },
    /// `GET /<bucket>/<key>`.
    GetObject {
        /// The bucket.
        bucket: String,
        /// The object.
        key: String,
    },
    /// `HEAD /<bucket>/<key>`.
    HeadObject {
        /// The bucket.
        bucket: String,
        /// The object.
        key: String,
    },
    /// `DELETE /<bucket>/<key>`.
    DeleteObject {
        /// The bucket.
        bucket: String,
        /// The object.
        key: String,
    },
}

impl Endpoint {
    /// The operation a request is.
    ///
    /// # Errors
    /// `MethodNotAllowed` for a method the address has no operation for, `NotImplemented`
    /// for a real OSS operation this fake does not model.
    pub fn from_request(
        method: &Method,
        address: &Address,
        query: &Query,
        headers: &HeaderMap,
    ) -> Result<Endpoint, OssError> {
        let sub_resources: Vec<&str> = SUB_RESOURCES
            .iter()
            .copied()
            .filter(|name| query.has(name))
            .collect();
        let sub = match sub_resources[..] {
            [] => None,
            [one] => Some(one),
            _ => {
                return Err(OssError::not_implemented(
                    "This combination of sub-resources",
                ))
            }
        };
        let (Some(bucket), key) = (address.bucket.clone(), address.key.clone()) else {
            return match (method, sub) {
                (&Method::GET, None) => Ok(Endpoint::ListBuckets),
                (&Method::GET, Some(sub)) => {
                    Err(OssError::not_implemented(&format!("GET /?{sub}")))
                }
                _ => Err(method_not_allowed()),
            };
        };
        let Some(key) = key else {
            return match (method, sub) {
                (&Method::PUT, None) => Ok(Endpoint::PutBucket { bucket }),
                (&Method::PUT, Some("acl")) => Ok(Endpoint::PutBucketAcl { bucket }),
                (&Method::GET, Some("acl")) => Ok(Endpoint::GetBucketAcl { bucket }),
                (&Method::GET, Some("bucketInfo")) => Ok(Endpoint::GetBucketInfo { bucket }),
                (&Method::GET, Some("location")) => Ok(Endpoint::GetBucketLocation { bucket }),
                (&Method::GET, None) => match query.get("list-type") {
                    None => Ok(Endpoint::ListObjects { bucket }),
                    Some("2") => Ok(Endpoint::ListObjectsV2 { bucket }),
                    Some(_) => Err(OssError::invalid_argument("list-type must be 2.")),
                },
                (&Method::DELETE, None) => Ok(Endpoint::DeleteBucket { bucket }),
                (&Method::POST, Some("delete")) => Ok(Endpoint::DeleteMultipleObjects { bucket }),
                (&Method::PUT | &Method::GET | &Method::DELETE | &Method::POST, Some(sub)) => Err(
                    OssError::not_implemented(&format!("{method} /<bucket>?{sub}")),
                ),
                _ => Err(method_not_allowed()),
            };
        };
        match (method, sub) {
            (&Method::PUT, None) if headers.contains_key("x-oss-copy-source") => {
                Err(OssError::not_implemented("CopyObject"))
            }
            (&Method::PUT, None) => Ok(Endpoint::PutObject { bucket, key }),
            (&Method::GET, None) => Ok(Endpoint::GetObject { bucket, key }),
            (&Method::HEAD, None) => Ok(Endpoint::HeadObject { bucket, key }),
            (&Method::DELETE, None) => Ok(Endpoint::DeleteObject { bucket, key }),
            (
                &Method::PUT | &Method::GET | &Method::HEAD | &Method::DELETE | &Method::POST,
                sub,
            ) => Err(OssError::not_implemented(&format!(
                "{method} /<bucket>/<key>?{}",
                sub.unwrap_or("")
            ))),
            _ => Err(method_not_allowed()),
        }
    }

    /// The operation's name in OSS's API reference.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::ListBuckets => "ListBuckets",
            Endpoint::PutBucket { .. } => "PutBucket",
            Endpoint::GetBucketInfo { .. } => "GetBucketInfo",
            Endpoint::GetBucketLocation { .. } => "GetBucketLocation",
            Endpoint::GetBucketAcl { .. } => "GetBucketAcl",
            Endpoint::PutBucketAcl { .. } => "PutBucketAcl",
            Endpoint::DeleteBucket { .. } => "DeleteBucket",
            Endpoint::ListObjects { .. } => "ListObjects",
            Endpoint::ListObjectsV2 { .. } => "ListObjectsV2",
            Endpoint::DeleteMultipleObjects { .. } => "DeleteMultipleObjects",
            Endpoint::PutObject { .. } => "PutObject",
            Endpoint::GetObject { .. } => "GetObject",
            Endpoint::HeadObject { .. } => "HeadObject",
            Endpoint::DeleteObject { .. } => "DeleteObject",
        }
    }

    /// The RAM action that authorizes the operation (for DeleteMultipleObjects, the one
    /// checked for each object it names).
    pub fn action(&self) -> &'static str {
        match self {
            Endpoint::ListBuckets => "oss:ListBuckets",
            Endpoint::PutBucket { .. } => "oss:PutBucket",
            Endpoint::GetBucketInfo { .. } => "oss:GetBucketInfo",
            Endpoint::GetBucketLocation { .. } => "oss:GetBucketLocation",
            Endpoint::GetBucketAcl { .. } => "oss:GetBucketAcl",
            Endpoint::PutBucketAcl { .. } => "oss:PutBucketAcl",
            Endpoint::DeleteBucket { .. } => "oss:DeleteBucket",
            Endpoint::ListObjects { .. } | Endpoint::ListObjectsV2 { .. } => "oss:ListObjects",
            Endpoint::PutObject { .. } => "oss:PutObject",
            Endpoint::GetObject { .. } | Endpoint::HeadObject { .. } => "oss:GetObject",
            Endpoint::DeleteMultipleObjects { .. } | Endpoint::DeleteObject { .. } => {
                "oss:DeleteObject"
            }
        }
    }

    /// Whether OSS counts this among the management ("meta") operations it throttles
    /// separately (service and bucket configuration), as opposed to data operations.
    pub fn is_meta(&self) -> bool {
        matches!(
            self,
            Endpoint::ListBuckets
                | Endpoint::PutBucket { .. }
                | Endpoint::GetBucketInfo { .. }
                | Endpoint::GetBucketLocation { .. }
                | Endpoint::GetBucketAcl { .. }
                | Endpoint::PutBucketAcl { .. }
                | Endpoint::DeleteBucket { .. }
        )
    }
}

/// The RAM resource of a bucket: `acs:oss:*:*:<bucket>`.
pub fn bucket_resource(bucket: &str) -> String {
    format!("acs:oss:*:*:{bucket}")
}

/// The RAM resource of an object: `acs:oss:*:*:<bucket>/<key>`.
pub fn object_resource(bucket: &str, key: &str) -> String {
    format!("acs:oss:*:*:{bucket}/{key}")
}

/// The RAM resource of service-level operations.
pub const SERVICE_RESOURCE: &str = "acs:oss:*:*:*";

/// 405 `MethodNotAllowed`.
fn method_not_allowed() -> OssError {
    OssError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(host: &str, path: &str) -> Address {
        parse_address(host, path).unwrap()
    }

    fn at(bucket: Option<&str>, key: Option<&str>) -> Address {
        Address {
            bucket: bucket.map(str::to_owned),
            key: key.map(str::to_owned),
        }
    }

    #[test]
    fn path_style_and_virtual_hosted_addresses() {
        assert_eq!(address("127.0.0.1:4000", "/"), at(None, None));
        assert_eq!(address("127.0.0.1:4000", "/bkt"), at(Some("bkt"), None));
        assert_eq!(address("127.0.0.1:4000", "/bkt/"), at(Some("bkt"), None));
        assert_eq!(
            address("127.0.0.1:4000", "/bkt/dir/a%20b%2Bc"),
            at(Some("bkt"), Some("dir/a b+c"))
        );
        assert_eq!(
            address("localhost:4000", "/bkt/k"),
            at(Some("bkt"), Some("k"))
        );
        assert_eq!(address("[::1]:4000", "/bkt/k"), at(Some("bkt"), Some("k")));
        assert_eq!(
            address("oss-cn-hangzhou.aliyuncs.com", "/bkt/k"),
            at(Some("bkt"), Some("k"))
        );
        assert_eq!(
            address("bkt.oss-cn-hangzhou.aliyuncs.com", "/k/x"),
            at(Some("bkt"), Some("k/x"))
        );
        assert_eq!(address("bkt.localhost:4000", "/"), at(Some("bkt"), None));

        for (host, path, code) in [
            ("127.0.0.1", "/Upper/k", "InvalidBucketName"),
            ("127.0.0.1", "/ab/k", "InvalidBucketName"),
            ("127.0.0.1", "/-abc", "InvalidBucketName"),
            ("127.0.0.1", "/abc-", "InvalidBucketName"),
            ("127.0.0.1", "/a_bc", "InvalidBucketName"),
            (
                "127.0.0.1",
                &format!("/{}", "a".repeat(64)),
                "InvalidBucketName",
            ),
            ("127.0.0.1", "/abc//k", "InvalidObjectName"),
            ("127.0.0.1", "/abc/%FF", "InvalidObjectName"),
            (
                "127.0.0.1",
                &format!("/abc/{}", "k".repeat(1024)),
                "InvalidObjectName",
            ),
        ] {
            assert_eq!(parse_address(host, path).unwrap_err().code, code, "{path}");
        }
        assert!(valid_bucket_name(&"a".repeat(63)));
        assert!(valid_bucket_name("a-1"));
    }

    #[test]
    fn maps_methods_and_sub_resources_to_operations() {
        let bucket = at(Some("bkt"), None);
        let object = at(Some("bkt"), Some("k"));
        let none = HeaderMap::new();
        let endpoint = |method: Method, address: &Address, query: &str| {
            Endpoint::from_request(&method, address, &Query::parse(query).unwrap(), &none)
        };
        let b = || "bkt".to_owned();
        let k = || "k".to_owned();
        assert_eq!(
            endpoint(Method::GET, &at(None, None), ""),
            Ok(Endpoint::ListBuckets)
        );
        assert_eq!(
            endpoint(Method::PUT, &bucket, ""),
            Ok(Endpoint::PutBucket { bucket: b() })
        );
        assert_eq!(
            endpoint(Method::PUT, &bucket, "acl"),
            Ok(Endpoint::PutBucketAcl { bucket: b() })
        );
        assert_eq!(
            endpoint(Method::GET, &bucket, "acl="),
            Ok(Endpoint::GetBucketAcl { bucket: b() })
        );
        assert_eq!(
            endpoint(Method::GET, &bucket, "bucketInfo"),
            Ok(Endpoint::GetBucketInfo { bucket: b() })
        );
        assert_eq!(
            endpoint(Method::GET, &bucket, "location"),
            Ok(Endpoint::GetBucketLocation { bucket: b() })
        );
        assert_eq!(
            endpoint(Method::GET, &bucket, "prefix=a"),
            Ok(Endpoint::ListObjects { bucket: b() })
        );
        assert_eq!(
            endpoint(Method::GET, &bucket, "list-type=2&encoding-type=url"),
            Ok(Endpoint::ListObjectsV2 { bucket: b() })
        );
        assert_eq!(
            endpoint(Method::DELETE, &bucket, ""),
            Ok(Endpoint::DeleteBucket { bucket: b() })
        );
        assert_eq!(
            endpoint(Method::POST, &bucket, "delete&encoding-type=url"),
            Ok(Endpoint::DeleteMultipleObjects { bucket: b() })
        );
        assert_eq!(
            endpoint(Method::PUT, &object, ""),
            Ok(Endpoint::PutObject {
                bucket: b(),
                key: k()
            })
        );
        assert_eq!(
            endpoint(Method::GET, &object, ""),
            Ok(Endpoint::GetObject {
                bucket: b(),
                key: k()
            })
        );
        assert_eq!(
            endpoint(Method::HEAD, &object, ""),
            Ok(Endpoint::HeadObject {
                bucket: b(),
                key: k()
            })
        );
        assert_eq!(
            endpoint(Method::DELETE, &object, ""),
            Ok(Endpoint::DeleteObject {
                bucket: b(),
                key: k()
            })
        );

        for (method, address, query, code) in [
            (Method::PUT, &bucket, "lifecycle", "NotImplemented"),
            (Method::GET, &object, "acl", "NotImplemented"),
            (Method::POST, &object, "append&position=0", "NotImplemented"),
            (Method::GET, &bucket, "list-type=1", "InvalidArgument"),
            (Method::PATCH, &object, "", "MethodNotAllowed"),
            (Method::PUT, &at(None, None), "", "MethodNotAllowed"),
        ] {
            assert_eq!(
                endpoint(method, address, query).unwrap_err().code,
                code,
                "{query}"
            );
        }

        let mut copy = HeaderMap::new();
        copy.insert("x-oss-copy-source", "/bkt/src".parse().unwrap());
        let err =
            Endpoint::from_request(&Method::PUT, &object, &Query::default(), &copy).unwrap_err();
        assert_eq!(err.code, "NotImplemented");
    }

    #[test]
    fn names_the_ram_action_of_each_operation() {
        let b = || "bkt".to_owned();
        let k = || "k".to_owned();
        for (endpoint, action) in [
            (Endpoint::ListBuckets, "oss:ListBuckets"),
            (Endpoint::PutBucket { bucket: b() }, "oss:PutBucket"),
            (Endpoint::ListObjectsV2 { bucket: b() }, "oss:ListObjects"),
            (
                Endpoint::HeadObject {
                    bucket: b(),
                    key: k(),
                },
                "oss:GetObject",
            ),
            (
                Endpoint::DeleteMultipleObjects { bucket: b() },
                "oss:DeleteObject",
            ),
        ] {
            assert_eq!(endpoint.action(), action, "{}", endpoint.name());
        }
        assert_eq!(object_resource("bkt", "a/b"), "acs:oss:*:*:bkt/a/b");
        assert_eq!(bucket_resource("bkt"), "acs:oss:*:*:bkt");
    }
}
