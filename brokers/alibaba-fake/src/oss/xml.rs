//! Small text helpers the OSS endpoint shares: XML escaping, the percent-encoding OSS uses
//! (in V4 canonical requests and for `encoding-type=url`), the two timestamp formats, and
//! the request documents it reads.

use serde::Deserialize;
use time::macros::format_description;
use time::OffsetDateTime;

use super::error::OssError;

/// Escapes text for an XML element.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Percent-encodes every byte except the RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`) and, when `keep_slash`, `/`; hex digits are upper case.
/// This is the encoding of V4 canonical URIs (`keep_slash`) and query strings, and of
/// `encoding-type=url` answers.
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    uri_encode_bytes(text.as_bytes(), keep_slash)
}

/// [`uri_encode`] for bytes that need not be UTF-8.
pub fn uri_encode_bytes(bytes: &[u8], keep_slash: bool) -> String {
    let mut encoded = String::with_capacity(bytes.len());
    for &byte in bytes {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(byte));
            }
            b'/' if keep_slash => encoded.push('/'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in query strings);
/// `None` when the result is not UTF-8.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    String::from_utf8(percent_decode_bytes(text, plus_is_space)).ok()
}

/// [`percent_decode`] to bytes. A `%` not followed by two hex digits stays as it is.
pub fn percent_decode_bytes(text: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
            {
                (Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                _ => decoded.push(b'%'),
            },
            b'+' if plus_is_space => decoded.push(b' '),
            byte => decoded.push(byte),
        }
        i += 1;
    }
    decoded
}

/// The value of one hex digit.
fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// `2024-05-06T07:08:09.000Z`: the timestamps inside OSS XML documents.
pub fn iso8601(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// `Mon, 06 May 2024 07:08:09 GMT`: the timestamps in HTTP headers (`Last-Modified`).
pub fn http_date(at: OffsetDateTime) -> String {
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// Parses `20240506T070809Z`, the `x-oss-date` format.
pub fn parse_oss_date(text: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(text, &format)
        .ok()
        .map(|at| at.assume_utc())
}

/// Builds an XML document: the declaration, then nested elements, indented.
#[derive(Debug)]
pub struct Writer {
    /// The document so far.
    out: String,
    /// How many elements are open.
    depth: usize,
}

impl Writer {
    /// A document with only its declaration.
    pub fn new() -> Writer {
        Writer {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            depth: 0,
        }
    }

    /// Opens `<name>`.
    pub fn open(&mut self, name: &str) -> &mut Writer {
        self.indent();
        self.out.push_str(&format!("<{name}>\n"));
        self.depth += 1;
        self
    }

    /// Closes `</name>`.
    pub fn close(&mut self, name: &str) -> &mut Writer {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str(&format!("</{name}>\n"));
        self
    }

    /// Writes `<name>value</name>`, escaped.
    pub fn leaf(&mut self, name: &str, value: impl AsRef<str>) -> &mut Writer {
        self.indent();
        self.out
            .push_str(&format!("<{name}>{}</{name}>\n", escape(value.as_ref())));
        self
    }

    /// The finished document.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    /// Two spaces per open element.
    fn indent(&mut self) {
        self.out.push_str(&"  ".repeat(self.depth));
    }
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

/// The optional body of PutBucket.
#[derive(Debug, Default, Deserialize)]
#[serde(rename = "CreateBucketConfiguration")]
pub struct CreateBucketConfiguration {
    /// `Standard`, `IA`, `Archive`, `ColdArchive` or `DeepColdArchive`.
    #[serde(rename = "StorageClass")]
    pub storage_class: Option<String>,
    /// `LRS` or `ZRS`.
    #[serde(rename = "DataRedundancyType")]
    pub data_redundancy_type: Option<String>,
}

/// The body of DeleteMultipleObjects.
#[derive(Debug, Deserialize)]
#[serde(rename = "Delete")]
pub struct Delete {
    /// `true` answers only the failures.
    #[serde(rename = "Quiet")]
    pub quiet: Option<String>,
    /// The objects to delete.
    #[serde(rename = "Object", default)]
    pub objects: Vec<DeleteObject>,
}

/// One object of a DeleteMultipleObjects body.
#[derive(Debug, Deserialize)]
pub struct DeleteObject {
    /// The object's key; required (its absence is `MalformedXML`).
    #[serde(rename = "Key")]
    pub key: Option<String>,
}

/// Parses a request document, answering `MalformedXML` like the real service when it does not fit.
pub fn parse_body<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, OssError> {
    let text = std::str::from_utf8(body).map_err(|_| OssError::malformed_xml())?;
    quick_xml::de::from_str(text).map_err(|_| OssError::malformed_xml())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_encoding_keeps_only_unreserved_characters() {
        assert_eq!(uri_encode("dir/a b+c~.txt", true), "dir/a%20b%2Bc~.txt");
        assert_eq!(uri_encode("dir/a b", false), "dir%2Fa%20b");
        assert_eq!(uri_encode("ü", false), "%C3%BC");
    }

    #[test]
    fn percent_decoding_is_the_inverse() {
        assert_eq!(
            percent_decode("dir%2Fa%20b%2bc", false).as_deref(),
            Some("dir/a b+c")
        );
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("100%", false).as_deref(), Some("100%"));
        assert_eq!(percent_decode("%zz%4", false).as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%C3%BC", false).as_deref(), Some("ü"));
        assert_eq!(percent_decode("%FF", false), None);
    }

    #[test]
    fn timestamps_use_the_oss_formats() {
        let at = parse_oss_date("20240506T070809Z").unwrap();
        assert_eq!(iso8601(at), "2024-05-06T07:08:09.000Z");
        assert_eq!(http_date(at), "Mon, 06 May 2024 07:08:09 GMT");
        assert!(parse_oss_date("2024-05-06T07:08:09Z").is_none());
    }

    #[test]
    fn parses_the_request_documents() {
        let delete: Delete = parse_body(
            b"<Delete><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key></Object></Delete>",
        )
        .unwrap();
        assert_eq!(delete.quiet.as_deref(), Some("true"));
        let keys: Vec<_> = delete
            .objects
            .iter()
            .map(|object| object.key.clone().unwrap())
            .collect();
        assert_eq!(keys, ["a&b", "c"]);

        let config: CreateBucketConfiguration = parse_body(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><CreateBucketConfiguration><StorageClass>IA</StorageClass></CreateBucketConfiguration>",
        )
        .unwrap();
        assert_eq!(config.storage_class.as_deref(), Some("IA"));
        assert!(config.data_redundancy_type.is_none());

        assert_eq!(
            parse_body::<Delete>(b"<Delete><Object>").unwrap_err().code,
            "MalformedXML"
        );
    }
}
