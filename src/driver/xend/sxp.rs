//! xend's S-expressions (SXP): a parser and a printer, bytes in and values
//! out, with no I/O.
//!
//! The parser reads what xend writes (`sxp.py`: bare atoms, `'…'` and `"…"`
//! strings with backslash escapes, `#` comments) and, leniently, what
//! libvirt's test data holds (lists left open at the end of input are
//! closed, text after the first expression is ignored). It is iterative and
//! bounded: nesting deeper than [`MAX_DEPTH`], more than [`MAX_INPUT`] bytes
//! or more than [`MAX_NODES`] values give an error, never a panic.
//!
//! The printer quotes every atom that is not made only of characters xend
//! prints bare, so a name or path holding parentheses, quotes, spaces or
//! control characters always comes back as one atom: no value can change
//! the structure of a request.

use std::fmt;

/// Deepest nesting accepted; xend's domain records are about 6 deep.
pub const MAX_DEPTH: usize = 64;
/// Largest input accepted (xend's POST limit is 10000 bytes; replies are
/// bounded by the HTTP client's own limit, which is below this).
pub const MAX_INPUT: usize = 4 << 20;
/// Most values (atoms and lists) in one expression.
pub const MAX_NODES: usize = 200_000;

/// One SXP value. xend types nothing: numbers are atoms too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sexpr {
    Atom(String),
    List(Vec<Sexpr>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SxpError {
    /// Byte offset in the input where the problem was seen.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for SxpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-expression at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for SxpError {}

fn err(offset: usize, message: impl Into<String>) -> SxpError {
    SxpError {
        offset,
        message: message.into(),
    }
}

/// xend ends an atom at white space and at these characters.
fn ends_atom(b: u8) -> bool {
    b.is_ascii_whitespace() || b"(){}[]<>;#'\"".contains(&b) || b == 0x04
}

/// Parses the first expression of `input`, xend's syntax, strictly: the
/// input must hold exactly one expression (white space and comments aside),
/// and every list must be closed.
pub fn parse(input: &[u8]) -> Result<Sexpr, SxpError> {
    parse_with(input, false)
}

/// Like [`parse`], but as libvirt's reader: lists still open at the end of
/// input are closed, and anything after the first expression is ignored.
pub fn parse_lenient(input: &[u8]) -> Result<Sexpr, SxpError> {
    parse_with(input, true)
}

fn parse_with(input: &[u8], lenient: bool) -> Result<Sexpr, SxpError> {
    if input.len() > MAX_INPUT {
        return Err(err(0, format!("input larger than {MAX_INPUT} bytes")));
    }
    let mut stack: Vec<Vec<Sexpr>> = Vec::new();
    let mut nodes = 0usize;
    let mut pos = 0usize;
    let mut done: Option<Sexpr> = None;
    let count = |nodes: &mut usize, at: usize| -> Result<(), SxpError> {
        *nodes += 1;
        if *nodes > MAX_NODES {
            return Err(err(at, format!("more than {MAX_NODES} values")));
        }
        Ok(())
    };
    while pos < input.len() && done.is_none() {
        let b = input[pos];
        let value = match b {
            0x04 => break, // ^D: end of input, as in xend
            b if b.is_ascii_whitespace() => {
                pos += 1;
                continue;
            }
            b'#' => {
                while pos < input.len() && input[pos] != b'\n' {
                    pos += 1;
                }
                continue;
            }
            b'(' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(pos, format!("nested deeper than {MAX_DEPTH}")));
                }
                count(&mut nodes, pos)?;
                stack.push(Vec::new());
                pos += 1;
                continue;
            }
            b')' => {
                let Some(list) = stack.pop() else {
                    return Err(err(pos, "')' without '('"));
                };
                pos += 1;
                Sexpr::List(list)
            }
            b'\'' | b'"' => {
                count(&mut nodes, pos)?;
                let (s, next) = read_string(input, pos)?;
                pos = next;
                Sexpr::Atom(s)
            }
            b'{' | b'}' | b'[' | b']' | b'<' | b'>' | b';' => {
                return Err(err(pos, format!("unexpected '{}'", b as char)));
            }
            _ => {
                count(&mut nodes, pos)?;
                let start = pos;
                while pos < input.len() && !ends_atom(input[pos]) {
                    pos += 1;
                }
                Sexpr::Atom(String::from_utf8_lossy(&input[start..pos]).into_owned())
            }
        };
        match stack.last_mut() {
            Some(parent) => parent.push(value),
            None => done = Some(value),
        }
    }
    if done.is_none() && !stack.is_empty() {
        if !lenient {
            return Err(err(pos, format!("{} list(s) not closed", stack.len())));
        }
        while let Some(list) = stack.pop() {
            let v = Sexpr::List(list);
            match stack.last_mut() {
                Some(parent) => parent.push(v),
                None => done = Some(v),
            }
        }
    }
    let Some(value) = done else {
        return Err(err(pos, "no expression"));
    };
    if !lenient {
        let mut rest = pos;
        while rest < input.len() {
            match input[rest] {
                0x04 => break,
                b'#' => {
                    while rest < input.len() && input[rest] != b'\n' {
                        rest += 1;
                    }
                }
                b if b.is_ascii_whitespace() => rest += 1,
                _ => return Err(err(rest, "text after the expression")),
            }
        }
    }
    Ok(value)
}

/// Reads a quoted string starting at `input[start]` (the quote), applying
/// xend's escapes; returns the value and the offset after the closing quote.
fn read_string(input: &[u8], start: usize) -> Result<(String, usize), SxpError> {
    let quote = input[start];
    let mut out: Vec<u8> = Vec::new();
    let mut pos = start + 1;
    loop {
        let Some(&b) = input.get(pos) else {
            return Err(err(start, "string not closed"));
        };
        pos += 1;
        if b == quote {
            break;
        }
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = input.get(pos) else {
            return Err(err(start, "string not closed"));
        };
        pos += 1;
        match e {
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'r' => out.push(b'\r'),
            b'\\' | b'\'' | b'"' => out.push(e),
            b'x' => {
                let hex = input.get(pos..pos + 2).unwrap_or(&[]);
                let v = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| err(pos, "\\x needs two hex digits"))?;
                out.push(v);
                pos += 2;
            }
            b'0'..=b'7' => {
                let mut v: u32 = u32::from(e - b'0');
                let mut n = 1;
                while n < 3 {
                    match input.get(pos) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            pos += 1;
                            n += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            // xend keeps the backslash and drops the unknown character.
            _ => out.push(b'\\'),
        }
    }
    Ok((String::from_utf8_lossy(&out).into_owned(), pos))
}

/// Whether xend would print the string bare (`sxp.py`'s safe set).
fn is_bare(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/~-".contains(&b))
}

/// Appends one atom, quoted when it is not safe bare.
pub fn write_atom(out: &mut String, s: &str) {
    if is_bare(s) {
        out.push_str(s);
        return;
    }
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('\'');
}

impl Sexpr {
    pub fn atom(s: impl Into<String>) -> Sexpr {
        Sexpr::Atom(s.into())
    }

    /// `(key value)`.
    pub fn pair(key: &str, value: impl Into<String>) -> Sexpr {
        Sexpr::List(vec![Sexpr::atom(key), Sexpr::Atom(value.into())])
    }

    /// `(key)` followed by the given items.
    pub fn node(key: &str, items: Vec<Sexpr>) -> Sexpr {
        let mut v = Vec::with_capacity(items.len() + 1);
        v.push(Sexpr::atom(key));
        v.extend(items);
        Sexpr::List(v)
    }

    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Sexpr::Atom(s) => Some(s),
            Sexpr::List(_) => None,
        }
    }

    pub fn items(&self) -> &[Sexpr] {
        match self {
            Sexpr::List(v) => v,
            Sexpr::Atom(_) => &[],
        }
    }

    /// The head atom of a list (`domain` for `(domain …)`).
    pub fn head(&self) -> Option<&str> {
        self.items().first().and_then(Sexpr::as_atom)
    }

    /// The child lists whose head is `key`, in order.
    pub fn children<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Sexpr> + 'a {
        self.items()
            .iter()
            .skip(1)
            .filter(move |c| c.head() == Some(key))
    }

    /// The first child list headed `key`.
    pub fn child(&self, key: &str) -> Option<&Sexpr> {
        self.items().iter().skip(1).find(|c| c.head() == Some(key))
    }

    /// Follows a `/`-separated path of heads, libvirt style: `image/hvm/kernel`
    /// is the `kernel` list inside `hvm` inside `image` of this list.
    pub fn lookup(&self, path: &str) -> Option<&Sexpr> {
        path.split('/')
            .filter(|p| !p.is_empty())
            .try_fold(self, |node, key| node.child(key))
    }

    /// The value (second item) of the list at `path`, when it is an atom.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.lookup(path)
            .and_then(|n| n.items().get(1))
            .and_then(Sexpr::as_atom)
    }

    /// Like `get`, but an empty value counts as absent.
    pub fn get_nonempty(&self, path: &str) -> Option<&str> {
        self.get(path).filter(|s| !s.is_empty())
    }

    /// An integer value, libvirt's `sexpr_int`: absent or unparsable is None.
    /// A float (`1.0`) keeps its integer part.
    pub fn get_int(&self, path: &str) -> Option<i64> {
        let s = self.get(path)?.trim();
        s.parse::<i64>().ok().or_else(|| {
            s.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && f.abs() < 9.0e18)
                .map(|f| f as i64)
        })
    }

    /// A float value (xend's cpu_time), None if absent or unparsable.
    pub fn get_float(&self, path: &str) -> Option<f64> {
        self.get(path)?.trim().parse::<f64>().ok()
    }

    /// The expression on one line, as xend's printer lays it out.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // Iterative: (item list, index of the next item) per open list.
        let mut stack: Vec<(&[Sexpr], usize)> = Vec::new();
        match self {
            Sexpr::Atom(s) => write_atom(&mut out, s),
            Sexpr::List(v) => {
                out.push('(');
                stack.push((v, 0));
            }
        }
        while let Some((items, at)) = stack.pop() {
            let Some(item) = items.get(at) else {
                out.push(')');
                continue;
            };
            stack.push((items, at + 1));
            if at > 0 {
                out.push(' ');
            }
            match item {
                Sexpr::Atom(s) => write_atom(&mut out, s),
                Sexpr::List(v) => {
                    out.push('(');
                    stack.push((v, 0));
                }
            }
        }
        out
    }
}

impl fmt::Display for Sexpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn a(s: &str) -> Sexpr {
        Sexpr::atom(s)
    }

    #[test]
    fn parses_xend_output() {
        let v = parse(b"(domain (domid 7) (name pv1) (args 'root=/dev/xvda1 ro') (bootloader ))")
            .unwrap();
        assert_eq!(v.head(), Some("domain"));
        assert_eq!(v.get("domid"), Some("7"));
        assert_eq!(v.get("args"), Some("root=/dev/xvda1 ro"));
        assert_eq!(v.get("bootloader"), None);
        assert!(v.lookup("bootloader").is_some());
        assert_eq!(v.get_int("domid"), Some(7));
    }

    #[test]
    fn escapes_and_quotes() {
        let v = parse(br#"(x "O'Brien" 'a\'b\\c' 'tab\there' '\x41\101\q')"#).unwrap();
        let items: Vec<&str> = v.items().iter().filter_map(Sexpr::as_atom).collect();
        assert_eq!(items, ["x", "O'Brien", "a'b\\c", "tab\there", "AA\\"]);
    }

    #[test]
    fn comments_and_eot() {
        let v = parse(b"# a comment\n(a b # c\n d)\x04garbage").unwrap();
        assert_eq!(v, Sexpr::List(vec![a("a"), a("b"), a("d")]));
    }

    #[test]
    fn lenient_closes_and_ignores_rest() {
        assert!(parse(b"(a (b c)").is_err());
        let v = parse_lenient(b"(a (b c)").unwrap();
        assert_eq!(v.get("b"), Some("c"));
        assert!(parse(b"(a b))").is_err());
        assert_eq!(parse_lenient(b"(a b))").unwrap().items().len(), 2);
    }

    #[test]
    fn hostile_values_cannot_change_structure() {
        let nasty = [
            "a b",
            "(op destroy)",
            "')(op 'x",
            "\"q\"",
            "back\\slash'",
            "new\nline",
            "",
            "#hash",
            "semi;colon",
            "{[<>]}",
            "\x04eot",
            "é ünï",
        ];
        for s in nasty {
            let v = Sexpr::node("vm", vec![Sexpr::pair("name", s), Sexpr::pair("x", "y")]);
            let text = v.to_text();
            let back = parse(text.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {text} {e}"));
            assert_eq!(back, v, "{s:?} printed as {text}");
        }
    }

    #[test]
    fn printer_layout() {
        let v = Sexpr::node(
            "vm",
            vec![
                Sexpr::pair("name", "pv1"),
                Sexpr::pair("args", "root=/dev/xvda1 ro"),
                Sexpr::node("bootloader", vec![]),
            ],
        );
        assert_eq!(
            v.to_text(),
            "(vm (name pv1) (args 'root=/dev/xvda1 ro') (bootloader))"
        );
    }

    #[test]
    fn limits_and_garbage() {
        let deep = "(".repeat(MAX_DEPTH + 1) + &")".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes())
            .unwrap_err()
            .message
            .contains("deeper"));
        let ok = "(".repeat(MAX_DEPTH) + &")".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
        assert!(parse(&vec![b' '; MAX_INPUT + 1]).is_err());
        let many = "(".to_string() + &"a ".repeat(MAX_NODES + 1) + ")";
        assert!(parse(many.as_bytes())
            .unwrap_err()
            .message
            .contains("values"));
        for g in [
            &b""[..],
            b")",
            b"'open",
            b"(a 'b",
            b"(a \\",
            b"{",
            b"(a [b])",
            b"(a '\\x4')",
            b"   ",
            b"# only a comment",
            b"\xff\xfe(",
            b"(a) (b)",
        ] {
            assert!(parse(g).is_err(), "{g:?}");
        }
        // Random bytes never panic.
        let mut seed: u32 = 12345;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let table = b"()'\"\\ ab#\x04\n;x";
                buf.push(table[(seed >> 16) as usize % table.len()]);
            }
            let _ = parse(&buf);
            let _ = parse_lenient(&buf);
        }
    }

    #[test]
    fn deep_printing_is_iterative() {
        let mut v = a("x");
        for _ in 0..10_000 {
            v = Sexpr::List(vec![v]);
        }
        let text = v.to_text();
        assert_eq!(text.len(), 20_001);
        // Drop a deep tree without overflowing: flatten first.
        let mut cur = v;
        while let Sexpr::List(mut items) = cur {
            cur = items.pop().unwrap_or(a(""));
        }
    }
}
