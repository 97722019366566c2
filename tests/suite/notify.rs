//! `notify:`: the run's JSON posted to a webhook (a small HTTP server of the
//! test's own) when something was rebuilt, rolled back or failed; never for
//! a run where nothing happened, a dry run or `--no-notify`; a webhook that
//! fails or is gone is an error line and never changes the exit status.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::support::*;

/// One request the webhook received.
#[derive(Debug, Clone)]
struct Request {
    line: String,
    content_type: String,
    body: String,
}

/// A webhook on 127.0.0.1 answering every request with `status`.
struct Hook {
    port: u16,
    got: Arc<Mutex<Vec<Request>>>,
    status: Arc<Mutex<u16>>,
}

impl Hook {
    fn new() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(200u16));
        let (g, st) = (got.clone(), status.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let (mut len, mut content_type) = (0usize, String::new());
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap_or((&h, ""));
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        "content-type" => content_type = v.trim().to_owned(),
                        _ => {}
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                g.lock().unwrap().push(Request {
                    line: line.trim().to_owned(),
                    content_type,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let code = *st.lock().unwrap();
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Hook { port, got, status }
    }

    fn requests(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }
}

/// The webhook hears of runs where something happened and never changes
/// the result. Beside it, `--metrics-file`: the run's results in the
/// Prometheus text format, the file replaced whole by each run (never under
/// `--dry-run`), readable by the collector; a file that cannot be written
/// is a warning, not a failure.
#[test]
fn the_webhook_hears_of_runs_where_something_happened_and_the_metrics_file_holds_each_run() {
    let f = Fleet::new("notify", 1);
    let name = f.add_stack("h1", "web", &StackDef::sleeper("v1"));
    let hook = Hook::new();
    let secret = "T000/B000/s3cr3tpath";
    let inventory = |port: u16| {
        format!(
            "{}notify:\n  url: http://127.0.0.1:{port}/{secret}\n",
            f.inventory_text()
        )
    };
    let run = |args: &[&str], port: u16| f.run_inventory(&inventory(port), args);

    let path = f.root.path().join("rbuild.prom");
    let p = path.to_str().unwrap();

    // a rebuild: one POST of the run's JSON document
    let r = run(&["--json", "--metrics-file", p], hook.port);
    r.assert_code(0);
    let got = hook.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].line, format!("POST /{secret} HTTP/1.1"));
    assert_eq!(got[0].content_type, "application/json");
    let doc: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(doc["results"][0]["stack"], name.as_str());
    assert_eq!(doc["results"][0]["action"], "rebuilt");
    assert_eq!(doc["exit_code"], 0);
    // the metrics file
    let text = std::fs::read_to_string(&path).unwrap();
    let line = format!(
        "rbuild_stack_result{{host=\"h1\",stack=\"{name}\",action=\"rebuilt\",reason=\"first_build\"}} 1"
    );
    assert!(text.contains(&line), "{line} in\n{text}");
    assert!(text.contains("rbuild_run_exit_code 0"), "{text}");
    assert!(
        text.contains("# TYPE rbuild_last_run_timestamp_seconds gauge"),
        "{text}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "the collector must read it");
    }
    // no temporary file is left beside it
    let siblings: Vec<_> = std::fs::read_dir(f.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("prom"))
        .collect();
    assert_eq!(siblings, ["rbuild.prom"]);

    // nothing happened, a dry run, --no-notify: nothing posted; the
    // metrics file is replaced by the next run, left as it was by a dry run
    run(&["--json", "--metrics-file", p], hook.port)
        .assert_code(0)
        .expect("h1", &name, "skipped", "up_to_date");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(
            &line
                .replace("rebuilt", "skipped")
                .replace("first_build", "up_to_date")
        ),
        "{text}"
    );
    assert!(!text.contains(&line), "{text}");
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    run(&["--json", "--dry-run", "--metrics-file", p], hook.port)
        .assert_code(0)
        .expect("h1", &name, "would_rebuild", "config_changed");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // a metrics file in a directory that does not exist: warned, the
    // run's status unchanged
    let bad = f.root.path().join("no/such/dir/rbuild.prom");
    let r = run(
        &[
            "--json",
            "--no-notify",
            "--metrics-file",
            bad.to_str().unwrap(),
        ],
        hook.port,
    );
    r.assert_code(0)
        .expect("h1", &name, "rebuilt", "config_changed");
    assert!(
        r.stderr.contains("could not write the metrics file"),
        "{}",
        r.dump()
    );
    assert_eq!(hook.requests().len(), 1);

    // the webhook fails: said on stderr (not its secret path), same result
    *hook.status.lock().unwrap() = 500;
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v3"));
    let r = run(&["--json", "-q"], hook.port);
    r.assert_code(0);
    r.expect("h1", &name, "rebuilt", "config_changed");
    assert_eq!(hook.requests().len(), 2);
    assert!(
        r.stderr.contains(&format!(
            "could not notify http://127.0.0.1:{}/…: the webhook answered HTTP 500",
            hook.port
        )),
        "{}",
        r.dump()
    );
    assert!(!r.stderr.contains(secret), "{}", r.dump());

    // the webhook is gone and the build fails: exit 1, as without notify
    let gone = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    f.write(&name, "Dockerfile", &dockerfile(Some("false"), "true"));
    let r = run(&["--json"], gone);
    r.assert_code(1);
    r.expect("h1", &name, "failed", "config_changed");
    assert!(
        r.stderr
            .contains(&format!("could not notify http://127.0.0.1:{gone}/…")),
        "{}",
        r.dump()
    );
}
