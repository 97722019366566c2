#!/usr/bin/python3
"""poll.py - a client that watches a service while it is rebuilt (scripts/bench/downtime.sh).

Usage:
  poll.py --http HOST:PORT [--every-ms 10] [--timeout-ms 500] OUT.json
  poll.py --docker-sock PATH --project P --service S [--every-ms 20] OUT.json

Polls until SIGTERM or SIGINT, then writes one JSON object to OUT.json.
  --http         a probe is one HTTP GET of `/` on a fresh TCP connection; it
                 succeeds on any HTTP answer within the timeout (a refused,
                 reset or silent connection fails).
  --docker-sock  a probe is one `GET /containers/json` of the engine's API (the
                 host's own engine, over its unix socket), filtered on the
                 compose project and service; it succeeds when at least one of
                 the service's containers runs and is healthy or has no
                 healthcheck (`docker ps` continuity: no port needed).
A probe starts every --every-ms (or at once after a slow one). An outage is a run
of failed probes: it lasts from the start of its first failed probe to the start
of the next successful one (so a single failed probe counts as about one
interval). Reported: probes, failed probes, outages, the longest outage and the
sum of all outages, in ms, each outage's start relative to the first probe, and
(--docker-sock) how many distinct healthy containers it saw (2: old and new).
"""
import argparse
import http.client
import json
import signal
import socket
import sys
import time
import urllib.parse


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def http_probe(host, port, timeout):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", "/")
        c.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        c.close()


SEEN = set()  # ids of the healthy containers the --docker-sock probe saw


def ps_probe(sock, project, service, timeout):
    filters = json.dumps(
        {
            "label": [
                f"com.docker.compose.project={project}",
                f"com.docker.compose.service={service}",
            ],
            "status": ["running"],
        }
    )
    c = UnixHTTPConnection(sock, timeout)
    try:
        c.request("GET", "/containers/json?filters=" + urllib.parse.quote(filters))
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            return False
        ok = False
        for ct in json.loads(body):
            status = ct.get("Status", "")
            # "Up 3 seconds (healthy)", "Up 1 second (health: starting)", "Up 2 minutes"
            if "(health: starting)" in status or "(unhealthy)" in status:
                continue
            SEEN.add(ct.get("Id"))
            ok = True
        return ok
    except (OSError, http.client.HTTPException, ValueError):
        return False
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http")
    ap.add_argument("--docker-sock")
    ap.add_argument("--project")
    ap.add_argument("--service")
    ap.add_argument("--every-ms", type=float, default=None)
    ap.add_argument("--timeout-ms", type=float, default=500)
    ap.add_argument("out")
    a = ap.parse_args()
    timeout = a.timeout_ms / 1000
    if a.http:
        host, port = a.http.rsplit(":", 1)
        probe = lambda: http_probe(host, int(port), timeout)  # noqa: E731
        every = (a.every_ms or 10) / 1000
    elif a.docker_sock and a.project and a.service:
        probe = lambda: ps_probe(a.docker_sock, a.project, a.service, timeout)  # noqa: E731
        every = (a.every_ms or 20) / 1000
    else:
        ap.error("--http, or --docker-sock with --project and --service")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    t0 = time.monotonic()
    probes = failed = 0
    outages = []  # [start, end] relative to t0, seconds
    down_since = None
    first_ok = None
    while not stop:
        t = time.monotonic()
        ok = probe()
        probes += 1
        if ok:
            if first_ok is None:
                first_ok = t - t0
            if down_since is not None:
                outages.append((down_since, t - t0))
                down_since = None
        else:
            failed += 1
            if down_since is None:
                down_since = t - t0
        left = every - (time.monotonic() - t)
        if left > 0 and not stop:
            time.sleep(left)
    end = time.monotonic() - t0
    open_outage = down_since is not None
    if open_outage:
        outages.append((down_since, end))
    ms = lambda s: round(s * 1000, 1)  # noqa: E731
    res = {
        "probes": probes,
        "failed": failed,
        "duration_ms": ms(end),
        "interval_ms": ms(every),
        "first_ok_ms": None if first_ok is None else ms(first_ok),
        "outages": len(outages),
        "longest_ms": ms(max((e - s for s, e in outages), default=0)),
        "total_ms": ms(sum(e - s for s, e in outages)),
        "outage_starts_ms": [ms(s) for s, _ in outages],
        "ended_down": open_outage,
    }
    if a.docker_sock:
        res["containers_seen"] = len(SEEN)
    with open(a.out, "w") as f:
        json.dump(res, f)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
