//! Capped JSON parsing: every JSON document read from a bundle goes through here, so
//! size and nesting depth are checked before serde sees the bytes.

use crate::limits::{MAX_JSON, MAX_JSON_DEPTH};
use serde::de::DeserializeOwned;

/// Why a JSON document was refused.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("JSON document of {size} bytes is over the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("JSON nesting deeper than {MAX_JSON_DEPTH}")]
    TooDeep,
    #[error("invalid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
}

/// Checks size and nesting depth without building any value.
pub fn check_shape(bytes: &[u8], limit: u64) -> Result<(), JsonError> {
    if bytes.len() as u64 > limit {
        return Err(JsonError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(JsonError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parses a JSON document within the default limits.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    parse_capped(bytes, MAX_JSON)
}

/// Parses a JSON document of at most `limit` bytes.
pub fn parse_capped<T: DeserializeOwned>(bytes: &[u8], limit: u64) -> Result<T, JsonError> {
    check_shape(bytes, limit)?;
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_deep_and_large() {
        let deep = "[".repeat(65) + &"]".repeat(65);
        assert!(matches!(
            parse::<serde_json::Value>(deep.as_bytes()),
            Err(JsonError::TooDeep)
        ));
        let ok = "[".repeat(64) + &"]".repeat(64);
        assert!(parse::<serde_json::Value>(ok.as_bytes()).is_ok());
        // Brackets inside strings do not count.
        let s = format!("\"{}\"", "[".repeat(100));
        assert!(parse::<String>(s.as_bytes()).is_ok());
        assert!(matches!(
            parse_capped::<serde_json::Value>(b"[1,2,3]", 3),
            Err(JsonError::TooLarge { .. })
        ));
    }
}
