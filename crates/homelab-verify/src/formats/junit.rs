//! JUnit XML as CI servers read it (the Ant JUnit schema that Jenkins' JUnit plugin and
//! GitLab's unit test reports document: `testsuites` > `testsuite` > `testcase` with
//! `failure`, `skipped`, `system-out`), written with quick-xml, which escapes text and
//! attribute values.
//!
//! One `testsuite` per probe, one `testcase` per finding (`classname` PROBE.CHECK, `name` the
//! subject). Fail becomes `<failure>` with the message and the remedy; skip becomes
//! `<skipped>` with its reason; warn and pass are passing cases whose `<system-out>` says what
//! was found (and a warning's fix). Characters XML 1.0 cannot hold (control characters in a
//! file name, say) are replaced with U+FFFD; line breaks and tabs in attribute values are
//! written as character references, which a parser keeps (XML 1.0 section 3.3.3 turns literal
//! ones into spaces).

use std::borrow::Cow;
use std::io;

use homelab_probe::{Finding, Probe, Status};
use quick_xml::Writer;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::name::QName;

use super::Run;

/// `text` with the characters XML 1.0 does not allow (section 2.2, `Char`) replaced.
fn xml_chars(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// The attribute `key="value"`, escaped, with the whitespace that attribute-value
/// normalization would change written as character references.
fn attr<'a>(key: &'a str, value: &str) -> Attribute<'a> {
    let escaped =
        quick_xml::escape::escape(xml_chars(value)).replace('\n', "&#10;").replace('\r', "&#13;").replace('\t', "&#9;");
    Attribute { key: QName(key.as_bytes()), value: Cow::Owned(escaped.into_bytes()) }
}

fn remedy_line(f: &Finding) -> Option<String> {
    f.remedy.as_ref().map(|r| format!("fix ({}): {}", r.kind.label(), r.text))
}

/// The report of `run` as JUnit XML.
pub fn render(run: &Run) -> io::Result<Vec<u8>> {
    let report = &run.report;
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    // The schema's timestamp has no time zone; generated_at is UTC.
    let timestamp = report.generated_at.trim_end_matches('Z').to_owned();
    let hostname = report.host.hostname.as_deref().unwrap_or("unknown");
    let count = |fs: &[&Finding], s: Status| fs.iter().filter(|f| f.status == s).count().to_string();
    let all: Vec<&Finding> = report.findings.iter().collect();
    let total_time: f64 = run.probes.iter().map(|p| p.duration.as_secs_f64()).sum();
    w.create_element("testsuites")
        .with_attribute(("name", "homelab-verify"))
        .with_attribute(("tests", all.len().to_string().as_str()))
        .with_attribute(("failures", count(&all, Status::Fail).as_str()))
        .with_attribute(("errors", "0"))
        .with_attribute(("skipped", count(&all, Status::Skip).as_str()))
        .with_attribute(("time", format!("{total_time:.3}").as_str()))
        .with_attribute(("timestamp", timestamp.as_str()))
        .write_inner_content(|w| {
            for p in &run.probes {
                let findings: Vec<&Finding> = report.findings.iter().filter(|f| f.probe == p.probe).collect();
                w.create_element("testsuite")
                    .with_attribute(("name", p.probe.name()))
                    .with_attribute(("tests", findings.len().to_string().as_str()))
                    .with_attribute(("failures", count(&findings, Status::Fail).as_str()))
                    .with_attribute(("errors", "0"))
                    .with_attribute(("skipped", count(&findings, Status::Skip).as_str()))
                    .with_attribute(("time", format!("{:.3}", p.duration.as_secs_f64()).as_str()))
                    .with_attribute(("timestamp", timestamp.as_str()))
                    .with_attribute(attr("hostname", hostname))
                    .write_inner_content(|w| {
                        w.create_element("properties").write_inner_content(|w| {
                            property(w, "expectations", &report.expectations)?;
                            property(w, "root", &report.host.root.display().to_string())?;
                            property(w, "live", if report.host.live { "true" } else { "false" })
                        })?;
                        for f in &findings {
                            testcase(w, p.probe, f)?;
                        }
                        Ok(())
                    })?;
            }
            Ok(())
        })?;
    let mut out = w.into_inner();
    out.push(b'\n');
    Ok(out)
}

fn property(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> io::Result<()> {
    w.create_element("property")
        .with_attribute(attr("name", name))
        .with_attribute(attr("value", value))
        .write_empty()?;
    Ok(())
}

fn testcase(w: &mut Writer<Vec<u8>>, probe: Probe, f: &Finding) -> io::Result<()> {
    let classname = format!("{}.{}", probe.name(), f.check);
    let case = w
        .create_element("testcase")
        .with_attribute(attr("name", &f.subject))
        .with_attribute(attr("classname", &classname));
    let body = |label: &str| {
        let mut text = format!("{label}: {}", f.message);
        if let Some(fix) = remedy_line(f) {
            text.push('\n');
            text.push_str(&fix);
        }
        xml_chars(&text)
    };
    case.write_inner_content(|w| {
        match f.status {
            Status::Fail => {
                w.create_element("failure")
                    .with_attribute(attr("message", &f.message))
                    .with_attribute(attr("type", &f.check))
                    .write_text_content(BytesText::new(&body("FAIL")))?;
            }
            Status::Skip => {
                w.create_element("skipped").with_attribute(attr("message", &f.message)).write_empty()?;
            }
            Status::Warn => {
                w.create_element("system-out").write_text_content(BytesText::new(&body("WARN")))?;
            }
            Status::Pass => {
                w.create_element("system-out").write_text_content(BytesText::new(&body("PASS")))?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_cannot_hold_are_replaced() {
        assert_eq!(xml_chars("a\u{1}b\tc\nd\u{ffff}"), "a\u{fffd}b\tc\nd\u{fffd}");
        assert_eq!(xml_chars("/mnt/Plex Drive <\"&'>"), "/mnt/Plex Drive <\"&'>");
    }
}
