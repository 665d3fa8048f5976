//! The saved-image format of libvirt's test driver, so images move between
//! domfs and `virsh -c test:///...`: the 15 bytes `TestGuestMagic\0`, the XML
//! length as a host-endian 32-bit int, then the domain XML (no terminator).
//! Pure: bytes in, text out.

const MAGIC: &[u8; 15] = b"TestGuestMagic\0";
/// libvirt refuses longer metadata on restore; domfs refuses it on save too,
/// so every image it writes can be restored by either.
pub const MAX_XML: usize = 8192;
/// The largest image: magic, length and the longest metadata.
pub const MAX_IMAGE: usize = MAGIC.len() + 4 + MAX_XML;

pub fn encode(xml: &str) -> Result<Vec<u8>, String> {
    if xml.is_empty() || xml.len() > MAX_XML {
        return Err(format!(
            "domain XML of {} bytes does not fit a test-driver image (1 to {MAX_XML})",
            xml.len()
        ));
    }
    let len = i32::try_from(xml.len()).map_err(|_| "domain XML too long".to_string())?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + xml.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(xml.as_bytes());
    Ok(out)
}

pub fn decode(bytes: &[u8]) -> Result<&str, String> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not a saved domain image: mismatched header magic")?;
    let (len, xml) = rest
        .split_first_chunk::<4>()
        .ok_or("saved domain image is truncated: no metadata length")?;
    let len = i32::from_ne_bytes(*len);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (1..=MAX_XML).contains(l))
        .ok_or_else(|| format!("saved domain image: length of metadata out of range ({len})"))?;
    let xml = xml.get(..len).ok_or_else(|| {
        format!(
            "saved domain image is truncated: {} of {len} metadata bytes",
            xml.len()
        )
    })?;
    std::str::from_utf8(xml).map_err(|_| "saved domain image: metadata is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let img = encode("<domain/>").unwrap();
        assert_eq!(&img[..15], b"TestGuestMagic\0");
        assert_eq!(img.len(), 15 + 4 + 9);
        assert_eq!(decode(&img).unwrap(), "<domain/>");
    }

    #[test]
    fn corrupt_images_are_refused_with_reasons() {
        assert!(decode(b"").unwrap_err().contains("magic"));
        assert!(decode(b"QEMU\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")
            .unwrap_err()
            .contains("magic"));
        assert!(decode(b"TestGuestMagic\0\x01")
            .unwrap_err()
            .contains("no metadata length"));
        let mut img = encode("<domain/>").unwrap();
        img.truncate(20);
        assert!(decode(&img).unwrap_err().contains("truncated"));
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&100_000i32.to_ne_bytes());
        assert!(decode(&huge).unwrap_err().contains("out of range"));
        let mut neg = MAGIC.to_vec();
        neg.extend_from_slice(&(-5i32).to_ne_bytes());
        assert!(decode(&neg).unwrap_err().contains("out of range"));
        assert!(encode("").is_err());
        assert!(encode(&"x".repeat(MAX_XML + 1)).is_err());
    }
}
