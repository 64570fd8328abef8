//! Byte-safe text and UTC instants as they appear in bundle JSON.
//!
//! Paths, argv, environment and log lines are bytes on Linux. They are written as a
//! plain JSON string when they are valid UTF-8 and as `{"bytes": "<base64>"}` otherwise
//! (ripgrep's JSON convention), so nothing is lost or silently replaced.

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes that serialize as a string when they are UTF-8, else as `{"bytes": base64}`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteText(pub Vec<u8>);

impl ByteText {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The text when it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
    /// A lossy rendering for human output only.
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Debug for ByteText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.lossy())
    }
}

impl fmt::Display for ByteText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lossy())
    }
}

impl From<&str> for ByteText {
    fn from(s: &str) -> Self {
        ByteText(s.as_bytes().to_vec())
    }
}
impl From<String> for ByteText {
    fn from(s: String) -> Self {
        ByteText(s.into_bytes())
    }
}
impl From<Vec<u8>> for ByteText {
    fn from(b: Vec<u8>) -> Self {
        ByteText(b)
    }
}
impl From<&[u8]> for ByteText {
    fn from(b: &[u8]) -> Self {
        ByteText(b.to_vec())
    }
}

impl Serialize for ByteText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("bytes", &b64(&self.0))?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for ByteText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Bytes { bytes: String },
        }
        match Repr::deserialize(d)? {
            Repr::Text(t) => Ok(ByteText(t.into_bytes())),
            Repr::Bytes { bytes } => base64::engine::general_purpose::STANDARD
                .decode(bytes.as_bytes())
                .map(ByteText)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Text for one line of human output: control characters (newlines, C0, C1, escapes)
/// and invisible reordering or separator characters (bidi controls, zero-width
/// characters, U+061C, U+2028/U+2029, U+FEFF) are shown as `\u{..}`, so text a container
/// controls can neither start a new line nor drive a terminal.
pub fn sanitize_line(s: &str) -> String {
    use std::fmt::Write as _;
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control()
            || matches!(
                c,
                '\u{61c}'
                    | '\u{200b}'..='\u{200f}'
                    | '\u{2028}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{feff}'
            )
        {
            let _ = write!(o, "\\u{{{:x}}}", c as u32);
        } else {
            o.push(c);
        }
    }
    o
}

/// Standard padded base64.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard padded base64.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .ok()
}

/// An instant as RFC 3339 UTC with exactly nine fractional digits, so instants sort as text.
pub fn rfc3339_ns(unix_ns: i128) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(unix_ns) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond()
        ),
        Err(_) => "0000-01-01T00:00:00.000000000Z".to_string(),
    }
}

/// Nanoseconds since the Unix epoch of a system time.
pub fn unix_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The current instant, formatted by [`rfc3339_ns`].
pub fn now_rfc3339() -> String {
    rfc3339_ns(unix_ns(SystemTime::now()))
}

/// Parses an RFC 3339 instant (any offset, any precision) into Unix nanoseconds.
pub fn parse_rfc3339(text: &str) -> Option<i128> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_round_trips_as_base64_object() {
        let t = ByteText(vec![b'a', 0xff, b'\n']);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"bytes":"Yf8K"}"#);
        let back: ByteText = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        let plain: ByteText = serde_json::from_str(r#""/etc/passwd""#).unwrap();
        assert_eq!(plain.as_bytes(), b"/etc/passwd");
        assert_eq!(serde_json::to_string(&plain).unwrap(), r#""/etc/passwd""#);
    }

    #[test]
    fn sanitized_lines_show_controls_and_invisible_characters() {
        assert_eq!(sanitize_line("plain /etc/passwd é"), "plain /etc/passwd é");
        assert_eq!(
            sanitize_line("a\nb\r\t\u{1b}[31m"),
            "a\\u{a}b\\u{d}\\u{9}\\u{1b}[31m"
        );
        assert_eq!(sanitize_line("\u{85}\u{9b}"), "\\u{85}\\u{9b}");
        assert_eq!(
            sanitize_line("x\u{202e}\u{2028}\u{2029}\u{61c}\u{feff}\u{200b}\u{2066}y"),
            "x\\u{202e}\\u{2028}\\u{2029}\\u{61c}\\u{feff}\\u{200b}\\u{2066}y"
        );
    }

    #[test]
    fn instants_have_nine_digits_and_round_trip() {
        let ns = 1_795_422_662_123_456_789i128;
        let s = rfc3339_ns(ns);
        assert_eq!(s, "2026-11-23T08:31:02.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(ns));
        assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
    }
}
