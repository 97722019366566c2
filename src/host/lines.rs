//! Reading what a host prints, bounded: lines cut at [`MAX_LINE`] bytes and
//! decoded lossily (an rc file may print anything, invalid UTF-8 included),
//! and of stderr only its tail. A host that floods either never makes the
//! controller hold more than a few kilobytes for it.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};

/// The longest line kept; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 64 * 1024;

/// How much of stderr is kept: its last bytes, of which the last lines.
const TAIL_BYTES: usize = 8 * 1024;
const TAIL_LINES: usize = 10;

/// Lines of a stream, each at most [`MAX_LINE`] bytes.
pub struct Lines<R> {
    r: R,
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    pub fn new(r: R) -> Lines<R> {
        Lines { r }
    }

    /// The next line without its newline, `None` at the end. A last line
    /// without a newline is a line.
    pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        let mut line: Vec<u8> = Vec::new();
        let mut any = false;
        loop {
            let buf = self.r.fill_buf().await?;
            if buf.is_empty() {
                return Ok(any.then(|| String::from_utf8_lossy(&line).into_owned()));
            }
            any = true;
            let (chunk, used, end) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            let room = MAX_LINE.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.r.consume(used);
            if end {
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
        }
    }
}

/// The last lines a stream carries, once it closes, for error messages; it
/// is read to its end but only its last [`TAIL_BYTES`] are kept.
pub async fn tail(mut r: impl AsyncRead + Unpin) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * TAIL_BYTES {
            kept.drain(..kept.len() - TAIL_BYTES);
        }
    }
    if kept.len() > TAIL_BYTES {
        kept.drain(..kept.len() - TAIL_BYTES);
    }
    let s = String::from_utf8_lossy(&kept);
    let tail: Vec<&str> = s.lines().rev().take(TAIL_LINES).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(bytes: &[u8]) -> Vec<String> {
        let mut l = Lines::new(tokio::io::BufReader::with_capacity(7, bytes));
        let mut out = vec![];
        while let Some(x) = l.next_line().await.unwrap() {
            out.push(x);
        }
        out
    }

    #[tokio::test]
    async fn lines_are_cut_and_decoded_lossily() {
        assert_eq!(lines_of(b"a\nbc\n\nlast").await, ["a", "bc", "", "last"]);
        assert_eq!(lines_of(b"").await, Vec::<String>::new());
        assert_eq!(lines_of(b"\xff\xfeok\n").await, ["\u{fffd}\u{fffd}ok"]);
        let long = vec![b'x'; 3 * MAX_LINE];
        let mut input = long.clone();
        input.extend_from_slice(b"\nnext\n");
        let got = lines_of(&input).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), MAX_LINE);
        assert_eq!(got[1], "next");
    }

    #[tokio::test]
    async fn the_tail_is_bounded() {
        let mut flood = Vec::new();
        for i in 0..100_000 {
            flood.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let t = tail(&flood[..]).await;
        assert_eq!(t.lines().count(), TAIL_LINES);
        assert!(t.ends_with("line 99999"), "{t}");
        assert_eq!(tail(&b"only\n"[..]).await, "only");
    }
}
