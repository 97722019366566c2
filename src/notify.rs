//! `notify:` in the inventory: after a run in which something was rebuilt,
//! started, rolled back or failed (the actions it lists), POST the run's
//! JSON document (what `--json` prints) to a webhook. A notification that
//! cannot be sent is a warning on stderr, naming the URL without its path,
//! query or credentials (they often hold the webhook's secret); it never
//! changes the run's exit status. Never sent under `--dry-run`.

use std::time::Duration;

use crate::report::{ACTIONS, Action, Row};

/// How long the webhook may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The actions notified when `on:` is not given: anything that changed or
/// failed, not a run where every stack was up to date.
pub const DEFAULT_ON: [Action; 4] = [
    Action::Rebuilt,
    Action::Started,
    Action::RolledBack,
    Action::Failed,
];

/// A validated `notify:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// `http://` or `https://`.
    pub url: String,
    /// Notify when any row has one of these actions.
    pub on: Vec<Action>,
}

impl Notify {
    /// Whether this run's rows call for a notification.
    pub fn wanted(&self, rows: &[Row]) -> bool {
        rows.iter().any(|r| self.on.contains(&r.action))
    }

    /// The URL as it may be shown: scheme, host and port only.
    pub fn shown(&self) -> String {
        shown_url(&self.url)
    }

    /// POST `body` (the run's JSON document); the error in words.
    pub fn send(&self, body: &str) -> Result<(), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        agent
            .post(&self.url)
            .content_type("application/json")
            .send(body.as_bytes())
            .map(|_| ())
            .map_err(|e| match e {
                ureq::Error::StatusCode(code) => format!("the webhook answered HTTP {code}"),
                e => e.to_string(),
            })
    }
}

/// `scheme://host[:port]/…` of `url`: never its credentials, path or query.
pub fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let more = if rest.len() > authority.len() {
        "/…"
    } else {
        ""
    };
    format!("{scheme}://{host}{more}")
}

/// Whether `url` is one rbuild can post to.
/// The action an `on:` word names, if it names one.
pub fn action(word: &str) -> Option<Action> {
    ACTIONS.into_iter().find(|a| a.as_str() == word)
}

/// Whether `url` is an http:// or https:// URL.
pub fn valid_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;

    fn row(action: Action) -> Row {
        Row::new("h", "s", action, Reason::UpToDate)
    }

    #[test]
    fn a_notification_is_wanted_for_its_actions_and_shows_no_secret() {
        let n = Notify {
            url: "https://user:pw@hooks.example.com:8443/services/T0/B0/SECRET?x=1".into(),
            on: DEFAULT_ON.to_vec(),
        };
        assert!(!n.wanted(&[row(Action::Skipped)]));
        assert!(n.wanted(&[row(Action::Skipped), row(Action::RolledBack)]));
        assert_eq!(n.shown(), "https://hooks.example.com:8443/…");
        assert_eq!(shown_url("http://127.0.0.1:9"), "http://127.0.0.1:9");
        assert!(valid_url("http://127.0.0.1:9/x"));
        assert!(!valid_url("ftp://x"));
        assert!(!valid_url("https://"));
        assert!(!valid_url("http://a b"));
    }
}
