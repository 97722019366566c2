//! The summary table and its closing line.

use std::time::Duration;

use comfy_table::{Table, presets};

use super::{Row, counts, human_duration};

/// A table in rbuild's style: box drawing on a terminal (`unicode`), plain
/// ASCII for mail; wrapped to `width` columns when one is known.
pub fn new_table(unicode: bool, width: Option<u16>) -> Table {
    let mut t = Table::new();
    t.load_style(if unicode {
        presets::UTF8_FULL_CONDENSED
    } else {
        presets::ASCII_FULL_CONDENSED
    });
    if let Some(w) = width {
        t.set_width(w)
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    }
    t
}

/// Render the rows as a table followed by a one-line summary. `unicode`
/// picks box-drawing borders (a terminal); otherwise plain ASCII for mail.
pub fn render(rows: &[Row], total: Duration, unicode: bool, width: Option<u16>) -> String {
    let mut t = new_table(unicode, width);
    t.set_header(["HOST", "STACK", "ACTION", "REASON", "DURATION", "ERROR"]);
    for r in rows {
        t.add_row([
            r.host.as_str(),
            r.stack.as_str(),
            r.action.as_str(),
            r.reason.as_str(),
            &human_duration(r.duration),
            r.error.as_deref().unwrap_or(""),
        ]);
    }
    let hosts = {
        let mut h: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect();
        h.sort_unstable();
        h.dedup();
        h.len()
    };
    let parts: Vec<String> = counts(rows)
        .into_iter()
        .map(|(a, n)| format!("{n} {}", a.as_str().replace('_', " ")))
        .collect();
    format!(
        "{t}\n{} on {hosts} host{} in {}\n",
        if parts.is_empty() {
            "nothing".to_owned()
        } else {
            parts.join(", ")
        },
        if hosts == 1 { "" } else { "s" },
        human_duration(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;
    use crate::report::Action;

    #[test]
    fn table_snapshot() {
        let rows = vec![
            Row {
                host: "web1".into(),
                stack: "blog".into(),
                action: Action::Rebuilt,
                reason: Reason::Expired,
                duration: Duration::from_millis(12_340),
                error: None,
                hint: None,
                detail: Default::default(),
            },
            Row {
                host: "web2".into(),
                stack: "blog".into(),
                action: Action::Failed,
                reason: Reason::HostFailed,
                duration: Duration::from_millis(10_002),
                error: Some("cannot connect: Connection refused".into()),
                hint: None,
                detail: Default::default(),
            },
            Row {
                host: "web3".into(),
                stack: "blog".into(),
                action: Action::Skipped,
                reason: Reason::UpToDate,
                duration: Duration::from_millis(180),
                error: None,
                hint: None,
                detail: Default::default(),
            },
        ];
        insta::assert_snapshot!(render(&rows, Duration::from_millis(10_500), false, None));
    }
}
