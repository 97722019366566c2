//! The remote side and its protocol, in one place: the POSIX sh script that
//! does all work on a host ([`script`], `sh/head.sh`), the typed calls the
//! controller makes of it ([`call`]), the `@rbuild` lines it prints
//! ([`event`]), the result and state words in them ([`words`]) and the
//! typed answers they make up ([`answer`]).
//! `PROTOCOL.md` beside this file lists every line, every argument and
//! every file the script keeps on a host, with their versions.
//!
//! Pure: building command lines and decoding output, no I/O. The host seam
//! ([`crate::host`]) runs a [`Call`] and hands back its [`Transcript`].

pub mod answer;
pub mod call;
pub mod event;
pub mod script;
pub mod words;

pub use answer::{
    ApplyAnswer, CheckAnswer, FailedAttempt, HistoryAnswer, RemoteError, Results, Service,
    StackResult, StatusAnswer, StatusStack, Transcript, apply_answer, check_answer, history_answer,
    logs_answer, rollback_answer, status_answer,
};
pub use call::{
    Announced, Apply, ApplyStack, Call, Check, CheckStack, History, Logs, Place, Rollback,
    StackMode, StackOptions, Status,
};
pub use event::{
    Attempt, BadState, Cause, Event, Generation, Outcome, Recorded, StackState, Token, parse_line,
};
pub use words::{AttemptResult, Base, Health, LastResult, ServiceState};

/// The protocol version this controller speaks; `sh/head.sh` says the same
/// in `rbuild_proto` (a unit test keeps them equal), refuses any other, and
/// names it in its `hello` line, which the controller checks.
pub const PROTOCOL: u32 = 4;

/// The state file version this controller's script writes (`sh/head.sh`'s
/// `state_version`). The controller reads this one and the older ones
/// ([`event::OLDEST_STATE_VERSION`]); a state file in any other version is
/// an error for its stack, never read as if it were one of them.
pub const STATE_VERSION: u32 = 2;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The value of `NAME=...` at the start of a line of the script.
    fn script_value(name: &str) -> String {
        script::source()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("the script sets {name}"))
            .to_owned()
    }

    #[test]
    fn the_script_speaks_this_protocol_and_state_version() {
        assert_eq!(script_value("rbuild_proto"), PROTOCOL.to_string());
        assert_eq!(script_value("state_version"), STATE_VERSION.to_string());
        assert_eq!(
            script_value("clock_slack"),
            crate::decide::CLOCK_SLACK.to_string()
        );
    }

    /// The kind of every line the script can print for the controller:
    /// `$m KIND` (`$m` being `@rbuild:TOKEN`), or `%s KIND` in the printf
    /// that ends the check.
    fn printed_kinds() -> BTreeSet<String> {
        script::source()
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| {
                ["$m ", "%s end"].into_iter().flat_map(move |p| {
                    l.match_indices(p)
                        .map(move |(i, _)| &l[i + p.len() - if p == "%s end" { 3 } else { 0 }..])
                })
            })
            .map(|rest| {
                rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn every_line_the_script_prints_is_documented_and_parsed() {
        let kinds = printed_kinds();
        assert_eq!(
            kinds.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "caps",
                "done",
                "end",
                "fatal",
                "generation",
                "hello",
                "history",
                "log",
                "note",
                "service",
                "state",
                "step"
            ]
        );
        let doc = include_str!("PROTOCOL.md");
        let mut documented = BTreeSet::new();
        let token = Token::fixed("TOKEN");
        for line in doc.lines().filter(|l| l.starts_with("@rbuild:TOKEN ")) {
            let ev = parse_line(line, &token)
                .unwrap_or_else(|| panic!("PROTOCOL.md: `{line}` does not parse"));
            let kind = line.split(' ').nth(1).unwrap().to_owned();
            let parsed_kind = match ev {
                Event::Hello { .. } => "hello",
                Event::State { .. } => "state",
                Event::Step { .. } => "step",
                Event::Note { .. } => "note",
                Event::Log { .. } => "log",
                Event::Done { .. } => "done",
                Event::History { .. } => "history",
                Event::Generation { .. } => "generation",
                Event::Fatal { .. } => "fatal",
                Event::Service { .. } => "service",
                Event::End { .. } => "end",
                Event::Caps { .. } => "caps",
            };
            assert_eq!(kind, parsed_kind, "{line}");
            documented.insert(kind);
        }
        assert_eq!(
            documented, kinds,
            "every kind has an example in PROTOCOL.md"
        );
        // and the documented hello is this protocol's
        assert!(doc.contains(&format!("@rbuild:TOKEN hello proto={PROTOCOL} ")));
        assert!(doc.starts_with(&format!("# The remote protocol, version {PROTOCOL}\n")));
    }
}
