//! Domain names as file names. A back end may name a domain with characters a
//! file name cannot hold (`/`, NUL), or exactly like one of the root's own
//! entries (`node`, `create`, ...). Such names are shown %-escaped, so a name
//! is never read as a path and never hides a root entry. The escape is
//! one-to-one: `%` itself is escaped.
//!
//! A file name holds at most 255 bytes, and a longer one in a directory
//! listing breaks the listing for everyone. A name whose escape is longer is
//! shown shortened: its first bytes, `%%`, and the domain's UUID. `%%` never
//! occurs in an escape, so the two forms cannot be confused, and the UUID
//! still leads to the domain.

use crate::model::Uuid;

/// The longest file name Linux accepts.
pub const NAME_MAX: usize = 255;
/// Separates a shortened name's prefix from its UUID.
const SHORTENED: &str = "%%";

/// The root's own entries, which no domain may shadow.
pub const RESERVED: [&str; 8] = [
    "by-id",
    "by-uuid",
    "node",
    "create",
    "define",
    "restore",
    "last_error",
    "events",
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

/// The file name a domain is shown under (see the module doc).
pub fn file_name(name: &str, uuid: Uuid) -> String {
    let full = escape(name);
    if full.len() <= NAME_MAX {
        return full;
    }
    let tail = format!("{SHORTENED}{uuid}");
    let mut cut = NAME_MAX - tail.len();
    // Cut on a character boundary and never inside a `%XX` escape.
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    if let Some(p) = full[..cut].rfind('%') {
        if cut - p < 3 {
            cut = p;
        }
    }
    format!("{}{tail}", &full[..cut])
}

/// What a file name in the root names: a domain by name, or by UUID when the
/// name was shortened. The caller checks that `file_name` of what it finds
/// gives the same file name back, so every domain has exactly one.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    Name(String),
    Shortened(Uuid),
}

pub fn parse_file_name(file: &str) -> Option<Named> {
    if let Some((_, uuid)) = file.rsplit_once(SHORTENED) {
        return Uuid::parse(uuid).ok().map(Named::Shortened);
    }
    unescape(file).map(Named::Name)
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
    fn long_names_are_shortened_and_still_lead_to_their_domain() {
        let uuid = Uuid([0xab; 16]);
        assert_eq!(file_name("web1", uuid), "web1");
        for name in [
            "x".repeat(5000),
            "é".repeat(300),
            "/".repeat(200),
            format!("a{}", "%".repeat(100)),
        ] {
            let f = file_name(&name, uuid);
            assert!(f.len() <= NAME_MAX, "{} bytes", f.len());
            assert!(f.ends_with(&format!("%%{uuid}")), "{f}");
            assert_eq!(parse_file_name(&f), Some(Named::Shortened(uuid)));
            // No escape is cut in two.
            let prefix = &f[..f.len() - 38];
            assert!(
                prefix.rfind('%').is_none_or(|p| prefix.len() - p >= 3),
                "{prefix}"
            );
        }
        let exactly = "y".repeat(NAME_MAX);
        assert_eq!(file_name(&exactly, uuid), exactly);
        assert_eq!(parse_file_name("web1"), Some(Named::Name("web1".into())));
        assert_eq!(parse_file_name("a%%not-a-uuid"), None);
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
