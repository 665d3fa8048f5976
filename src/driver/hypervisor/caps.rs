//! libvirt's capabilities document for a Xen host, in the shape libvirt's
//! libxl driver gives it (`libxlMakeCapabilities`): the host's CPU
//! architecture and NUMA cells, then one `<guest>` for each kind of guest
//! Xen says it runs (`XENVER_capabilities`: `xen-3.0-x86_64`,
//! `hvm-3.0-x86_32p`, ...). PV kinds are `xen` guests (and, on x86_64,
//! `xenpvh` ones), HVM kinds `hvm` guests; a 32-bit kind with and without
//! PAE is one guest with both features.
//!
//! Pure: Xen's answers in, the document out.

use std::fmt::Write;

/// One NUMA cell: its memory and, when known, its CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub memory_kib: u64,
    pub cpus: Option<Vec<u32>>,
}

/// One kind of guest, from the capability tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Guest {
    os_type: &'static str,
    arch: &'static str,
    wordsize: u32,
    pae: bool,
    nonpae: bool,
}

/// The guest kinds Xen's capability tokens name, in their order; tokens
/// of other architectures or forms are left out.
fn guests(tokens: &[String]) -> Vec<Guest> {
    let mut out: Vec<Guest> = Vec::new();
    for t in tokens {
        let mut parts = t.splitn(3, '-');
        let (Some(kind), Some(_version), Some(arch)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let hvm = match kind {
            "xen" => false,
            "hvm" => true,
            _ => continue,
        };
        let (arch, wordsize, pae) = match arch {
            "x86_32" => ("i686", 32, false),
            "x86_32p" => ("i686", 32, true),
            "x86_64" => ("x86_64", 64, false),
            _ => continue,
        };
        let mut kinds = vec![if hvm { "hvm" } else { "xen" }];
        if !hvm && arch == "x86_64" {
            kinds.push("xenpvh");
        }
        for os_type in kinds {
            match out
                .iter_mut()
                .find(|g| g.os_type == os_type && g.arch == arch)
            {
                Some(g) => {
                    g.pae |= pae;
                    g.nonpae |= !pae && wordsize == 32;
                }
                None => out.push(Guest {
                    os_type,
                    arch,
                    wordsize,
                    pae,
                    nonpae: !pae && wordsize == 32,
                }),
            }
        }
    }
    out
}

/// The document. `host_arch` is dom0's machine (`x86_64`), `hvmloader`
/// the firmware HVM guests boot.
pub fn capabilities(tokens: &[String], cells: &[Cell], host_arch: &str, hvmloader: &str) -> String {
    let mut x = String::from("<capabilities>\n\n  <host>\n    <cpu>\n");
    let _ = writeln!(x, "      <arch>{host_arch}</arch>");
    x.push_str("    </cpu>\n    <power_management/>\n");
    x.push_str("    <migration_features>\n      <live/>\n    </migration_features>\n");
    let _ = writeln!(x, "    <topology>\n      <cells num='{}'>", cells.len());
    for (i, c) in cells.iter().enumerate() {
        let _ = writeln!(x, "        <cell id='{i}'>");
        let _ = writeln!(x, "          <memory unit='KiB'>{}</memory>", c.memory_kib);
        if let Some(cpus) = &c.cpus {
            let _ = writeln!(x, "          <cpus num='{}'>", cpus.len());
            for id in cpus {
                let _ = writeln!(x, "            <cpu id='{id}'/>");
            }
            x.push_str("          </cpus>\n");
        }
        x.push_str("        </cell>\n");
    }
    x.push_str("      </cells>\n    </topology>\n  </host>\n\n");
    for g in guests(tokens) {
        let _ = writeln!(x, "  <guest>\n    <os_type>{}</os_type>", g.os_type);
        let _ = writeln!(x, "    <arch name='{}'>", g.arch);
        let _ = writeln!(x, "      <wordsize>{}</wordsize>", g.wordsize);
        let machine = match g.os_type {
            "hvm" => "xenfv",
            "xenpvh" => "xenpvh",
            _ => "xenpv",
        };
        if g.os_type == "hvm" {
            let _ = writeln!(x, "      <loader>{hvmloader}</loader>");
        }
        let _ = writeln!(x, "      <machine>{machine}</machine>");
        x.push_str("      <domain type='xen'/>\n    </arch>\n");
        if g.pae || g.nonpae {
            x.push_str("    <features>\n");
            if g.pae {
                x.push_str("      <pae/>\n");
            }
            if g.nonpae {
                x.push_str("      <nonpae/>\n");
            }
            x.push_str("    </features>\n");
        }
        x.push_str("  </guest>\n\n");
    }
    x.push_str("</capabilities>\n");
    x
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::xml::parse_tree;

    fn kinds(doc: &str) -> Vec<String> {
        let root = parse_tree(doc).unwrap();
        root.elements()
            .filter(|e| e.name == "guest")
            .map(|g| {
                let arch = g.child("arch").unwrap();
                format!(
                    "{} {} {}",
                    g.child("os_type").unwrap().text(),
                    arch.attr("name").unwrap(),
                    arch.child("machine").unwrap().text()
                )
            })
            .collect()
    }

    #[test]
    fn each_kind_xen_runs_is_a_guest() {
        // Debian 12's Xen 4.17 under QEMU, as `xl info` prints xen_caps.
        let tokens: Vec<String> = "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"
            .split(' ')
            .map(String::from)
            .collect();
        let cells = [Cell {
            memory_kib: 2 << 20,
            cpus: Some(vec![0, 1]),
        }];
        let doc = capabilities(
            &tokens,
            &cells,
            "x86_64",
            "/usr/lib/xen-4.17/boot/hvmloader",
        );
        assert_eq!(
            kinds(&doc),
            [
                "xen x86_64 xenpv",
                "xenpvh x86_64 xenpvh",
                "hvm i686 xenfv",
                "hvm x86_64 xenfv"
            ]
        );
        assert!(doc.contains("<pae/>\n      <nonpae/>"), "{doc}");
        assert!(doc.contains("<cells num='1'>") && doc.contains("<cpus num='2'>"));
        assert!(doc.contains("<loader>/usr/lib/xen-4.17/boot/hvmloader</loader>"));
    }

    #[test]
    fn unknown_tokens_and_unknown_cpus_are_left_out() {
        let tokens = vec![
            "xen-3.0-armv7l".to_string(),
            "bogus".into(),
            "hvm-3.0".into(),
        ];
        let cells = [
            Cell {
                memory_kib: 1,
                cpus: None,
            },
            Cell {
                memory_kib: 2,
                cpus: None,
            },
        ];
        let doc = capabilities(&tokens, &cells, "x86_64", "/l");
        assert!(kinds(&doc).is_empty());
        assert!(doc.contains("<cells num='2'>") && !doc.contains("<cpus"));
    }
}
