//! Query strings as Graph reads them: `key=value` pairs, percent-decoded
//! with `+` as a space (subscription resources, OData query options).

/// The query's `key=value` pairs, still encoded; empty pairs (`&&`) skipped.
pub(crate) fn query_options(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Decodes a query key or value: `+` is a space and `%XX` a byte; a `%` not
/// followed by two hex digits stays as it is. `None` if the bytes are not
/// UTF-8.
pub(crate) fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) => hex(hi).zip(hex(lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (b, escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The value of one hex digit.
fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_handles_plus_escapes_and_stray_percents() {
        assert_eq!(decode("a+b%20c%27").as_deref(), Some("a b c'"));
        assert_eq!(decode("100%").as_deref(), Some("100%"));
        assert_eq!(decode("%zz%2").as_deref(), Some("%zz%2"));
        assert_eq!(decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decode("%FF"), None);
    }

    #[test]
    fn query_options_split_pairs_and_skip_empty_ones() {
        let pairs: Vec<_> = query_options("a=1&&b&c=x=y").collect();
        assert_eq!(pairs, vec![("a", "1"), ("b", ""), ("c", "x=y")]);
    }
}
