//! What a shell user may write: control commands, memory sizes and vCPU
//! counts. Parsing only; a command that parses has not yet been checked
//! against the domain's state (the driver does that).

use crate::model::{Arg, CpuSet, Operation};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// One command written to a domain's `control` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Boot a shut-off domain.
    Start,
    /// Ask the guest to shut down (running, blocked or paused).
    Shutdown,
    /// Ask the guest to reboot; `on_reboot` decides what follows.
    Reboot,
    /// Stop an active domain at once.
    Destroy,
    /// Pause a running domain (alias `pause`).
    Suspend,
    /// Continue a paused domain.
    Resume,
    /// Save the domain's state to an absolute path and stop it.
    Save(PathBuf),
    /// Write the domain's memory to an absolute path as a core dump; the
    /// domain goes on as it was.
    Dump(PathBuf),
    /// Set current memory, in KiB.
    SetMemory(u64),
    /// Set maximum memory, in KiB (shut-off domains only).
    SetMaxMemory(u64),
    /// Set the number of vCPUs in use.
    SetVcpus(u32),
    /// Start the domain with the host, or not (written to `autostart`).
    SetAutostart(bool),
    /// Pin a vCPU to host CPUs (written to `vcpu/N/affinity`).
    PinVcpu(u32, CpuSet),
    /// Set a scheduler parameter (written to `sched/<name>`).
    SetSchedParam(String, u64),
}

impl Command {
    /// The operation this command asks for.
    pub fn operation(&self) -> Operation {
        match self {
            Command::Start => Operation::Start,
            Command::Shutdown => Operation::Shutdown,
            Command::Reboot => Operation::Reboot,
            Command::Destroy => Operation::Destroy,
            Command::Suspend => Operation::Suspend,
            Command::Resume => Operation::Resume,
            Command::Save(_) => Operation::Save,
            Command::Dump(_) => Operation::CoreDump,
            Command::SetMemory(_) => Operation::SetMemory,
            Command::SetMaxMemory(_) => Operation::SetMaxMemory,
            Command::SetVcpus(_) => Operation::SetVcpus,
            Command::SetAutostart(_) => Operation::SetAutostart,
            Command::PinVcpu(..) => Operation::PinVcpu,
            Command::SetSchedParam(..) => Operation::SetSchedulerParam,
        }
    }

    /// The command asking for `op` with its argument, as declared
    /// (`model::operation`); None for an operation no command asks for.
    fn build(op: Operation, arg: &str) -> Option<Result<Command, String>> {
        let parsed = match op {
            Operation::Start => Command::Start,
            Operation::Shutdown => Command::Shutdown,
            Operation::Reboot => Command::Reboot,
            Operation::Destroy => Command::Destroy,
            Operation::Suspend => Command::Suspend,
            Operation::Resume => Command::Resume,
            Operation::Save => Command::Save(PathBuf::from(arg)),
            Operation::CoreDump => Command::Dump(PathBuf::from(arg)),
            Operation::SetMemory => match parse_size(arg) {
                Ok(kib) => Command::SetMemory(kib),
                Err(e) => return Some(Err(e)),
            },
            Operation::SetMaxMemory => match parse_size(arg) {
                Ok(kib) => Command::SetMaxMemory(kib),
                Err(e) => return Some(Err(e)),
            },
            Operation::SetVcpus => match parse_count(arg) {
                Ok(n) => Command::SetVcpus(n),
                Err(e) => return Some(Err(e)),
            },
            Operation::ListActive
            | Operation::ListDefined
            | Operation::LookupByName
            | Operation::LookupById
            | Operation::LookupByUuid
            | Operation::DomainInfo
            | Operation::DomainOsType
            | Operation::DomainXml
            | Operation::DomainXmlInactive
            | Operation::NodeInfo
            | Operation::Hypervisor
            | Operation::CreateXml
            | Operation::DefineXml
            | Operation::Undefine
            | Operation::Restore
            | Operation::DomainMaxVcpus
            | Operation::DomainAutostart
            | Operation::NodeFreeMemory
            | Operation::NodeCellsFreeMemory
            | Operation::DomainVcpuInfo
            | Operation::DomainSchedulerType
            | Operation::DomainSchedulerParams
            | Operation::NodeCapabilities
            | Operation::DomainBlockStats
            | Operation::DomainInterfaceStats
            // Written to their own files, not to `control`.
            | Operation::SetAutostart
            | Operation::PinVcpu
            | Operation::SetSchedulerParam
            | Operation::AttachDevice
            | Operation::DetachDevice => return None,
        };
        Some(Ok(parsed))
    }
}

/// The longest command line (a `save` path may be PATH_MAX long).
pub const MAX_COMMAND: usize = 4096 + 64;

/// Command text written to one open file, gathered until a newline so a
/// command may arrive in pieces (`dd bs=1`). Each write completes at most one
/// command; a rejected write leaves what was gathered as it was.
#[derive(Debug, Default)]
pub struct CommandBuf {
    pending: Vec<u8>,
}

impl CommandBuf {
    /// Adds one write; returns the command line it completes, if any.
    pub fn write(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let mut all = self.pending.clone();
        all.extend_from_slice(data);
        let (complete, rest) = match all.iter().rposition(|&b| b == b'\n') {
            Some(i) => (&all[..=i], &all[i + 1..]),
            None => (&all[..0], &all[..]),
        };
        if rest.len() > MAX_COMMAND {
            return Err(format!("a command is at most {MAX_COMMAND} bytes"));
        }
        let mut lines = complete
            .split(|&b| b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
        let line = lines.next().map(<[u8]>::to_vec);
        if lines.next().is_some() {
            return Err("write one command at a time".into());
        }
        if line.as_ref().is_some_and(|l| l.len() > MAX_COMMAND) {
            return Err(format!("a command is at most {MAX_COMMAND} bytes"));
        }
        self.pending = rest.to_vec();
        Ok(line)
    }

    /// What is left when the file is closed: a last command with no newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.pending);
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

/// Text written to a file: UTF-8, one line, surrounding white space and one
/// trailing newline ignored.
pub fn one_line(data: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(data).map_err(|_| "the text is not UTF-8".to_string())?;
    let text = text.trim();
    if text.contains('\n') {
        return Err("write one line at a time".into());
    }
    if text.is_empty() {
        return Err("nothing written".into());
    }
    Ok(text)
}

impl FromStr for Command {
    type Err = String;
    fn from_str(text: &str) -> Result<Command, String> {
        let text = text.trim();
        let (word, arg) = match text.split_once(char::is_whitespace) {
            Some((w, a)) => (w, a.trim()),
            None => (text, ""),
        };
        let no_arg = |empty: &'static str| {
            if arg.is_empty() {
                Ok(empty)
            } else {
                Err(format!("'{word}' takes no argument"))
            }
        };
        let need = |what: &str| {
            if arg.is_empty() {
                Err(format!("'{word}' needs {what}"))
            } else {
                Ok(arg)
            }
        };
        let word = if word == "pause" { "suspend" } else { word };
        if let Some((op, arg_kind)) = Operation::from_command(word) {
            let arg = match arg_kind {
                Arg::None => no_arg("")?,
                Arg::Path => need("a file path")?,
                Arg::Size => need("a SIZE")?,
                Arg::Count => need("a count")?,
            };
            if let Some(c) = Command::build(op, arg) {
                return c;
            }
        }
        match word {
            // A wait is a read, so it holds no write of `control` open.
            "wait" => Err(
                "'wait' is no command: read NAME/wait/STATE instead (cat web1/wait/shutoff)".into(),
            ),
            "" => Err("empty command".into()),
            other => Err(format!(
                "unknown command '{other}'; commands: {}, pause",
                Operation::commands()
                    .filter_map(Operation::usage)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Save(p) => write!(f, "save {}", p.display()),
            Command::Dump(p) => write!(f, "dump {}", p.display()),
            Command::SetMemory(k) => write!(f, "setmem {k}"),
            Command::SetMaxMemory(k) => write!(f, "setmaxmem {k}"),
            Command::SetVcpus(n) => write!(f, "setvcpus {n}"),
            Command::SetAutostart(on) => write!(f, "autostart {}", u8::from(*on)),
            Command::PinVcpu(n, cpus) => write!(f, "vcpupin {n} {cpus}"),
            Command::SetSchedParam(name, v) => write!(f, "schedinfo {name}={v}"),
            other => f.write_str(other.operation().as_str()),
        }
    }
}

/// A flag file's value: `0` or `1`, as sysfs flags are written.
pub fn parse_flag(text: &str) -> Result<bool, String> {
    match text.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(format!("'{other}' is not 0 or 1")),
    }
}

/// A memory size in KiB: a plain number is KiB; the suffixes K, M, G (also
/// KiB, MiB, GiB, any case) are powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "'{t}' is not a size (a number of KiB, or with K, M or G)"
        ));
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "k" | "kib" => 0,
        "m" | "mib" => 10,
        "g" | "gib" => 20,
        _ => {
            return Err(format!(
                "'{t}': unknown size suffix '{}' (use K, M or G)",
                unit.trim()
            ))
        }
    };
    let n: u64 = digits.parse().map_err(|_| format!("'{t}' is too large"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{t}' is too large"))
}

/// A vCPU count: a plain decimal number.
pub fn parse_count(text: &str) -> Result<u32, String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{t}' is not a vcpu count"));
    }
    t.parse().map_err(|_| format!("'{t}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!("start\n".parse(), Ok(Command::Start));
        assert_eq!("  pause ".parse(), Ok(Command::Suspend));
        assert_eq!("suspend".parse(), Ok(Command::Suspend));
        assert_eq!(
            "save /var/tmp/a b.img".parse(),
            Ok(Command::Save("/var/tmp/a b.img".into()))
        );
        assert_eq!("setmem 1G".parse(), Ok(Command::SetMemory(1 << 20)));
        assert_eq!("setmaxmem 512M".parse(), Ok(Command::SetMaxMemory(524288)));
        assert_eq!("setvcpus 3".parse(), Ok(Command::SetVcpus(3)));
    }

    #[test]
    fn bad_commands_say_why() {
        let e = "explode".parse::<Command>().unwrap_err();
        assert!(e.contains("unknown command 'explode'") && e.contains("setvcpus N"));
        assert!("start now"
            .parse::<Command>()
            .unwrap_err()
            .contains("no argument"));
        assert!("save".parse::<Command>().unwrap_err().contains("file path"));
        assert!("setmem".parse::<Command>().unwrap_err().contains("SIZE"));
        assert!("setvcpus two"
            .parse::<Command>()
            .unwrap_err()
            .contains("vcpu count"));
        assert!("setvcpus -1".parse::<Command>().is_err());
        // The old blocking command says where waiting went.
        for old in ["wait", "wait paused 5"] {
            let e = old.parse::<Command>().unwrap_err();
            assert!(e.contains("wait/STATE"), "{e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("2048K"), Ok(2048));
        assert_eq!(parse_size("1m"), Ok(1024));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 20));
        assert_eq!(parse_size("3G"), Ok(3 << 20));
        assert!(parse_size("1T").unwrap_err().contains("suffix"));
        assert!(parse_size("G").is_err());
        assert!(parse_size("-5").is_err());
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("18014398509481984G")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn commands_are_gathered_until_their_newline() {
        let mut b = CommandBuf::default();
        assert_eq!(b.write(b"susp"), Ok(None));
        assert_eq!(b.write(b"end"), Ok(None));
        assert_eq!(b.write(b"\n"), Ok(Some(b"suspend".to_vec())));
        assert_eq!(b.write(b"\n  \n"), Ok(None), "white space is no command");
        assert_eq!(b.write(b"resume\nsta"), Ok(Some(b"resume".to_vec())));
        assert_eq!(b.finish(), Some(b"sta".to_vec()));
        assert_eq!(b.finish(), None);
        assert!(b
            .write(b"start\nstop\n")
            .unwrap_err()
            .contains("one command"));
        assert_eq!(b.write(b"x"), Ok(None), "the refused write left nothing");
        assert_eq!(b.finish(), Some(b"x".to_vec()));
        let long = vec![b'a'; MAX_COMMAND + 1];
        assert!(b.write(&long).is_err());
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn one_line_rules() {
        assert_eq!(one_line(b"start\n"), Ok("start"));
        assert!(one_line(b"start\nstop\n").is_err());
        assert!(one_line(b"  \n").is_err());
        assert!(one_line(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn every_control_command_round_trips_through_display() {
        for c in [
            Command::Start,
            Command::Shutdown,
            Command::Reboot,
            Command::Destroy,
            Command::Suspend,
            Command::Resume,
            Command::Save("/x".into()),
            Command::SetMemory(5),
            Command::SetMaxMemory(6),
            Command::SetVcpus(2),
        ] {
            assert_eq!(c.to_string().parse::<Command>(), Ok(c));
        }
    }

    #[test]
    fn flags_are_0_or_1() {
        assert_eq!(parse_flag("0"), Ok(false));
        assert_eq!(parse_flag(" 1 "), Ok(true));
        for bad in ["2", "", "01", "yes", "-1", "1 1"] {
            assert!(parse_flag(bad).is_err(), "{bad}");
        }
    }
}
