//! The properties every fuzz target checks, one function per parser that
//! takes bytes from outside. Each takes arbitrary bytes and panics only when
//! a property fails: a parser may refuse an input, never crash on it, and
//! where a printer exists, what it prints must parse back to the same value.
//!
//! The fuzz targets (`fuzz_targets/`) call these under libFuzzer; the
//! regression test (`tests/fuzz_regressions.rs`) calls them on every seed and
//! on every input that ever crashed, so a fixed crash stays fixed in
//! `cargo test` without a fuzzer installed.

use domfs::driver::test::{host, image};
use domfs::driver::xend::{http, sxp};
use domfs::driver::xenstore::wire::{self, Decoder, Message, Request};
use domfs::fs::command::{self, Command, CommandBuf};
use domfs::fs::document::{Document, Progress};
use domfs::model::xml;
use domfs::model::CpuSet;
use std::path::Path;

/// A property over arbitrary bytes; it panics when the property fails.
pub type Check = fn(&[u8]);

/// Every target by name, with its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("domain_xml", domain_xml),
    ("host_file", host_file),
    ("control", control),
    ("cpu_list", cpu_list),
    ("mount_options", mount_options),
    ("sxp", sxp_parse),
    ("xenstore_client", xenstore_client),
    ("xenstore_server", xenstore_server),
    ("http_response", http_response),
    ("saved_image", saved_image),
    ("document", document),
];

/// The first byte of an input steers how the rest is cut into pieces; the
/// pieces as (offset, bytes).
fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let Some((&step, rest)) = data.split_first() else {
        return Vec::new();
    };
    let step = usize::from(step % 16) + 1;
    rest.chunks(if step == 16 { rest.len().max(1) } else { step })
        .collect()
}

/// Domain XML: the tree parser and the domain validator. A definition that
/// parses is written back and must parse to the same definition, and its
/// text must be stable after one round.
pub fn domain_xml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tree) = xml::parse_tree(text) {
        let _ = tree.to_xml();
    }
    let Ok(def) = xml::parse(text) else {
        return;
    };
    let written = def.to_xml();
    let again = xml::parse(&written)
        .unwrap_or_else(|e| panic!("written XML does not parse: {e}\n{written}"));
    assert_eq!(
        again, def,
        "XML round trip changed the definition:\n{written}"
    );
    assert_eq!(again.to_xml(), written, "written XML is not stable");
}

/// A libvirt test-driver host file, as `test:///PATH` loads it. The path
/// names a directory that does not exist, so `file=` references fail to read
/// instead of reaching the machine's files.
pub fn host_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = host::parse_host(text, Path::new("/nonexistent-domfs-fuzz/host.xml")) {
        for def in &spec.domains {
            let written = def.to_xml();
            let again = xml::parse(&written)
                .unwrap_or_else(|e| panic!("a host's domain does not write back: {e}"));
            assert_eq!(&again, def);
        }
    }
}

/// Text written to `control`, `memory`, `vcpus`, `autostart`: gathered by
/// [`CommandBuf`] in the pieces a writer may use, then parsed. A command
/// that parses prints as text that parses to the same command.
pub fn control(data: &[u8]) {
    let mut buf = CommandBuf::default();
    let mut lines = Vec::new();
    for piece in pieces(data) {
        if let Ok(Some(line)) = buf.write(piece) {
            assert!(line.len() <= command::MAX_COMMAND);
            lines.push(line);
        }
    }
    lines.extend(buf.finish());
    for line in lines.iter().map(Vec::as_slice).chain([data]) {
        let Ok(text) = command::one_line(line) else {
            continue;
        };
        let _ = command::parse_flag(text);
        let _ = command::parse_count(text);
        if let Ok(kib) = command::parse_size(text) {
            assert_eq!(command::parse_size(&kib.to_string()), Ok(kib));
        }
        if let Ok(cmd) = text.parse::<Command>() {
            let printed = cmd.to_string();
            assert_eq!(
                printed.parse::<Command>().as_ref(),
                Ok(&cmd),
                "'{text}' printed as '{printed}'"
            );
            let _ = cmd.operation();
        }
    }
}

/// CPU lists (`vcpu/N/affinity`, `<vcpu cpuset=...>`): a set that parses
/// prints in the shortest form, which parses to the same set.
pub fn cpu_list(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = text.parse::<CpuSet>() {
        let printed = set.to_string();
        assert_eq!(printed.parse::<CpuSet>().as_ref(), Ok(&set), "{printed}");
        assert!(set
            .last()
            .is_some_and(|c| c <= domfs::model::cpulist::MAX_CPU));
    }
}

/// `-o` option lists as mount(8) and fstab hand them over.
pub fn mount_options(data: &[u8]) {
    let Ok(opts) = std::str::from_utf8(data) else {
        return;
    };
    let args = ["domfs", "-o", opts, "test:///default", "/mnt"];
    if let Ok(Ok(parsed)) = domfs::cli::parse(args) {
        assert_eq!(parsed.uri, "test:///default");
    }
}

/// xend's S-expressions, strict and lenient. What parses prints as text
/// that parses to the same value.
pub fn sxp_parse(data: &[u8]) {
    let _ = sxp::parse_lenient(data);
    let Ok(value) = sxp::parse(data) else {
        return;
    };
    let printed = value.to_text();
    let again = sxp::parse(printed.as_bytes())
        .unwrap_or_else(|e| panic!("printed SXP does not parse: {e}\n{printed}"));
    assert_eq!(again, value, "SXP round trip changed the value:\n{printed}");
}

/// The client's side of the xenstore wire: the frame decoder fed in pieces,
/// then every reply payload parser on every frame. Frames re-encode to the
/// bytes they were decoded from.
pub fn xenstore_client(data: &[u8]) {
    let mut decoder = Decoder::new(wire::PAYLOAD_MAX);
    let mut frames: Vec<Message> = Vec::new();
    let mut fed = 0;
    for piece in pieces(data) {
        fed += piece.len();
        match decoder.push(piece) {
            Ok(mut got) => frames.append(&mut got),
            Err(_) => return,
        }
    }
    let consumed = fed - decoder.pending();
    let encoded: Vec<u8> = frames.iter().flat_map(Message::to_bytes).collect();
    let input = data.get(1..).unwrap_or_default();
    assert_eq!(
        encoded.len(),
        consumed,
        "frames do not cover what was consumed"
    );
    assert_eq!(
        &input[..consumed],
        encoded.as_slice(),
        "frames re-encode differently"
    );
    let _ = decoder.finish();
    for m in &frames {
        let p = m.payload.as_slice();
        let _ = m.kind();
        let _ = wire::parse_error(p);
        let _ = wire::parse_ok(p);
        let _ = wire::parse_directory(p);
        let _ = wire::parse_perms(p);
        let _ = wire::parse_u32(p);
        let _ = wire::parse_string(p);
        let _ = wire::parse_bool(p);
        let _ = wire::parse_watch_event(p);
        let _ = wire::parse_directory_part(p);
    }
}

/// The daemon's side (domfs-sim reads requests with this): a request that
/// decodes encodes to a payload that decodes to the same request.
pub fn xenstore_server(data: &[u8]) {
    let Some((ty, payload)) = data.split_first_chunk::<4>() else {
        return;
    };
    let ty = u32::from_le_bytes(*ty) % 32;
    let Ok(req) = Request::decode(ty, payload) else {
        return;
    };
    assert_eq!(req.msg_type().code(), ty);
    let encoded = req
        .encode(usize::MAX)
        .unwrap_or_else(|e| panic!("{req:?} decoded but does not encode: {e}"));
    assert_eq!(
        Request::decode(ty, &encoded).as_ref().ok(),
        Some(&req),
        "request round trip changed {req:?}"
    );
}

/// xend's HTTP replies: the head parser on every prefix a slow server may
/// have sent so far, and the whole-reply parser with a small and a large
/// body limit.
pub fn http_response(data: &[u8]) {
    for cut in [data.len() / 3, data.len() / 2, data.len()] {
        if let Ok(Some(head)) = http::parse_head(&data[..cut]) {
            assert!(head.body_start <= cut);
            assert!((100..1000).contains(&head.status));
        }
    }
    for limit in [64, 1 << 20] {
        if let Ok(r) = http::parse_response(data, limit) {
            assert!(r.body.len() <= data.len());
            if let Some(n) = r.header("content-length") {
                assert_eq!(n.parse::<usize>().ok(), Some(r.body.len()));
            }
            let _ = r.body_text();
        }
    }
}

/// Saved images of the test driver (`restore`): an image that decodes
/// re-encodes to its own first bytes.
pub fn saved_image(data: &[u8]) {
    if let Ok(xml) = image::decode(data) {
        let again = image::encode(xml).unwrap_or_else(|e| panic!("decoded but no encode: {e}"));
        assert_eq!(again.as_slice(), &data[..again.len()]);
        let _ = xml::parse(xml);
    }
}

/// Documents written to `xml`, `define`, `create` in pieces, as `cp`, `cat`
/// or an editor write them. Once complete, the document is every byte
/// written, and the XML parser gets it.
pub fn document(data: &[u8]) {
    let mut doc = Document::default();
    let mut offset = 0u64;
    let mut accepted = Vec::new();
    let mut complete = false;
    for piece in pieces(data) {
        if let Ok(p) = doc.write(offset, piece) {
            offset += piece.len() as u64;
            accepted.extend_from_slice(piece);
            if p == Progress::Complete {
                assert!(!complete, "a document completed twice");
                complete = true;
            }
        } else {
            break;
        }
    }
    assert_eq!(doc.bytes(), accepted.as_slice());
    assert_eq!(doc.progress() == Progress::Complete, complete);
    // A write that goes back is refused and changes nothing.
    if offset > 0 && doc.write(0, b"<").is_ok() {
        panic!("a write at offset 0 after {offset} bytes was accepted");
    }
    assert_eq!(doc.bytes(), accepted.as_slice());
    if complete {
        if let Ok(text) = std::str::from_utf8(doc.bytes()) {
            let _ = xml::parse(text);
        }
    }
}
