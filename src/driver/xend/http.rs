//! The HTTP/1.x subset xend speaks, as libvirt used it: one request per
//! connection, form-encoded POST bodies, replies framed by `Content-Length`
//! (or by the server closing). The wire format is pure (bytes in, values
//! out); [`Client`] is the transport over a unix socket or TCP.
//!
//! Every read is bounded: the reply head by [`MAX_HEAD`], the body by the
//! client's limit, and every connection by a connect timeout and an overall
//! deadline, so a dead or stuck xend never blocks a caller for long.

use crate::error::{Error, ErrorKind, Result};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Largest status line plus headers accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The reply head: status, headers, and where the body starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub content_length: Option<usize>,
    pub body_start: usize,
}

fn bad(m: impl Into<String>) -> Error {
    Error::backend(format!("xend HTTP reply: {}", m.into()))
}

/// Percent-encodes every byte outside RFC 3986's unreserved set, as
/// libvirt 0.10.2 did for each key and value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&k=v`, every key and value percent-encoded.
pub fn form_encode(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A request as libvirt sent it (no User-Agent or Accept, so xend answers
/// in SXP). `path` must already be encoded.
pub fn build_request(method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost:8000\r\nAccept-Encoding: identity\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n"
    );
    if let Some(b) = body {
        r.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    r.push_str("Connection: close\r\n\r\n");
    if let Some(b) = body {
        r.push_str(b);
    }
    r.into_bytes()
}

/// Parses the reply head from the start of `buf`: `Ok(None)` while the
/// blank line has not arrived yet.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    let end = end.or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
    let Some((end, sep)) = end else {
        if buf.len() > MAX_HEAD {
            return Err(bad(format!("header larger than {MAX_HEAD} bytes")));
        }
        return Ok(None);
    };
    if end > MAX_HEAD {
        return Err(bad(format!("header larger than {MAX_HEAD} bytes")));
    }
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| bad("header is not text"))?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!(
            "not an HTTP/1.x status line: {status_line:.60}"
        )));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .filter(|c| (100..1000).contains(c))
        .ok_or_else(|| bad(format!("bad status line: {status_line:.60}")))?;
    let mut headers = Vec::new();
    let mut content_length = None;
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line: {line:.60}")))?;
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            let n: usize = v
                .parse()
                .map_err(|_| bad(format!("bad Content-Length '{v:.20}'")))?;
            // Two lengths that disagree make the body's end ambiguous (RFC
            // 9112 says to refuse the reply): which one a reader believes
            // decides where a smuggled reply would start.
            if content_length.is_some_and(|m| m != n) {
                return Err(bad("conflicting Content-Length headers"));
            }
            content_length = Some(n);
        }
        if k.eq_ignore_ascii_case("transfer-encoding") && !v.eq_ignore_ascii_case("identity") {
            return Err(bad(format!("transfer encoding '{v:.20}' is not supported")));
        }
        headers.push((k.to_string(), v.to_string()));
    }
    Ok(Some(Head {
        status,
        headers,
        content_length,
        body_start: end + sep,
    }))
}

/// Parses a whole reply (the connection has closed): the body is exactly
/// `Content-Length` bytes, or everything after the head without one.
pub fn parse_response(buf: &[u8], max_body: usize) -> Result<Response> {
    let head = parse_head(buf)?.ok_or_else(|| bad("connection closed before the header ended"))?;
    let rest = &buf[head.body_start..];
    let body = match head.content_length {
        Some(n) if n > max_body => return Err(bad(format!("body of {n} bytes is over the limit"))),
        Some(n) if rest.len() < n => {
            return Err(bad(format!(
                "connection closed after {} of {n} body bytes",
                rest.len()
            )))
        }
        Some(n) => rest[..n].to_vec(),
        None if rest.len() > max_body => return Err(bad("body over the limit")),
        None => rest.to_vec(),
    };
    Ok(Response {
        status: head.status,
        headers: head.headers,
        body,
    })
}

/// Where xend listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

impl Endpoint {
    /// `unix:/PATH`, an absolute path, or `http://HOST[:PORT][/]` (port 8000
    /// by default).
    pub fn parse(s: &str) -> Result<Endpoint> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix:") {
            let p = p.strip_prefix("//").unwrap_or(p);
            if !p.starts_with('/') {
                return Err(Error::invalid(format!(
                    "xend=unix:{p}: the socket path must be absolute"
                )));
            }
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if s.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(s)));
        }
        if let Some(rest) = s.strip_prefix("http://") {
            let hostport = rest.trim_end_matches('/');
            if hostport.is_empty() || hostport.contains('/') {
                return Err(Error::invalid(format!(
                    "xend={s}: expected http://HOST:PORT"
                )));
            }
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                    let port = p
                        .parse::<u16>()
                        .map_err(|_| Error::invalid(format!("xend={s}: bad port '{p}'")))?;
                    (h, port)
                }
                _ => (hostport, 8000),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(Error::invalid(format!("xend={s}: no host")));
            }
            return Ok(Endpoint::Tcp {
                host: host.to_string(),
                port,
            });
        }
        Err(Error::invalid(format!(
            "xend={s}: expected unix:/PATH or http://HOST:PORT"
        )))
    }
}

/// The transport: a new connection per request, as xend expects.
#[derive(Debug, Clone)]
pub struct Client {
    pub endpoint: Endpoint,
    pub connect_timeout: Duration,
    /// Deadline for the whole exchange after connecting.
    pub request_timeout: Duration,
    pub max_body: usize,
}

trait Stream: Read + Write {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()>;
}

impl Stream for UnixStream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Stream for TcpStream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    let kind = match e.kind() {
        K::TimedOut | K::WouldBlock => ErrorKind::TimedOut,
        K::NotFound
        | K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::AddrNotAvailable => ErrorKind::NotConnected,
        K::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::Backend,
    };
    Error::new(kind, format!("xend: {what}: {e}"))
}

/// Connects a unix socket without blocking past `timeout`: a listener that
/// stopped accepting (full backlog) makes a non-blocking connect fail with
/// EAGAIN, which is retried until the deadline.
fn connect_unix(path: &std::path::Path, timeout: Duration) -> Result<UnixStream> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let deadline = Instant::now() + timeout;
    let addr = UnixAddr::new(path)
        .map_err(|e| Error::invalid(format!("xend socket '{}': {e}", path.display())))?;
    loop {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| io_error("socket", e.into()))?;
        use std::os::fd::AsRawFd;
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => {
                let s = UnixStream::from(fd);
                s.set_nonblocking(false)
                    .map_err(|e| io_error("connect", e))?;
                return Ok(s);
            }
            Err(nix::errno::Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(Error::new(
                    ErrorKind::TimedOut,
                    format!("xend: connect to {}: timed out", path.display()),
                ))
            }
            Err(e) => {
                return Err(io_error(
                    &format!("connect to {}", path.display()),
                    e.into(),
                ))
            }
        }
    }
}

impl Client {
    pub fn new(endpoint: Endpoint) -> Client {
        Client {
            endpoint,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            max_body: 1 << 20,
        }
    }

    fn connect(&self) -> Result<Box<dyn Stream>> {
        match &self.endpoint {
            Endpoint::Unix(p) => Ok(Box::new(connect_unix(p, self.connect_timeout)?)),
            Endpoint::Tcp { host, port } => {
                let what = format!("connect to {host}:{port}");
                let addrs = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| io_error(&what, e))?;
                let mut last = None;
                for a in addrs {
                    match TcpStream::connect_timeout(&a, self.connect_timeout) {
                        Ok(s) => return Ok(Box::new(s)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(match last {
                    Some(e) => io_error(&what, e),
                    None => {
                        Error::new(ErrorKind::NotConnected, format!("xend: {what}: no address"))
                    }
                })
            }
        }
    }

    /// One exchange: sends the request, reads the whole reply.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Result<Response> {
        let mut s = self.connect()?;
        let deadline = Instant::now() + self.request_timeout;
        let left = |what: &str| {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| Error::new(ErrorKind::TimedOut, format!("xend: {what}: timed out")))
        };
        s.set_timeouts(left("send")?)
            .map_err(|e| io_error("send", e))?;
        s.write_all(&build_request(method, path, body))
            .map_err(|e| io_error("send", e))?;
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 8192];
        let limit = self.max_body + MAX_HEAD;
        loop {
            s.set_timeouts(left("reply")?)
                .map_err(|e| io_error("reply", e))?;
            let n = match s.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error("reply", e)),
            };
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > limit {
                return Err(bad(format!("reply larger than {limit} bytes")));
            }
            // Stop as soon as a Content-Length body is complete: xend may
            // keep the connection open.
            if let Some(h) = parse_head(&buf)? {
                if let Some(len) = h.content_length {
                    if len > self.max_body {
                        return Err(bad(format!("body of {len} bytes is over the limit")));
                    }
                    if buf.len() >= h.body_start + len {
                        break;
                    }
                }
            }
        }
        parse_response(&buf, self.max_body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-length: 5\r\nPragma: no-cache\r\n\r\n(a b)extra",
            100,
        )
        .unwrap();
        assert_eq!((r.status, r.body_text().as_str()), (200, "(a b)"));
        assert_eq!(r.header("content-LENGTH"), Some("5"));
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\nno such domain", 100).unwrap();
        assert_eq!((r.status, r.body_text().as_str()), (404, "no such domain"));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-")
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_replies_are_errors() {
        for (reply, want) in [
            (&b"SSH-2.0-OpenSSH\r\n\r\n"[..], "status line"),
            (b"HTTP/1.1 abc OK\r\n\r\n", "status line"),
            (
                b"HTTP/1.1 200 OK\r\nContent-length: x\r\n\r\n",
                "Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-length: 10\r\n\r\nshort",
                "closed after 5",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-length: 1000\r\n\r\n",
                "over the limit",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "chunked",
            ),
            (b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", "header line"),
            (b"HTTP/1.1 200", "before the header ended"),
        ] {
            let e = parse_response(reply, 100).unwrap_err();
            assert!(e.message.contains(want), "{e}");
            assert_eq!(e.kind, ErrorKind::Backend);
        }
        let huge = vec![b'x'; MAX_HEAD + 10];
        assert!(parse_head(&huge).is_err());
    }

    #[test]
    fn requests_and_forms() {
        assert_eq!(
            form_encode(&[("op", "create"), ("config", "(vm (name 'a b&c=d%'))")]),
            "op=create&config=%28vm%20%28name%20%27a%20b%26c%3Dd%25%27%29%29"
        );
        let r =
            String::from_utf8(build_request("POST", "/xend/domain/a", Some("op=pause"))).unwrap();
        assert!(r.starts_with("POST /xend/domain/a HTTP/1.1\r\n"));
        assert!(r.contains("Content-Length: 8\r\n") && r.ends_with("\r\n\r\nop=pause"));
        assert!(!r.contains("User-Agent") && !r.contains("Accept:"));
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("unix:/var/lib/xend/xend-socket").unwrap(),
            Endpoint::Unix("/var/lib/xend/xend-socket".into())
        );
        assert_eq!(
            Endpoint::parse("http://localhost:8000/").unwrap(),
            Endpoint::Tcp {
                host: "localhost".into(),
                port: 8000
            }
        );
        assert_eq!(
            Endpoint::parse("http://10.0.0.1").unwrap(),
            Endpoint::Tcp {
                host: "10.0.0.1".into(),
                port: 8000
            }
        );
        for bad in [
            "unix:rel",
            "http://",
            "http://h:99999",
            "ftp://x",
            "host:1",
            "http://h/x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dead_daemon_fails_fast() {
        let dir = std::env::temp_dir().join(format!("domfs-xend-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("none");
        let c = Client::new(Endpoint::Unix(sock.clone()));
        let e = c.request("GET", "/xend/node/", None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotConnected, "{e}");
        // A listener that never answers: the deadline ends the wait.
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let mut c = Client::new(Endpoint::Unix(sock.clone()));
        c.request_timeout = Duration::from_millis(300);
        let t = Instant::now();
        let e = c.request("GET", "/xend/node/", None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TimedOut, "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        // A listener that answers.
        let server = std::thread::spawn(move || {
            // The first connection is the one that timed out.
            let (stale, _) = listener.accept().unwrap();
            drop(stale);
            let (mut s2, _) = listener.accept().unwrap();
            let mut req = [0u8; 4096];
            let _ = s2.read(&mut req).unwrap();
            s2.write_all(b"HTTP/1.1 200 OK\r\nContent-length: 6\r\n\r\n(node)")
                .unwrap();
        });
        let r = c.request("GET", "/xend/node/", None).unwrap();
        assert_eq!(r.body_text(), "(node)");
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
