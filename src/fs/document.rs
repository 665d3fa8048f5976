//! Documents written to `xml`, `create` and `define`: gathered in write order
//! and recognised as complete the moment their root element closes, so the
//! `write()` that completes one applies it and carries its error back to the
//! writer (a shell never checks the close of a redirect).
//!
//! Pure: bytes in, progress out. The framing scan below only finds where the
//! root element ends and rejects what can never become XML (text outside the
//! root, a second root); whether the document is a valid domain is the XML
//! parser's business once it is complete. The scan keeps a fixed amount of
//! state however the input nests.

use crate::model::xml::MAX_DEPTH;

/// libvirt refuses domain XML larger than this (its `VIR_XML_MAX`-style cap
/// on documents read from users).
pub const MAX_DOCUMENT: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocError {
    /// The document would grow past [`MAX_DOCUMENT`] (EFBIG).
    TooBig,
    /// A write that leaves a gap or goes back (EINVAL): unwritten bytes must
    /// never become part of a document.
    OutOfOrder { expected: u64, got: u64 },
    /// Text that can never be completed into a document (EINVAL).
    Malformed(String),
}

impl std::fmt::Display for DocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocError::TooBig => write!(
                f,
                "a document may be at most {MAX_DOCUMENT} bytes ({} MiB)",
                MAX_DOCUMENT >> 20
            ),
            DocError::OutOfOrder { expected, got } => write!(
                f,
                "documents are written in order: the next byte belongs at offset {expected}, \
                 not {got}"
            ),
            DocError::Malformed(m) => write!(f, "not an XML document: {m}"),
        }
    }
}

/// Where a document stands after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing but white space so far.
    Empty,
    /// A proper beginning of a document: more must follow.
    Incomplete,
    /// The root element has closed: the document is ready to apply. Reported
    /// once, by the write that closed it.
    Complete,
    /// Bytes after a completed document (white space, comments).
    Trailing,
}

/// One document being written through one open file.
#[derive(Debug, Default)]
pub struct Document {
    /// The offset of the first write: 0, or the file's size for `>>`.
    base: Option<u64>,
    bytes: Vec<u8>,
    scan: Scan,
}

impl Document {
    /// Adds one `write()` at `offset`. On an error nothing is added.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<Progress, DocError> {
        // Nothing of a document can lie past the limit, whatever its start.
        if offset.saturating_add(data.len() as u64) > MAX_DOCUMENT as u64 {
            return Err(DocError::TooBig);
        }
        let base = *self.base.get_or_insert(offset);
        let expected = base + self.bytes.len() as u64;
        if offset != expected {
            if self.bytes.is_empty() {
                // A first write that came at another offset than guessed.
                self.base = Some(offset);
            } else {
                return Err(DocError::OutOfOrder {
                    expected,
                    got: offset,
                });
            }
        }
        if self.bytes.len() + data.len() > MAX_DOCUMENT {
            return Err(DocError::TooBig);
        }
        let was_done = self.scan.root_closed;
        let mut scan = self.scan.clone();
        scan.feed(data).map_err(DocError::Malformed)?;
        self.scan = scan;
        self.bytes.extend_from_slice(data);
        Ok(match (was_done, self.scan.root_closed) {
            (true, _) => Progress::Trailing,
            (false, true) => Progress::Complete,
            (false, false) if self.scan.started => Progress::Incomplete,
            (false, false) => Progress::Empty,
        })
    }

    /// Where the document stands now.
    pub fn progress(&self) -> Progress {
        match (self.scan.started, self.scan.root_closed) {
            (_, true) => Progress::Complete,
            (true, false) => Progress::Incomplete,
            (false, false) => Progress::Empty,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// What the framing scan is inside of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    #[default]
    Text,
    /// Just after `<`.
    Open,
    /// A start or end tag; `quote` is the open attribute quote, `slash` whether
    /// the last significant byte was `/`.
    Tag { end: bool, quote: u8, slash: bool },
    /// After `<!`, collecting up to 8 bytes to tell a comment, CDATA or DOCTYPE.
    Bang,
    /// `<!-- ... -->`; `dashes` counts the `-` just seen.
    Comment { dashes: u8 },
    /// `<![CDATA[ ... ]]>`; `brackets` counts the `]` just seen.
    CData { brackets: u8 },
    /// `<? ... ?>`.
    Pi { question: bool },
    /// `<!DOCTYPE ... >` with its internal subset depth.
    Doctype { depth: u32, quote: u8 },
}

#[derive(Debug, Clone, Default)]
struct Scan {
    mode: Mode,
    depth: usize,
    /// The root element has opened.
    started: bool,
    root_closed: bool,
    /// Bytes seen so far (for the byte-order mark).
    seen: usize,
    bang: [u8; 8],
    bang_len: usize,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scan {
    fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        for &b in data {
            self.byte(b)?;
            self.seen += 1;
        }
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), String> {
        self.mode = match self.mode {
            Mode::Text => match b {
                b'<' => Mode::Open,
                // A UTF-8 byte-order mark may open the document.
                0xEF | 0xBB | 0xBF if self.seen < 3 && !self.started => Mode::Text,
                _ if self.depth == 0 && !is_space(b) => {
                    let place = if self.root_closed { "after" } else { "before" };
                    return Err(format!("text {place} the root element"));
                }
                _ => Mode::Text,
            },
            Mode::Open => match b {
                b'/' => Mode::Tag {
                    end: true,
                    quote: 0,
                    slash: false,
                },
                b'!' => {
                    self.bang_len = 0;
                    Mode::Bang
                }
                b'?' => Mode::Pi { question: false },
                _ => {
                    if self.root_closed {
                        return Err("a second root element".into());
                    }
                    if self.depth >= MAX_DEPTH {
                        return Err(format!("elements nest deeper than {MAX_DEPTH} levels"));
                    }
                    self.started = true;
                    self.tag_byte(false, 0, false, b)?
                }
            },
            Mode::Tag { end, quote, slash } => self.tag_byte(end, quote, slash, b)?,
            Mode::Bang => {
                self.bang[self.bang_len] = b;
                self.bang_len += 1;
                let so_far = &self.bang[..self.bang_len];
                if so_far == b"--" {
                    Mode::Comment { dashes: 0 }
                } else if so_far == b"[CDATA[" {
                    if self.depth == 0 {
                        return Err("character data outside the root element".into());
                    }
                    Mode::CData { brackets: 0 }
                } else if so_far.eq_ignore_ascii_case(b"DOCTYPE") {
                    Mode::Doctype { depth: 0, quote: 0 }
                } else if b"--".starts_with(so_far)
                    || b"[CDATA[".starts_with(so_far)
                    || b"DOCTYPE".starts_with(&so_far.to_ascii_uppercase())
                {
                    Mode::Bang
                } else {
                    return Err("markup after '<!' that is not a comment, CDATA or DOCTYPE".into());
                }
            }
            Mode::Comment { dashes } => match b {
                b'-' => Mode::Comment {
                    dashes: dashes.saturating_add(1),
                },
                b'>' if dashes >= 2 => Mode::Text,
                _ => Mode::Comment { dashes: 0 },
            },
            Mode::CData { brackets } => match b {
                b']' => Mode::CData {
                    brackets: brackets.saturating_add(1),
                },
                b'>' if brackets >= 2 => Mode::Text,
                _ => Mode::CData { brackets: 0 },
            },
            Mode::Pi { question } => match b {
                b'>' if question => Mode::Text,
                _ => Mode::Pi {
                    question: b == b'?',
                },
            },
            Mode::Doctype { depth, quote } => match b {
                q @ (b'\'' | b'"') if quote == 0 => Mode::Doctype { depth, quote: q },
                q if q == quote => Mode::Doctype { depth, quote: 0 },
                _ if quote != 0 => Mode::Doctype { depth, quote },
                b'[' => Mode::Doctype {
                    depth: depth + 1,
                    quote,
                },
                b']' => Mode::Doctype {
                    depth: depth.saturating_sub(1),
                    quote,
                },
                b'>' if depth == 0 => Mode::Text,
                _ => Mode::Doctype { depth, quote },
            },
        };
        Ok(())
    }

    /// One byte inside a tag; at its `>` the nesting depth changes.
    fn tag_byte(&mut self, end: bool, quote: u8, slash: bool, b: u8) -> Result<Mode, String> {
        if quote != 0 {
            let quote = if b == quote { 0 } else { quote };
            return Ok(Mode::Tag {
                end,
                quote,
                slash: false,
            });
        }
        Ok(match b {
            b'\'' | b'"' => Mode::Tag {
                end,
                quote: b,
                slash: false,
            },
            b'>' => {
                if end {
                    self.depth = self
                        .depth
                        .checked_sub(1)
                        .ok_or("a close tag with no open element")?;
                } else if !slash {
                    self.depth += 1;
                }
                if self.depth == 0 {
                    self.root_closed = true;
                }
                Mode::Text
            }
            b'/' => Mode::Tag {
                end,
                quote,
                slash: true,
            },
            _ if is_space(b) => Mode::Tag { end, quote, slash },
            _ => Mode::Tag {
                end,
                quote,
                slash: false,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_bytewise(text: &str) -> Vec<Progress> {
        let mut d = Document::default();
        text.bytes()
            .enumerate()
            .map(|(i, b)| d.write(i as u64, &[b]).unwrap())
            .collect()
    }

    #[test]
    fn the_write_that_closes_the_root_completes_the_document() {
        let doc = "<?xml version='1.0'?>\n<!-- c > -->\n<domain type='x' a=\"/>\">\
                   <name>a&lt;</name><b/><![CDATA[</domain>]]></domain>\n";
        let progress = feed_bytewise(doc);
        let at = progress
            .iter()
            .position(|p| *p == Progress::Complete)
            .unwrap();
        assert_eq!(at, doc.rfind('>').unwrap());
        assert!(progress[..at].iter().all(|p| *p != Progress::Complete));
        assert_eq!(progress.last(), Some(&Progress::Trailing));
        assert_eq!(progress[0], Progress::Empty);
    }

    #[test]
    fn one_write_or_many_give_the_same_document() {
        let doc = b"\xEF\xBB\xBF<!DOCTYPE domain [<!ENTITY x 'y'>]>\n<domain><a/></domain>";
        let mut d = Document::default();
        assert_eq!(d.write(0, doc), Ok(Progress::Complete));
        assert_eq!(d.bytes(), doc);
        let mut d = Document::default();
        assert_eq!(d.write(0, &doc[..30]), Ok(Progress::Empty));
        assert_eq!(d.write(30, &doc[30..50]), Ok(Progress::Incomplete));
        assert_eq!(d.write(50, &doc[50..]), Ok(Progress::Complete));
        assert_eq!(
            d.write(doc.len() as u64, b"\n <!-- x -->"),
            Ok(Progress::Trailing)
        );
    }

    #[test]
    fn text_that_can_never_be_a_document_fails_at_once() {
        for (bad, why) in [
            ("hello", "before the root"),
            ("<a/>x", "after the root"),
            ("<a/><b/>", "second root"),
            ("</a>", "no open element"),
            ("<!x", "not a comment"),
            ("<![CDATA[x]]>", "outside the root"),
        ] {
            let e = Document::default().write(0, bad.as_bytes()).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_failed_write_adds_nothing() {
        let mut d = Document::default();
        d.write(0, b"<a>").unwrap();
        assert!(d.write(3, b"</a>junk").is_err());
        assert_eq!(d.bytes(), b"<a>");
        assert_eq!(d.write(3, b"</a>"), Ok(Progress::Complete));
    }

    #[test]
    fn gaps_and_size_are_refused() {
        let mut d = Document::default();
        d.write(0, b"<a>").unwrap();
        assert_eq!(
            d.write(10, b"</a>"),
            Err(DocError::OutOfOrder {
                expected: 3,
                got: 10
            })
        );
        assert_eq!(d.write(1 << 44, b"x"), Err(DocError::TooBig));
        assert_eq!(
            Document::default().write(1 << 44, b"x"),
            Err(DocError::TooBig)
        );
        // `>>` starts at the file's size: that offset is the document's start.
        let mut d = Document::default();
        assert_eq!(d.write(4096, b"<a/>"), Ok(Progress::Complete));
        let mut d = Document::default();
        let big = vec![b' '; MAX_DOCUMENT];
        assert_eq!(d.write(0, &big), Ok(Progress::Empty));
        assert_eq!(d.write(MAX_DOCUMENT as u64, b"<"), Err(DocError::TooBig));
    }

    #[test]
    fn nesting_is_bounded_while_scanning() {
        let mut d = Document::default();
        let deep = "<m>".repeat(MAX_DEPTH);
        d.write(0, deep.as_bytes()).unwrap();
        let e = d.write(deep.len() as u64, b"<m>").unwrap_err();
        assert!(e.to_string().contains("deeper than 256"), "{e}");
    }
}
