//! HVM character devices (serial and parallel ports): the qemu-style value
//! xend keeps in `(serial …)` / `(parallel …)` and the `<serial>` element
//! libvirt writes for it, in both directions. Pure: strings and element
//! trees only.

use crate::model::xml::{Element, Node};

/// One character device, in the terms both sides share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chr {
    /// libvirt's type: pty, null, stdio, vc, dev, file, pipe, tcp, udp, unix.
    pub kind: String,
    /// dev/file/pipe/unix path, or the pty's tty.
    pub path: Option<String>,
    /// tcp: (host, service) and whether we listen; udp: the connect side.
    pub host: Option<String>,
    pub service: Option<String>,
    /// udp: the bind side.
    pub bind_host: Option<String>,
    pub bind_service: Option<String>,
    pub listen: bool,
    pub telnet: bool,
}

fn split_host_port(s: &str) -> (Option<String>, Option<String>) {
    match s.rsplit_once(':') {
        Some((h, p)) => (
            Some(h.to_string()).filter(|h| !h.is_empty()),
            Some(p.to_string()).filter(|p| !p.is_empty()),
        ),
        None => (Some(s.to_string()).filter(|h| !h.is_empty()), None),
    }
}

impl Chr {
    /// Parses xend's value (`pty`, `/dev/ttyS0`, `tcp:host:port,server,nowait`,
    /// …). `none` and the empty string mean no device.
    pub fn from_value(value: &str) -> Result<Option<Chr>, String> {
        let v = value.trim();
        if v.is_empty() || v == "none" {
            return Ok(None);
        }
        let mut c = Chr::default();
        let (prefix, rest) = match v.split_once(':') {
            Some((p, r)) if !v.starts_with('/') => (p, r),
            _ => (v, ""),
        };
        match prefix {
            "pty" | "null" | "stdio" | "vc" => c.kind = prefix.to_string(),
            "file" | "pipe" => {
                c.kind = prefix.to_string();
                c.path = Some(rest.to_string());
            }
            "tcp" | "telnet" => {
                c.kind = "tcp".into();
                c.telnet = prefix == "telnet";
                let mut parts = rest.split(',');
                let (h, p) = split_host_port(parts.next().unwrap_or(""));
                c.host = h;
                c.service = p;
                c.listen = parts.any(|o| o == "server" || o == "listen");
            }
            "udp" => {
                c.kind = "udp".into();
                let (connect, bind) = match rest.split_once('@') {
                    Some((a, b)) => (a, Some(b)),
                    None => (rest, None),
                };
                (c.host, c.service) = split_host_port(connect);
                if let Some(b) = bind {
                    (c.bind_host, c.bind_service) = split_host_port(b);
                }
            }
            "unix" => {
                c.kind = "unix".into();
                let mut parts = rest.split(',');
                c.path = parts.next().map(str::to_string);
                c.listen = parts.any(|o| o == "server" || o == "listen");
            }
            _ if v.starts_with('/') => {
                c.kind = "dev".into();
                c.path = Some(v.to_string());
            }
            _ => return Err(format!("unknown character device '{v}'")),
        }
        Ok(Some(c))
    }

    /// The value xend expects.
    pub fn to_value(&self) -> Result<String, String> {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let server = if self.listen { ",server,nowait" } else { "" };
        Ok(match self.kind.as_str() {
            "pty" | "null" | "stdio" | "vc" => self.kind.clone(),
            "file" | "pipe" => format!("{}:{}", self.kind, opt(&self.path)),
            "dev" => opt(&self.path),
            "tcp" => format!(
                "{}:{}:{}{server}",
                if self.telnet { "telnet" } else { "tcp" },
                opt(&self.host),
                opt(&self.service)
            ),
            "udp" => {
                let mut s = format!("udp:{}:{}", opt(&self.host), opt(&self.service));
                if self.bind_host.is_some() || self.bind_service.is_some() {
                    s.push_str(&format!(
                        "@{}:{}",
                        opt(&self.bind_host),
                        opt(&self.bind_service)
                    ));
                }
                s
            }
            "unix" => format!("unix:{}{server}", opt(&self.path)),
            other => return Err(format!("character device type '{other}' has no xend form")),
        })
    }

    /// The `<serial>`/`<parallel>`/`<console>` element; `target` is its
    /// `<target>` (port, and a type for consoles).
    pub fn to_element(&self, name: &str, target: Element) -> Element {
        let mut e = Element::new(name);
        e.attrs.push(("type".into(), self.kind.clone()));
        let mut push = |c: Element| e.children.push(Node::Element(c));
        let source = |attrs: &[(&str, &Option<String>)]| {
            let mut s = Element::new("source");
            for (k, v) in attrs {
                if let Some(v) = v {
                    s.attrs.push(((*k).into(), v.clone()));
                }
            }
            s
        };
        let mode = |listen: bool| Some(if listen { "bind" } else { "connect" }.to_string());
        match self.kind.as_str() {
            "pty" | "dev" | "file" | "pipe" if self.path.is_some() => {
                push(source(&[("path", &self.path)]))
            }
            "tcp" => {
                push(source(&[
                    ("mode", &mode(self.listen)),
                    ("host", &self.host),
                    ("service", &self.service),
                ]));
                let mut p = Element::new("protocol");
                let proto = if self.telnet { "telnet" } else { "raw" };
                p.attrs.push(("type".into(), proto.into()));
                push(p);
            }
            "udp" => {
                if self.bind_host.is_some() || self.bind_service.is_some() {
                    push(source(&[
                        ("mode", &mode(true)),
                        ("host", &self.bind_host),
                        ("service", &self.bind_service),
                    ]));
                }
                push(source(&[
                    ("mode", &mode(false)),
                    ("host", &self.host),
                    ("service", &self.service),
                ]));
            }
            "unix" => push(source(&[
                ("mode", &mode(self.listen)),
                ("path", &self.path),
            ])),
            _ => {}
        }
        push(target);
        e
    }

    /// Reads a `<serial>`/`<parallel>`/`<console>` element; a missing type
    /// is libvirt's default, `pty`.
    pub fn from_element(e: &Element) -> Chr {
        let mut c = Chr {
            kind: e.attr("type").unwrap_or("pty").to_string(),
            ..Chr::default()
        };
        for s in e.elements().filter(|s| s.name == "source") {
            let get = |k: &str| s.attr(k).map(str::to_string);
            let bind = s.attr("mode") == Some("bind");
            match c.kind.as_str() {
                "udp" if bind => {
                    c.bind_host = get("host");
                    c.bind_service = get("service");
                }
                "udp" => {
                    c.host = get("host");
                    c.service = get("service");
                }
                "tcp" => {
                    c.host = get("host");
                    c.service = get("service");
                    c.listen = bind;
                }
                "unix" => {
                    c.path = get("path");
                    c.listen = bind;
                }
                _ => c.path = get("path"),
            }
        }
        if c.kind == "pty" && c.path.is_none() {
            c.path = e.attr("tty").map(str::to_string);
        }
        c.telnet = e
            .child("protocol")
            .and_then(|p| p.attr("type"))
            .is_some_and(|t| t == "telnet");
        c
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for v in [
            "pty",
            "null",
            "stdio",
            "vc",
            "/dev/ttyS0",
            "file:/tmp/serial.log",
            "pipe:/tmp/serial.pipe",
            "tcp:localhost:9999",
            "tcp:localhost:9999,server,nowait",
            "telnet:localhost:9999,server,nowait",
            "udp:localhost:9998@localhost:9999",
            "unix:/tmp/serial.sock,server,nowait",
        ] {
            let c = Chr::from_value(v).unwrap().unwrap();
            assert_eq!(c.to_value().unwrap(), v);
            let back = Chr::from_element(&c.to_element("serial", Element::new("target")));
            assert_eq!(back.to_value().unwrap(), v, "{c:?}");
        }
        assert_eq!(Chr::from_value("none").unwrap(), None);
        assert!(Chr::from_value("bogus:x").is_err());
    }
}
