//! The inventory's text read for its shape, where the YAML parser only
//! says its indentation or its structure does not fit: `hosts:` written as
//! a list, `stacks:` as a list of paths, a tab in the indentation, the one
//! key that is out of line (at its own line, not where the parser gave up).

/// What is wrong with the shape: the line at fault (1-based), its column
/// (1-based, 0 for the whole line), the message and the hint.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Shape {
    pub(super) line: u64,
    pub(super) column: u64,
    pub(super) message: String,
    pub(super) hint: String,
}

/// A line of the text that holds YAML (not blank, not a comment, not in a
/// block scalar): its number, indentation and content.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    number: u64,
    indent: usize,
    text: &'a str,
}

impl<'a> Line<'a> {
    /// `key` of `key:` or `key: value` (or of `- key: value`).
    fn key(&self) -> Option<&'a str> {
        let t = self
            .text
            .strip_prefix("- ")
            .unwrap_or(self.text)
            .trim_start();
        let (k, _) = t.split_once(':')?;
        let k = k.trim().trim_matches(['"', '\'']);
        (!k.is_empty() && !k.contains(' ')).then_some(k)
    }

    /// A key with no value on its line: a block follows.
    fn opens(&self) -> bool {
        let t = strip_comment(self.text).trim_end();
        t.ends_with(':') || t == "-"
    }

    fn is_item(&self) -> bool {
        self.text == "-" || self.text.starts_with("- ")
    }

    /// `- name: web` or `- a: b`: an item whose map's keys line up after
    /// its `- `.
    fn item_map(&self) -> bool {
        self.is_item() && self.key().is_some()
    }

    /// `- VALUE`: an item that is one scalar.
    fn item_scalar(&self) -> Option<&'a str> {
        let v = self.text.strip_prefix("- ")?.trim();
        (!v.is_empty() && self.key().is_none()).then(|| strip_comment(v).trim())
    }

    fn shown(&self) -> String {
        match self.key() {
            Some(k) => format!("`{k}:`"),
            None => format!("`{}`", self.text),
        }
    }
}

fn strip_comment(t: &str) -> &str {
    match t.find(" #") {
        Some(i) => &t[..i],
        None => t,
    }
}

/// The lines that hold YAML; lines of block scalars (`|`, `>`) skipped.
fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut scalar_above: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let body = raw.trim_start_matches([' ', '\t']);
        let indent = raw.len() - body.len();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        if let Some(at) = scalar_above {
            if indent > at {
                continue;
            }
            scalar_above = None;
        }
        let line = Line {
            number: i as u64 + 1,
            indent,
            text: body.trim_end(),
        };
        let t = strip_comment(line.text).trim_end();
        if ["|", "|-", "|+", ">", ">-", ">+"]
            .iter()
            .any(|m| t.ends_with(&format!(": {m}")) || t == format!("- {m}"))
        {
            scalar_above = Some(indent);
        }
        out.push(line);
    }
    out
}

/// The shape at fault for the parser's `message` at `line` (1-based, 0 when
/// it gave none), or `None` to keep the parser's words.
pub(super) fn explain(text: &str, line: u64, message: &str) -> Option<Shape> {
    if let Some(s) = tab(text, line, message) {
        return Some(s);
    }
    let all = lines(text);
    let structural = [
        "expected mapping start",
        "expected sequence start",
        "invalid type: sequence",
        "invalid type: string",
        "expected a map",
        "expected a sequence",
    ];
    if structural.iter().any(|p| message.contains(p))
        && let Some(s) = wrong_kind(&all, line)
    {
        return Some(s);
    }
    let indentation = [
        "did not find expected key",
        "mapping values are not allowed",
        "block mapping",
        "bad indentation",
        "expected mapping start",
        // a key out of line may be read as part of the value above it
        "missing field",
    ];
    if indentation.iter().any(|p| message.contains(p)) {
        return out_of_line(&all);
    }
    None
}

/// A tab in the indentation: YAML indents with spaces only.
fn tab(text: &str, line: u64, message: &str) -> Option<Shape> {
    // a block scalar's text may hold tabs of its own
    let yaml: std::collections::BTreeSet<u64> = lines(text).iter().map(|l| l.number).collect();
    let (number, raw) = text.lines().enumerate().find(|(i, l)| {
        let lead = &l[..l.len() - l.trim_start_matches([' ', '\t']).len()];
        lead.contains('\t')
            && yaml.contains(&(*i as u64 + 1))
            && (message.contains("tab") || line == 0 || (*i as u64) < line)
    })?;
    let lead = &raw[..raw.len() - raw.trim_start_matches([' ', '\t']).len()];
    Some(Shape {
        line: number as u64 + 1,
        column: lead.find('\t').map(|c| c as u64 + 1).unwrap_or(0),
        message: "a tab in the indentation: YAML indents with spaces only".into(),
        hint: "replace the tab by spaces, as many as the keys in line with it have".into(),
    })
}

/// The line that owns `at`: the nearest key above it that opens a block
/// holding it.
fn owner<'a>(all: &[Line<'a>], at: usize) -> Option<Line<'a>> {
    let me = all[at];
    all[..at]
        .iter()
        .rev()
        .find(|l| l.indent < me.indent || (l.indent == me.indent && me.is_item() && !l.is_item()))
        .copied()
}

/// The owner's place: `hosts`, `stacks` at the top, or a host's `stacks`.
fn path_of<'a>(all: &[Line<'a>], key_line: Line<'a>) -> Vec<&'a str> {
    let mut path = vec![key_line.key().unwrap_or("")];
    let mut indent = key_line.indent;
    for l in all.iter().rev().skip_while(|l| l.number >= key_line.number) {
        if l.indent < indent
            && let Some(k) = l.key()
        {
            path.insert(0, k);
            indent = l.indent;
        }
    }
    path
}

/// A list where a map goes (`hosts:` as `- web1`), paths where stacks go,
/// one value where a list goes (`stacks: web/compose.yml`).
fn wrong_kind(all: &[Line<'_>], line: u64) -> Option<Shape> {
    let at = all.iter().position(|l| l.number == line)?;
    let me = all[at];
    // `key: value` where a block goes: the value on the key's own line
    if !me.opens() && !me.is_item() && me.key().is_some() {
        let key = me.key()?;
        let path = path_of(all, me);
        let (message, hint) = match path.as_slice() {
            ["hosts", _, "stacks"] => (
                "a host's `stacks:` is one value: it lists the host's stacks".to_owned(),
                "write each stack as an item under `stacks:`: `- name: web` and, in line with `name:`, `compose_file: web/compose.yml`".to_owned(),
            ),
            ["hosts"] => (
                "`hosts:` is one value: it is a map from each host's name to its keys".to_owned(),
                "write each host under `hosts:` as `web1:`, its keys (`address:`, `stacks:`) indented below it".to_owned(),
            ),
            _ => (
                format!("`{key}:` is one value where a block goes"),
                format!("write what `{key}:` holds on the lines below it, indented"),
            ),
        };
        return Some(Shape {
            line: me.number,
            column: me.indent as u64 + 1,
            message,
            hint,
        });
    }
    if !me.is_item() {
        return None;
    }
    let key_line = owner(all, at)?;
    let path = path_of(all, key_line);
    let name = me
        .item_scalar()
        .map(str::to_owned)
        .or_else(|| {
            me.text
                .strip_prefix("- ")
                .and_then(|t| t.trim().strip_prefix("name:"))
                .map(|n| n.trim().to_owned())
        })
        .unwrap_or_else(|| "web1".into());
    let (message, hint) = match path.as_slice() {
        ["hosts"] => (
            "`hosts:` is written as a list: it is a map from each host's name to its keys".to_owned(),
            format!(
                "write `{name}:` under `hosts:`, not `- {name}`, and its keys (`address:`, `stacks:`) indented below it"
            ),
        ),
        ["stacks"] => (
            "the top-level `stacks:` is written as a list: it is a map from each shared stack's name to its keys".to_owned(),
            format!(
                "write `{}:` under `stacks:`, and its keys (`compose_file:`, `hosts:` or `groups:`) indented below it",
                stack_name(&name)
            ),
        ),
        ["hosts", _, "stacks"] if me.item_scalar().is_some() => (
            format!("a host's `stacks:` lists `{name}` as a path: each item is a stack with `name:` and `compose_file:`"),
            format!(
                "write `- name: {}` and, in line with `name:`, `compose_file: {name}`",
                stack_name(&name)
            ),
        ),
        _ => {
            let key = key_line.key().unwrap_or("the block");
            (
                format!("`{key}:` is written as a list where a map goes"),
                format!("write the keys of `{key}:` as `key: value` lines below it, without `- `"),
            )
        }
    };
    Some(Shape {
        line: me.number,
        column: me.indent as u64 + 1,
        message,
        hint,
    })
}

/// A stack's name from a path such as `web/compose.yml`: its directory.
fn stack_name(path: &str) -> String {
    let p = std::path::Path::new(path);
    let dir = if p.extension().is_some() {
        p.parent().and_then(|d| d.file_name())
    } else {
        p.file_name()
    };
    dir.map(|d| d.to_string_lossy().into_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "web".into())
}

/// The indentation step the file uses most (2 when it shows none).
fn step(all: &[Line<'_>]) -> usize {
    let mut counts = std::collections::BTreeMap::new();
    for w in all.windows(2) {
        if w[1].indent > w[0].indent && w[0].opens() {
            *counts.entry(w[1].indent - w[0].indent).or_insert(0) += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(s, n)| (*n, std::cmp::Reverse(*s)))
        .map(|(s, _)| s)
        .unwrap_or(2)
}

/// The first key out of line with its block, at its own line: deeper
/// than a key that has a value, or at a column no open block has. Between
/// two blocks' first keys, the one off the file's usual step is at fault.
fn out_of_line(all: &[Line<'_>]) -> Option<Shape> {
    let step = step(all);
    // open blocks: their indentation and the first line at it
    let mut levels: Vec<(usize, Line<'_>)> = Vec::new();
    let mut prev: Option<Line<'_>> = None;
    let hint = "indent every key of a block by the same number of spaces: a host's keys under its name, its stacks' items under `stacks:`".to_owned();
    for l in all.iter().copied() {
        let top = levels.last().map(|(i, _)| *i);
        match (top, prev) {
            (None, _) => levels.push((l.indent, l)),
            (Some(t), Some(p)) if l.indent > t => {
                if !p.opens() {
                    return Some(Shape {
                        line: l.number,
                        column: l.indent as u64 + 1,
                        message: format!(
                            "{} is indented {} spaces, deeper than {} above it, which has a value of its own",
                            l.shown(),
                            l.indent,
                            p.shown()
                        ),
                        hint: format!(
                            "put {} in line with {}, or under the key it belongs to",
                            l.shown(),
                            p.shown()
                        ),
                    });
                }
                levels.push((l.indent, l));
            }
            (Some(_), _) => {
                let mut popped = None;
                while let Some(&(i, first)) = levels.last() {
                    if i <= l.indent {
                        break;
                    }
                    popped = Some((i, first));
                    levels.pop();
                }
                let top = levels.last().map(|(i, _)| *i).unwrap_or(0);
                if top != l.indent {
                    let Some((p, first)) = popped else {
                        levels.push((l.indent, l));
                        prev = Some(l);
                        continue;
                    };
                    // `first` opened the block `l` leaves: which of the two is off?
                    let parent = levels.last().map(|(_, f)| *f);
                    if p != top + step && l.indent == top + step {
                        return Some(Shape {
                            line: first.number,
                            column: first.indent as u64 + 1,
                            message: format!(
                                "{} is indented {} spaces, the next key of its block ({}) {}",
                                first.shown(),
                                first.indent,
                                l.shown(),
                                l.indent
                            ),
                            hint,
                        });
                    }
                    let around = match parent {
                        Some(par) => {
                            format!("{} is at {}, {} at {}", first.shown(), p, par.shown(), top)
                        }
                        None => format!("{} is at {}", first.shown(), p),
                    };
                    return Some(Shape {
                        line: l.number,
                        column: l.indent as u64 + 1,
                        message: format!(
                            "{} is indented {} spaces, in line with no block above it ({around})",
                            l.shown(),
                            l.indent
                        ),
                        hint,
                    });
                }
            }
        }
        if l.item_map() {
            let inner = l.indent + 2;
            if levels.last().map(|(i, _)| *i) != Some(inner) {
                levels.push((inner, l));
            }
        }
        prev = Some(l);
    }
    None
}
