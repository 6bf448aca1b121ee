//! Object operations: PutObject, GetObject, HeadObject and DeleteObject.
//!
//! Objects carry what clients check: an upper-case hex MD5 `ETag`, the
//! `x-oss-hash-crc64ecma` the official SDKs compare with their own CRC of the data,
//! `Content-Type`, `Last-Modified` and `x-oss-meta-*` metadata.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use md5::{Digest, Md5};

use super::error::OssError;
use super::state::Object;
use super::{empty_response, xml, Call};

/// `PUT /<bucket>/<key>`: stores the body, replacing any object of that key.
pub(super) fn put_object(call: &Call<'_>, bucket: &str, key: &str) -> Result<Response, OssError> {
    let acl = call.bucket_acl(bucket)?;
    call.authorize_object(bucket, key, acl)?;
    let md5 = Md5::digest(&call.body);
    let metadata: BTreeMap<String, String> = call
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-oss-meta-"))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let object = Object {
        data: call.body.clone(),
        etag: format!("\"{}\"", hex::encode_upper(md5)),
        crc64: crc64_ecma(&call.body),
        content_type: call
            .header("content-type")
            .unwrap_or("application/octet-stream")
            .to_owned(),
        last_modified: call.now,
        metadata,
    };
    let (etag, crc64) = (object.etag.clone(), object.crc64);
    call.with_bucket(bucket, |found| found.objects.insert(key.to_owned(), object))?;

    let mut response = empty_response(StatusCode::OK);
    let headers = response.headers_mut();
    insert(headers, header::ETAG, &etag);
    insert(
        headers,
        HeaderName::from_static("x-oss-hash-crc64ecma"),
        &crc64.to_string(),
    );
    insert(
        headers,
        HeaderName::from_static("content-md5"),
        &base64::engine::general_purpose::STANDARD.encode(md5),
    );
    Ok(response)
}

/// `GET /<bucket>/<key>` (the content) and `HEAD /<bucket>/<key>` (only its headers).
pub(super) fn get_object(
    call: &Call<'_>,
    bucket: &str,
    key: &str,
    head: bool,
) -> Result<Response, OssError> {
    let acl = call.bucket_acl(bucket)?;
    call.authorize_object(bucket, key, acl)?;
    let object = call
        .with_bucket(bucket, |found| found.objects.get(key).cloned())?
        .ok_or_else(|| OssError::no_such_key(key))?;

    let mut response = Response::builder().status(StatusCode::OK);
    if let Some(headers) = response.headers_mut() {
        insert(headers, header::CONTENT_TYPE, &object.content_type);
        insert(
            headers,
            header::CONTENT_LENGTH,
            &object.data.len().to_string(),
        );
        insert(headers, header::ETAG, &object.etag);
        insert(
            headers,
            header::LAST_MODIFIED,
            &xml::http_date(object.last_modified),
        );
        insert(headers, header::ACCEPT_RANGES, "bytes");
        insert(
            headers,
            HeaderName::from_static("x-oss-object-type"),
            "Normal",
        );
        insert(
            headers,
            HeaderName::from_static("x-oss-storage-class"),
            "Standard",
        );
        insert(
            headers,
            HeaderName::from_static("x-oss-hash-crc64ecma"),
            &object.crc64.to_string(),
        );
        for (name, value) in &object.metadata {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                insert(headers, name, value);
            }
        }
    }
    // A HEAD answer keeps the Content-Length of the content it leaves out.
    let body = if head {
        axum::body::Body::empty()
    } else {
        axum::body::Body::from(object.data)
    };
    Ok(response.body(body).unwrap_or_default())
}

/// `DELETE /<bucket>/<key>`: 204 whether or not the object existed, as on the real service.
pub(super) fn delete_object(
    call: &Call<'_>,
    bucket: &str,
    key: &str,
) -> Result<Response, OssError> {
    let acl = call.bucket_acl(bucket)?;
    call.authorize_object(bucket, key, acl)?;
    call.with_bucket(bucket, |found| found.objects.remove(key))?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// Sets a header, skipping values that are not valid header text (user metadata could be).
fn insert(headers: &mut axum::http::HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// CRC-64/ECMA-182 as OSS computes it (reflected, initial value and final XOR all ones;
/// also known as CRC-64/XZ): the value of `x-oss-hash-crc64ecma`.
pub fn crc64_ecma(data: &[u8]) -> u64 {
    static TABLE: OnceLock<[u64; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        // The ECMA-182 polynomial 0x42F0E1EBA9EA3693, bit-reversed for the reflected form.
        const POLY: u64 = 0xC96C_5795_D787_0F42;
        let mut table = [0u64; 256];
        for (byte, slot) in (0u64..).zip(table.iter_mut()) {
            let mut crc = byte;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
            *slot = crc;
        }
        table
    });
    let mut crc = u64::MAX;
    for &byte in data {
        crc = table[usize::from((crc as u8) ^ byte)] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_the_ecma_182_check_value() {
        // The catalogued check value of CRC-64/XZ over "123456789".
        assert_eq!(crc64_ecma(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64_ecma(b""), 0);
    }
}
