//! Connection URIs, as libvirt spells them: `test:///default`,
//! `test:///ABSOLUTE/PATH.xml` and `xen:///`. Parsing only; opening a
//! connection is `connection::open`'s business.

use std::fmt;
use std::path::PathBuf;

const ACCEPTED: &str = "test:///default, test:///ABSOLUTE/PATH.xml or xen:///";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// The embedded default host (libvirt's `test:///default`).
    TestDefault,
    /// A libvirt test-driver host file.
    TestFile(PathBuf),
    /// The local Xen host through its drivers (hypervisor, xenstore, xend).
    Xen,
}

impl Uri {
    pub fn parse(text: &str) -> Result<Uri, String> {
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once(':') else {
            return Err(format!("'{text}' is not a connection URI; use {ACCEPTED}"));
        };
        let scheme = scheme.to_ascii_lowercase();
        let Some(after) = rest.strip_prefix("//") else {
            return Err(format!(
                "'{text}': expected '{scheme}://' followed by a path; use {ACCEPTED}"
            ));
        };
        let (server, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        if path.contains('?') || path.contains('#') {
            return Err(format!("'{text}': URI parameters are not supported"));
        }
        match scheme.as_str() {
            "test" => {
                if !server.is_empty() {
                    return Err(format!(
                        "'{text}': remote test connections (server '{server}') are not supported; \
                         use test:///default or test:///ABSOLUTE/PATH.xml"
                    ));
                }
                let path = percent_decode(path)
                    .ok_or_else(|| format!("'{text}': bad %-escape in the path"))?;
                match path.as_str() {
                    "" | "/" => Err(format!(
                        "'{text}': supply a host file path or use test:///default"
                    )),
                    "/default" => Ok(Uri::TestDefault),
                    p => Ok(Uri::TestFile(PathBuf::from(p))),
                }
            }
            "xen" => {
                if !server.is_empty() {
                    return Err(format!(
                        "'{text}': remote Xen connections (server '{server}') are not supported; \
                         mount on that host instead"
                    ));
                }
                if !matches!(path, "" | "/") {
                    return Err(format!("'{text}': a xen URI takes no path; use xen:///"));
                }
                Ok(Uri::Xen)
            }
            other => Err(format!(
                "unknown URI scheme '{other}' in '{text}'; use {ACCEPTED}"
            )),
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::TestDefault => f.write_str("test:///default"),
            Uri::TestFile(p) => write!(f, "test://{}", p.display()),
            Uri::Xen => f.write_str("xen:///"),
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!(Uri::parse("test:///default"), Ok(Uri::TestDefault));
        assert_eq!(Uri::parse(" TEST:///default\n"), Ok(Uri::TestDefault));
        assert_eq!(
            Uri::parse("test:///srv/hosts/a.xml"),
            Ok(Uri::TestFile("/srv/hosts/a.xml".into()))
        );
        assert_eq!(
            Uri::parse("test:///srv/my%20host.xml"),
            Ok(Uri::TestFile("/srv/my host.xml".into()))
        );
        assert_eq!(Uri::parse("xen:///"), Ok(Uri::Xen));
        assert_eq!(Uri::parse("xen://"), Ok(Uri::Xen));
    }

    #[test]
    fn rejected_forms_say_what_is_accepted() {
        for bad in [
            "qemu:///system",
            "default",
            "test:default",
            "test:relative.xml",
        ] {
            let e = Uri::parse(bad).unwrap_err();
            assert!(e.contains("test:///default"), "{bad}: {e}");
        }
        assert!(Uri::parse("qemu:///system")
            .unwrap_err()
            .contains("unknown URI scheme 'qemu'"));
        assert!(Uri::parse("test:///").unwrap_err().contains("supply"));
        assert!(Uri::parse("test://").unwrap_err().contains("supply"));
        assert!(Uri::parse("test://host/default")
            .unwrap_err()
            .contains("remote"));
        assert!(Uri::parse("test:///a%zz.xml")
            .unwrap_err()
            .contains("escape"));
        assert!(Uri::parse("xen:///x").unwrap_err().contains("no path"));
        assert!(Uri::parse("test:///default?x=1")
            .unwrap_err()
            .contains("parameters"));
    }

    #[test]
    fn display_round_trips() {
        for s in ["test:///default", "test:///a/b.xml", "xen:///"] {
            assert_eq!(Uri::parse(s).unwrap().to_string(), s);
        }
    }
}
