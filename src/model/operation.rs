//! Every operation of the driver interface, declared once.
//!
//! `with_operations!` holds the one list: each entry names the operation,
//! the driver method that carries it out (its arguments and answer), the
//! states it is valid in, whether it changes anything, the control command
//! that asks for it and the front end's argument check. Each layer expands
//! the list into what it needs: this module the `Operation` enum and its
//! table, `driver` the trait's "not supported" defaults, `dispatch` the front
//! end's methods. So a new entry is an operation everywhere at once, and the
//! exhaustive matches over `Operation` (each driver's `supports`, the
//! control vocabulary) fail to compile until they decide about it.
//!
//! A macro rather than a table of values because the list carries types
//! (each method's arguments and answer): a `const` table could give the
//! names and states, but not the trait and the dispatcher's signatures.

use super::State;
use std::fmt;

/// The whole interface. Each entry:
/// `Variant "name" kind(valid states) command, fn method(args) -> answer, check;`
/// where kind is `query` (changes nothing, valid in every state) or `change`,
/// and `check` names a function of the front end's `checks` module, called
/// with references to the method's arguments before any driver sees them
/// (`none` for no check).
#[macro_export]
macro_rules! with_operations {
    ($then:ident) => {
        $then! {
            /// The active domains (those with an id), like libvirt's `listDomains`.
            ListActive "list active domains" query(ANY) None,
                fn list_active() -> Vec<DomainRef>, none;
            /// The defined but inactive domains (`listDefinedDomains`); apart from
            /// `ListActive` because on Xen different back ends know each.
            ListDefined "list defined domains" query(ANY) None,
                fn list_defined() -> Vec<DomainRef>, none;
            LookupByName "lookup by name" query(ANY) None,
                fn lookup_by_name(name: &str) -> DomainRef, none;
            LookupById "lookup by id" query(ANY) None,
                fn lookup_by_id(id: DomainId) -> DomainRef, none;
            LookupByUuid "lookup by uuid" query(ANY) None,
                fn lookup_by_uuid(uuid: Uuid) -> DomainRef, none;
            DomainInfo "domain info" query(ANY) None,
                fn domain_info(dom: &DomainRef) -> DomainInfo, none;
            /// The OS type (`linux`, `hvm`, ...), like libvirt's `domainGetOSType`.
            DomainOsType "domain os type" query(ANY) None,
                fn domain_os_type(dom: &DomainRef) -> String, none;
            /// The live definition of an active domain (with its `id`), the
            /// persistent one of an inactive domain.
            DomainXml "domain xml" query(ANY) None,
                fn domain_xml(dom: &DomainRef) -> DomainDef, none;
            /// The persistent definition the next start uses (`dumpxml --inactive`).
            DomainXmlInactive "domain xml (inactive)" query(ANY) None,
                fn domain_xml_inactive(dom: &DomainRef) -> DomainDef, none;
            NodeInfo "node info" query(ANY) None,
                fn node_info() -> NodeInfo, none;
            Hypervisor "hypervisor type and version" query(ANY) None,
                fn hypervisor() -> Hypervisor, none;
            /// Defines and starts a transient domain.
            CreateXml "create" change(ANY) None,
                fn create_xml(def: DomainDef) -> DomainRef, none;
            /// Defines a persistent domain, or replaces the persistent definition of
            /// the domain with the same name and UUID.
            DefineXml "define" change(ANY) None,
                fn define_xml(def: DomainDef) -> DomainRef, none;
            Undefine "undefine" change(SHUTOFF) None,
                fn undefine(dom: &DomainRef) -> (), none;
            Start "start" change(SHUTOFF) Some(("start", Arg::None)),
                fn start(dom: &DomainRef) -> (), none;
            Shutdown "shutdown" change(ASKABLE) Some(("shutdown", Arg::None)),
                fn shutdown(dom: &DomainRef) -> (), none;
            Reboot "reboot" change(ASKABLE) Some(("reboot", Arg::None)),
                fn reboot(dom: &DomainRef) -> (), none;
            Destroy "destroy" change(ACTIVE) Some(("destroy", Arg::None)),
                fn destroy(dom: &DomainRef) -> (), none;
            Suspend "suspend" change(RUNNING) Some(("suspend", Arg::None)),
                fn suspend(dom: &DomainRef) -> (), none;
            Resume "resume" change(PAUSED) Some(("resume", Arg::None)),
                fn resume(dom: &DomainRef) -> (), none;
            /// Saves the domain's state to an absolute path and stops it.
            Save "save" change(SAVABLE) Some(("save", Arg::Path)),
                fn save(dom: &DomainRef, path: &Path) -> (), absolute_image;
            /// Restores a domain saved to an absolute path and starts it.
            Restore "restore" change(ANY) None,
                fn restore(path: &Path) -> DomainRef, absolute_path;
            /// Current memory (balloon target) in KiB.
            SetMemory "setmem" change(ANY) Some(("setmem", Arg::Size)),
                fn set_memory(dom: &DomainRef, kib: u64) -> (), memory;
            /// Maximum memory in KiB.
            SetMaxMemory "setmaxmem" change(SHUTOFF) Some(("setmaxmem", Arg::Size)),
                fn set_max_memory(dom: &DomainRef, kib: u64) -> (), max_memory;
            /// Number of virtual CPUs in use (at most the domain's maximum).
            SetVcpus "setvcpus" change(ANY) Some(("setvcpus", Arg::Count)),
                fn set_vcpus(dom: &DomainRef, count: u32) -> (), vcpus;
            /// The most vCPUs the domain may have (`<vcpu>`; virsh `vcpucount --maximum`).
            DomainMaxVcpus "domain max vcpus" query(ANY) None,
                fn domain_max_vcpus(dom: &DomainRef) -> u32, none;
            /// Whether the domain starts with the host (`domainGetAutostart`).
            DomainAutostart "get autostart" query(ANY) None,
                fn domain_autostart(dom: &DomainRef) -> bool, none;
            SetAutostart "set autostart" change(ANY) None,
                fn set_autostart(dom: &DomainRef, enable: bool) -> (), none;
            /// The host's free memory in bytes (`nodeGetFreeMemory`).
            NodeFreeMemory "node free memory" query(ANY) None,
                fn node_free_memory() -> u64, none;
            /// Each NUMA cell's free memory in bytes, by cell number
            /// (`nodeGetCellsFreeMemory`).
            NodeCellsFreeMemory "node cells free memory" query(ANY) None,
                fn node_cells_free_memory() -> Vec<u64>, none;
            /// Each vCPU in use: state, host CPU, time and affinity
            /// (`domainGetVcpus` with `domainGetVcpuPinInfo`).
            DomainVcpuInfo "domain vcpu info" query(ANY) None,
                fn domain_vcpu_info(dom: &DomainRef) -> Vec<VcpuInfo>, none;
            /// Pins a vCPU of an active domain to host CPUs (`domainPinVcpu`).
            PinVcpu "pin vcpu" change(ACTIVE) None,
                fn pin_vcpu(dom: &DomainRef, vcpu: u32, cpus: CpuSet) -> (), cpu_list;
            DomainSchedulerType "scheduler type" query(ANY) None,
                fn domain_scheduler_type(dom: &DomainRef) -> String, none;
            DomainSchedulerParams "scheduler parameters" query(ANY) None,
                fn domain_scheduler_params(dom: &DomainRef) -> Vec<SchedParam>, none;
            SetSchedulerParam "set scheduler parameter" change(ANY) None,
                fn set_scheduler_param(dom: &DomainRef, name: &str, value: u64) -> (), none;
            NodeCapabilities "capabilities" query(ANY) None,
                fn node_capabilities() -> String, none;
            CoreDump "core dump" change(ACTIVE) Some(("dump", Arg::Path)),
                fn core_dump(dom: &DomainRef, path: &Path) -> (), absolute_image;
            AttachDevice "attach device" change(ANY) None,
                fn attach_device(dom: &DomainRef, xml: &str) -> (), device_xml;
            DetachDevice "detach device" change(ANY) None,
                fn detach_device(dom: &DomainRef, xml: &str) -> (), device_xml;
            DomainBlockStats "block stats" query(ANY) None,
                fn domain_block_stats(dom: &DomainRef, target: &str) -> BlockStats, none;
            DomainInterfaceStats "interface stats" query(ANY) None,
                fn domain_interface_stats(dom: &DomainRef, name: &str) -> InterfaceStats, none;
        }
    };
}

/// A set of states, one bit per state's libvirt code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct States(u8);

impl States {
    pub const fn of(states: &[State]) -> States {
        let mut bits = 0u8;
        let mut i = 0;
        while i < states.len() {
            bits |= 1 << states[i].code();
            i += 1;
        }
        States(bits)
    }
    pub fn contains(self, s: State) -> bool {
        self.0 & (1 << s.code()) != 0
    }
    pub fn iter(self) -> impl Iterator<Item = State> {
        State::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// The state sets the declaration names. `NoState` is what a back end
/// that cannot see the guest's scheduler state answers (xenstore alone):
/// the guest is active, so what any active domain may be asked (shut
/// down, reboot, destroy) stays possible; pausing and saving, which need
/// to know, do not.
mod sets {
    use super::{State as S, States};
    pub const ANY: States = States::of(&S::ALL);
    pub const SHUTOFF: States = States::of(&[S::ShutOff]);
    pub const ACTIVE: States = States::of(&[
        S::NoState,
        S::Running,
        S::Blocked,
        S::Paused,
        S::Shutdown,
        S::Crashed,
    ]);
    pub const ASKABLE: States = States::of(&[S::NoState, S::Running, S::Blocked, S::Paused]);
    pub const RUNNING: States = States::of(&[S::Running, S::Blocked]);
    pub const PAUSED: States = States::of(&[S::Paused]);
    pub const SAVABLE: States = States::of(&[S::Running, S::Blocked, S::Paused]);
}

/// What a control command takes after its word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    None,
    /// An absolute file path (the rest of the line).
    Path,
    /// A memory size (KiB, or with K, M or G).
    Size,
    /// A count.
    Count,
}

impl Arg {
    /// How `control` shows the argument.
    pub fn usage(self) -> &'static str {
        match self {
            Arg::None => "",
            Arg::Path => " PATH",
            Arg::Size => " SIZE",
            Arg::Count => " N",
        }
    }
}

/// What an operation is, as declared.
#[derive(Debug, Clone, Copy)]
pub struct Declaration {
    pub name: &'static str,
    /// Whether it changes anything (a read-only connection refuses it).
    pub change: bool,
    /// The states it is valid in.
    pub states: States,
    /// The control command that asks for it: its word and argument.
    pub command: Option<(&'static str, Arg)>,
}

macro_rules! declare_operations {
    ($(
        $(#[$meta:meta])*
        $variant:ident $name:literal $kind:ident($states:ident) $command:expr,
            fn $method:ident($($arg:ident: $ty:ty),*) -> $ret:ty, $check:ident;
    )*) => {
        /// Every operation of the interface, named for errors, logs and the
        /// dispatcher's "not supported" answer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($(#[$meta])* $variant,)*
        }

        impl Operation {
            pub const ALL: &'static [Operation] = &[$(Operation::$variant,)*];

            pub fn declaration(self) -> Declaration {
                match self {
                    $(Operation::$variant => Declaration {
                        name: $name,
                        change: declare_operations!(@change $kind),
                        states: sets::$states,
                        command: $command,
                    },)*
                }
            }
        }
    };
    (@change query) => { false };
    (@change change) => { true };
}

with_operations!(declare_operations);

impl Operation {
    pub fn as_str(self) -> &'static str {
        self.declaration().name
    }

    pub fn is_change(self) -> bool {
        self.declaration().change
    }

    /// Whether the operation may be applied to a domain in `state`.
    pub fn valid_in(self, state: State) -> bool {
        self.declaration().states.contains(state)
    }

    /// The control command asking for this operation, as `control` lists
    /// it (`save PATH`).
    pub fn usage(self) -> Option<String> {
        self.declaration()
            .command
            .map(|(word, arg)| format!("{word}{}", arg.usage()))
    }

    /// The operation a control command's word asks for.
    pub fn from_command(word: &str) -> Option<(Operation, Arg)> {
        Operation::ALL
            .iter()
            .find_map(|op| match op.declaration().command {
                Some((w, arg)) if w == word => Some((*op, arg)),
                _ => None,
            })
    }

    /// The control commands, in declaration order.
    pub fn commands() -> impl Iterator<Item = Operation> {
        Operation::ALL
            .iter()
            .copied()
            .filter(|op| op.declaration().command.is_some())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation as O;
    use State as S;

    /// The whole state table, written out so a change to the declaration
    /// must change this too.
    #[test]
    fn state_table_is_exactly_as_documented() {
        let expect: &[(State, &[Operation])] = &[
            (
                S::NoState,
                &[
                    O::Shutdown,
                    O::Reboot,
                    O::Destroy,
                    O::SetMemory,
                    O::SetVcpus,
                    O::SetAutostart,
                    O::PinVcpu,
                    O::SetSchedulerParam,
                    O::CoreDump,
                    O::AttachDevice,
                    O::DetachDevice,
                ],
            ),
            (
                S::Running,
                &[
                    O::Shutdown,
                    O::Reboot,
                    O::Destroy,
                    O::Suspend,
                    O::Save,
                    O::SetMemory,
                    O::SetVcpus,
                    O::SetAutostart,
                    O::PinVcpu,
                    O::SetSchedulerParam,
                    O::CoreDump,
                    O::AttachDevice,
                    O::DetachDevice,
                ],
            ),
            (
                S::Blocked,
                &[
                    O::Shutdown,
                    O::Reboot,
                    O::Destroy,
                    O::Suspend,
                    O::Save,
                    O::SetMemory,
                    O::SetVcpus,
                    O::SetAutostart,
                    O::PinVcpu,
                    O::SetSchedulerParam,
                    O::CoreDump,
                    O::AttachDevice,
                    O::DetachDevice,
                ],
            ),
            (
                S::Paused,
                &[
                    O::Shutdown,
                    O::Reboot,
                    O::Destroy,
                    O::Resume,
                    O::Save,
                    O::SetMemory,
                    O::SetVcpus,
                    O::SetAutostart,
                    O::PinVcpu,
                    O::SetSchedulerParam,
                    O::CoreDump,
                    O::AttachDevice,
                    O::DetachDevice,
                ],
            ),
            (
                S::Shutdown,
                &[
                    O::Destroy,
                    O::SetMemory,
                    O::SetVcpus,
                    O::SetAutostart,
                    O::PinVcpu,
                    O::SetSchedulerParam,
                    O::CoreDump,
                    O::AttachDevice,
                    O::DetachDevice,
                ],
            ),
            (
                S::ShutOff,
                &[
                    O::Undefine,
                    O::Start,
                    O::SetMemory,
                    O::SetMaxMemory,
                    O::SetVcpus,
                    O::SetAutostart,
                    O::SetSchedulerParam,
                    O::AttachDevice,
                    O::DetachDevice,
                ],
            ),
            (
                S::Crashed,
                &[
                    O::Destroy,
                    O::SetMemory,
                    O::SetVcpus,
                    O::SetAutostart,
                    O::PinVcpu,
                    O::SetSchedulerParam,
                    O::CoreDump,
                    O::AttachDevice,
                    O::DetachDevice,
                ],
            ),
        ];
        for (state, ops) in expect {
            let got: Vec<Operation> = O::ALL
                .iter()
                .copied()
                .filter(|op| {
                    op.is_change() && !matches!(op, O::CreateXml | O::DefineXml | O::Restore)
                })
                .filter(|op| op.valid_in(*state))
                .collect();
            assert_eq!(&got, ops, "state {state}");
        }
    }

    #[test]
    fn queries_change_nothing_and_are_valid_everywhere() {
        for op in O::ALL {
            let d = op.declaration();
            if !d.change {
                assert!(d.command.is_none(), "{op}");
                assert!(State::ALL.iter().all(|s| op.valid_in(*s)), "{op}");
            }
        }
    }

    #[test]
    fn commands_are_found_by_their_word() {
        assert_eq!(O::from_command("save"), Some((O::Save, Arg::Path)));
        assert_eq!(O::from_command("setvcpus"), Some((O::SetVcpus, Arg::Count)));
        assert_eq!(O::from_command("undefine"), None);
        assert_eq!(O::Save.usage().as_deref(), Some("save PATH"));
        assert_eq!(O::Undefine.usage(), None);
        let words: Vec<String> = O::commands().filter_map(O::usage).collect();
        assert_eq!(
            words,
            [
                "start",
                "shutdown",
                "reboot",
                "destroy",
                "suspend",
                "resume",
                "save PATH",
                "setmem SIZE",
                "setmaxmem SIZE",
                "setvcpus N",
                "dump PATH"
            ]
        );
        let mut names: Vec<&str> = O::ALL.iter().map(|o| o.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), O::ALL.len(), "names are unique");
    }
}
