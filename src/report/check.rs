//! `rbuild check`'s report (pure): `ok: N hosts, M stacks` on stdout, or
//! each problem as `error:`/`hint:` lines on stderr; under `--json`, one
//! document on stdout (version 2, `schemas/check.schema.json`), always
//! this one, also when the inventory itself could not be read (the lines
//! stay on stderr).

use serde::Serialize;

use super::Rendered;

/// One thing wrong, as `error:` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `FILE:LINE: what` or `host `H`, stack `S`: what`.
    pub error: String,
    pub hint: Option<String>,
}

/// What `rbuild check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The hosts checked.
    pub hosts: usize,
    /// The stacks checked, one per stack of a host.
    pub stacks: usize,
    pub problems: Vec<Problem>,
}

#[derive(Serialize)]
struct Doc<'a> {
    version: u32,
    ok: bool,
    hosts: usize,
    stacks: usize,
    errors: &'a [Problem],
    exit_code: u8,
}

/// The report, as text or (`json`) the document.
pub fn render(c: &Checked, json: bool, exit_code: u8) -> Rendered {
    let mut err = String::new();
    for p in &c.problems {
        if !p.error.is_empty() {
            err.push_str(&format!("error: {}\n", p.error));
        }
        if let Some(h) = &p.hint {
            err.push_str(&format!("hint: {h}\n"));
        }
    }
    if json {
        return Rendered {
            stdout: super::json::pretty(&Doc {
                version: super::json::VERSION,
                ok: c.problems.is_empty(),
                hosts: c.hosts,
                stacks: c.stacks,
                errors: &c.problems,
                exit_code,
            }),
            stderr: err,
        };
    }
    if c.problems.is_empty() {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        return Rendered::out(format!(
            "ok: {}, {}\n",
            plural(c.hosts, "host"),
            plural(c.stacks, "stack")
        ));
    }
    Rendered::err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(problems: Vec<Problem>) -> Checked {
        Checked {
            hosts: 2,
            stacks: 3,
            problems,
        }
    }

    #[test]
    fn all_fine_is_one_line_on_stdout() {
        let r = render(&checked(vec![]), false, 0);
        insta::assert_snapshot!(r.stdout, @"ok: 2 hosts, 3 stacks");
        assert_eq!(r.stderr, "");
    }

    #[test]
    fn each_problem_is_an_error_and_its_hint_on_stderr() {
        let r = render(
            &checked(vec![
                Problem {
                    error: "inv.yaml:4: host `a`, stack `web`: compose.yaml does not parse".into(),
                    hint: Some("compose would refuse it too".into()),
                },
                Problem {
                    error: "host `b`, stack `db`: /srv/db cannot be read".into(),
                    hint: None,
                },
            ]),
            false,
            2,
        );
        assert_eq!(r.stdout, "");
        insta::assert_snapshot!(r.stderr);
    }

    #[test]
    fn the_document_lists_the_errors() {
        let r = render(
            &checked(vec![Problem {
                error: "bad".into(),
                hint: None,
            }]),
            true,
            2,
        );
        super::super::json::assert_valid("check", &r.stdout);
        assert_eq!(r.stderr, "error: bad\n", "the lines stay on stderr");
        insta::assert_snapshot!(r.stdout);
        let fine = render(&checked(vec![]), true, 0).stdout;
        super::super::json::assert_valid("check", &fine);
    }
}
