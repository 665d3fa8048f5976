//! Text that echoes what a user wrote, made safe for a log line and for
//! `last_error`: one line, no control characters or terminal escapes, and a
//! bounded length whatever was written.

/// The longest message `last_error` and the log keep, in characters.
pub const MAX_MESSAGE: usize = 1000;
/// How much of written text a message quotes, in characters.
pub const MAX_QUOTE: usize = 80;

/// `bytes` as a quoted, escaped, truncated string: `"save /x\n"`.
pub fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::from("\"");
    let mut chars = text.chars();
    for c in chars.by_ref().take(MAX_QUOTE) {
        out.extend(c.escape_debug());
    }
    out.push('"');
    if chars.next().is_some() {
        out.push_str(&format!(" (cut, {} bytes in all)", bytes.len()));
    }
    out
}

/// A message as one safe line: control characters escaped, length bounded.
pub fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    for (count, c) in message.chars().enumerate() {
        if count >= MAX_MESSAGE {
            out.push_str(" [...]");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_makes_one_short_line() {
        assert_eq!(quote(b"start\n"), "\"start\\n\"");
        assert_eq!(quote(b"a\0b\x1b[31m"), "\"a\\0b\\u{1b}[31m\"");
        let q = quote(&vec![b'x'; 1 << 20]);
        assert!(
            q.len() < 200 && q.ends_with("(cut, 1048576 bytes in all)"),
            "{q}"
        );
        assert_eq!(quote(&[0xff, b'a']), "\"\u{fffd}a\"");
    }

    #[test]
    fn messages_lose_control_characters_and_length() {
        assert_eq!(one_line("bad\nname\u{1b}"), "bad\\nname\\u{1b}");
        let long = one_line(&"y".repeat(5000));
        assert!(long.len() <= MAX_MESSAGE + 10 && long.ends_with("[...]"));
        assert!(!one_line("a\r\nb").contains('\n'));
    }
}
