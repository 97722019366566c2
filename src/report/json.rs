//! `--json`: one document on stdout.
//!
//! ```json
//! {"version":1,"results":[{"host":"web1","stack":"blog","action":"rebuilt",
//!   "reason":"expired","duration_ms":12340,"error":null,"hint":null}],
//!  "exit_code":0}
//! ```

use serde::Serialize;

use super::{Action, Row};
use crate::decide::Reason;

#[derive(Serialize)]
struct Doc<'a> {
    version: u32,
    results: Vec<Result<'a>>,
    exit_code: u8,
}

#[derive(Serialize)]
struct Result<'a> {
    host: &'a str,
    stack: &'a str,
    action: Action,
    reason: Reason,
    duration_ms: u64,
    error: Option<&'a str>,
    hint: Option<&'a str>,
}

pub fn render(rows: &[Row], exit_code: u8) -> String {
    let doc = Doc {
        version: 1,
        results: rows
            .iter()
            .map(|r| Result {
                host: &r.host,
                stack: &r.stack,
                action: r.action,
                reason: r.reason,
                duration_ms: r.duration.as_millis() as u64,
                error: r.error.as_deref(),
                hint: r.hint.as_deref(),
            })
            .collect(),
        exit_code,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("serializable");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_shape() {
        let rows = vec![Row {
            host: "web1".into(),
            stack: "blog".into(),
            action: Action::WouldRebuild,
            reason: Reason::ConfigChanged,
            duration: Duration::from_millis(7),
            error: None,
            hint: None,
        }];
        let v: serde_json::Value = serde_json::from_str(&render(&rows, 0)).unwrap();
        assert_eq!(v["results"][0]["action"], "would_rebuild");
        assert_eq!(v["results"][0]["reason"], "config_changed");
        assert_eq!(v["results"][0]["duration_ms"], 7);
        assert!(v["results"][0]["error"].is_null());
        assert_eq!(v["exit_code"], 0);
    }
}
