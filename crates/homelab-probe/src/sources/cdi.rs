//! Container Device Interface (CDI) specs, as the CDI specification defines them
//! (github.com/cncf-tags/container-device-interface, `SPEC.md`): one file per vendor/class in
//! `/etc/cdi` or `/var/run/cdi`, JSON when the name ends in `.json`, YAML when it ends in
//! `.yaml` or `.yml` (other files are ignored, as the CDI registry ignores them).
//!
//! ```yaml
//! cdiVersion: "0.5.0"
//! kind: nvidia.com/gpu          # vendor/class
//! devices:
//!   - name: "0"                 # containers ask for nvidia.com/gpu=0
//!     containerEdits:
//!       deviceNodes:
//!         - path: /dev/nvidia0
//! containerEdits:               # applied for every device of the spec
//!   deviceNodes:
//!     - path: /dev/nvidiactl
//! ```
//!
//! Only what the probe needs is read (`cdiVersion`, `kind`, device names and device node
//! paths); other keys (hooks, mounts, env, annotations) are accepted and ignored. A file that
//! is not valid JSON/YAML, or lacks `cdiVersion`, `kind` or `devices`, is an error naming the
//! file and line. YAML goes through `serde-saphyr` (anchors and `<<` merges resolved).

use std::path::Path;

use serde::Deserialize;

use super::ParseError;
use crate::model::gpu::{CdiDevice, CdiSpecSummary};
use crate::model::text::json_error_position;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    cdi_version: String,
    kind: String,
    devices: Vec<RawDevice>,
    #[serde(default)]
    container_edits: Option<RawEdits>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDevice {
    name: String,
    #[serde(default)]
    container_edits: Option<RawEdits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEdits {
    #[serde(default)]
    device_nodes: Vec<RawNode>,
}

#[derive(Debug, Deserialize)]
struct RawNode {
    path: String,
}

/// Whether the CDI registry reads a file of this name (`.json`, `.yaml`, `.yml`).
pub fn is_spec_file(name: &str) -> bool {
    name.ends_with(".json") || name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Parses the CDI spec `text`; `file` (as the host names it) decides JSON or YAML by its
/// extension and names it in errors.
pub fn parse(text: &str, file: &Path) -> Result<CdiSpecSummary, ParseError> {
    let raw: RawSpec = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| json_error(&e, text, file))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| yaml_error(&e, file))?
    };
    let err = |message: String| ParseError { file: file.to_path_buf(), line: key_line(text, "kind"), message };
    let (vendor, class) = raw.kind.split_once('/').unwrap_or_default();
    if vendor.is_empty() || class.is_empty() || class.contains('/') {
        return Err(err(format!("kind {:?} is not of the form vendor/class (nvidia.com/gpu)", raw.kind)));
    }
    let nodes = |e: &Option<RawEdits>| {
        e.as_ref().map(|e| e.device_nodes.iter().map(|n| n.path.clone()).collect()).unwrap_or_default()
    };
    Ok(CdiSpecSummary {
        file: file.display().to_string(),
        cdi_version: raw.cdi_version.clone(),
        kind: raw.kind.clone(),
        devices: raw
            .devices
            .iter()
            .map(|d| CdiDevice {
                qualified_name: format!("{}={}", raw.kind, d.name),
                device_nodes: nodes(&d.container_edits),
            })
            .collect(),
        common_device_nodes: nodes(&raw.container_edits),
    })
}

/// The 1-based line of the first `key:` (YAML) or `"key":` (JSON) at the start of a line (1
/// when there is none).
fn key_line(text: &str, key: &str) -> usize {
    let quoted = format!("\"{key}\"");
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix(key)
                .or_else(|| t.strip_prefix(quoted.as_str()))
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map_or(1, |i| i + 1)
}

/// A serde_json error as a [`ParseError`] (serde_json puts the position into its message).
pub(crate) fn json_error(e: &serde_json::Error, text: &str, file: &Path) -> ParseError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    let (line, column) = json_error_position(text, e);
    ParseError { file: file.to_path_buf(), line, message: format!("{message} (column {column})") }
}

/// A serde-saphyr error as a [`ParseError`]: its location, and the first line of its message
/// without the position serde-saphyr repeats there.
pub(crate) fn yaml_error(e: &serde_saphyr::Error, file: &Path) -> ParseError {
    let loc = e.location();
    let line = loc.map_or(1, |l| usize::try_from(l.line()).unwrap_or(1).max(1));
    let full = e.to_string();
    let first = full.lines().next().unwrap_or("invalid YAML").trim();
    // serde-saphyr writes `error: line 5 column 4: <what>`.
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let message = match loc {
        Some(l) => {
            let pos = format!("line {} column {}: ", l.line(), l.column());
            format!("{} (column {})", first.strip_prefix(&pos).unwrap_or(first), l.column())
        }
        None => first.to_owned(),
    };
    ParseError { file: file.to_path_buf(), line, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const NVIDIA_YAML: &str = r#"---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: GPU-5b2c1a5e-0000-0000-0000-000000000000
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  deviceNodes:
  - path: /dev/nvidiactl
  - path: /dev/nvidia-uvm
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-ctk
    args: [nvidia-ctk, hook, update-ldcache]
"#;

    #[test]
    fn nvidia_ctk_yaml() {
        let s = parse(NVIDIA_YAML, Path::new("/etc/cdi/nvidia.yaml")).unwrap();
        assert_eq!(s.kind, "nvidia.com/gpu");
        assert_eq!(s.cdi_version, "0.5.0");
        let names: Vec<&str> = s.devices.iter().map(|d| d.qualified_name.as_str()).collect();
        assert_eq!(
            names,
            ["nvidia.com/gpu=0", "nvidia.com/gpu=GPU-5b2c1a5e-0000-0000-0000-000000000000", "nvidia.com/gpu=all"]
        );
        assert_eq!(s.devices[0].device_nodes, ["/dev/nvidia0"]);
        assert_eq!(s.common_device_nodes, ["/dev/nvidiactl", "/dev/nvidia-uvm"]);
    }

    #[test]
    fn yaml_anchors_and_merges_resolve() {
        let text = "cdiVersion: 0.6.0\nkind: example.com/dev\nx: &edits\n  deviceNodes:\n  - path: /dev/a\ndevices:\n- name: a\n  containerEdits: *edits\n";
        let s = parse(text, Path::new("/etc/cdi/x.yml")).unwrap();
        assert_eq!(s.devices[0].device_nodes, ["/dev/a"]);
    }

    #[test]
    fn json_spec() {
        let text = r#"{"cdiVersion":"0.5.0","kind":"nvidia.com/gpu","devices":[{"name":"all","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia0"}]}}],"containerEdits":{}}"#;
        let s = parse(text, Path::new("/var/run/cdi/nvidia-container-toolkit.json")).unwrap();
        assert_eq!(s.devices[0].qualified_name, "nvidia.com/gpu=all");
    }

    #[rstest]
    #[case::yaml_indent(
        "x.yaml",
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n   containerEdits: {}\n",
        5
    )]
    #[case::yaml_missing_kind("x.yaml", "cdiVersion: 0.5.0\ndevices: []\n", 2)]
    #[case::yaml_bad_kind("x.yaml", "cdiVersion: 0.5.0\n\nkind: gpu\ndevices: []\n", 3)]
    #[case::json_trailing_comma(
        "x.json",
        "{\n\"cdiVersion\": \"0.5.0\",\n\"kind\": \"nvidia.com/gpu\",\n\"devices\": [],\n}\n",
        5
    )]
    #[case::json_wrong_type(
        "x.json",
        "{\n\"cdiVersion\": \"0.5.0\",\n\"kind\": \"nvidia.com/gpu\",\n\"devices\": {}\n}\n",
        4
    )]
    fn errors_name_file_and_line(#[case] name: &str, #[case] text: &str, #[case] line: usize) {
        let file = Path::new("/etc/cdi").join(name);
        let e = parse(text, &file).unwrap_err();
        assert_eq!((e.file.as_path(), e.line), (file.as_path(), line), "{e}");
        assert!(!e.message.is_empty() && !e.message.contains('\n') && !e.message.contains("line "), "{e}");
    }

    #[rstest]
    #[case("nvidia.yaml", true)]
    #[case("nvidia.yml", true)]
    #[case("nvidia-container-toolkit.json", true)]
    #[case("README", false)]
    #[case("nvidia.yaml.bak", false)]
    fn spec_files(#[case] name: &str, #[case] want: bool) {
        assert_eq!(is_spec_file(name), want);
    }
}
