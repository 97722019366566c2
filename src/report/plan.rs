//! `--dry-run`'s plan: for each stack it would rebuild, what would be
//! shipped (files, bytes) and which files changed since the build the host
//! runs, as the JSON row's `plan` and as lines under the summary table.

use super::Row;

/// How many changed paths a line names before "and N more".
const NAMED: usize = 8;

/// Bytes as B, KiB, MiB or GiB, one decimal above bytes.
fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// One line for each row with a plan, or "" when none has one.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let Some(p) = &r.detail.plan else { continue };
        if out.is_empty() {
            out.push_str("plan:\n");
        }
        let what = if p.ship {
            format!(
                "ship {} file{}, {}",
                p.files,
                if p.files == 1 { "" } else { "s" },
                human_bytes(p.bytes)
            )
        } else {
            "ship nothing (the host has these files)".to_owned()
        };
        let changed = match &p.changed {
            _ if !p.ship => String::new(),
            None => {
                "; changed files unknown (this controller did not ship the host's build)".to_owned()
            }
            Some(c) if c.is_empty() => "; no file changed".to_owned(),
            Some(c) => {
                let mut named: Vec<String> = c
                    .iter()
                    .take(NAMED)
                    .map(|c| format!("{} ({})", c.path, c.change))
                    .collect();
                if c.len() > NAMED {
                    named.push(format!("and {} more", c.len() - NAMED));
                }
                format!("; changed: {}", named.join(", "))
            }
        };
        out.push_str(&format!("  {} {}: {what}{changed}\n", r.host, r.stack));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;
    use crate::report::{Action, Detail, ShipPlan};
    use crate::trees::Change;

    fn row(plan: Option<ShipPlan>) -> Row {
        Row {
            detail: Detail {
                plan,
                ..Default::default()
            },
            ..Row::new("web1", "blog", Action::WouldRebuild, Reason::ConfigChanged)
        }
    }

    #[test]
    fn plan_lines_name_files_bytes_and_changes() {
        assert_eq!(render(&[row(None)]), "");
        let changed: Vec<Change> = (0..10)
            .map(|i| Change {
                path: format!("f{i}"),
                change: "modified",
            })
            .collect();
        let p = |ship, changed| ShipPlan {
            ship,
            files: 12,
            bytes: 3 * 1024 + 512,
            changed,
        };
        assert_eq!(
            render(&[
                row(Some(p(true, Some(changed)))),
                row(Some(p(true, None))),
                row(Some(p(true, Some(vec![])))),
                row(Some(p(false, None))),
            ]),
            "plan:\n  \
             web1 blog: ship 12 files, 3.5 KiB; changed: f0 (modified), f1 (modified), f2 (modified), f3 (modified), f4 (modified), f5 (modified), f6 (modified), f7 (modified), and 2 more\n  \
             web1 blog: ship 12 files, 3.5 KiB; changed files unknown (this controller did not ship the host's build)\n  \
             web1 blog: ship 12 files, 3.5 KiB; no file changed\n  \
             web1 blog: ship nothing (the host has these files)\n"
        );
    }
}
