//! Faults on the wire, as TCP forwarders to a host's sshd: [`Cutter`] cuts
//! each connection once the controller has sent a number of bytes (a link
//! that dies while the payload is being shipped); [`Slow`] delays every
//! chunk both ways and bounds its size (a slow, high-latency link: this
//! kernel has no netem).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

/// Listens on 127.0.0.1 (a port of its own) and forwards every connection
/// to `target`; a connection is cut (both ways, both sockets shut down)
/// once `cut_after` bytes went from the client to the target. Stops
/// accepting on drop.
pub struct Cutter {
    pub port: u16,
    /// Connections that were cut.
    cuts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Cutter {
    pub fn new(target: SocketAddr, cut_after: u64) -> Cutter {
        let cuts = Arc::new(AtomicU64::new(0));
        let c = cuts.clone();
        let (port, stop) = listen(target, move |client, server| {
            forward(client, server, cut_after, &c)
        });
        Cutter { port, cuts, stop }
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        stop(self.port, &self.stop);
    }
}

/// Listen on a port of its own on 127.0.0.1; each connection, with a new
/// one to `target`, goes to `each` on a thread of its own, until the flag
/// returned is set (see [`stop`]). Returns the port and the flag.
fn listen(
    target: SocketAddr,
    each: impl Fn(TcpStream, TcpStream) + Send + Sync + 'static,
) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port for the forwarder");
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let (s, each) = (stop.clone(), Arc::new(each));
    thread::spawn(move || {
        for client in listener.incoming() {
            if s.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let each = each.clone();
            thread::spawn(move || each(client, server));
        }
    });
    (port, stop)
}

/// Stop a forwarder's accept loop: set its flag and wake it.
fn stop(port: u16, flag: &AtomicBool) {
    flag.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect(("127.0.0.1", port));
}

/// Copy both ways; after `budget` bytes from the client, cut.
fn forward(client: TcpStream, server: TcpStream, budget: u64, cuts: &AtomicU64) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut s_read, mut c_write) = (server.try_clone().unwrap(), client.try_clone().unwrap());
    let back = thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    });
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = (budget - sent).min(n as u64) as usize;
        if s_write.write_all(&buf[..room]).is_err() {
            break;
        }
        sent += room as u64;
        if sent >= budget {
            cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
    }
    // the link is gone: neither side hears from the other again
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = back.join();
}

/// Listens on 127.0.0.1 (a port of its own) and forwards every connection
/// to `target`, each way in chunks of at most `chunk` bytes, each sent
/// `delay` after it was read: a link with that much added latency and a
/// throughput of at most `chunk / delay`. Stops accepting on drop.
pub struct Slow {
    pub port: u16,
    /// Bytes forwarded from the client to the target so far.
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Slow {
    pub fn new(target: SocketAddr, delay: std::time::Duration, chunk: usize) -> Slow {
        let sent = Arc::new(AtomicU64::new(0));
        let c = sent.clone();
        let (port, stop) = listen(target, move |client, server| {
            let (cr, sw) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let c = c.clone();
            let up = thread::spawn(move || slow_copy(cr, sw, delay, chunk, Some(&c)));
            slow_copy(server, client, delay, chunk, None);
            let _ = up.join();
        });
        Slow { port, sent, stop }
    }

    /// Bytes the controller sent through the link so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        stop(self.port, &self.stop);
    }
}

/// Copy `from` to `to` in delayed chunks; close `to`'s write side at the end.
fn slow_copy(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: std::time::Duration,
    chunk: usize,
    count: Option<&AtomicU64>,
) {
    let mut buf = vec![0u8; chunk];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        thread::sleep(delay);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(c) = count {
            c.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
