//! What writes do: a complete command line or document, written to a file,
//! applied through the dispatcher. Parsing lives in `command` and
//! `document`; answering the kernel in `ops`.

use super::command::{self, Command};
use super::tree::{DomFile, Node, VcpuFile, ROOT_INO};
use super::{paths, DomFs};
use crate::error::{Error, Result};
use crate::model::{DomainDef, DomainRef, Uuid};
use std::path::{Path, PathBuf};

impl DomFs {
    /// A save or restore path, resolved outside this mount (see `paths`).
    pub(super) fn image_path(&self, path: &Path) -> Result<PathBuf> {
        paths::resolve_outside(path, &self.settings.mountpoint)
    }

    /// Applies one complete command line written to a command file.
    pub(super) fn apply_command(&self, node: Node, line: &[u8]) -> Result<()> {
        let text = command::one_line(line).map_err(Error::invalid)?;
        let (uuid, cmd) = match node {
            Node::Restore => {
                let path = self.image_path(Path::new(text))?;
                let dom = self.dispatch.restore(&path)?;
                self.forget_ref(dom.uuid);
                log::info!("{}: restored from {}", dom.name, path.display());
                self.settle();
                return Ok(());
            }
            Node::File(uuid, file) => (uuid, Self::file_command(file, text)?),
            Node::VcpuFile(uuid, n, VcpuFile::Affinity) => {
                let cpus = text.parse().map_err(Error::invalid)?;
                (uuid, Command::PinVcpu(n, cpus))
            }
            Node::Sched(uuid, knob) => {
                let value = text.parse::<u64>().map_err(|_| {
                    Error::invalid(format!(
                        "{} takes an unsigned number, not '{text}'",
                        knob.name()
                    ))
                })?;
                (uuid, Command::SetSchedParam(knob.name().to_string(), value))
            }
            _ => return Err(Error::invalid("not writable")),
        };
        self.run_command(uuid, cmd)
    }

    /// The command a line written to a domain's `file` asks for.
    fn file_command(file: DomFile, text: &str) -> Result<Command> {
        match file {
            DomFile::Control => text.parse::<Command>(),
            DomFile::Memory => command::parse_size(text).map(Command::SetMemory),
            DomFile::MaxMemory => command::parse_size(text).map(Command::SetMaxMemory),
            DomFile::Vcpus => command::parse_count(text).map(Command::SetVcpus),
            DomFile::Autostart => command::parse_flag(text).map(Command::SetAutostart),
            DomFile::Xml
            | DomFile::InactiveXml
            | DomFile::State
            | DomFile::Id
            | DomFile::Uuid
            | DomFile::OsType
            | DomFile::CpuTime
            | DomFile::Info
            | DomFile::LastError
            | DomFile::MaxVcpus => return Err(Error::invalid("not writable")),
        }
        .map_err(Error::invalid)
    }

    /// Applies a parsed command to the domain `uuid`.
    fn run_command(&self, uuid: Uuid, cmd: Command) -> Result<()> {
        let dom = self.domain(uuid)?;
        let d = &self.dispatch;
        match &cmd {
            Command::Start => d.start(&dom),
            Command::Shutdown => d.shutdown(&dom),
            Command::Reboot => d.reboot(&dom),
            Command::Destroy => d.destroy(&dom),
            Command::Suspend => d.suspend(&dom),
            Command::Resume => d.resume(&dom),
            Command::Save(path) => d.save(&dom, &self.image_path(path)?),
            Command::Dump(path) => d.core_dump(&dom, &self.image_path(path)?),
            Command::SetMemory(kib) => d.set_memory(&dom, *kib),
            Command::SetMaxMemory(kib) => d.set_max_memory(&dom, *kib),
            Command::SetVcpus(n) => d.set_vcpus(&dom, *n),
            Command::SetAutostart(on) => d.set_autostart(&dom, *on),
            Command::PinVcpu(n, cpus) => d.pin_vcpu(&dom, *n, cpus.clone()),
            Command::SetSchedParam(name, v) => d.set_scheduler_param(&dom, name, *v),
        }?;
        self.forget_ref(dom.uuid);
        log::info!("{}: {cmd}", dom.name);
        self.settle();
        self.forget_if_gone(&dom);
        Ok(())
    }

    /// Applies a whole document written to `xml`, `create` or `define`.
    pub(super) fn apply_document(&self, node: Node, data: &[u8]) -> Result<()> {
        let text =
            std::str::from_utf8(data).map_err(|_| Error::invalid("the XML is not UTF-8 text"))?;
        let dom = match node {
            Node::Attach(uuid) | Node::Detach(uuid) => {
                let dom = self.domain(uuid)?;
                if matches!(node, Node::Attach(_)) {
                    self.dispatch.attach_device(&dom, text)?;
                    log::info!("{}: device attached", dom.name);
                } else {
                    self.dispatch.detach_device(&dom, text)?;
                    log::info!("{}: device detached", dom.name);
                }
                self.settle();
                return Ok(());
            }
            Node::Create => self.dispatch.create_xml_text(text)?,
            Node::Define => self.dispatch.define_xml_text(text)?,
            Node::File(uuid, DomFile::Xml) => {
                let current = self.domain(uuid)?;
                let mut def = DomainDef::parse(text)?;
                if def.name != current.name.as_str() {
                    return Err(Error::invalid(format!(
                        "the XML names domain '{}', not '{}'; write to define to add a domain",
                        def.name, current.name
                    )));
                }
                match def.uuid {
                    Some(u) if u != uuid => {
                        return Err(Error::invalid(format!(
                            "the XML has uuid {u}, but domain '{}' has uuid {uuid}",
                            current.name
                        )))
                    }
                    Some(_) => {}
                    None => def.set_uuid(Some(uuid)),
                }
                self.dispatch.define_xml(def)?
            }
            _ => return Err(Error::invalid("not a document")),
        };
        self.forget_ref(dom.uuid);
        log::info!("{}: defined from written XML", dom.name);
        self.settle();
        Ok(())
    }

    /// After a change, a domain that no longer exists (a transient domain
    /// that stopped) must leave the kernel's name cache.
    pub(super) fn forget_if_gone(&self, dom: &DomainRef) {
        if self.domain(dom.uuid).is_err() {
            self.forget(ROOT_INO, Self::dir_name(dom));
        }
    }
}
