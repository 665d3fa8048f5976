//! Domain names as file names. A back end may name a domain with characters a
//! file name cannot hold (`/`, NUL), or exactly like one of the root's own
//! entries (`node`, `create`, ...). Such names are shown %-escaped, so a name
//! is never read as a path and never hides a root entry. The escape is
//! one-to-one: `%` itself is escaped.

/// The root's own entries, which no domain may shadow.
pub const RESERVED: [&str; 7] = [
    "by-id",
    "by-uuid",
    "node",
    "create",
    "define",
    "restore",
    "last_error",
];

/// The file name shown for a domain name.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let must_escape_first = name.starts_with('.') || RESERVED.contains(&name) || name.is_empty();
    for (i, c) in name.chars().enumerate() {
        let escape_it = c == '%' || c == '/' || c.is_control() || (i == 0 && must_escape_first);
        if escape_it {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The domain name a file name shows, if it is the canonical escape of one.
pub fn unescape(file: &str) -> Option<String> {
    let bytes = file.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = file.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(out).ok()?;
    (escape(&name) == file).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_unchanged() {
        for n in ["web1", "test", "fv0", "a b", "näme", "node1", "x.y"] {
            assert_eq!(escape(n), n);
            assert_eq!(unescape(n).as_deref(), Some(n));
        }
    }

    #[test]
    fn unsafe_and_reserved_names_are_escaped_one_to_one() {
        let cases = [
            ("a/b", "a%2Fb"),
            ("node", "%6Eode"),
            ("by-id", "%62y-id"),
            ("..", "%2E."),
            (".hidden", "%2Ehidden"),
            ("100%", "100%25"),
            ("tab\there", "tab%09here"),
            ("", ""),
        ];
        for (name, file) in cases {
            assert_eq!(escape(name), file, "{name:?}");
            if !name.is_empty() {
                assert_eq!(unescape(file).as_deref(), Some(name));
            }
        }
    }

    #[test]
    fn non_canonical_spellings_are_not_names() {
        assert_eq!(unescape("node"), None);
        assert_eq!(unescape("%6eode"), None);
        assert_eq!(unescape("a%2fb"), None);
        assert_eq!(unescape("%77eb1"), None);
        assert_eq!(unescape("bad%"), None);
        assert_eq!(unescape("bad%zz"), None);
    }
}
