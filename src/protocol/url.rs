//! Request targets, query strings and form bodies: splitting and percent-decoding.

/// Splits a request target into its decoded path and query pairs. Accepts the absolute form
/// (`http://host/path`) too.
pub(crate) fn split_target(target: &str) -> Option<(String, Vec<(String, String)>)> {
    let target = match target.find("://") {
        Some(scheme_end) => {
            let rest = &target[scheme_end + 3..];
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        None => target,
    };
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let raw_path = raw_path.split('#').next().unwrap_or("");
    if !raw_path.starts_with('/') {
        return None;
    }
    let path = percent_decode(raw_path, false)?;
    Some((path, parse_urlencoded(raw_query)?))
}

/// `a=1&b=two+words&c=%26` (a query string or a form body): the fields in order, `+` as a
/// space; `None` for a bad escape or a result that is not UTF-8.
pub(crate) fn parse_urlencoded(text: &str) -> Option<Vec<(String, String)>> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(name, true)?, percent_decode(value, true)?))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as space in query strings); `None` for a bad escape or a
/// result that is not UTF-8.
pub(crate) fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
                continue;
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_targets_and_fragments_are_reduced_to_the_path() {
        assert_eq!(split_target("http://h:1/a/b?q=1").unwrap().0, "/a/b");
        assert_eq!(split_target("http://h").unwrap().0, "/");
        assert_eq!(split_target("/a#frag").unwrap().0, "/a");
        assert!(split_target("*").is_none());
    }

    #[test]
    fn queries_and_forms_decode_escapes_and_plus() {
        let pairs = parse_urlencoded("a=1&b=two+words&c=%26&flag").unwrap();
        let expected = [("a", "1"), ("b", "two words"), ("c", "&"), ("flag", "")];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, expected);
        assert_eq!(percent_decode("/a%20b+c", false).unwrap(), "/a b+c");
        for bad in ["%", "%z1", "%ff", "%C3"] {
            assert!(percent_decode(bad, true).is_none(), "{bad}");
        }
    }
}
