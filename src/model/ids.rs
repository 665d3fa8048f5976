//! Typed identifiers for domains: the numeric id the hypervisor gives a running
//! domain, the UUID that names it for its whole life, and its name.
//!
//! Parsing accepts what libvirt accepts; printing always gives one canonical form,
//! so two spellings of the same UUID never show up as two files.

use std::fmt;
use std::str::FromStr;

/// The id of a *running* domain (Xen's domid). Inactive domains have none; the
/// filesystem prints that as `-1`, as libvirt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainId(pub u32);

impl fmt::Display for DomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for DomainId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("'{s}' is not a domain id (a non-negative integer)"));
        }
        t.parse()
            .map(DomainId)
            .map_err(|_| format!("domain id '{s}' is out of range"))
    }
}

/// A domain UUID: 16 raw bytes, written lower-case with dashes (8-4-4-4-12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses libvirt's accepted forms: 32 hex digits, optionally with dashes
    /// anywhere between byte pairs (libvirt keeps only the hex digits), and
    /// surrounding white space.
    pub fn parse(s: &str) -> Result<Uuid, String> {
        let mut bytes = [0u8; 16];
        let mut nibbles = 0usize;
        let mut pending = 0u8;
        for c in s.trim().chars() {
            if c == '-' {
                if nibbles % 2 == 1 {
                    return Err(format!("'{}' is not a UUID: dash inside a byte", s.trim()));
                }
                continue;
            }
            let v = c
                .to_digit(16)
                .ok_or_else(|| format!("'{}' is not a UUID: '{c}' is not a hex digit", s.trim()))?
                as u8;
            if nibbles >= 32 {
                return Err(format!(
                    "'{}' is not a UUID: more than 32 hex digits",
                    s.trim()
                ));
            }
            if nibbles % 2 == 0 {
                pending = v << 4;
            } else {
                bytes[nibbles / 2] = pending | v;
            }
            nibbles += 1;
        }
        if nibbles != 32 {
            return Err(format!(
                "'{}' is not a UUID: {nibbles} hex digits, 32 needed",
                s.trim()
            ));
        }
        Ok(Uuid(bytes))
    }

    /// A random (version 4) UUID for a domain defined without one, as libvirt
    /// generates. Reads the kernel's random source; falls back to time and pid
    /// mixing only if that is unavailable, which a UUID tolerates.
    pub fn generate() -> Uuid {
        use std::io::Read;
        let mut b = [0u8; 16];
        let ok = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .is_ok();
        if !ok {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let mixed = t ^ (u128::from(std::process::id()) << 64);
            b = mixed.to_le_bytes();
        }
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Uuid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Uuid::parse(s)
    }
}

/// A domain name as the back end gives it. Whether it is a safe file name is the
/// filesystem's business, not the model's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(pub String);

impl DomainName {
    /// Checks a name given for a new definition: non-empty, no `/` (libvirt
    /// refuses it too), no control characters.
    pub fn validate(name: &str) -> Result<DomainName, String> {
        if name.is_empty() {
            return Err("domain name is empty".into());
        }
        if name.contains('/') {
            return Err(format!("domain name '{name}' contains '/'"));
        }
        if name.chars().any(char::is_control) {
            return Err(format!("domain name {name:?} contains a control character"));
        }
        Ok(DomainName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_accepts_libvirt_forms_and_prints_one() {
        let dashed = Uuid::parse("6695eb01-f6a4-8304-79aa-97f2502e193f").unwrap();
        let bare = Uuid::parse("6695EB01F6A4830479AA97F2502E193F").unwrap();
        assert_eq!(dashed, bare);
        assert_eq!(bare.to_string(), "6695eb01-f6a4-8304-79aa-97f2502e193f");
        let fc4 = Uuid::parse("EF86180145B911CB88E3AFBFE5370493").unwrap();
        assert_eq!(fc4.to_string(), "ef861801-45b9-11cb-88e3-afbfe5370493");
    }

    #[test]
    fn uuid_rejects_bad_text_with_reason() {
        assert!(Uuid::parse("6695eb01")
            .unwrap_err()
            .contains("8 hex digits"));
        assert!(Uuid::parse("zz95eb01-f6a4-8304-79aa-97f2502e193f")
            .unwrap_err()
            .contains("'z'"));
        assert!(Uuid::parse("6695eb01-f6a4-8304-79aa-97f2502e193f00")
            .unwrap_err()
            .contains("more than 32"));
        assert!(Uuid::parse("6-695eb01f6a4830479aa97f2502e193f")
            .unwrap_err()
            .contains("dash"));
    }

    #[test]
    fn generated_uuids_differ_and_are_version_4() {
        let a = Uuid::generate();
        let b = Uuid::generate();
        assert_ne!(a, b);
        assert_eq!(a.0[6] >> 4, 4);
        assert_eq!(Uuid::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn domain_id_parsing() {
        assert_eq!("7\n".parse::<DomainId>().unwrap(), DomainId(7));
        assert!("-1".parse::<DomainId>().is_err());
        assert!("x".parse::<DomainId>().is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(DomainName::validate("web1").is_ok());
        assert!(DomainName::validate("").is_err());
        assert!(DomainName::validate("a/b").is_err());
        assert!(DomainName::validate("a\nb").is_err());
    }
}
