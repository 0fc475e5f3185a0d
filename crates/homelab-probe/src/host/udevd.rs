//! How udevd runs on the host, so that a remedy which restarts it works where it is printed.
//!
//! `systemctl restart systemd-udevd` needs systemd as PID 1 and udevd as its unit. Elsewhere
//! (virtme-ng's init in the VM scenarios, OpenRC, a container's own init) udevd is a plain
//! daemon: `udevadm control --exit` stops it (udevadm(8): "Signal and wait for systemd-udevd to
//! exit") and it is started again as `<program> --daemon`. A container that shares the host's
//! `/dev` runs no udevd at all: the node's owner comes from the host's.
//!
//! Facts read: `/run/systemd/system` (sd_booted(3): PID 1 is systemd), the unit file in the
//! systemd unit directories (systemd.unit(5)), `/proc/<pid>/comm` and `/proc/<pid>/exe` of a
//! running `systemd-udevd` or `udevd` (proc(5)).

use std::path::Path;

use crate::host::Host;

/// How udevd is restarted on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Udevd {
    /// PID 1 is systemd and `systemd-udevd.service` exists: `systemctl restart systemd-udevd`.
    /// Also what a sysroot gets: the system it holds boots with systemd (NixOS does).
    SystemdUnit,
    /// udevd runs as a plain daemon, this program (absolute path).
    Daemon {
        /// The running udevd's program, e.g. `/lib/systemd/systemd-udevd`.
        program: String,
    },
    /// No udevd runs here: a container that shares the host's `/dev`, or udevd was stopped.
    /// `installed` is a udevd program found on disk, if any.
    NotRunning {
        /// A udevd program on disk.
        installed: Option<String>,
    },
}

/// Where systemd looks for unit files (systemd.unit(5), system unit search path).
const UNIT_DIRS: [&str; 5] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];
/// Where distributions install udevd (systemd's and eudev's).
const PROGRAMS: [&str; 5] = [
    "/lib/systemd/systemd-udevd",
    "/usr/lib/systemd/systemd-udevd",
    "/sbin/udevd",
    "/usr/sbin/udevd",
    "/usr/bin/udevd",
];
const TRIGGER: &str = "udevadm trigger --action=add --subsystem-match=drm && udevadm settle";

impl Udevd {
    /// How udevd runs on `host`. Only the live host is looked at; a sysroot is taken to boot
    /// with systemd, as NixOS does.
    pub fn detect(host: &Host) -> Udevd {
        if !host.is_live() {
            return Udevd::SystemdUnit;
        }
        let pid1_systemd = Path::new("/run/systemd/system").is_dir();
        let unit = UNIT_DIRS.iter().any(|d| Path::new(d).join("systemd-udevd.service").exists());
        Udevd::decide(pid1_systemd, unit, running_program(), installed())
    }

    /// The decision over the facts (separate, so every case is tested).
    pub fn decide(pid1_systemd: bool, unit: bool, running: Option<String>, installed: Option<String>) -> Udevd {
        match running {
            _ if pid1_systemd && unit => Udevd::SystemdUnit,
            Some(program) => Udevd::Daemon { program },
            None => Udevd::NotRunning { installed },
        }
    }

    /// The command that restarts udevd so it resolves `GROUP=` names again, followed by the
    /// `add` event that re-applies them to the DRM nodes (docs/render-node.md).
    pub fn restart_command(&self) -> String {
        match self {
            Udevd::SystemdUnit => format!("systemctl restart systemd-udevd && {TRIGGER}  # or reboot"),
            Udevd::Daemon { program } => format!(
                "udevadm control --exit && {} --daemon && {TRIGGER}  # udevd is not a systemd unit here; or reboot",
                crate::shell::quote(program)
            ),
            Udevd::NotRunning { installed } => {
                let start = installed.as_deref().map_or_else(
                    || "start udevd".to_owned(),
                    |p| format!("{} --daemon && {TRIGGER}", crate::shell::quote(p)),
                );
                format!(
                    "no udevd runs here: in a container the node comes from the host's /dev, so restart udevd on the host (systemctl restart systemd-udevd && {TRIGGER}); on this machine itself: {start}"
                )
            }
        }
    }
}

/// The program of a running `systemd-udevd` or `udevd`: the first word of its command line
/// when that is an absolute path (what started it; systemd's `systemd-udevd` is a link to the
/// multi-call `udevadm`, so `/proc/<pid>/exe` names `udevadm`, which does not take `--daemon`),
/// else its `/proc/<pid>/exe` unless that is `udevadm`, else the program installed where
/// distributions put it.
fn running_program() -> Option<String> {
    let dir = std::fs::read_dir("/proc").ok()?;
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let p = e.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if !matches!(comm.trim_end(), "systemd-udevd" | "udevd") {
            continue;
        }
        let cmdline = std::fs::read(p.join("cmdline")).unwrap_or_default();
        let argv0 = cmdline.split(|&b| b == 0).next().and_then(|a| std::str::from_utf8(a).ok()).unwrap_or_default();
        let exe = std::fs::read_link(p.join("exe")).ok().and_then(|x| x.to_str().map(str::to_owned));
        return Some(pick_program(argv0, exe.as_deref(), installed().as_deref()));
    }
    None
}

fn installed() -> Option<String> {
    PROGRAMS.iter().find(|p| Path::new(p).is_file()).map(|p| (*p).to_owned())
}

/// The program to start udevd again with, from what the running one shows (see
/// [`running_program`]).
fn pick_program(argv0: &str, exe: Option<&str>, installed: Option<&str>) -> String {
    if argv0.starts_with('/') {
        return argv0.to_owned();
    }
    // A program replaced by a package upgrade shows as "... (deleted)".
    let exe = exe.map(|x| x.trim_end_matches(" (deleted)"));
    match exe {
        Some(x) if !x.ends_with("/udevadm") => x.to_owned(),
        _ => installed.unwrap_or("/lib/systemd/systemd-udevd").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_unit_only_when_pid1_is_systemd_and_the_unit_exists() {
        let udevd = Some("/lib/systemd/systemd-udevd".to_owned());
        assert_eq!(Udevd::decide(true, true, udevd.clone(), None), Udevd::SystemdUnit);
        // virtme-ng's init started udevd; the unit file is on disk but systemd is not PID 1.
        assert_eq!(
            Udevd::decide(false, true, udevd.clone(), None),
            Udevd::Daemon { program: "/lib/systemd/systemd-udevd".into() }
        );
        // systemd without udevd's unit (eudev on a systemd host, or a trimmed image).
        assert_eq!(
            Udevd::decide(true, false, udevd, None),
            Udevd::Daemon { program: "/lib/systemd/systemd-udevd".into() }
        );
        assert_eq!(
            Udevd::decide(false, false, None, Some("/sbin/udevd".into())),
            Udevd::NotRunning { installed: Some("/sbin/udevd".into()) }
        );
    }

    #[test]
    fn the_program_is_what_started_udevd_never_the_multi_call_udevadm() {
        // Debian 12: /lib/systemd/systemd-udevd -> /usr/bin/udevadm; exe says udevadm.
        assert_eq!(
            pick_program("/lib/systemd/systemd-udevd", Some("/usr/bin/udevadm"), None),
            "/lib/systemd/systemd-udevd"
        );
        assert_eq!(
            pick_program("systemd-udevd", Some("/usr/bin/udevadm"), Some("/usr/lib/systemd/systemd-udevd")),
            "/usr/lib/systemd/systemd-udevd"
        );
        assert_eq!(pick_program("udevd", Some("/sbin/udevd (deleted)"), None), "/sbin/udevd");
    }

    #[test]
    fn commands() {
        assert_eq!(
            Udevd::SystemdUnit.restart_command(),
            "systemctl restart systemd-udevd && udevadm trigger --action=add --subsystem-match=drm && udevadm settle  # or reboot"
        );
        assert_eq!(
            Udevd::Daemon { program: "/lib/systemd/systemd-udevd".into() }.restart_command(),
            "udevadm control --exit && /lib/systemd/systemd-udevd --daemon && udevadm trigger --action=add --subsystem-match=drm && udevadm settle  # udevd is not a systemd unit here; or reboot"
        );
        assert!(Udevd::NotRunning { installed: None }.restart_command().starts_with("no udevd runs here"));
    }
}
