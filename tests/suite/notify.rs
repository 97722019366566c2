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

#[test]
fn the_webhook_hears_of_runs_where_something_happened_and_never_changes_the_result() {
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

    // a rebuild: one POST of the run's JSON document
    let r = run(&["--json"], hook.port);
    r.assert_code(0);
    let got = hook.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].line, format!("POST /{secret} HTTP/1.1"));
    assert_eq!(got[0].content_type, "application/json");
    let doc: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(doc["results"][0]["stack"], name.as_str());
    assert_eq!(doc["results"][0]["action"], "rebuilt");
    assert_eq!(doc["exit_code"], 0);

    // nothing happened, a dry run, --no-notify: nothing posted
    run(&["--json"], hook.port)
        .assert_code(0)
        .expect("h1", &name, "skipped", "up_to_date");
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    run(&["--json", "--dry-run"], hook.port).assert_code(0);
    run(&["--json", "--no-notify"], hook.port)
        .assert_code(0)
        .expect("h1", &name, "rebuilt", "config_changed");
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
