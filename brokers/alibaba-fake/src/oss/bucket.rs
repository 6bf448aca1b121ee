//! Service and bucket operations: ListBuckets, PutBucket, GetBucketInfo, GetBucketLocation,
//! Get/PutBucketAcl, DeleteBucket, ListObjects (V1 and V2) and DeleteMultipleObjects.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use super::error::OssError;
use super::state::{Acl, Bucket, Object, REDUNDANCY_TYPES, STORAGE_CLASSES};
use super::xml::{self, Writer};
use super::{empty_response, xml_response, Call, OWNER_ID};

/// The most keys one listing or one DeleteMultipleObjects may carry.
const MAX_KEYS: usize = 1000;

/// `max-keys` when a listing does not say.
const DEFAULT_MAX_KEYS: usize = 100;

/// `GET /`: the account's buckets, with `prefix`, `marker` and `max-keys`.
pub(super) fn list_buckets(call: &Call<'_>) -> Result<Response, OssError> {
    call.authorize_service()?;
    let prefix = call.query.get("prefix").unwrap_or("");
    let marker = call.query.get("marker").unwrap_or("");
    let max_keys = max_keys(call)?;
    let region = &call.shared.config.region;

    let buckets = super::lock(&call.shared.oss.buckets);
    let mut matching = buckets
        .iter()
        .filter(|(name, _)| name.starts_with(prefix) && name.as_str() > marker)
        .peekable();
    let mut doc = Writer::new();
    doc.open("ListAllMyBucketsResult");
    for (name, value) in [("Prefix", prefix), ("Marker", marker)] {
        if !value.is_empty() {
            doc.leaf(name, value);
        }
    }
    if call.query.has("max-keys") {
        doc.leaf("MaxKeys", max_keys.to_string());
    }
    owner(&mut doc);
    doc.open("Buckets");
    let mut last = None;
    for _ in 0..max_keys {
        let Some((name, bucket)) = matching.next() else {
            break;
        };
        doc.open("Bucket")
            .leaf("CreationDate", xml::iso8601(bucket.created))
            .leaf("ExtranetEndpoint", format!("oss-{region}.aliyuncs.com"))
            .leaf(
                "IntranetEndpoint",
                format!("oss-{region}-internal.aliyuncs.com"),
            )
            .leaf("Location", format!("oss-{region}"))
            .leaf("Name", name)
            .leaf("Region", region)
            .leaf("StorageClass", &bucket.storage_class)
            .close("Bucket");
        last = Some(name.clone());
    }
    doc.close("Buckets");
    if matching.peek().is_some() {
        doc.leaf("IsTruncated", "true")
            .leaf("NextMarker", last.unwrap_or_default());
    } else if call.query.has("max-keys") || call.query.has("marker") {
        doc.leaf("IsTruncated", "false");
    }
    doc.close("ListAllMyBucketsResult");
    Ok(xml_response(doc.finish()))
}

/// `PUT /<bucket>`: creates a bucket, with `x-oss-acl` and an optional
/// `CreateBucketConfiguration` (storage class, redundancy type).
pub(super) fn put_bucket(call: &Call<'_>, name: &str) -> Result<Response, OssError> {
    call.authorize_bucket(name)?;
    let acl = match call.header("x-oss-acl") {
        None => Acl::Private,
        Some(value) => Acl::parse(value).ok_or_else(|| invalid_acl(value))?,
    };
    let config: xml::CreateBucketConfiguration = if call.body.is_empty() {
        Default::default()
    } else {
        xml::parse_body(&call.body)?
    };
    let storage_class = config
        .storage_class
        .unwrap_or_else(|| "Standard".to_owned());
    if !STORAGE_CLASSES.contains(&storage_class.as_str()) {
        return Err(OssError::invalid_argument("Invalid storage class.")
            .detail("ArgumentName", "StorageClass")
            .detail("ArgumentValue", storage_class));
    }
    let redundancy = config
        .data_redundancy_type
        .unwrap_or_else(|| "LRS".to_owned());
    if !REDUNDANCY_TYPES.contains(&redundancy.as_str()) {
        return Err(OssError::invalid_argument("Invalid data redundancy type.")
            .detail("ArgumentName", "DataRedundancyType")
            .detail("ArgumentValue", redundancy));
    }

    let mut buckets = super::lock(&call.shared.oss.buckets);
    if buckets.contains_key(name) {
        return Err(OssError::new(
            StatusCode::CONFLICT,
            "BucketAlreadyExists",
            "The requested bucket name is not available. The bucket namespace is shared by all users \
             of the system. Please select a different name and try again.",
        )
        .detail("BucketName", name));
    }
    buckets.insert(
        name.to_owned(),
        Bucket {
            created: call.now,
            storage_class,
            redundancy,
            acl,
            objects: BTreeMap::new(),
        },
    );
    let mut response = empty_response(StatusCode::OK);
    if let Ok(location) = HeaderValue::from_str(&format!("/{name}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /<bucket>?bucketInfo`.
pub(super) fn get_bucket_info(call: &Call<'_>, name: &str) -> Result<Response, OssError> {
    call.bucket_acl(name)?;
    call.authorize_bucket(name)?;
    let region = &call.shared.config.region;
    let document = call.with_bucket(name, |bucket| {
        let mut doc = Writer::new();
        doc.open("BucketInfo").open("Bucket");
        doc.leaf("AccessMonitor", "Disabled")
            .leaf("CreationDate", xml::iso8601(bucket.created))
            .leaf("ExtranetEndpoint", format!("oss-{region}.aliyuncs.com"))
            .leaf(
                "IntranetEndpoint",
                format!("oss-{region}-internal.aliyuncs.com"),
            )
            .leaf("Location", format!("oss-{region}"))
            .leaf("StorageClass", &bucket.storage_class)
            .leaf("TransferAcceleration", "Disabled")
            .leaf("CrossRegionReplication", "Disabled")
            .leaf("Name", name)
            .leaf("DataRedundancyType", &bucket.redundancy);
        owner(&mut doc);
        doc.open("AccessControlList")
            .leaf("Grant", bucket.acl.as_str())
            .close("AccessControlList");
        doc.open("ServerSideEncryptionRule")
            .leaf("SSEAlgorithm", "None")
            .close("ServerSideEncryptionRule");
        doc.close("Bucket").close("BucketInfo");
        doc.finish()
    })?;
    Ok(xml_response(document))
}

/// `GET /<bucket>?location`.
pub(super) fn get_bucket_location(call: &Call<'_>, name: &str) -> Result<Response, OssError> {
    call.bucket_acl(name)?;
    call.authorize_bucket(name)?;
    let mut doc = Writer::new();
    doc.leaf(
        "LocationConstraint",
        format!("oss-{}", call.shared.config.region),
    );
    Ok(xml_response(doc.finish()))
}

/// `GET /<bucket>?acl`.
pub(super) fn get_bucket_acl(call: &Call<'_>, name: &str) -> Result<Response, OssError> {
    let acl = call.bucket_acl(name)?;
    call.authorize_bucket(name)?;
    let mut doc = Writer::new();
    doc.open("AccessControlPolicy");
    owner(&mut doc);
    doc.open("AccessControlList")
        .leaf("Grant", acl.as_str())
        .close("AccessControlList");
    doc.close("AccessControlPolicy");
    Ok(xml_response(doc.finish()))
}

/// `PUT /<bucket>?acl` with `x-oss-acl`.
pub(super) fn put_bucket_acl(call: &Call<'_>, name: &str) -> Result<Response, OssError> {
    call.bucket_acl(name)?;
    call.authorize_bucket(name)?;
    let value = call.header("x-oss-acl").unwrap_or("");
    // EC as in the answers OSS gave the SDK integration tests for an unknown ACL.
    let acl = Acl::parse(value).ok_or_else(|| invalid_acl(value).ec("0015-00000204"))?;
    call.with_bucket(name, |bucket| bucket.acl = acl)?;
    Ok(empty_response(StatusCode::OK))
}

/// `DELETE /<bucket>`: only an empty bucket (`BucketNotEmpty` otherwise).
pub(super) fn delete_bucket(call: &Call<'_>, name: &str) -> Result<Response, OssError> {
    call.bucket_acl(name)?;
    call.authorize_bucket(name)?;
    let mut buckets = super::lock(&call.shared.oss.buckets);
    match buckets.get(name) {
        None => Err(OssError::no_such_bucket(name)),
        Some(bucket) if !bucket.objects.is_empty() => Err(OssError::new(
            StatusCode::CONFLICT,
            "BucketNotEmpty",
            "The bucket has objects. Please delete them first.",
        )
        .detail("BucketName", name)
        .ec("0015-00000301")),
        Some(_) => {
            buckets.remove(name);
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
    }
}

/// `GET /<bucket>`: the marker-based listing (`prefix`, `marker`, `delimiter`, `max-keys`,
/// `encoding-type`).
pub(super) fn list_objects(call: &Call<'_>, name: &str) -> Result<Response, OssError> {
    call.bucket_acl(name)?;
    call.authorize_bucket(name)?;
    let params = ListParams::read(call)?;
    let marker = call.query.get("marker").unwrap_or("");
    let document = call.with_bucket(name, |bucket| {
        let listing = list(&bucket.objects, &params, marker);
        let mut doc = Writer::new();
        doc.open("ListBucketResult")
            .leaf("Name", name)
            .leaf("Prefix", params.encode(&params.prefix))
            .leaf("Marker", params.encode(marker))
            .leaf("MaxKeys", params.max_keys.to_string())
            .leaf("Delimiter", params.encode(&params.delimiter))
            .leaf("IsTruncated", listing.truncated.to_string());
        if let Some(next) = &listing.next_after {
            doc.leaf("NextMarker", params.encode(next));
        }
        if params.url_encoded {
            doc.leaf("EncodingType", "url");
        }
        write_entries(&mut doc, &listing, &params, true);
        doc.close("ListBucketResult");
        doc.finish()
    })?;
    Ok(xml_response(document))
}

/// `GET /<bucket>?list-type=2`: the token-based listing (`prefix`, `continuation-token`,
/// `start-after`, `delimiter`, `max-keys`, `fetch-owner`, `encoding-type`).
pub(super) fn list_objects_v2(call: &Call<'_>, name: &str) -> Result<Response, OssError> {
    call.bucket_acl(name)?;
    call.authorize_bucket(name)?;
    let params = ListParams::read(call)?;
    let token = call.query.get("continuation-token");
    let start_after = call.query.get("start-after").unwrap_or("");
    // The token is the hex of the last key (or common prefix) the previous page returned:
    // opaque to clients, and free of characters `encoding-type=url` would have to escape.
    let after = match token {
        Some(token) => hex::decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                OssError::invalid_argument("The continuation token provided is incorrect.")
            })?,
        None => start_after.to_owned(),
    };
    let fetch_owner = call.query.get("fetch-owner") == Some("true");
    let document = call.with_bucket(name, |bucket| {
        let listing = list(&bucket.objects, &params, &after);
        let mut doc = Writer::new();
        doc.open("ListBucketResult")
            .leaf("Name", name)
            .leaf("Prefix", params.encode(&params.prefix));
        if !start_after.is_empty() {
            doc.leaf("StartAfter", params.encode(start_after));
        }
        if let Some(token) = token {
            doc.leaf("ContinuationToken", token);
        }
        doc.leaf("MaxKeys", params.max_keys.to_string())
            .leaf("Delimiter", params.encode(&params.delimiter))
            .leaf("IsTruncated", listing.truncated.to_string());
        if let Some(next) = &listing.next_after {
            doc.leaf("NextContinuationToken", hex::encode(next));
        }
        if params.url_encoded {
            doc.leaf("EncodingType", "url");
        }
        write_entries(&mut doc, &listing, &params, fetch_owner);
        doc.leaf("KeyCount", listing.entries.len().to_string());
        doc.close("ListBucketResult");
        doc.finish()
    })?;
    Ok(xml_response(document))
}

/// `POST /<bucket>?delete`: deletes up to 1000 named objects (missing ones count as
/// deleted, as on the real service). `Content-MD5` is required.
pub(super) fn delete_multiple_objects(call: &Call<'_>, name: &str) -> Result<Response, OssError> {
    let acl = call.bucket_acl(name)?;
    if call.header("content-md5").is_none() {
        // The body's integrity is checked before it is read; OSS refuses to go without it.
        return Err(OssError::new(
            StatusCode::BAD_REQUEST,
            "MissingArgument",
            "Missing Some Required Arguments.",
        )
        .detail("ArgumentName", "Content-MD5")
        .ec("0016-00000606"));
    }
    let request: xml::Delete = xml::parse_body(&call.body)?;
    let keys: Vec<String> = request
        .objects
        .into_iter()
        .map(|object| object.key)
        .collect::<Option<_>>()
        .ok_or_else(OssError::malformed_xml)?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(OssError::malformed_xml());
    }
    let quiet = request.quiet.as_deref() == Some("true");
    let url_encoded = encoding_type(call)?;
    // Every object must be allowed; the fake refuses the whole request rather than
    // answering per-object errors.
    for key in &keys {
        call.authorize_object(name, key, acl)?;
    }
    call.with_bucket(name, |bucket| {
        for key in &keys {
            bucket.objects.remove(key);
        }
    })?;
    if quiet {
        return Ok(empty_response(StatusCode::OK));
    }
    let mut doc = Writer::new();
    doc.open("DeleteResult");
    if url_encoded {
        doc.leaf("EncodingType", "url");
    }
    for key in &keys {
        let key = if url_encoded {
            xml::uri_encode(key, false)
        } else {
            key.clone()
        };
        doc.open("Deleted").leaf("Key", key).close("Deleted");
    }
    doc.close("DeleteResult");
    Ok(xml_response(doc.finish()))
}

// ===== listing =====

/// The parameters both listings share.
struct ListParams {
    /// Only keys starting with this.
    prefix: String,
    /// Groups keys into common prefixes up to the first occurrence after `prefix`.
    delimiter: String,
    /// At most this many entries (objects and common prefixes).
    max_keys: usize,
    /// `encoding-type=url`: keys and prefixes in the answer are percent-encoded.
    url_encoded: bool,
}

impl ListParams {
    /// Reads and checks the shared parameters.
    fn read(call: &Call<'_>) -> Result<ListParams, OssError> {
        Ok(ListParams {
            prefix: call.query.get("prefix").unwrap_or("").to_owned(),
            delimiter: call.query.get("delimiter").unwrap_or("").to_owned(),
            max_keys: max_keys(call)?,
            url_encoded: encoding_type(call)?,
        })
    }

    /// A key or prefix as the answer shows it.
    fn encode(&self, text: &str) -> String {
        if self.url_encoded {
            xml::uri_encode(text, false)
        } else {
            text.to_owned()
        }
    }
}

/// `max-keys`: 1 to 1000, 100 when absent.
fn max_keys(call: &Call<'_>) -> Result<usize, OssError> {
    match call.query.get("max-keys") {
        None => Ok(DEFAULT_MAX_KEYS),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|keys| (1..=MAX_KEYS).contains(keys))
            .ok_or_else(|| {
                OssError::invalid_argument(
                    "Argument max-keys must be an integer between 1 and 1000.",
                )
                .detail("ArgumentName", "max-keys")
                .detail("ArgumentValue", text)
            }),
    }
}

/// `encoding-type`: absent or `url`.
fn encoding_type(call: &Call<'_>) -> Result<bool, OssError> {
    match call.query.get("encoding-type") {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(other) => Err(OssError::invalid_argument(
            "Invalid Encoding Method specified in Request",
        )
        .detail("ArgumentName", "encoding-type")
        .detail("ArgumentValue", other)),
    }
}

/// One entry of a listing.
enum Entry<'a> {
    /// An object.
    Object(&'a str, &'a Object),
    /// A common prefix (keys grouped by the delimiter).
    Prefix(String),
}

/// One page of a listing.
struct Listing<'a> {
    /// The entries, in key order.
    entries: Vec<Entry<'a>>,
    /// Whether more entries follow.
    truncated: bool,
    /// Where the next page starts (after this key or prefix), when truncated.
    next_after: Option<String>,
}

/// The page of `objects` after `after` (exclusive) that `params` asks for.
fn list<'a>(
    objects: &'a BTreeMap<String, Object>,
    params: &ListParams,
    after: &str,
) -> Listing<'a> {
    use std::ops::Bound;
    let mut entries: Vec<Entry<'a>> = Vec::new();
    let mut last_prefix: Option<String> = None;
    let mut truncated = false;
    let range = objects.range::<str, _>((Bound::Excluded(after), Bound::Unbounded));
    for (key, object) in range.filter(|(key, _)| key.starts_with(&params.prefix)) {
        let common_prefix = (!params.delimiter.is_empty())
            .then(|| {
                let rest = &key[params.prefix.len()..];
                rest.find(&params.delimiter)
                    .map(|at| format!("{}{}", params.prefix, &rest[..at + params.delimiter.len()]))
            })
            .flatten();
        // A common prefix is one entry however many keys it covers; one the previous page
        // ended on (`after`) is not repeated.
        if let Some(common) = &common_prefix {
            if last_prefix.as_ref() == Some(common) || common.as_str() <= after {
                continue;
            }
        }
        if entries.len() == params.max_keys {
            truncated = true;
            break;
        }
        match common_prefix {
            Some(common) => {
                last_prefix = Some(common.clone());
                entries.push(Entry::Prefix(common));
            }
            None => entries.push(Entry::Object(key, object)),
        }
    }
    let next_after = truncated
        .then(|| match entries.last() {
            Some(Entry::Object(key, _)) => Some((*key).to_owned()),
            Some(Entry::Prefix(prefix)) => Some(prefix.clone()),
            None => None,
        })
        .flatten();
    Listing {
        entries,
        truncated,
        next_after,
    }
}

/// Writes a listing's `Contents` and `CommonPrefixes`.
fn write_entries(doc: &mut Writer, listing: &Listing<'_>, params: &ListParams, with_owner: bool) {
    for entry in &listing.entries {
        if let Entry::Object(key, object) = entry {
            doc.open("Contents")
                .leaf("Key", params.encode(key))
                .leaf("LastModified", xml::iso8601(object.last_modified))
                .leaf("ETag", &object.etag)
                .leaf("Type", "Normal")
                .leaf("Size", object.data.len().to_string())
                .leaf("StorageClass", "Standard");
            if with_owner {
                owner(doc);
            }
            doc.close("Contents");
        }
    }
    for entry in &listing.entries {
        if let Entry::Prefix(prefix) = entry {
            doc.open("CommonPrefixes")
                .leaf("Prefix", params.encode(prefix))
                .close("CommonPrefixes");
        }
    }
}

/// The `Owner` element: the one account the fake serves.
fn owner(doc: &mut Writer) {
    doc.open("Owner")
        .leaf("ID", OWNER_ID)
        .leaf("DisplayName", OWNER_ID)
        .close("Owner");
}

/// `InvalidArgument` for an unknown `x-oss-acl` (message and fields as OSS sends them).
fn invalid_acl(value: &str) -> OssError {
    OssError::invalid_argument("no such bucket access control exists")
        .detail("ArgumentName", "x-oss-acl")
        .detail("ArgumentValue", value)
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;

    use super::*;

    fn objects(keys: &[&str]) -> BTreeMap<String, Object> {
        keys.iter()
            .map(|key| {
                let object = Object {
                    data: Bytes::from_static(b"x"),
                    etag: "\"E\"".to_owned(),
                    crc64: 0,
                    content_type: "text/plain".to_owned(),
                    last_modified: time::OffsetDateTime::UNIX_EPOCH,
                    metadata: BTreeMap::new(),
                };
                ((*key).to_owned(), object)
            })
            .collect()
    }

    fn names(listing: &Listing<'_>) -> Vec<String> {
        listing
            .entries
            .iter()
            .map(|entry| match entry {
                Entry::Object(key, _) => (*key).to_owned(),
                Entry::Prefix(prefix) => format!("{prefix}*"),
            })
            .collect()
    }

    fn params(prefix: &str, delimiter: &str, max_keys: usize) -> ListParams {
        ListParams {
            prefix: prefix.to_owned(),
            delimiter: delimiter.to_owned(),
            max_keys,
            url_encoded: false,
        }
    }

    #[test]
    fn pages_through_keys_in_order() {
        let objects = objects(&["a", "b", "c", "d", "e"]);
        let page = list(&objects, &params("", "", 2), "");
        assert_eq!(
            (names(&page), page.truncated, page.next_after.clone()),
            (vec!["a".into(), "b".into()], true, Some("b".into()))
        );
        let page = list(&objects, &params("", "", 2), "d");
        assert_eq!(
            (names(&page), page.truncated, page.next_after),
            (vec!["e".to_owned()], false, None)
        );
        let page = list(&objects, &params("", "", 5), "");
        assert!(!page.truncated);
    }

    #[test]
    fn groups_keys_by_the_delimiter() {
        let objects = objects(&["a/1", "a/2", "a/b/3", "b", "c/1", "d"]);
        let page = list(&objects, &params("", "/", 100), "");
        assert_eq!(names(&page), ["a/*", "b", "c/*", "d"]);
        let page = list(&objects, &params("a/", "/", 100), "");
        assert_eq!(names(&page), ["a/1", "a/2", "a/b/*"]);

        // A page that ends on a common prefix resumes after all of its keys.
        let page = list(&objects, &params("", "/", 1), "");
        assert_eq!(
            (names(&page), page.next_after.clone()),
            (vec!["a/*".to_owned()], Some("a/".to_owned()))
        );
        let page = list(&objects, &params("", "/", 2), "a/");
        assert_eq!(
            (names(&page), page.truncated),
            (vec!["b".to_owned(), "c/*".to_owned()], true)
        );
    }
}
