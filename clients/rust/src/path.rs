//! Keys in request paths.

use crate::Error;

/// The path of `key`: `/v1/kv/` and the key percent-encoded, `/` and `.`
/// included (the node decodes them back), so the key is one path segment
/// in which no URL library merges `//` or resolves `.` and `..`. The keys
/// `.` and `..` themselves cannot be sent: WHATWG URL parsers resolve
/// such a segment even percent-encoded.
pub(crate) fn key_path(key: &str) -> Result<String, Error> {
    match key {
        "." | ".." => Err(Error::UnaddressableKey(key.to_string())),
        _ => Ok(format!("/v1/kv/{}", encode(key))),
    }
}

/// `text` percent-encoded: every byte but letters, digits, `-`, `_`, `~`.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_one_segment() {
        assert_eq!(key_path("users/42").unwrap(), "/v1/kv/users%2F42");
        assert_eq!(key_path("a b?c#d%").unwrap(), "/v1/kv/a%20b%3Fc%23d%25");
        assert_eq!(key_path("café").unwrap(), "/v1/kv/caf%C3%A9");
        assert_eq!(key_path("a/../b").unwrap(), "/v1/kv/a%2F%2E%2E%2Fb");
        assert!(matches!(key_path(".."), Err(Error::UnaddressableKey(_))));
        assert!(matches!(key_path("."), Err(Error::UnaddressableKey(_))));
    }
}
