//! The saved-image header: libxl's save stream carries no domain definition,
//! so the image starts with the domain XML, in the layout libvirt's libxl
//! driver writes (`libxlSavefileHeader`): 16 magic bytes, the header version
//! and the XML's length (with its NUL) as host-order u32, zeros up to 64
//! bytes, then the XML and its NUL, then libxl's stream. Version 2 means the
//! stream is libxl's migration stream v2 (Xen 4.6 and later), which is what
//! `libxl_domain_suspend` of Xen 4.17 writes; version 1 images are the older
//! stream. An image domfs writes is one libvirt restores and the other way
//! round, as long as each accepts the other's XML.
//!
//! Pure: bytes in, values out. The driver reads and writes the file.

use crate::error::{Error, Result};

/// `LIBXL_SAVE_MAGIC`.
pub const MAGIC: [u8; 16] = *b"libvirt-xml\n \0 \r";
/// The whole header: magic, version, length, 40 bytes of padding.
pub const HEADER_LEN: usize = 64;
/// The version written: libxl's stream v2.
pub const VERSION: u32 = 2;
/// The longest definition accepted back: what the XML reader would take.
pub const MAX_XML: u32 = 10 << 20;

/// What the header says of the rest of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    /// Bytes of XML that follow, its NUL included.
    pub xml_len: u32,
}

impl Header {
    /// The `stream_version` libxl's restore must be told.
    pub fn stream_version(self) -> u32 {
        if self.version == 2 {
            2
        } else {
            1
        }
    }
}

/// The header and definition that go before libxl's stream.
pub fn encode(xml: &str) -> Result<Vec<u8>> {
    let len = u32::try_from(xml.len() + 1)
        .ok()
        .filter(|n| *n <= MAX_XML)
        .ok_or_else(|| Error::invalid("the definition is too long for a save image"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + xml.len() + 1);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_ne_bytes());
    out.extend_from_slice(&len.to_ne_bytes());
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(xml.as_bytes());
    out.push(0);
    Ok(out)
}

/// Reads the header; refuses anything that is not one libvirt's or
/// domfs's libxl driver wrote.
pub fn decode_header(bytes: &[u8]) -> Result<Header> {
    let not = |why: &str| Error::invalid(format!("not a libxl save image: {why}"));
    if bytes.len() < HEADER_LEN {
        return Err(not("shorter than its header"));
    }
    if bytes[..16] != MAGIC {
        return Err(not("the magic is wrong"));
    }
    let word = |at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&bytes[at..at + 4]);
        u32::from_ne_bytes(w)
    };
    let (version, xml_len) = (word(16), word(20));
    if version == 0 || version > VERSION {
        return Err(not(&format!("version {version} is not 1 or 2")));
    }
    if xml_len == 0 || xml_len > MAX_XML {
        return Err(not(&format!("a definition of {xml_len} bytes")));
    }
    Ok(Header { version, xml_len })
}

/// The definition's text from the `xml_len` bytes after the header.
pub fn decode_xml(bytes: &[u8]) -> Result<String> {
    let text = match bytes.iter().position(|b| *b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    };
    String::from_utf8(text.to_vec())
        .map_err(|_| Error::invalid("not a libxl save image: its definition is not UTF-8"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_in_libvirts_layout() {
        let xml = "<domain type='xen'><name>g</name></domain>";
        let img = encode(xml).unwrap();
        assert_eq!(&img[..16], b"libvirt-xml\n \0 \r");
        assert_eq!(img.len(), HEADER_LEN + xml.len() + 1);
        assert!(img[24..HEADER_LEN].iter().all(|b| *b == 0));
        let h = decode_header(&img).unwrap();
        assert_eq!(
            h,
            Header {
                version: 2,
                xml_len: xml.len() as u32 + 1
            }
        );
        assert_eq!(h.stream_version(), 2);
        let body = &img[HEADER_LEN..HEADER_LEN + h.xml_len as usize];
        assert_eq!(decode_xml(body).unwrap(), xml);
    }

    #[test]
    fn anything_else_is_refused() {
        let good = encode("<domain/>").unwrap();
        assert!(decode_header(&good[..HEADER_LEN - 1]).is_err());
        let mut bad = good.clone();
        bad[0] = b'L';
        assert!(decode_header(&bad).unwrap_err().message.contains("magic"));
        for (at, v) in [(16, 0u32), (16, 3), (20, 0), (20, MAX_XML + 1)] {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
            assert!(decode_header(&b).is_err(), "{at}={v}");
        }
        let mut v1 = good;
        v1[16..20].copy_from_slice(&1u32.to_ne_bytes());
        assert_eq!(decode_header(&v1).unwrap().stream_version(), 1);
        assert!(decode_xml(&[0xff, 0xfe, 0]).is_err());
    }
}
