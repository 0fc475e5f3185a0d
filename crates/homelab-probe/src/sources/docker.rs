//! Docker's daemon configuration, as far as GPUs are concerned, and where it lives.
//!
//! `daemon.json` is the JSON file dockerd(8) documents ("Daemon configuration file"): an
//! object whose keys are the long option names. The probe reads `runtimes` (name ->
//! `{ "path": ..., "runtimeArgs": [...] }`; the NVIDIA Container Toolkit adds `nvidia`),
//! `default-runtime`, `features` (name -> bool; `cdi` switches CDI device injection on),
//! `cdi-spec-dirs` and `data-root` (where capture finds Docker's container state). Other keys are accepted and ignored. Invalid JSON, or a wrong type in one
//! of those keys, is an error naming file and line (dockerd itself refuses to start then).
//! An empty file counts as `{}`.
//!
//! Where it lives: `/etc/docker/daemon.json` unless dockerd is started with
//! `--config-file=FILE`. NixOS does exactly that: `virtualisation.docker.daemon.settings`
//! becomes a file in the Nix store passed through `ExecStart` of `docker.service`, so
//! [`config_file_from_exec_start`] reads the unit's `ExecStart=` lines (systemd.service(5): an
//! empty `ExecStart=` clears the earlier ones; drop-ins apply after the unit).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::ParseError;
use super::cdi::json_error;

/// The GPU-relevant part of a `daemon.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Runtime name -> its `path`.
    pub runtimes: BTreeMap<String, Option<String>>,
    /// `default-runtime`.
    pub default_runtime: Option<String>,
    /// `features.cdi`.
    pub features_cdi: Option<bool>,
    /// `cdi-spec-dirs`.
    pub cdi_spec_dirs: Option<Vec<String>>,
    /// `data-root`: where dockerd keeps images and containers (`/var/lib/docker` by default).
    pub data_root: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(default)]
    runtimes: BTreeMap<String, RawRuntime>,
    #[serde(default, rename = "default-runtime")]
    default_runtime: Option<String>,
    #[serde(default)]
    features: BTreeMap<String, bool>,
    #[serde(default, rename = "cdi-spec-dirs")]
    cdi_spec_dirs: Option<Vec<String>>,
    #[serde(default, rename = "data-root")]
    data_root: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawRuntime {
    #[serde(default)]
    path: Option<String>,
}

/// Parses a `daemon.json`; `file` names it in errors.
pub fn parse_daemon_json(text: &str, file: &Path) -> Result<DaemonSettings, ParseError> {
    if text.trim().is_empty() {
        return Ok(DaemonSettings::default());
    }
    let raw: Raw = serde_json::from_str(text).map_err(|e| json_error(&e, text, file))?;
    Ok(DaemonSettings {
        runtimes: raw.runtimes.into_iter().map(|(k, v)| (k, v.path)).collect(),
        default_runtime: raw.default_runtime,
        features_cdi: raw.features.get("cdi").copied(),
        cdi_spec_dirs: raw.cdi_spec_dirs,
        data_root: raw.data_root,
    })
}

/// The `--config-file` of the dockerd command line that wins among the `ExecStart=` lines of
/// `units` (the unit file's text first, then its drop-ins in order). `None` when the last
/// command has none (dockerd then reads `/etc/docker/daemon.json`).
pub fn config_file_from_exec_start<'a>(units: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut commands: Vec<&str> = Vec::new();
    for text in units {
        for line in text.lines() {
            let Some(value) = line.trim().strip_prefix("ExecStart=") else { continue };
            if value.trim().is_empty() {
                commands.clear();
            } else {
                commands.push(value);
            }
        }
    }
    let words: Vec<&str> = commands.last()?.split_whitespace().collect();
    let unquote = |s: &str| s.trim_matches(|c| c == '"' || c == '\'').to_owned();
    words.iter().enumerate().find_map(|(i, w)| match w.strip_prefix("--config-file") {
        Some(rest) if rest.starts_with('=') => Some(unquote(&rest[1..])),
        Some("") => words.get(i + 1).map(|v| unquote(v)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn toolkit_daemon_json() {
        let text = r#"{
    "default-runtime": "nvidia",
    "runtimes": {
        "nvidia": { "args": [], "path": "nvidia-container-runtime" }
    },
    "features": { "cdi": true },
    "log-driver": "json-file",
    "log-opts": { "max-size": "10m", "max-file": "3" }
}"#;
        let s = parse_daemon_json(text, Path::new("/etc/docker/daemon.json")).unwrap();
        assert_eq!(s.runtimes["nvidia"].as_deref(), Some("nvidia-container-runtime"));
        assert_eq!(s.default_runtime.as_deref(), Some("nvidia"));
        assert_eq!(s.features_cdi, Some(true));
        assert_eq!(parse_daemon_json("  \n", Path::new("d")).unwrap(), DaemonSettings::default());
    }

    #[rstest]
    #[case::trailing_comma("{\n  \"features\": { \"cdi\": true },\n}\n", 3)]
    #[case::cdi_as_string("{\n  \"features\": {\n    \"cdi\": \"true\"\n  }\n}\n", 3)]
    fn bad_daemon_json(#[case] text: &str, #[case] line: usize) {
        let e = parse_daemon_json(text, Path::new("/etc/docker/daemon.json")).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.to_string().starts_with(&format!("/etc/docker/daemon.json:{line}: ")), "{e}");
    }

    #[test]
    fn nixos_unit_passes_the_config_file() {
        let unit = "[Service]\nExecStart=/usr/bin/dockerd -H fd://\n";
        let dropin = "[Service]\nExecStart=\nExecStart=/nix/store/x-docker-27.5.1/bin/dockerd --config-file=/nix/store/y-daemon.json \n";
        assert_eq!(config_file_from_exec_start([unit, dropin]).as_deref(), Some("/nix/store/y-daemon.json"));
        assert_eq!(config_file_from_exec_start([unit]), None);
        assert_eq!(
            config_file_from_exec_start(["ExecStart=/bin/dockerd --config-file '/etc/d.json'"]).as_deref(),
            Some("/etc/d.json")
        );
        assert_eq!(config_file_from_exec_start(["ExecStart=\n"]), None);
    }
}
