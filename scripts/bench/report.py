#!/usr/bin/python3
"""report.py - summarise scripts/bench.sh's results.jsonl as Markdown tables.

Usage: report.py RESULTS.jsonl [HEADER.md]
Times are wall-clock seconds: median over the repetitions, [min-max].
"""
import json
import statistics as st
import sys
from collections import defaultdict


def med(xs):
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None


def f(x, nd=2):
    return "n/a" if x is None else f"{x:.{nd}f}"


def rng(xs, nd=2):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    return f"{f(med(xs), nd)} [{f(min(xs), nd)}–{f(max(xs), nd)}]"


def paired(fl, rb):
    """Median over repetitions of rbuild's wall / the floor's of the same
    repetition (the two run back to back, in alternating order): a drift in
    the machine's speed between repetitions cancels out."""
    by_rep = {r.get("rep"): r["wall_s"] for r in fl}
    rs = [r["wall_s"] / by_rep[r.get("rep")] for r in rb if by_rep.get(r.get("rep"))]
    return med(rs)


def fit(points):
    """least-squares line through (n, t): slope s/host, intercept s"""
    if len({n for n, _ in points}) < 2:
        return None, None
    mx = st.mean(n for n, _ in points)
    my = st.mean(t for _, t in points)
    sxx = sum((n - mx) ** 2 for n, _ in points)
    sxy = sum((n - mx) * (t - my) for n, t in points)
    b = sxy / sxx
    return b, my - b * mx


def per_host(rs, key):
    """per-host count as 'a' or 'a–b' over all runs, from [min,max] pairs"""
    lo = min((r[key][0] for r in rs if key in r), default=None)
    hi = max((r[key][1] for r in rs if key in r), default=None)
    if lo is None:
        return "n/a"
    return str(lo) if lo == hi else f"{lo}–{hi}"


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
    out = []
    if len(sys.argv) > 2:
        out.append(open(sys.argv[2]).read().rstrip() + "\n")
    P = out.append

    # --- up to date -------------------------------------------------------
    g = defaultdict(list)
    for r in rows:
        if r.get("case") == "uptodate":
            g[(int(r["n"]), int(r["rtt"]), r["kex"], r["tool"])].append(r)
    keys = sorted({k[:3] for k in g}, key=lambda k: (k[1], k[2], k[0]))
    if keys:
        P("## Up-to-date run (the nightly cron case): `rbuild -q` vs the floor\n")
        P("Floor: one fresh `ssh -F CFG hK true` per host, same concurrency (`xargs -P J`). "
          "Wall seconds, median [min–max] over the repetitions. Ratio = rbuild median / floor median; "
          "paired = median over the repetitions of rbuild / floor within one repetition (the two ran back to "
          "back, in alternating order, so a drift of the machine's speed cancels out); 'min ratio' = rbuild min / floor min (noise only "
          "ever adds time, so on a shared machine the minima are the steadier estimate); "
          "CPU ratio = (client + sshd-side CPU of rbuild) / (the same for the floor), medians: "
          "independent of other load, and what the wall ratio tends to when everything is CPU-bound.\n")
        P("| N | RTT ms | kex | floor s | rbuild s | ratio | paired | min ratio | CPU ratio | cmds/host | handshakes/host | "
          "rbuild peak RSS MiB (own / wait4) | rbuild own CPU s | rbuild+waited ssh CPU s | "
          "client CPU s rbuild / floor | sshd-side CPU s rbuild / floor | other load CPU s | failures |")
        P("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for k in keys:
            fl, rb = g.get(k + ("floor",), []), g.get(k + ("rbuild",), [])
            fm, rm = med([r["wall_s"] for r in fl]), med([r["wall_s"] for r in rb])
            ratio = f"{rm / fm:.2f}" if fm and rm else "n/a"
            hwm = med([r.get("hwm_kb") for r in rb])
            mrss = med([r.get("maxrss_kb") for r in rb])
            fmin = min((r["wall_s"] for r in fl), default=None)
            rmin = min((r["wall_s"] for r in rb), default=None)
            mratio = f"{rmin / fmin:.2f}" if fmin and rmin else "n/a"
            def tot(rs):
                return med([(r.get("cg_client_cpu_s") or 0) + (r.get("cg_server_cpu_s") or 0)
                            if r.get("cg_client_cpu_s") is not None else None for r in rs])
            ft, rt = tot(fl), tot(rb)
            cratio = f"{rt / ft:.2f}" if ft and rt else "n/a"
            fails = sum(1 for r in fl + rb if r.get("rc") != 0)
            P(f"| {k[0]} | {k[1]} | {k[2]} | {rng([r['wall_s'] for r in fl])} | "
              f"{rng([r['wall_s'] for r in rb])} | {ratio} | {f(paired(fl, rb))} | {mratio} | {cratio} | {per_host(rb, 'sessions_per_host')} "
              f"(floor {per_host(fl, 'sessions_per_host')}) | {per_host(rb, 'accepted_per_host')} "
              f"(floor {per_host(fl, 'accepted_per_host')}) | "
              f"{f(hwm / 1024 if hwm else None, 1)} / {f(mrss / 1024 if mrss else None, 1)} | "
              f"{f(med([r.get('self_cpu_s') for r in rb]))} | {f(med([r.get('cpu_s') for r in rb]))} | "
              f"{f(med([r.get('cg_client_cpu_s') for r in rb]))} / {f(med([r.get('cg_client_cpu_s') for r in fl]))} | "
              f"{f(med([r.get('cg_server_cpu_s') for r in rb]))} / {f(med([r.get('cg_server_cpu_s') for r in fl]))} | "
              f"{f(med([r.get('other_cpu_s') for r in fl + rb]), 1)} | {fails} |")
        P("")
        # the digest checks: rbuild (registries asked) against --no-digests and the floor
        nd = [k for k in keys if g.get(k + ("rbuild-nodigests",))]
        if nd:
            P("### The registry digest checks\n")
            P("rbuild asks each distinct image reference's registry once a run (a manifest HEAD), in parallel "
              "with the SSH checks. Wall seconds, median [min–max]; ratios against the floor of the same repetitions.\n")
            P("| N | RTT ms | kex | floor s | rbuild s | ratio | paired | rbuild --no-digests s | ratio | paired |")
            P("|---|---|---|---|---|---|---|---|---|---|")
            for k in nd:
                fl, rb, no = g.get(k + ("floor",), []), g.get(k + ("rbuild",), []), g.get(k + ("rbuild-nodigests",), [])
                fm, rm, nm = med([r["wall_s"] for r in fl]), med([r["wall_s"] for r in rb]), med([r["wall_s"] for r in no])
                P(f"| {k[0]} | {k[1]} | {k[2]} | {rng([r['wall_s'] for r in fl])} | {rng([r['wall_s'] for r in rb])} | "
                  f"{f(rm / fm if fm and rm else None)} | {f(paired(fl, rb))} | {rng([r['wall_s'] for r in no])} | "
                  f"{f(nm / fm if fm and nm else None)} | {f(paired(fl, no))} |")
            P("")
        reg = [r for r in rows if r.get("case") == "registry"]
        if reg:
            P("Registry requests of one up-to-date run of all the hosts: " + "; ".join(
                f"{r['n']} hosts, {r['stacks']} stacks: {r['requests']} manifest requests for "
                f"{r['references']} distinct references" for r in reg) + ".\n")
        # slopes
        P("### Per-host slope (least-squares fit of wall time over N)\n")
        P("| RTT ms | kex | floor s/host | rbuild s/host | slope ratio | floor intercept s | rbuild intercept s | N used |")
        P("|---|---|---|---|---|---|---|---|")
        for rtt, kex in sorted({(k[1], k[2]) for k in keys}):
            res = {}
            ns = sorted({k[0] for k in keys if k[1] == rtt and k[2] == kex})
            for tool in ("floor", "rbuild"):
                pts = [(n, med([r["wall_s"] for r in g.get((n, rtt, kex, tool), [])])) for n in ns]
                pts = [(n, t) for n, t in pts if t is not None]
                res[tool] = fit(pts)
            (fb, fa), (rbb, ra) = res["floor"], res["rbuild"]
            sr = f"{rbb / fb:.2f}" if fb and rbb else "n/a"
            P(f"| {rtt} | {kex} | {f(fb, 4)} | {f(rbb, 4)} | {sr} | {f(fa)} | {f(ra)} | {','.join(map(str, ns))} |")
        P("")

    # --- persist --------------------------------------------------------------
    gp = defaultdict(list)
    for r in rows:
        if r.get("case") == "persist":
            gp[(int(r["n"]), int(r["rtt"]), r["kex"], r["tool"])].append(r)
    pkeys = sorted({k[:3] for k in gp}, key=lambda k: (k[1], k[2], k[0]))
    if pkeys:
        P("## Repeated check within the persist window: `rbuild -q --persist SECS` vs the floor\n")
        P("A first `--persist` run leaves one ssh master per host ('first run'); each repetition then "
          "times a run through them ('warm') and a fresh floor (one `ssh -F CFG hK true` per host, same "
          "concurrency), back to back in alternating order. Ratio, paired, min ratio and CPU ratio as in "
          "the up-to-date table, warm over floor; handshakes/host counts the host's `Accepted publickey` "
          "lines (0: no key exchange).\n")
        P("| N | RTT ms | kex | floor s | warm s | ratio | paired | min ratio | CPU ratio | cmds/host | "
          "handshakes/host | first run s | rbuild peak RSS MiB | failures |")
        P("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for k in pkeys:
            fl, wm, cold = gp.get(k + ("floor",), []), gp.get(k + ("warm",), []), gp.get(k + ("cold",), [])
            fm, wmed = med([r["wall_s"] for r in fl]), med([r["wall_s"] for r in wm])
            fmin = min((r["wall_s"] for r in fl), default=None)
            wmin = min((r["wall_s"] for r in wm), default=None)
            def tot(rs):
                return med([(r.get("cg_client_cpu_s") or 0) + (r.get("cg_server_cpu_s") or 0)
                            if r.get("cg_client_cpu_s") is not None else None for r in rs])
            ft, wt = tot(fl), tot(wm)
            hwm = med([r.get("hwm_kb") for r in wm])
            fails = sum(1 for r in fl + wm + cold if r.get("rc") != 0)
            P(f"| {k[0]} | {k[1]} | {k[2]} | {rng([r['wall_s'] for r in fl])} | {rng([r['wall_s'] for r in wm])} | "
              f"{f(wmed / fm) if fm and wmed else 'n/a'} | {f(paired(fl, wm))} | "
              f"{f(wmin / fmin) if fmin and wmin else 'n/a'} | {f(wt / ft) if ft and wt else 'n/a'} | "
              f"{per_host(wm, 'sessions_per_host')} (floor {per_host(fl, 'sessions_per_host')}) | "
              f"{per_host(wm, 'accepted_per_host')} (floor {per_host(fl, 'accepted_per_host')}) | "
              f"{f(med([r['wall_s'] for r in cold]))} | {f(hwm / 1024 if hwm else None, 1)} | {fails} |")
        P("")

    # --- rebuild ------------------------------------------------------------
    rbl = [r for r in rows if r.get("case") == "rebuild"]
    if rbl:
        P("## One stack in ten needs a rebuild (tiny `FROM busybox` + `COPY` image)\n")
        P("Extra = rebuild-run wall minus the up-to-date rbuild median (same N, RTT, kex); "
          "per rebuilt stack = extra / stacks rebuilt (stacks rebuild in parallel, up to -j at once). "
          "Stack apply = median of the rebuilt rows' `duration_ms` (ship, build, pull, up, wait, prune).\n")
        P("| N | RTT ms | kex | stacks rebuilt | failed | run s | up-to-date s | extra s | extra s / rebuilt stack | stack apply s (median) | cmds/host (min–max) |")
        P("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(rbl, key=lambda r: (int(r["rtt"]), int(r["n"]), r.get("rep", "1"))):
            base = med([x["wall_s"] for x in g.get((int(r["n"]), int(r["rtt"]), r["kex"], "rbuild"), [])])
            rebuilt, failed, durs = 0, 0, []
            try:
                doc = json.load(open(r["json_out"]))
                for x in doc["results"]:
                    if x["action"] == "rebuilt":
                        rebuilt += 1
                        durs.append(x["duration_ms"] / 1000)
                    elif x["action"] != "skipped":
                        failed += 1
            except (OSError, ValueError, KeyError):
                failed = -1
            extra = r["wall_s"] - base if base is not None else None
            per = extra / rebuilt if extra is not None and rebuilt else None
            P(f"| {r['n']} | {r['rtt']} | {r['kex']} | {rebuilt} | {failed if failed >= 0 else 'no JSON'} | "
              f"{f(r['wall_s'])} | {f(base)} | {f(extra)} | {f(per)} | {f(med(durs))} | "
              f"{per_host([r], 'sessions_per_host')} |")
        P("")

    # --- one host -----------------------------------------------------------
    g1 = defaultdict(list)
    for r in rows:
        if r.get("case") == "one":
            g1[(int(r["rtt"]), r["kex"], r["tool"])].append(r)
    if g1:
        P("## One host (the CI deploy step): `rbuild -i` (1 host, up to date) vs one `ssh host true`\n")
        P("| RTT ms | kex | ssh true s | rbuild s | ratio | paired | rbuild own CPU s | rbuild peak RSS MiB | reps |")
        P("|---|---|---|---|---|---|---|---|---|")
        for rtt, kex in sorted({(k[0], k[1]) for k in g1}):
            fl, rb = g1.get((rtt, kex, "floor"), []), g1.get((rtt, kex, "rbuild"), [])
            fm, rm = med([r["wall_s"] for r in fl]), med([r["wall_s"] for r in rb])
            hwm = med([r.get("hwm_kb") for r in rb])
            P(f"| {rtt} | {kex} | {rng([r['wall_s'] for r in fl], 3)} | {rng([r['wall_s'] for r in rb], 3)} | "
              f"{f(rm / fm) if fm and rm else 'n/a'} | {f(paired(fl, rb))} | {f(med([r.get('self_cpu_s') for r in rb]))} | "
              f"{f(hwm / 1024 if hwm else None, 1)} | {len(rb)} |")
        P("")
    ver = [r for r in rows if r.get("case") == "version"]
    if ver:
        P(f"`rbuild --version` start-up: {rng([r['wall_s'] * 1000 for r in ver], 1)} ms "
          f"over {len(ver)} runs (peak RSS {f(med([r['maxrss_kb'] for r in ver]) / 1024, 1)} MiB).\n")
    first = [r for r in rows if r.get("case") == "first"]
    for r in first:
        P(f"First build (set-up, not a figure of merit): {r['n']} stacks on {r['n']} hosts with -j {r.get('j', '?')} "
          f"took {f(r['wall_s'], 1)} s (rc {r['rc']}).\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
