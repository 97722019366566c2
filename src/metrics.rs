//! `--metrics-file PATH`: the run's results in the Prometheus text format,
//! for node_exporter's textfile collector, written atomically (a temporary
//! file in the same directory, renamed over PATH) so the collector never
//! reads half a file.
//!
//! With `--shard K/N`, every series carries a `shard="K/N"` label, so that
//! the files of N shards (one a cron box, or N files side by side in one
//! textfile directory: give each its own `--metrics-file`) never collide
//! as series. `rbuild_run_stacks` is counted as the run document's
//! `counts` (`action` is one of its keys: an action, or `unreachable`,
//! `held_back`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::report::json::{COUNTED, counts, hosts};
use crate::report::{Action, Row};
use crate::select::Shard;

/// What the metrics say of the run as a whole.
#[derive(Debug, Clone, Copy)]
pub struct RunInfo {
    /// When the run ended.
    pub finished: SystemTime,
    pub duration: Duration,
    pub exit_code: u8,
    /// `--shard K/N`: every series is labelled `shard="K/N"`.
    pub shard: Option<Shard>,
}

/// A label value as the text format wants it: `\`, `"` and newlines
/// escaped.
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric family: its HELP and TYPE lines, then a sample for each
/// `(labels, value)` (`labels` as written inside `{}`, or empty), each
/// with the labels of every series (`common`, maybe empty) first.
fn family<L: AsRef<str>, V: std::fmt::Display>(
    out: &mut String,
    common: &str,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, value) in samples {
        let labels = match (common, labels.as_ref()) {
            ("", l) => l.to_owned(),
            (c, "") => c.to_owned(),
            (c, l) => format!("{c},{l}"),
        };
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The `host` and `stack` labels of a row.
fn stack_labels(r: &Row) -> String {
    format!(
        "host=\"{}\",stack=\"{}\"",
        escape(&r.host),
        escape(&r.stack)
    )
}

/// The run's metrics (pure).
pub fn render(rows: &[Row], run: &RunInfo) -> String {
    let mut out = String::new();
    let common = run
        .shard
        .map(|s| format!("shard=\"{}\"", escape(&s.to_string())))
        .unwrap_or_default();
    let common = common.as_str();
    family(
        &mut out,
        common,
        "rbuild_stack_result",
        "The last run's result of a stack on a host: 1 for its action and reason.",
        rows.iter().map(|r| {
            let labels = format!(
                "{},action=\"{}\",reason=\"{}\"",
                stack_labels(r),
                r.action.as_str(),
                r.reason.as_str()
            );
            (labels, 1)
        }),
    );
    family(
        &mut out,
        common,
        "rbuild_stack_failed",
        "1 when the stack failed or was rolled back in the last run, else 0.",
        rows.iter().map(|r| {
            let failed = matches!(r.action, Action::Failed | Action::RolledBack);
            (stack_labels(r), u8::from(failed))
        }),
    );
    family(
        &mut out,
        common,
        "rbuild_stack_duration_seconds",
        "Time the last run spent on the stack (its check, or its rebuild).",
        rows.iter()
            .map(|r| (stack_labels(r), format!("{:.3}", r.duration.as_secs_f64()))),
    );
    debug_assert_eq!(counts(rows).len(), COUNTED.len());
    family(
        &mut out,
        common,
        "rbuild_run_stacks",
        "How many stacks the last run reported with each action (or unreachable, held_back), each counted once.",
        counts(rows)
            .into_iter()
            .map(|(action, n)| (format!("action=\"{action}\""), n)),
    );
    let at = run
        .finished
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for (name, help, value) in [
        (
            "rbuild_run_hosts",
            "Hosts in the last run.",
            hosts(rows).to_string(),
        ),
        (
            "rbuild_run_exit_code",
            "The last run's exit status (0: all good).",
            run.exit_code.to_string(),
        ),
        (
            "rbuild_run_duration_seconds",
            "How long the last run took.",
            format!("{:.3}", run.duration.as_secs_f64()),
        ),
        (
            "rbuild_last_run_timestamp_seconds",
            "When the last run ended (Unix time).",
            at.to_string(),
        ),
    ] {
        family(&mut out, common, name, help, [("", value)]);
    }
    out
}

/// Write `text` to `path` atomically: a temporary file in its directory
/// (readable by all, as the collector may run as another user), renamed
/// over it.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".rbuild-metrics-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;

    fn row(host: &str, stack: &str, action: Action, secs: u64) -> Row {
        Row {
            duration: Duration::from_millis(secs * 1000 + 250),
            ..Row::new(host, stack, action, Reason::Expired)
        }
    }

    #[test]
    fn the_run_in_the_text_format() {
        let rows = [
            row("web1", "blog", Action::Rebuilt, 12),
            row("web2", "blog", Action::RolledBack, 30),
        ];
        let run = RunInfo {
            finished: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            duration: Duration::from_millis(31_500),
            exit_code: 1,
            shard: None,
        };
        let text = render(&rows, &run);
        for line in [
            "# TYPE rbuild_stack_result gauge",
            "rbuild_stack_result{host=\"web1\",stack=\"blog\",action=\"rebuilt\",reason=\"expired\"} 1",
            "rbuild_stack_result{host=\"web2\",stack=\"blog\",action=\"rolled_back\",reason=\"expired\"} 1",
            "rbuild_stack_failed{host=\"web1\",stack=\"blog\"} 0",
            "rbuild_stack_failed{host=\"web2\",stack=\"blog\"} 1",
            "rbuild_stack_duration_seconds{host=\"web1\",stack=\"blog\"} 12.250",
            "rbuild_run_stacks{action=\"rebuilt\"} 1",
            "rbuild_run_stacks{action=\"rolled_back\"} 1",
            "rbuild_run_stacks{action=\"failed\"} 0",
            "rbuild_run_hosts 2",
            "rbuild_run_exit_code 1",
            "rbuild_run_duration_seconds 31.500",
            "rbuild_last_run_timestamp_seconds 1800000000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        // every metric has its HELP and TYPE once, before its samples
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let ty = text.find(&format!("# TYPE {name} gauge\n")).unwrap();
            assert!(ty < text.find(l).unwrap(), "{l}");
            assert_eq!(text.matches(&format!("# HELP {name} ")).count(), 1);
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("a\nb"), r"a\nb");
        let rows = [row("we\"b", "x\\y", Action::Failed, 1)];
        let run = RunInfo {
            finished: UNIX_EPOCH,
            duration: Duration::ZERO,
            exit_code: 1,
            shard: None,
        };
        assert!(
            render(&rows, &run).contains(r#"rbuild_stack_failed{host="we\"b",stack="x\\y"} 1"#)
        );
    }

    #[test]
    fn every_series_of_a_shard_carries_its_label() {
        let rows = [
            row("web1", "blog", Action::Rebuilt, 1),
            Row::new("web2", "blog", Action::Failed, Reason::HostFailed),
        ];
        let run = RunInfo {
            finished: UNIX_EPOCH,
            duration: Duration::ZERO,
            exit_code: 3,
            shard: Some("2/4".parse().unwrap()),
        };
        let text = render(&rows, &run);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(!samples.is_empty());
        for l in &samples {
            assert!(l.contains("{shard=\"2/4\""), "{l}");
        }
        for line in [
            "rbuild_stack_failed{shard=\"2/4\",host=\"web1\",stack=\"blog\"} 0",
            "rbuild_run_stacks{shard=\"2/4\",action=\"unreachable\"} 1",
            "rbuild_run_stacks{shard=\"2/4\",action=\"held_back\"} 0",
            "rbuild_run_exit_code{shard=\"2/4\"} 3",
        ] {
            assert!(samples.contains(&line), "{line}\n{text}");
        }
    }

    #[test]
    fn the_file_is_replaced_whole_and_readable_by_all() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rbuild.prom");
        write(&path, "old 1\n").unwrap();
        write(&path, "new 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new 1\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // no temporary file is left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["rbuild.prom"]);
        // a directory that does not exist is an error, not a panic
        assert!(write(&dir.path().join("nope/rbuild.prom"), "x\n").is_err());
    }
}
