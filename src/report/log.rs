//! The look of a log event on stderr, in the words of every other line
//! rbuild writes there: `error: ...`, `warning: ...` (a `hint:` line of
//! the message kept as it is), and with `-v` `info: ...`, `-vv` `debug:
//! rbuild::module: ...`, `-vvv` `trace: rbuild::module: ...`. Not
//! tracing's ` WARN rbuild::ship:` look: a warning reads the same whether
//! `rbuild check` or a run's log printed it.

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The word a line of this level starts with.
pub fn word(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        _ => "trace",
    }
}

/// A log event's text as lines for stderr (pure): `word: message`, the
/// module after the word for `debug` and `trace` (where a developer looks
/// for it), coloured as [`super::paint_prefixes`] colours.
pub fn line(level: &Level, target: &str, message: &str, color: bool) -> String {
    let word = word(level);
    let text = if *level >= Level::DEBUG {
        format!("{word}: {target}: {message}\n")
    } else {
        format!("{word}: {message}\n")
    };
    super::paint_prefixes(&text, color)
}

/// The event format of rbuild's log (see the module's doc).
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// Colour the `error:`, `warning:` and `hint:` words.
    pub color: bool,
}

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut message = String::new();
        ctx.format_fields(Writer::new(&mut message), event)?;
        let meta = event.metadata();
        writer.write_str(&line(meta.level(), meta.target(), &message, self.color))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_reads_like_the_other_lines_of_stderr() {
        let t = "rbuild::ship";
        assert_eq!(
            line(&Level::WARN, t, "stack `php`: bad\nhint: fix it", false),
            "warning: stack `php`: bad\nhint: fix it\n"
        );
        assert_eq!(line(&Level::ERROR, t, "no", false), "error: no\n");
        assert_eq!(line(&Level::INFO, t, "1 host", false), "info: 1 host\n");
        assert_eq!(
            line(&Level::DEBUG, t, "hashed", false),
            "debug: rbuild::ship: hashed\n"
        );
        assert_eq!(
            line(&Level::TRACE, "rbuild::protocol", "@rbuild hello", false),
            "trace: rbuild::protocol: @rbuild hello\n"
        );
        assert_eq!(
            line(&Level::WARN, t, "bad\nhint: fix it", true),
            "\x1b[1;33mwarning:\x1b[0m bad\n\x1b[1;36mhint:\x1b[0m fix it\n"
        );
    }
}
