#!/usr/bin/python3
"""delayfwd.py - a delaying TCP forwarder for scripts/bench.sh (no netem here).

Usage:
  delayfwd.py --rtt-ms MS --map LISTEN_IP:PORT=TARGET_IP:PORT [--map ...]
  delayfwd.py --rtt-ms MS --hosts-file hosts.txt --listen-port P [--target-port 22]

hosts.txt is testhosts.sh's "hN IP" file: one listener IP:P -> IP:22 per host.
One asyncio process serves every listener. Model of a link with round-trip
time RTT (no bandwidth limit, no loss):
  - every chunk read on one side is written to the other side RTT/2 later,
    in order, each direction independently (half-close is delayed the same);
  - the upstream connection is opened 1.5 RTT after the client's connect, so
    the first byte the server sends reaches the client 2 RTT after connect(),
    as with a real TCP handshake (SYN, SYN-ACK, ACK, then the server's banner).
Prints "ready N" on stdout once every listener is bound; runs until SIGTERM.
"""
import argparse
import asyncio
import signal
import socket
import sys


async def pump(reader, writer, delay, loop):
    """Copy reader -> writer, each chunk delivered `delay` s after it was read."""
    q = asyncio.Queue()

    async def read_side():
        try:
            while True:
                data = await reader.read(65536)
                q.put_nowait((loop.time() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            q.put_nowait((loop.time() + delay, None))

    async def write_side():
        try:
            while True:
                due, data = await q.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:  # error on the read side: abort
                    writer.transport.abort()
                    return
                if not data:  # EOF: half-close
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    r = asyncio.ensure_future(read_side())
    try:
        await write_side()
    finally:
        r.cancel()


async def handle(client_r, client_w, target, rtt, loop):
    half = rtt / 2.0
    try:
        if rtt > 0:
            await asyncio.sleep(1.5 * rtt)
        try:
            up_r, up_w = await asyncio.open_connection(*target)
        except OSError:
            client_w.transport.abort()
            return
        for w in (client_w, up_w):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(
            pump(client_r, up_w, half, loop),
            pump(up_r, client_w, half, loop),
            return_exceptions=True,
        )
        for w in (client_w, up_w):
            w.close()
    except Exception as e:  # never let one connection kill the forwarder
        print(f"delayfwd: {e!r}", file=sys.stderr)
        client_w.transport.abort()


def parse_addr(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtt-ms", type=float, required=True)
    ap.add_argument("--map", action="append", default=[])
    ap.add_argument("--hosts-file")
    ap.add_argument("--listen-port", type=int)
    ap.add_argument("--target-port", type=int, default=22)
    a = ap.parse_args()
    pairs = []
    for m in a.map:
        l, t = m.split("=", 1)
        pairs.append((parse_addr(l), parse_addr(t)))
    if a.hosts_file:
        with open(a.hosts_file) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    ip = parts[1]
                    pairs.append(((ip, a.listen_port), (ip, a.target_port)))
    rtt = a.rtt_ms / 1000.0
    loop = asyncio.get_running_loop()
    servers = []
    for (lh, lp), target in pairs:
        servers.append(
            await asyncio.start_server(
                lambda r, w, t=target: handle(r, w, t, rtt, loop),
                lh, lp, backlog=1024, reuse_address=True,
            )
        )
    print(f"ready {len(servers)}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
