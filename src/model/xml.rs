//! libvirt domain XML of the Xen era: parsed into a generic element tree so
//! that nothing a definition carries is ever lost, with typed, validated views
//! of the parts domfs shows, setters that edit the tree in place, and a writer
//! that formats exactly as libvirt's own formatter does (so libvirt's output
//! round-trips byte for byte).
//!
//! This module is pure: text in, values out. It must not do any I/O, talk to a
//! hypervisor, or judge whether a definition suits a back end (`type='kvm'` is
//! as acceptable here as `type='xen'`).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::model::{DomainId, Uuid};

/// How deeply elements may nest. libxml2 (libvirt's parser) refuses deeper
/// documents by default; the limit also bounds every walk of the tree
/// (writing, comparing, dropping), which recurse once per level.
pub const MAX_DEPTH: usize = 256;

/// The domain types libvirt 9 knows (`virDomainVirt`); any other is refused
/// as libvirt refuses it.
const DOMAIN_TYPES: [&str; 17] = [
    "none",
    "qemu",
    "kqemu",
    "kvm",
    "xen",
    "lxc",
    "uml",
    "openvz",
    "test",
    "vmware",
    "hyperv",
    "vbox",
    "phyp",
    "parallels",
    "bhyve",
    "vz",
    "hvf",
];

/// The largest memory amount libvirt accepts: its byte count must fit a
/// signed 64-bit integer.
const MAX_MEMORY_KIB: u64 = i64::MAX as u64 / 1024;

/// What is wrong with a domain XML, and where: the 1-based line of the start
/// tag (or of the parse error) and the element concerned, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub line: Option<usize>,
    pub element: Option<String>,
    pub message: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, &self.element) {
            (Some(l), Some(e)) => write!(f, "line {l}, <{e}>: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            (None, Some(e)) => write!(f, "<{e}>: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for XmlError {}

fn err_at(e: &Element, message: impl Into<String>) -> XmlError {
    XmlError {
        line: (e.line > 0).then_some(e.line),
        element: Some(e.name.clone()),
        message: message.into(),
    }
}

/// A setter's complaint: there is no line, since the value did not come from text.
fn err_set(element: &str, message: impl Into<String>) -> XmlError {
    XmlError {
        line: None,
        element: Some(element.to_string()),
        message: message.into(),
    }
}

/// One node of the tree. Adjacent text, CDATA and references are merged into
/// one `Text`; comments, processing instructions and the declaration are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An XML element with its attributes in document order.
#[derive(Debug, Clone, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// 1-based line of the start tag in the parsed text, 0 for elements a
    /// setter created. Ignored by `==`, because re-formatting moves lines but
    /// does not change the document.
    pub line: usize,
}

impl PartialEq for Element {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.attrs == other.attrs && self.children == other.children
    }
}

impl Eq for Element {}

impl Element {
    pub fn new(name: impl Into<String>) -> Element {
        Element {
            name: name.into(),
            ..Element::default()
        }
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the value where the attribute already is, so the attribute
    /// order (and with it the written text) changes as little as possible.
    pub fn set_attr(&mut self, name: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => {
                // Setters add one item at a time to lists a parse left
                // exact; growth room would outweigh the item.
                self.attrs.reserve_exact(1);
                self.attrs.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let at = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(at).1)
    }

    /// The child elements, in document order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element of that name (libvirt reads `./name[1]`).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|n| match n {
            Node::Element(e) if e.name == name => Some(e),
            _ => None,
        })
    }

    /// All text inside, descendants included, as XPath's `string()` gives it.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.collect_text(&mut out);
        out
    }

    fn collect_text(&self, out: &mut String) {
        for n in &self.children {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => e.collect_text(out),
            }
        }
    }

    /// Makes `text` the only content; an empty text leaves the element empty
    /// (written `<x/>`), as libvirt does.
    pub fn set_text(&mut self, text: &str) {
        self.children.clear();
        if !text.is_empty() {
            self.children.reserve_exact(1);
            self.children.push(Node::Text(text.to_string()));
        }
    }

    fn push_text(&mut self, text: &str) {
        if let Some(Node::Text(last)) = self.children.last_mut() {
            last.push_str(text);
        } else if !text.is_empty() {
            self.children.push(Node::Text(text.to_string()));
        }
    }

    /// The element and its content in libvirt's layout, ending with a newline.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        write_element(&mut out, self, 0, true);
        out
    }
}

fn is_xml_space(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

// ---------------------------------------------------------------------------
// Reading

fn malformed(line: usize, element: Option<&Element>, message: impl fmt::Display) -> XmlError {
    XmlError {
        line: Some(line),
        element: element.map(|e| e.name.clone()),
        message: format!("malformed XML: {message}"),
    }
}

/// Turns byte offsets into 1-based line numbers, counting forward from the
/// last offset asked for so a long document is not rescanned per event.
struct Lines<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

impl Lines<'_> {
    fn at(&mut self, pos: u64) -> usize {
        let pos = usize::try_from(pos).map_or(self.text.len(), |p| p.min(self.text.len()));
        if pos < self.pos {
            (self.pos, self.line) = (0, 1);
        }
        self.line += self.text[self.pos..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.pos = pos;
        self.line
    }
}

/// A DTD could declare entities (a billion laughs, or a file named by
/// SYSTEM); domain XML never needs one, so none is read.
fn doctype_refused(line: usize) -> XmlError {
    malformed(
        line,
        None,
        "a DOCTYPE is refused: domfs reads no DTD and expands no entities",
    )
}

/// A reader of `text` and its line counter, and the text they read.
fn reader_of(text: &str) -> (&str, Reader<&[u8]>, Lines<'_>) {
    // Editors may leave a byte-order mark; it carries no content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    // Whether white space is formatting or content is only known once the
    // element closes (see `settle_whitespace`), so the reader must not trim.
    reader.config_mut().trim_text(false);
    let lines = Lines {
        text: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    (text, reader, lines)
}

/// A part of a larger document: its text and the line it starts on.
#[derive(Debug)]
pub struct Part<'a> {
    pub text: &'a str,
    pub first_line: usize,
}

impl Part<'_> {
    /// An error about this part, with its line counted in the whole document.
    pub fn locate(&self, mut e: XmlError) -> XmlError {
        e.line = e.line.map(|l| l + self.first_line - 1);
        e
    }
}

/// The root element's name and each of its child elements as text, found
/// without building a tree. A large document (a host of 10,000 domains)
/// can then be parsed one child at a time, so its trees are never all
/// alive at once (the allocator keeps such a peak, fragmented, for good).
/// The whole document is checked to be well formed.
pub fn split_children(text: &str) -> Result<(String, Vec<Part<'_>>), XmlError> {
    let (text, mut reader, mut lines) = reader_of(text);
    let at = |pos: u64| usize::try_from(pos).map_or(text.len(), |p| p.min(text.len()));
    let (mut depth, mut start, mut root) = (0usize, 0usize, None);
    let mut parts = Vec::new();
    loop {
        let before = at(reader.buffer_position());
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => return Err(malformed(lines.at(reader.error_position()), None, e)),
        };
        let after = at(reader.buffer_position());
        // The reader's positions are bytes; one that falls inside a
        // character (the reader skips a second byte-order mark as a unit of
        // its own) cannot cut a part, and such a document is refused.
        let part = |from: usize, lines: &mut Lines| match text.get(from..after) {
            Some(t) => Ok(Part {
                text: t,
                first_line: lines.at(from as u64),
            }),
            None => Err(XmlError {
                line: Some(lines.at(from as u64)),
                element: None,
                message: "the document cannot be split here".into(),
            }),
        };
        match event {
            Event::Start(ref s) | Event::Empty(ref s) if depth == 0 => {
                root = Some(String::from_utf8_lossy(s.name().as_ref()).into_owned());
                depth = usize::from(matches!(event, Event::Start(_)));
            }
            Event::Start(_) => {
                if depth == 1 {
                    start = before;
                }
                depth += 1;
            }
            Event::Empty(_) if depth == 1 => parts.push(part(before, &mut lines)?),
            Event::DocType(_) => return Err(doctype_refused(lines.at(before as u64))),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    parts.push(part(start, &mut lines)?);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let root = root.ok_or_else(|| XmlError {
        line: None,
        element: None,
        message: "the document has no root element".into(),
    })?;
    Ok((root, parts))
}

/// Parses any well-formed XML document into its root element (used by
/// [`parse`]; also handy for XML that is not a domain, e.g. a test host file).
pub fn parse_tree(text: &str) -> Result<Element, XmlError> {
    let (text, mut reader, mut lines) = reader_of(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        // With trimming off every byte belongs to some event, so the position
        // after the previous event is where this one starts.
        let line = lines.at(reader.buffer_position());
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                return Err(malformed(
                    lines.at(reader.error_position()),
                    stack.last(),
                    e,
                ))
            }
        };
        let piece = match event {
            Event::Start(s) => {
                let el = open_element(&reader, &s, line, &stack, &root)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed(
                        line,
                        Some(&el),
                        format!("elements nest deeper than {MAX_DEPTH} levels"),
                    ));
                }
                stack.push(el);
                continue;
            }
            Event::Empty(s) => {
                let el = open_element(&reader, &s, line, &stack, &root)?;
                attach(el, &mut stack, &mut root);
                continue;
            }
            Event::End(_) => {
                // quick-xml matches end tags against its own stack, so ours
                // cannot be empty here; stay defensive rather than panic.
                let mut el = stack
                    .pop()
                    .ok_or_else(|| malformed(line, None, "stray close tag"))?;
                settle_whitespace(&mut el);
                attach(el, &mut stack, &mut root);
                continue;
            }
            Event::Text(t) => t.xml10_content().map(|c| c.into_owned()),
            Event::CData(t) => t.xml10_content().map(|c| c.into_owned()),
            Event::GeneralRef(r) => {
                let name = r.decode().map(|c| c.into_owned()).unwrap_or_default();
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    Ok(None) => resolve_xml_entity(&name).map(str::to_string),
                    Err(_) => None,
                };
                let unknown = || {
                    malformed(
                        line,
                        stack.last(),
                        format!("unknown or invalid reference '&{name};'"),
                    )
                };
                Ok(resolved.ok_or_else(unknown)?)
            }
            Event::Eof => break,
            Event::DocType(_) => return Err(doctype_refused(line)),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => continue,
        };
        let piece = piece.map_err(|e| malformed(line, stack.last(), e))?;
        match stack.last_mut() {
            Some(parent) => parent.push_text(&piece),
            None if is_xml_space(&piece) => {}
            None => {
                let snippet: String = piece.trim().chars().take(40).collect();
                let place = if root.is_some() { "after" } else { "before" };
                return Err(XmlError {
                    line: Some(line),
                    element: None,
                    message: format!("not XML: text '{snippet}' {place} the root element"),
                });
            }
        }
    }
    let end_line = lines.at(text.len() as u64);
    let unexpected_end = |message: String| XmlError {
        line: Some(end_line),
        element: None,
        message,
    };
    if let Some(open) = stack.last() {
        let mut message = format!("unexpected end of document, <{}> not closed", open.name);
        if open.line != end_line {
            message.push_str(&format!(" (opened at line {})", open.line));
        }
        return Err(unexpected_end(message));
    }
    root.ok_or_else(|| unexpected_end("not XML: the document has no root element".into()))
}

fn open_element(
    reader: &Reader<&[u8]>,
    start: &BytesStart<'_>,
    line: usize,
    stack: &[Element],
    root: &Option<Element>,
) -> Result<Element, XmlError> {
    let decoder = reader.decoder();
    let name = decoder
        .decode(start.name().as_ref())
        .map_err(|e| malformed(line, None, e))?
        .into_owned();
    if name.is_empty() {
        // `<\t/>`: quick-xml reads a tag whose name is white space as a
        // nameless element, which no writer could give back.
        return Err(malformed(line, stack.last(), "an element without a name"));
    }
    let mut el = Element {
        name,
        line,
        ..Element::default()
    };
    if let (true, Some(r)) = (stack.is_empty(), root) {
        let message = format!("a second root element after </{}>", r.name);
        return Err(malformed(line, Some(&el), message));
    }
    for attr in start.attributes() {
        let attr = attr.map_err(|e| malformed(line, Some(&el), e))?;
        let key = decoder
            .decode(attr.key.as_ref())
            .map_err(|e| malformed(line, Some(&el), e))?;
        let value = attr
            .decode_and_unescape_value(decoder)
            .map_err(|e| malformed(line, Some(&el), format!("attribute '{key}': {e}")))?;
        el.attrs.push((key.into_owned(), value.into_owned()));
    }
    Ok(el)
}

/// A closed element is final, so its lists lose the room they grew for
/// more: most of a parsed tree's size was that slack (a host of 10,000
/// small domains kept over 20 MiB of it).
fn attach(mut el: Element, stack: &mut [Element], root: &mut Option<Element>) {
    el.children.shrink_to_fit();
    el.attrs.shrink_to_fit();
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        // A second root is refused when it opens, so this is the first.
        None => *root = Some(el),
    }
}

/// White space between child elements is layout, which the writer redoes, so
/// it is dropped. Where real text sits beside elements (mixed content) every
/// piece of text is content and is kept as it is; an element holding only
/// white space keeps it too (`<cmdline> </cmdline>` means a space).
fn settle_whitespace(el: &mut Element) {
    let has_elements = el.children.iter().any(|n| matches!(n, Node::Element(_)));
    let has_real_text = el
        .children
        .iter()
        .any(|n| matches!(n, Node::Text(t) if !is_xml_space(t)));
    if has_elements && !has_real_text {
        el.children.retain(|n| matches!(n, Node::Element(_)));
    }
}

// ---------------------------------------------------------------------------
// Writing

/// libvirt's formatter (virBufferEscapeString, used for text and attribute
/// values alike) escapes all five XML specials, so this does too.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

/// `pretty` lays the element out on its own indented line(s); inside mixed
/// content it is off, since added white space would become part of the text.
fn write_element(out: &mut String, e: &Element, depth: usize, pretty: bool) {
    if pretty {
        out.extend(std::iter::repeat_n(' ', depth * 2));
    }
    out.push('<');
    out.push_str(&e.name);
    for (k, v) in &e.attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("='");
        escape_into(out, v);
        out.push('\'');
    }
    let has_text = e.children.iter().any(|n| matches!(n, Node::Text(_)));
    if e.children.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        let nested_pretty = pretty && !has_text;
        if nested_pretty {
            out.push('\n');
        }
        for n in &e.children {
            match n {
                Node::Text(t) => escape_into(out, t),
                Node::Element(c) => write_element(out, c, depth + 1, nested_pretty),
            }
        }
        if nested_pretty {
            out.extend(std::iter::repeat_n(' ', depth * 2));
        }
        out.push_str("</");
        out.push_str(&e.name);
        out.push('>');
    }
    if pretty {
        out.push('\n');
    }
}

// ---------------------------------------------------------------------------
// Typed views

/// What the hypervisor does when the guest powers off, reboots or crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleAction {
    Destroy,
    Restart,
    Preserve,
    RenameRestart,
    CoredumpDestroy,
    CoredumpRestart,
}

const ACTIONS: [(LifecycleAction, &str); 6] = [
    (LifecycleAction::Destroy, "destroy"),
    (LifecycleAction::Restart, "restart"),
    (LifecycleAction::Preserve, "preserve"),
    (LifecycleAction::RenameRestart, "rename-restart"),
    (LifecycleAction::CoredumpDestroy, "coredump-destroy"),
    (LifecycleAction::CoredumpRestart, "coredump-restart"),
];

impl fmt::Display for LifecycleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = ACTIONS
            .iter()
            .find(|(a, _)| a == self)
            .map_or("?", |(_, n)| n);
        f.write_str(name)
    }
}

impl FromStr for LifecycleAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ACTIONS
            .iter()
            .find(|(_, n)| *n == s.trim())
            .map(|(a, _)| *a)
            .ok_or_else(|| {
                let known: Vec<&str> = ACTIONS.iter().map(|(_, n)| *n).collect();
                format!("unknown action '{s}' (expected {})", known.join(", "))
            })
    }
}

/// `<os>`: the guest kind and how it boots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsDef {
    pub os_type: String,
    pub arch: Option<String>,
    pub machine: Option<String>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    pub root: Option<String>,
    pub loader: Option<String>,
    /// `dev` of each `<boot>`, in order.
    pub boot: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disk {
    /// `type`; libvirt's default `file` when absent.
    pub disk_type: String,
    /// `device`; `disk` when absent.
    pub device: String,
    pub driver_name: Option<String>,
    pub driver_type: Option<String>,
    /// `file=` or `dev=` of `<source>`.
    pub source: Option<String>,
    pub target_dev: Option<String>,
    pub target_bus: Option<String>,
    pub readonly: bool,
    pub shareable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    /// `type`; libvirt's default `user` when absent.
    pub iface_type: String,
    pub source_bridge: Option<String>,
    pub source_network: Option<String>,
    pub mac: Option<String>,
    pub script: Option<String>,
    pub ip: Option<String>,
    pub target_dev: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graphics {
    pub graphics_type: String,
    /// `-1` means "pick one" when `autoport` is on.
    pub port: Option<i32>,
    pub autoport: Option<bool>,
    /// The `listen` attribute, else the first `<listen address=…>`.
    pub listen: Option<String>,
    pub keymap: Option<String>,
    pub passwd: Option<String>,
    pub display: Option<String>,
    pub xauth: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Console {
    pub console_type: Option<String>,
    pub tty: Option<String>,
    pub target_type: Option<String>,
    pub target_port: Option<u32>,
}

/// A read-only view of one `<devices>` child; the element itself stays in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    Disk(Disk),
    Interface(Interface),
    Graphics(Graphics),
    Console(Console),
    Emulator(String),
    /// Any other device, by element name (serial, input, hostdev, …).
    Other(String),
}

/// The typed, validated parts of a definition. Callers read them through
/// [`DomainDef`], which dereferences to this; only its setters write them, so
/// they never drift from the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainFields {
    /// `type` of `<domain>`, as written (xen, test, kvm, …).
    pub domain_type: String,
    /// None for an inactive domain (`id` absent or `-1`).
    pub id: Option<DomainId>,
    pub name: String,
    pub uuid: Option<Uuid>,
    pub memory_kib: u64,
    pub current_memory_kib: Option<u64>,
    /// The maximum vcpu count (1 when `<vcpu>` is absent).
    pub vcpus: u32,
    pub current_vcpus: Option<u32>,
    pub os: OsDef,
    pub bootloader: Option<String>,
    pub bootloader_args: Option<String>,
    pub on_poweroff: Option<LifecycleAction>,
    pub on_reboot: Option<LifecycleAction>,
    pub on_crash: Option<LifecycleAction>,
    pub devices: Vec<Device>,
}

/// The values the fast paths read (lookups, `state`, `info`, memory and
/// vcpu changes), kept beside the text so they cost no tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basics {
    pub id: Option<DomainId>,
    pub uuid: Option<Uuid>,
    pub name: Box<str>,
    pub memory_kib: u64,
    pub current_memory_kib: Option<u64>,
    pub vcpus: u32,
    pub current_vcpus: Option<u32>,
}

impl Basics {
    fn of(f: &DomainFields) -> Basics {
        Basics {
            id: f.id,
            uuid: f.uuid,
            name: f.name.as_str().into(),
            memory_kib: f.memory_kib,
            current_memory_kib: f.current_memory_kib,
            vcpus: f.vcpus,
            current_vcpus: f.current_vcpus,
        }
    }
}

/// The element tree and every typed field, built from the text when asked.
#[derive(Debug)]
struct Full {
    root: Element,
    fields: DomainFields,
}

/// A domain definition, stored compactly: its canonical text (what `to_xml`
/// gives) and the [`Basics`]. The element tree and the other typed fields
/// (reached by deref, e.g. `def.os.kernel`) are built from the text on
/// first use and kept with this value; a clone and every setter start
/// without them, so a host's stored definitions stay small (a tree costs
/// several times its text).
pub struct DomainDef {
    xml: Box<str>,
    basics: Basics,
    full: OnceLock<Box<Full>>,
}

impl std::ops::Deref for DomainDef {
    type Target = DomainFields;
    fn deref(&self) -> &DomainFields {
        &self.full().fields
    }
}

impl Clone for DomainDef {
    fn clone(&self) -> DomainDef {
        DomainDef {
            xml: self.xml.clone(),
            basics: self.basics.clone(),
            full: OnceLock::new(),
        }
    }
}

/// Two definitions are equal when their documents are: the canonical text
/// is a function of the tree (lines aside), and the fields of the text.
impl PartialEq for DomainDef {
    fn eq(&self, other: &Self) -> bool {
        self.xml == other.xml
    }
}

impl Eq for DomainDef {}

impl fmt::Debug for DomainDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainDef")
            .field("basics", &self.basics)
            .field("xml", &self.xml)
            .finish()
    }
}

/// libvirt's order of `<domain>` children; new elements go after the last
/// present one that comes earlier, so written XML looks like libvirt's.
const CANONICAL_ORDER: &str = "name uuid genid title description metadata maxMemory memory \
    currentMemory blkiotune memtune memoryBacking vcpu vcpus iothreads iothreadids cputune \
    numatune resource sysinfo bootloader bootloader_args os idmap features cpu clock \
    on_poweroff on_reboot on_crash on_lockfailure pm perf devices seclabel keywrap launchSecurity";

/// Parses and validates a domain definition.
pub fn parse(text: &str) -> Result<DomainDef, XmlError> {
    DomainDef::from_tree(parse_tree(text)?)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("the domain name is empty".into())
    } else if name.contains('/') {
        Err(format!("the domain name '{name}' contains '/'"))
    } else if name.chars().any(char::is_control) {
        Err(format!(
            "the domain name {name:?} contains a control character"
        ))
    } else {
        Ok(())
    }
}

/// An unsigned number as libvirt reads one (strtoull with a check of the
/// end): white space before the digits is allowed, anything after them is not.
fn parse_uint<T: TryFrom<u64>>(raw: &str) -> Result<T, String> {
    let t = raw.trim_start();
    if t.is_empty() {
        return Err("a number is needed, the value is empty".into());
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        let digits = t.trim_end();
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "invalid value '{raw}': nothing may follow the number"
            ));
        }
        return Err(format!("'{}' is not a number", t.trim_end()));
    }
    let n = t
        .parse::<u64>()
        .map_err(|_| format!("'{t}' is out of range"))?;
    T::try_from(n).map_err(|_| format!("'{t}' is out of range"))
}

fn check_current_vcpus(current: u32, max: u32) -> Result<(), String> {
    match current {
        0 => Err("current vcpus must be at least 1".into()),
        c if c > max => Err(format!("current vcpus {c} exceed the maximum {max}")),
        _ => Ok(()),
    }
}

/// Bytes per unit, following libvirt's scaled-integer rules (case-insensitive;
/// `k`/`KiB` are powers of 1024, `KB` powers of 1000); KiB when absent.
fn unit_scale(unit: Option<&str>) -> Result<u64, String> {
    let lower = unit.unwrap_or("").to_ascii_lowercase();
    if matches!(lower.as_str(), "b" | "byte" | "bytes") {
        return Ok(1);
    }
    let mut chars = lower.chars();
    let Some(prefix) = chars.next() else {
        return Ok(1024);
    };
    let unknown = || format!("unknown unit '{}'", unit.unwrap_or(""));
    let base: u64 = match chars.as_str() {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return Err(unknown()),
    };
    let power = match prefix {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return Err(unknown()),
    };
    Ok(base.pow(power))
}

fn parse_memory(e: &Element) -> Result<u64, XmlError> {
    let n: u64 = parse_uint(&e.text()).map_err(|m| err_at(e, m))?;
    let scale = unit_scale(e.attr("unit")).map_err(|m| err_at(e, m))?;
    let bytes = u128::from(n) * u128::from(scale);
    if bytes > i64::MAX as u128 {
        return Err(err_at(
            e,
            format!("numerical overflow: value too large: {n} (at most {MAX_MEMORY_KIB} KiB)"),
        ));
    }
    // libvirt keeps KiB and rounds a byte count up to whole KiB.
    Ok(bytes.div_ceil(1024) as u64)
}

fn parse_action(root: &Element, name: &str) -> Result<Option<LifecycleAction>, XmlError> {
    root.child(name)
        .map(|e| e.text().parse().map_err(|m: String| err_at(e, m)))
        .transpose()
}

fn attr_of(e: Option<&Element>, name: &str) -> Option<String> {
    e.and_then(|e| e.attr(name)).map(str::to_string)
}

fn parse_device(e: &Element) -> Result<Device, XmlError> {
    Ok(match e.name.as_str() {
        "disk" => {
            let driver = e.child("driver");
            let source = e.child("source");
            let target = e.child("target");
            Device::Disk(Disk {
                disk_type: e.attr("type").unwrap_or("file").to_string(),
                device: e.attr("device").unwrap_or("disk").to_string(),
                driver_name: attr_of(driver, "name"),
                driver_type: attr_of(driver, "type"),
                source: attr_of(source, "file").or_else(|| attr_of(source, "dev")),
                target_dev: attr_of(target, "dev"),
                target_bus: attr_of(target, "bus"),
                readonly: e.child("readonly").is_some(),
                shareable: e.child("shareable").is_some(),
            })
        }
        "interface" => {
            let source = e.child("source");
            Device::Interface(Interface {
                iface_type: e.attr("type").unwrap_or("user").to_string(),
                source_bridge: attr_of(source, "bridge"),
                source_network: attr_of(source, "network"),
                mac: attr_of(e.child("mac"), "address"),
                script: attr_of(e.child("script"), "path"),
                ip: attr_of(e.child("ip"), "address"),
                target_dev: attr_of(e.child("target"), "dev"),
                model: attr_of(e.child("model"), "type"),
            })
        }
        "graphics" => {
            let graphics_type = e
                .attr("type")
                .ok_or_else(|| err_at(e, "missing the 'type' attribute"))?
                .to_string();
            let port = e
                .attr("port")
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .map_err(|_| err_at(e, format!("port '{p}' is not a number")))
                })
                .transpose()?;
            let autoport = e
                .attr("autoport")
                .map(|v| match v {
                    "yes" => Ok(true),
                    "no" => Ok(false),
                    _ => Err(err_at(e, format!("autoport '{v}' is not 'yes' or 'no'"))),
                })
                .transpose()?;
            Device::Graphics(Graphics {
                graphics_type,
                port,
                autoport,
                listen: attr_of(Some(e), "listen")
                    .or_else(|| attr_of(e.child("listen"), "address")),
                keymap: attr_of(Some(e), "keymap"),
                passwd: attr_of(Some(e), "passwd"),
                display: attr_of(Some(e), "display"),
                xauth: attr_of(Some(e), "xauth"),
            })
        }
        "console" => {
            let target = e.child("target");
            let target_port = target
                .and_then(|t| t.attr("port").map(|p| (t, p)))
                .map(|(t, p)| parse_uint(p).map_err(|m| err_at(t, format!("port: {m}"))))
                .transpose()?;
            Device::Console(Console {
                console_type: attr_of(Some(e), "type"),
                tty: attr_of(Some(e), "tty"),
                target_type: attr_of(target, "type"),
                target_port,
            })
        }
        "emulator" => Device::Emulator(e.text()),
        other => Device::Other(other.to_string()),
    })
}

impl DomainDef {
    /// Parses a domain XML document (same as the module's `parse`).
    pub fn parse(text: &str) -> Result<DomainDef, XmlError> {
        parse(text)
    }

    /// Validates a tree (as [`parse_tree`] gives it) and keeps its text.
    /// The UUID is rewritten in its canonical form; nothing else changes.
    pub fn from_tree(root: Element) -> Result<DomainDef, XmlError> {
        let (root, fields) = validate(root)?;
        Ok(DomainDef {
            xml: root.to_xml().into_boxed_str(),
            basics: Basics::of(&fields),
            full: OnceLock::new(),
        })
    }

    /// The values the fast paths read; reading them builds nothing.
    pub fn basics(&self) -> &Basics {
        &self.basics
    }

    /// The tree and fields, built from the text on first use.
    fn full(&self) -> &Full {
        self.full.get_or_init(|| Box::new(self.rebuild()))
    }

    /// The tree and fields of the text. The text was written from a valid
    /// tree, so it parses; were it ever not to, the fields fall back to the
    /// basics rather than fail a reader that cannot report an error.
    fn rebuild(&self) -> Full {
        match parse_tree(&self.xml).and_then(validate) {
            Ok((root, fields)) => Full { root, fields },
            Err(e) => {
                log::error!("a stored definition does not parse again: {e}");
                let b = &self.basics;
                Full {
                    root: Element::new("domain"),
                    fields: DomainFields {
                        domain_type: String::new(),
                        id: b.id,
                        name: b.name.to_string(),
                        uuid: b.uuid,
                        memory_kib: b.memory_kib,
                        current_memory_kib: b.current_memory_kib,
                        vcpus: b.vcpus,
                        current_vcpus: b.current_vcpus,
                        os: OsDef::default(),
                        bootloader: None,
                        bootloader_args: None,
                        on_poweroff: None,
                        on_reboot: None,
                        on_crash: None,
                        devices: Vec::new(),
                    },
                }
            }
        }
    }

    /// Edits the tree and fields, then keeps the new text and basics and
    /// lets the tree go.
    fn edit<R>(&mut self, f: impl FnOnce(&mut Element, &mut DomainFields) -> R) -> R {
        let mut full = match self.full.take() {
            Some(full) => *full,
            None => self.rebuild(),
        };
        let out = f(&mut full.root, &mut full.fields);
        self.xml = full.root.to_xml().into_boxed_str();
        self.basics = Basics::of(&full.fields);
        out
    }
}

/// Checks a `<domain>` tree and reads its typed fields.
fn validate(mut root: Element) -> Result<(Element, DomainFields), XmlError> {
    if root.name != "domain" {
        return Err(err_at(
            &root,
            format!("the root element is <{}>, expected <domain>", root.name),
        ));
    }
    let domain_type = match root.attr("type") {
        Some(t) if DOMAIN_TYPES.contains(&t) => t.to_string(),
        Some(t) if !t.trim().is_empty() => {
            return Err(err_at(&root, format!("invalid domain type '{t}'")))
        }
        _ => return Err(err_at(&root, "missing the 'type' attribute")),
    };
    // libvirt ignores `id` when it parses a definition; one that is not a
    // number is dropped the same way rather than refused.
    let id = root
        .attr("id")
        .and_then(|raw| raw.trim().parse::<DomainId>().ok());
    let name_el = root
        .child("name")
        .ok_or_else(|| err_at(&root, "missing <name>"))?;
    let name = name_el.text();
    check_name(&name).map_err(|m| err_at(name_el, m))?;
    let uuid = root
        .child("uuid")
        .map(|u| Uuid::parse(&u.text()).map_err(|m| err_at(u, m)))
        .transpose()?;
    let memory_kib = parse_memory(
        root.child("memory")
            .ok_or_else(|| err_at(&root, "missing <memory>"))?,
    )?;
    if memory_kib == 0 {
        return Err(err_at(
            &root,
            "memory size must be specified via <memory> (it is 0)",
        ));
    }
    let current_memory_kib = root.child("currentMemory").map(parse_memory).transpose()?;
    let (vcpus, current_vcpus) = match root.child("vcpu") {
        None => (1, None),
        Some(v) => {
            let max: u32 = parse_uint(&v.text()).map_err(|m| err_at(v, m))?;
            if max == 0 {
                return Err(err_at(v, "the vcpu count must be at least 1"));
            }
            let current = match v.attr("current") {
                None => None,
                Some(c) => {
                    let c = parse_uint(c).map_err(|m| err_at(v, format!("current: {m}")))?;
                    check_current_vcpus(c, max).map_err(|m| err_at(v, m))?;
                    Some(c)
                }
            };
            (max, current)
        }
    };
    let bootloader = root.child("bootloader").map(Element::text);
    let bootloader_args = root.child("bootloader_args").map(Element::text);
    let os_el = root.child("os");
    let type_el = os_el.and_then(|o| o.child("type"));
    let os_type = match (type_el, os_el) {
        (Some(t), _) if t.text().trim().is_empty() => {
            return Err(err_at(t, "the OS type is empty"))
        }
        (Some(t), _) => t.text().trim().to_string(),
        // libvirt lets a bootloader stand in for <os>: it implies a PV guest.
        (None, _) if bootloader.is_some() => "xen".to_string(),
        (None, Some(o)) => return Err(err_at(o, "missing <type>")),
        (None, None) => return Err(err_at(&root, "missing <os>")),
    };
    let os_text = |n: &str| os_el.and_then(|o| o.child(n)).map(Element::text);
    let os = OsDef {
        os_type,
        arch: attr_of(type_el, "arch"),
        machine: attr_of(type_el, "machine"),
        kernel: os_text("kernel"),
        initrd: os_text("initrd"),
        cmdline: os_text("cmdline"),
        root: os_text("root"),
        loader: os_text("loader"),
        boot: os_el
            .iter()
            .flat_map(|o| o.elements())
            .filter(|b| b.name == "boot")
            .filter_map(|b| b.attr("dev"))
            .map(str::to_string)
            .collect(),
    };
    let devices = match root.child("devices") {
        Some(d) => d.elements().map(parse_device).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let on_poweroff = parse_action(&root, "on_poweroff")?;
    let on_reboot = parse_action(&root, "on_reboot")?;
    let on_crash = parse_action(&root, "on_crash")?;
    if let (Some(u), Some(el)) = (uuid, root.child_mut("uuid")) {
        el.set_text(&u.to_string());
    }
    let fields = DomainFields {
        domain_type,
        id,
        name,
        uuid,
        memory_kib,
        current_memory_kib,
        vcpus,
        current_vcpus,
        os,
        bootloader,
        bootloader_args,
        on_poweroff,
        on_reboot,
        on_crash,
        devices,
    };
    Ok((root, fields))
}

impl DomainDef {
    /// The definition in libvirt's layout, ending with a newline.
    pub fn to_xml(&self) -> String {
        self.xml.to_string()
    }

    /// The whole tree, read-only: editing it directly would bypass validation.
    pub fn root(&self) -> &Element {
        &self.full().root
    }

    /// The `<target dev=...>` of each `<disk>`, in document order: the names
    /// libvirt's block statistics take.
    pub fn disk_targets(&self) -> Vec<String> {
        self.device_attrs("disk", "target", "dev")
    }

    /// Each `<interface>`'s name for its statistics: its `<target dev=...>`,
    /// or its MAC address when it has none (libvirt accepts either).
    pub fn interface_names(&self) -> Vec<String> {
        let Some(devices) = self.root().child("devices") else {
            return Vec::new();
        };
        devices
            .elements()
            .filter(|e| e.name == "interface")
            .filter_map(|e| {
                let of = |child: &str, attr: &str| {
                    e.child(child)
                        .and_then(|c| c.attr(attr))
                        .map(str::to_string)
                };
                of("target", "dev").or_else(|| of("mac", "address"))
            })
            .collect()
    }

    /// Whether `name` is one of the interfaces: by target or by MAC.
    pub fn has_interface(&self, name: &str) -> bool {
        self.interface_names().iter().any(|n| n == name)
            || self
                .device_attrs("interface", "mac", "address")
                .iter()
                .any(|m| m.eq_ignore_ascii_case(name))
    }

    fn device_attrs(&self, device: &str, child: &str, attr: &str) -> Vec<String> {
        let Some(devices) = self.root().child("devices") else {
            return Vec::new();
        };
        devices
            .elements()
            .filter(|e| e.name == device)
            .filter_map(|e| e.child(child).and_then(|c| c.attr(attr)))
            .map(str::to_string)
            .collect()
    }

    /// Adds, replaces or removes the `id` attribute; a new one goes right
    /// after `type`, where libvirt writes it.
    pub fn set_id(&mut self, id: Option<DomainId>) {
        self.edit(|root, fields| {
            match id {
                Some(i) if root.attr("id").is_some() => root.set_attr("id", &i.to_string()),
                Some(i) => {
                    let at = root
                        .attrs
                        .iter()
                        .position(|(k, _)| k == "type")
                        .map_or(0, |p| p + 1);
                    root.attrs.reserve_exact(1);
                    root.attrs.insert(at, ("id".into(), i.to_string()));
                }
                None => {
                    root.remove_attr("id");
                }
            }
            fields.id = id;
        });
    }

    /// Renames the domain: non-empty, with no `/` or control characters.
    pub fn set_name(&mut self, name: &str) -> Result<(), XmlError> {
        check_name(name).map_err(|m| err_set("name", m))?;
        self.edit(|root, fields| {
            top_child_mut(root, "name").set_text(name);
            fields.name = name.to_string();
        });
        Ok(())
    }

    /// Sets the UUID (written in canonical form), or removes `<uuid>`.
    pub fn set_uuid(&mut self, uuid: Option<Uuid>) {
        self.edit(|root, fields| {
            match uuid {
                Some(u) => top_child_mut(root, "uuid").set_text(&u.to_string()),
                None => remove_top_children(root, "uuid"),
            }
            fields.uuid = uuid;
        });
    }

    /// Sets `<memory>`, written in KiB with `unit='KiB'` (any other unit is replaced).
    pub fn set_memory_kib(&mut self, kib: u64) {
        self.edit(|root, fields| {
            set_kib(top_child_mut(root, "memory"), kib);
            fields.memory_kib = kib;
        });
    }

    /// Sets `<currentMemory>` in KiB, or removes it.
    pub fn set_current_memory_kib(&mut self, kib: Option<u64>) {
        self.edit(|root, fields| {
            match kib {
                Some(k) => set_kib(top_child_mut(root, "currentMemory"), k),
                None => remove_top_children(root, "currentMemory"),
            }
            fields.current_memory_kib = kib;
        });
    }

    /// Sets both memory amounts with one rebuild of the tree (see
    /// [`DomainDef::set_memory_kib`] and [`DomainDef::set_current_memory_kib`]).
    pub fn set_memory_both(&mut self, max: u64, current: Option<u64>) {
        self.edit(|root, fields| {
            set_kib(top_child_mut(root, "memory"), max);
            match current {
                Some(k) => set_kib(top_child_mut(root, "currentMemory"), k),
                None => remove_top_children(root, "currentMemory"),
            }
            fields.memory_kib = max;
            fields.current_memory_kib = current;
        });
    }

    /// Sets the maximum vcpu count; it must be at least 1 and not below the
    /// current count.
    pub fn set_vcpus(&mut self, vcpus: u32) -> Result<(), XmlError> {
        if vcpus == 0 {
            return Err(err_set("vcpu", "the vcpu count must be at least 1"));
        }
        if let Some(c) = self.basics.current_vcpus {
            check_current_vcpus(c, vcpus).map_err(|m| err_set("vcpu", m))?;
        }
        self.edit(|root, fields| {
            top_child_mut(root, "vcpu").set_text(&vcpus.to_string());
            fields.vcpus = vcpus;
        });
        Ok(())
    }

    /// Sets or removes the `current` attribute of `<vcpu>`.
    pub fn set_current_vcpus(&mut self, current: Option<u32>) -> Result<(), XmlError> {
        let max = self.basics.vcpus;
        if let Some(c) = current {
            check_current_vcpus(c, max).map_err(|m| err_set("vcpu", m))?;
        }
        self.edit(|root, fields| {
            match current {
                Some(c) => {
                    let e = top_child_mut(root, "vcpu");
                    if e.text().trim().is_empty() {
                        e.set_text(&max.to_string());
                    }
                    e.set_attr("current", &c.to_string());
                }
                None => {
                    if let Some(e) = root.child_mut("vcpu") {
                        e.remove_attr("current");
                    }
                }
            }
            fields.current_vcpus = current;
        });
        Ok(())
    }
}

/// Writes an amount in KiB with its unit.
fn set_kib(e: &mut Element, kib: u64) {
    e.set_text(&kib.to_string());
    e.set_attr("unit", "KiB");
}

/// The `<domain>` child of that name, inserted empty at its canonical
/// place when absent.
fn top_child_mut<'a>(root: &'a mut Element, name: &str) -> &'a mut Element {
    let is_named = |n: &Node| matches!(n, Node::Element(e) if e.name == name);
    let at = match root.children.iter().position(is_named) {
        Some(at) => at,
        None => {
            let rank = |n: &str| CANONICAL_ORDER.split_whitespace().position(|c| c == n);
            let earlier = |n: &Node, mine: usize| match n {
                Node::Element(e) => rank(&e.name).is_some_and(|r| r < mine),
                Node::Text(_) => false,
            };
            let children = &root.children;
            let at = match rank(name) {
                None => children.len(),
                Some(mine) => children
                    .iter()
                    .rposition(|n| earlier(n, mine))
                    .map_or(0, |i| i + 1),
            };
            root.children.reserve_exact(1);
            root.children.insert(at, Node::Element(Element::new(name)));
            at
        }
    };
    match &mut root.children[at] {
        Node::Element(e) => e,
        Node::Text(_) => unreachable!("position() matched an element"),
    }
}

fn remove_top_children(root: &mut Element, name: &str) {
    root.children
        .retain(|n| !matches!(n, Node::Element(e) if e.name == name));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // domfs warns on unwrap; in tests a panic is the failure report
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const CONFORMANCE: &str = "/work/shared/conformance";

    /// The shared corpus, or None (after saying so) when it is absent; under
    /// CI a missing corpus must fail rather than pass vacuously.
    fn conformance() -> Option<PathBuf> {
        let dir = Path::new(CONFORMANCE);
        if dir.is_dir() {
            return Some(dir.to_path_buf());
        }
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{CONFORMANCE} is missing and CI=true");
        }
        println!("skipped: {CONFORMANCE} is not present on this machine");
        None
    }

    fn xml_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with(prefix) && n.ends_with(".xml")
            })
            .collect();
        files.sort();
        files
    }

    const MINIMAL: &str = "<domain type='xen'>\n  <name>a</name>\n  <memory>1024</memory>\n  \
                           <os>\n    <type>linux</type>\n  </os>\n</domain>\n";

    #[test]
    fn children_are_split_with_their_lines_and_the_whole_is_checked() {
        let text =
            "<node>\n  <cpu><mhz>5</mhz></cpu>\n  <domain file='a.xml'/>\n<x>\n<y/></x></node>";
        let (root, parts) = split_children(text).unwrap();
        assert_eq!(root, "node");
        let got: Vec<(&str, usize)> = parts.iter().map(|p| (p.text, p.first_line)).collect();
        assert_eq!(
            got,
            [
                ("<cpu><mhz>5</mhz></cpu>", 2),
                ("<domain file='a.xml'/>", 3),
                ("<x>\n<y/></x>", 4)
            ]
        );
        let e = parts[2].locate(parse_tree("<x>\n<y></x>").unwrap_err());
        assert_eq!(e.line, Some(5));
        assert_eq!(split_children("<node/>").unwrap().1.len(), 0);
        assert!(split_children("<node><cpu></node>").is_err());
        let e = split_children("<!DOCTYPE n [<!ENTITY x 'y'>]><node/>").unwrap_err();
        assert!(e.message.contains("DOCTYPE is refused"), "{e}");
        assert!(split_children("").is_err());
    }

    #[test]
    fn a_definition_builds_its_tree_only_when_asked_and_setters_let_it_go() {
        let mut def = parse(MINIMAL).unwrap();
        assert!(def.full.get().is_none());
        assert_eq!((def.basics().memory_kib, &*def.basics().name), (1024, "a"));
        def.set_memory_kib(2048);
        def.set_id(Some(DomainId(3)));
        assert!(def.full.get().is_none());
        assert_eq!(def.basics().memory_kib, 2048);
        assert!(def.to_xml().contains("<memory unit='KiB'>2048</memory>"));
        assert!(def.to_xml().starts_with("<domain type='xen' id='3'>"));
        // Deref builds the fields from the text, and keeps them.
        assert_eq!((def.os.os_type.as_str(), def.memory_kib), ("linux", 2048));
        assert!(def.full.get().is_some());
        assert_eq!(
            def.root().child("name").map(Element::text).as_deref(),
            Some("a")
        );
        let copy = def.clone();
        assert!(copy.full.get().is_none());
        assert_eq!(copy, def);
        def.set_memory_both(4096, Some(1000));
        assert!(def.full.get().is_none());
        assert_eq!(def.current_memory_kib, Some(1000));
        assert_ne!(copy, def);
    }

    #[test]
    fn libvirt_output_round_trips_byte_for_byte() {
        let Some(base) = conformance() else { return };
        let files = xml_files(&base.join("libvirt-sexpr/sexpr2xml"), "");
        assert_eq!(files.len(), 50);
        let mut failures = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let expected = if text.ends_with('\n') {
                text.clone()
            } else {
                format!("{text}\n")
            };
            match parse(&text) {
                Ok(def) if def.to_xml() == expected => {}
                Ok(def) => failures.push(format!("{}:\n{}", f.display(), def.to_xml())),
                Err(e) => failures.push(format!("{}: {e}", f.display())),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn inputs_parse_and_writing_is_a_fixed_point() {
        let Some(base) = conformance() else { return };
        let mut files = xml_files(&base.join("libvirt-sexpr/xml2sexpr"), "");
        files.extend(xml_files(&base.join("libvirt-testnode"), "testdom"));
        assert_eq!(files.len(), 52);
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let def = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let out = def.to_xml();
            let again = parse(&out).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!(again, def, "{}", f.display());
            assert_eq!(again.to_xml(), out, "{}", f.display());
        }
    }

    #[test]
    fn test_driver_domains_have_expected_values() {
        let Some(base) = conformance() else { return };
        let dir = base.join("libvirt-testnode");
        let fc4 = parse(&std::fs::read_to_string(dir.join("testdomfc4.xml")).unwrap()).unwrap();
        assert_eq!(fc4.domain_type, "test");
        assert_eq!(fc4.id, None);
        assert_eq!(fc4.name, "fc4");
        assert_eq!(
            fc4.uuid.unwrap().to_string(),
            "ef861801-45b9-11cb-88e3-afbfe5370493"
        );
        assert!(fc4
            .to_xml()
            .contains("<uuid>ef861801-45b9-11cb-88e3-afbfe5370493</uuid>"));
        assert_eq!(fc4.memory_kib, 261072);
        assert_eq!(fc4.current_memory_kib, Some(131072));
        assert_eq!((fc4.vcpus, fc4.current_vcpus), (1, None));
        assert!(fc4.to_xml().contains("<cmdline> ro selinux=0 3</cmdline>"));
        let s = |v: &str| Some(v.to_string());
        let os = OsDef {
            os_type: "xen".into(),
            kernel: s("/boot/vmlinuz-2.6.15-1.43_FC5guest"),
            initrd: s("/boot/initrd-2.6.15-1.43_FC5guest.img"),
            root: s("/dev/sda1"),
            cmdline: s(" ro selinux=0 3"),
            ..OsDef::default()
        };
        assert_eq!(fc4.os, os);
        let disk = Disk {
            disk_type: "file".into(),
            device: "disk".into(),
            source: s("/u/fc4.img"),
            target_dev: s("sda1"),
            ..Disk::default()
        };
        let nic = Interface {
            iface_type: "bridge".into(),
            source_bridge: s("xenbr0"),
            mac: s("aa:00:00:00:00:11"),
            script: s("/etc/xen/scripts/vif-bridge"),
            ..Interface::default()
        };
        let console = Console {
            tty: s("/dev/pts/5"),
            ..Console::default()
        };
        let devices = [
            Device::Disk(disk),
            Device::Interface(nic),
            Device::Console(console),
        ];
        assert_eq!(fc4.devices, devices);

        let text = std::fs::read_to_string(dir.join("testdomfv0.xml")).unwrap();
        let fv0 = parse(&text).unwrap();
        let out = fv0.to_xml();
        let start = text.find("  <blkiotune>").unwrap();
        let end = text.find("</blkiotune>\n").unwrap() + "</blkiotune>\n".len();
        assert!(out.contains(&text[start..end]), "{out}");
        assert!(out.contains("  <features>\n    <pae/>\n    <acpi/>\n    <apic/>\n  </features>\n"));
        assert_eq!(fv0.os.boot, vec!["hd".to_string()]);
        assert_eq!(fv0.on_crash, Some(LifecycleAction::Restart));
        let disks: Vec<(&str, bool)> = fv0
            .devices
            .iter()
            .filter_map(|d| match d {
                Device::Disk(d) => Some((d.device.as_str(), d.readonly)),
                _ => None,
            })
            .collect();
        assert_eq!(
            disks,
            vec![("disk", false), ("cdrom", true), ("floppy", false)]
        );
        assert!(fv0.devices.iter().any(|d| matches!(d,
            Device::Graphics(g) if g.graphics_type == "vnc" && g.port == Some(5904))));
        assert_eq!(
            fv0.devices[0],
            Device::Emulator("/usr/lib/xen/bin/qemu-dm".into())
        );
    }

    #[test]
    fn unknown_elements_and_attributes_survive_setters() {
        let text = "<domain type='xen' foo='bar'>\n  <name>a</name>\n  <memory>1024</memory>\n  \
             <vcpu placement='static' cpuset='0-1'>2</vcpu>\n  <os>\n    \
             <type arch='x86_64'>hvm</type>\n    <smbios mode='host'/>\n  </os>\n  <blkiotune>\n    \
             <weight>800</weight>\n  </blkiotune>\n  <devices>\n    <disk type='file' device='disk'>\n      \
             <source file='/x.img'/>\n      <target dev='hda' bus='ide'/>\n      \
             <address type='drive' controller='0' bus='0' target='0' unit='0'/>\n    </disk>\n    \
             <rng model='virtio'/>\n  </devices>\n</domain>\n";
        let mut def = parse(text).unwrap();
        assert_eq!(def.to_xml(), text);
        assert_eq!(def.os.arch.as_deref(), Some("x86_64"));
        assert_eq!(def.devices[1], Device::Other("rng".into()));
        def.set_memory_kib(2048);
        def.set_vcpus(4).unwrap();
        def.set_current_vcpus(Some(3)).unwrap();
        def.set_id(Some(DomainId(7)));
        let expected = text
            .replace(
                "<domain type='xen' foo='bar'>",
                "<domain type='xen' id='7' foo='bar'>",
            )
            .replace("<memory>1024</memory>", "<memory unit='KiB'>2048</memory>")
            .replace(
                "<vcpu placement='static' cpuset='0-1'>2</vcpu>",
                "<vcpu placement='static' cpuset='0-1' current='3'>4</vcpu>",
            );
        assert_eq!(def.to_xml(), expected);
        let again = parse(&def.to_xml()).unwrap();
        assert_eq!(again, def);
        assert_eq!((again.vcpus, again.current_vcpus), (4, Some(3)));
    }

    fn with_memory(mem: &str) -> Result<DomainDef, XmlError> {
        parse(&MINIMAL.replace("<memory>1024</memory>", mem))
    }

    #[test]
    fn memory_units_follow_libvirt() {
        let kib = |m: &str| with_memory(m).unwrap().memory_kib;
        assert_eq!(kib("<memory unit='MiB'>512</memory>"), 524288);
        assert_eq!(kib("<memory unit='M'>512</memory>"), 524288);
        assert_eq!(kib("<memory unit='G'>2</memory>"), 2 * 1024 * 1024);
        assert_eq!(kib("<memory unit='b'>1025</memory>"), 2);
        assert_eq!(kib("<memory unit='bytes'>1024</memory>"), 1);
        assert_eq!(kib("<memory unit='KB'>1024</memory>"), 1000);
        assert_eq!(kib("<memory unit='KiB'>7</memory>"), 7);
        assert_eq!(kib("<memory>\n  42</memory>"), 42);
        assert_eq!(kib("<memory>9007199254740991</memory>"), MAX_MEMORY_KIB);
        let cur = parse(&MINIMAL.replace(
            "</memory>",
            "</memory>\n  <currentMemory unit='GB'>1</currentMemory>",
        ))
        .unwrap();
        assert_eq!(cur.current_memory_kib, Some(976563));
        let e = with_memory("<memory unit='XB'>1</memory>").unwrap_err();
        assert_eq!(e.to_string(), "line 3, <memory>: unknown unit 'XB'");
        let e = with_memory("<memory unit='EiB'>99999</memory>").unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn malformed_inputs_are_rejected_with_line_and_reason() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("this is not xml", "line 1: not XML: text 'this is not xml'"),
            ("", "no root element"),
            ("<domain type='xen'>\n<name>a</name>", "line 2: unexpected end of document, <domain> not closed (opened at line 1)"),
            ("<domain type='xen'>\n<name>a</nam>\n</domain>", "line 2, <name>: malformed XML: ill-formed document: expected `</name>`, but `</nam>` was found"),
            ("<domain type='xen'><name>a &foo; b</name></domain>", "unknown or invalid reference '&foo;'"),
            ("<domain type='xen'><name>a</name></domain>\n<x/>", "line 2, <x>: malformed XML: a second root element"),
            ("<domain type='xen'><name>a</name></domain>junk", "text 'junk' after the root element"),
            ("<vm type='xen'/>", "line 1, <vm>: the root element is <vm>, expected <domain>"),
            ("<domain>\n</domain>", "line 1, <domain>: missing the 'type' attribute"),
            ("<domain type='xen'>\n<memory>1</memory>\n</domain>", "line 1, <domain>: missing <name>"),
            ("<domain type='xen'><name></name></domain>", "<name>: the domain name is empty"),
            ("<domain type='xen'><name>a/b</name></domain>", "contains '/'"),
            ("<domain type='xen'>\n<name>a</name>\n<uuid>1234</uuid></domain>", "line 3, <uuid>: '1234' is not a UUID"),
            ("<domain type='xen'><name>a</name><os><type>x</type></os></domain>", "<domain>: missing <memory>"),
        ];
        for (input, want) in cases {
            let e = parse(input).unwrap_err().to_string();
            assert!(e.contains(want), "{input:?} gave {e:?}, wanted {want:?}");
        }
        // Each case edits MINIMAL: (what to replace, replacement, expected error).
        const M: &str = "<memory>1024</memory>";
        const OS: &str = "</os>";
        #[rustfmt::skip]
        let minimal_cases: &[(&str, &str, &str)] = &[
            (M, "<memory>abc</memory>", "line 3, <memory>: 'abc' is not a number"),
            (M, "<memory>99999999999999999999999</memory>", "out of range"),
            (M, "<memory/>", "line 3, <memory>: a number is needed, the value is empty"),
            (OS, "</os><vcpu>0</vcpu>", "line 6, <vcpu>: the vcpu count must be at least 1"),
            (OS, "</os><vcpu>x</vcpu>", "line 6, <vcpu>: 'x' is not a number"),
            (OS, "</os><vcpu current='3'>2</vcpu>", "line 6, <vcpu>: current vcpus 3 exceed the maximum 2"),
            (OS, "</os>\n<on_reboot>explode</on_reboot>", "line 7, <on_reboot>: unknown action"),
            ("<type>linux</type>", "<kernel>/k</kernel>", "line 4, <os>: missing <type>"),
            ("<type>linux</type>", "<type> </type>", "line 5, <type>: the OS type is empty"),
            (OS, "</os><devices><graphics type='vnc' port='x'/></devices>", "port 'x' is not"),
            (M, "<memory> 1024 </memory>", "line 3, <memory>: invalid value ' 1024 ': nothing may follow"),
            (M, "<memory>0</memory>", "line 1, <domain>: memory size must be specified"),
            (M, "<memory>18446744073709551615</memory>", "numerical overflow: value too large: 18446744073709551615"),
            (M, "<memory>9007199254740992</memory>", "value too large"),
            ("xen'>", "bogus'>", "line 1, <domain>: invalid domain type 'bogus'"),
            ("xen'>", "Xen'>", "invalid domain type 'Xen'"),
        ];
        for (from, to, want) in minimal_cases {
            let input = MINIMAL.replace(from, to);
            let e = parse(&input).unwrap_err().to_string();
            assert!(e.contains(want), "{input:?} gave {e:?}, wanted {want:?}");
        }
        let no_os = parse("<domain type='xen'><name>a</name><memory>1</memory></domain>");
        assert!(no_os.unwrap_err().to_string().contains("missing <os>"));
        // As in libvirt, a bootloader stands in for <os> and means a PV guest.
        let pv = parse("<domain type='xen'><name>a</name><bootloader/><memory>1</memory></domain>");
        let pv = pv.unwrap();
        assert_eq!(
            (pv.os.os_type.as_str(), pv.bootloader.as_deref()),
            ("xen", Some(""))
        );
    }

    #[test]
    fn setters_update_tree_and_view() {
        let mut def = parse(MINIMAL).unwrap();
        assert_eq!(def.vcpus, 1);
        def.set_id(Some(DomainId(3)));
        assert!(def.to_xml().starts_with("<domain type='xen' id='3'>\n"));
        assert_eq!(def.id, Some(DomainId(3)));
        def.set_id(Some(DomainId(4)));
        assert!(def.to_xml().starts_with("<domain type='xen' id='4'>\n"));
        def.set_id(None);
        assert!(def.to_xml().starts_with("<domain type='xen'>\n"));
        assert_eq!(def.id, None);

        def.set_current_memory_kib(Some(512));
        def.set_uuid(Some(
            Uuid::parse("596A5D2171F48FB2E068E2386A5C413E").unwrap(),
        ));
        def.set_vcpus(2).unwrap();
        def.set_name("b").unwrap();
        assert_eq!(
            def.to_xml(),
            "<domain type='xen'>\n  <name>b</name>\n  <uuid>596a5d21-71f4-8fb2-e068-e2386a5c413e</uuid>\n  \
             <memory>1024</memory>\n  <currentMemory unit='KiB'>512</currentMemory>\n  <vcpu>2</vcpu>\n  \
             <os>\n    <type>linux</type>\n  </os>\n</domain>\n"
        );
        assert_eq!(parse(&def.to_xml()).unwrap(), def);
        assert!(def
            .set_name("x/y")
            .unwrap_err()
            .to_string()
            .contains("<name>"));
        assert!(def.set_vcpus(0).is_err());
        assert!(def.set_current_vcpus(Some(3)).is_err());
        def.set_current_vcpus(Some(1)).unwrap();
        assert!(def.set_vcpus(0).is_err());
        def.set_current_vcpus(None).unwrap();
        def.set_current_memory_kib(None);
        def.set_uuid(None);
        assert_eq!(def.current_memory_kib, None);
        assert!(!def.to_xml().contains("currentMemory") && !def.to_xml().contains("uuid"));
        assert!(!def.to_xml().contains("current="));

        // An element missing entirely goes after its canonical predecessor,
        // ahead of anything libvirt orders later.
        let mut bare = parse(
            "<domain type='test'><os><type>hvm</type></os><name>n</name><memory>1</memory></domain>",
        )
        .unwrap();
        bare.set_current_vcpus(Some(1)).unwrap();
        assert!(bare
            .to_xml()
            .contains("<memory>1</memory>\n  <vcpu current='1'>1</vcpu>\n"));
        bare.set_uuid(Some(Uuid([0; 16])));
        assert!(bare.to_xml().contains("<name>n</name>\n  <uuid>"));
    }

    #[test]
    fn escaping_mixed_content_and_references() {
        let text = "<domain type='xen'>\n  <name>a&amp;b&#x41;&#66;&lt;&gt;\"'</name>\n  \
                    <description><![CDATA[x < y]]> &amp; more</description>\n  <memory>1</memory>\n  \
                    <os>\n    <type>linux</type>\n    <cmdline>  </cmdline>\n  </os>\n  \
                    <metadata>\n    <p>one <b>two</b> three\n</p>\n  </metadata>\n  \
                    <devices>\n    <disk type='file'>\n      <source file='/root/&apos;\\&quot;&lt;&amp;.img'/>\n    \
                    </disk>\n  </devices>\n</domain>\n";
        let def = parse(text).unwrap();
        assert_eq!(def.name, "a&bAB<>\"'");
        assert_eq!(def.os.cmdline.as_deref(), Some("  "));
        match &def.devices[0] {
            Device::Disk(d) => assert_eq!(d.source.as_deref(), Some("/root/'\\\"<&.img")),
            other => panic!("{other:?}"),
        }
        let out = def.to_xml();
        assert!(
            out.contains("<name>a&amp;bAB&lt;&gt;&quot;&apos;</name>"),
            "{out}"
        );
        assert!(
            out.contains("<description>x &lt; y &amp; more</description>"),
            "{out}"
        );
        assert!(out.contains("<p>one <b>two</b> three\n</p>"), "{out}");
        assert!(
            out.contains("<source file='/root/&apos;\\&quot;&lt;&amp;.img'/>"),
            "{out}"
        );
        assert!(out.contains("<cmdline>  </cmdline>"), "{out}");
        assert_eq!(parse(&out).unwrap(), def);
        assert_eq!(parse(&out).unwrap().to_xml(), out);
    }

    #[test]
    fn prolog_comments_and_bom_are_dropped() {
        let text = "\u{feff}<?xml version='1.0'?>\n<!-- made by hand -->\n\
                    <domain type='xen'><?pi x?><name>a<!-- n --></name><memory>1</memory>\
                    <os><type>hvm</type><boot dev='cdrom'/><boot dev='hd'/></os></domain>\n";
        let def = parse(text).unwrap();
        assert_eq!(def.os.boot, ["cdrom", "hd"]);
        assert!(def
            .to_xml()
            .starts_with("<domain type='xen'>\n  <name>a</name>\n"));
        let e = parse("<domain type='xen'>\n<name>a</name>\n<memory>x").unwrap_err();
        assert_eq!((e.line, e.element), (Some(3), None));
    }

    #[test]
    fn doctypes_and_declared_entities_are_refused() {
        for text in [
            "<!DOCTYPE domain>\n<domain type='xen'><name>a</name></domain>",
            "<!DOCTYPE d [<!ENTITY x 'y'>]><domain type='xen'><name>&x;</name></domain>",
            "<!DOCTYPE d SYSTEM 'file:///etc/passwd'><domain type='xen'/>",
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains("DOCTYPE is refused"), "{text}: {e}");
        }
        let e = parse("<domain type='xen'><name>&x;</name></domain>").unwrap_err();
        assert!(
            e.message.contains("unknown or invalid reference '&x;'"),
            "{e}"
        );
    }

    #[test]
    fn truncated_documents_fail_cleanly() {
        let text = "<domain type='xen' id='1'>\n  <name>é&amp;</name>\n  <uuid>0123456789abcdef0123456789abcdef</uuid>\n  \
                    <memory unit='MiB'>1</memory>\n  <vcpu current='1'>2</vcpu>\n  <os>\n    <type>hvm</type>\n  </os>\n  \
                    <devices>\n    <graphics type='vnc' port='5900' autoport='no'/>\n    <console><target port='0'/></console>\n  \
                    </devices>\n</domain>\n";
        assert!(parse(text).is_ok());
        for (cut, _) in text.char_indices().filter(|&(i, _)| i + 2 < text.len()) {
            let e = parse(&text[..cut]).unwrap_err();
            assert!(e.line.is_some(), "cut at {cut}: {e}");
        }
    }

    #[test]
    fn nesting_is_bounded_and_deep_documents_fail_cleanly() {
        let nest = |n: usize| {
            format!(
                "<domain type='xen'><name>a</name><memory>1</memory><os><type>linux</type></os>\
                 <metadata>{}{}</metadata></domain>",
                "<m>".repeat(n),
                "</m>".repeat(n)
            )
        };
        // Root, metadata and 254 levels inside make 256: accepted.
        assert!(parse(&nest(MAX_DEPTH - 2)).is_ok());
        let e = parse(&nest(MAX_DEPTH - 1)).unwrap_err().to_string();
        assert!(e.contains("deeper than 256 levels"), "{e}");
        // Far deeper input (a stack overflow before the limit) fails the same.
        let e = parse(&nest(20_000)).unwrap_err().to_string();
        assert!(e.contains("deeper than 256"), "{e}");
    }

    #[test]
    fn an_id_that_is_not_a_number_is_ignored_as_libvirt_does() {
        let def = parse(&MINIMAL.replace("xen'>", "xen' id='abc'>")).unwrap();
        assert_eq!(def.id, None);
        let def = parse(&MINIMAL.replace("xen'>", "xen' id='7'>")).unwrap();
        assert_eq!(def.id, Some(DomainId(7)));
    }

    #[test]
    fn lifecycle_actions_round_trip_as_text() {
        for (a, n) in ACTIONS {
            assert_eq!(a.to_string(), n);
            assert_eq!(n.parse::<LifecycleAction>(), Ok(a));
        }
        assert!("reboot".parse::<LifecycleAction>().is_err());
    }
}
