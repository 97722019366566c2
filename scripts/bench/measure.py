#!/usr/bin/python3
"""measure.py - run one command for scripts/bench.sh and print one JSON line.

Usage: measure.py [options] -- COMMAND [ARGS...]
  --label K=V          copied into the JSON (repeatable)
  --cg-client DIR      cgroup (cpuacct v1 dir, or cgroup2 dir) the command runs in
  --cg-server DIR      cgroup of the sshd hosts: CPU delta reported
  --cg-fwd DIR         cgroup of the delaying forwarders: CPU delta reported
  --server-idle N      tasks left in --cg-server when every session is over
  --logs DIR --nhosts N  count new sshd.log lines in DIR/h1..hN
  --stdout FILE        the command's stdout goes there (default /dev/null)
  --hwm                sample the command's VmHWM (its own peak RSS) every 10 ms

What it measures (the same wait4() rusage GNU time -v reports, and more):
  wall_s        fork -> exit of COMMAND
  self_cpu_s    COMMAND's own user+sys (read from /proc/PID/stat while a zombie)
  child_cpu_s   user+sys of the descendants COMMAND waited for
  maxrss_kb     wait4 ru_maxrss: max RSS of COMMAND and its waited descendants
                (= GNU time's "Maximum resident set size")
  hwm_kb        COMMAND's own VmHWM, last sample before it exited (--hwm)
  cg_client_cpu_s  every process of the client cgroup, daemonized ones too
  cg_server_cpu_s  sshd side: the host daemons and everything they run
  cg_left       client processes still alive 5 s after COMMAND exited
  accepted/sessions  per-host counts of "Accepted publickey" / "Starting session: command"
  load1, machine_busy_s, other_cpu_s  noise: load average before, and CPU the
                rest of the machine used while COMMAND ran (busy minus our cgroups)
"""
import json
import os
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


def cg_usage_ns(d):
    if not d:
        return None
    p = os.path.join(d, "cpuacct.usage")
    if os.path.exists(p):
        with open(p) as f:
            return int(f.read())
    with open(os.path.join(d, "cpu.stat")) as f:
        for line in f:
            k, v = line.split()
            if k == "usage_usec":
                return int(v) * 1000
    return None


def cg_tasks(d):
    with open(os.path.join(d, "cgroup.procs")) as f:
        return [int(x) for x in f.read().split()]


def busy_s():
    """CPU seconds the whole machine spent busy so far (all processes)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK


def log_sizes(logs, n):
    out = []
    for k in range(1, n + 1):
        p = f"{logs}/h{k}/sshd.log"
        try:
            out.append(os.path.getsize(p))
        except OSError:
            out.append(0)
    return out


def count_new(logs, n, before):
    acc, ses = [], []
    for k in range(1, n + 1):
        p = f"{logs}/h{k}/sshd.log"
        with open(p, "rb") as f:
            f.seek(before[k - 1])
            text = f.read().decode("utf-8", "replace")
        acc.append(text.count("Accepted publickey"))
        ses.append(text.count("Starting session: command"))
    return acc, ses


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    i = argv.index("--")
    opts, cmd = argv[:i], argv[i + 1:]
    labels, o = {}, {"hwm": False}
    j = 0
    while j < len(opts):
        k = opts[j]
        if k == "--hwm":
            o["hwm"] = True
            j += 1
            continue
        v = opts[j + 1]
        j += 2
        if k == "--label":
            a, _, b = v.partition("=")
            labels[a] = b
        else:
            o[k.lstrip("-").replace("-", "_")] = v
    cgc, cgs, cgf = o.get("cg_client"), o.get("cg_server"), o.get("cg_fwd")
    logs, nhosts = o.get("logs"), int(o.get("nhosts", "0"))
    idle = int(o.get("server_idle", "-1"))

    before = log_sizes(logs, nhosts) if logs else None
    c0, s0, f0 = cg_usage_ns(cgc), cg_usage_ns(cgs), cg_usage_ns(cgf)
    with open("/proc/loadavg") as f:
        load1 = float(f.read().split()[0])
    b0 = busy_s()
    out_fd = os.open(o.get("stdout", "/dev/null"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            if cgc:
                with open(os.path.join(cgc, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            os.dup2(out_fd, 1)
            os.execvp(cmd[0], cmd)
        except BaseException as e:
            print(f"measure.py: cannot run {cmd[0]}: {e}", file=sys.stderr)
        os._exit(127)
    os.close(out_fd)
    hwm = 0
    status_path = f"/proc/{pid}/status"
    while True:
        r = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | (os.WNOHANG if o["hwm"] else 0))
        if r is not None:
            break
        try:
            with open(status_path) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
                        break
        except OSError:
            pass
        time.sleep(0.01)
    wall = time.monotonic() - t0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    self_cpu = (int(fields[11]) + int(fields[12])) / CLK
    _, status, ru = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    res = dict(labels)
    res.update(
        cmd=" ".join(cmd[:1] + [a for a in cmd[1:6]]),
        rc=code,
        wall_s=round(wall, 4),
        user_s=round(ru.ru_utime, 3),
        sys_s=round(ru.ru_stime, 3),
        cpu_s=round(ru.ru_utime + ru.ru_stime, 3),
        self_cpu_s=round(self_cpu, 3),
        child_cpu_s=round(ru.ru_utime + ru.ru_stime - self_cpu, 3),
        maxrss_kb=ru.ru_maxrss,
    )
    if o["hwm"]:
        res["hwm_kb"] = hwm
    # settle: daemonized client processes (ssh masters) and server sessions end
    left, t_settle = 0, time.monotonic()
    if cgc:
        while time.monotonic() - t_settle < 5:
            left = len(cg_tasks(cgc))
            if left == 0:
                break
            time.sleep(0.02)
        res["cg_left"] = left
        res["cg_settle_s"] = round(time.monotonic() - t_settle, 3)
    if cgs and idle >= 0:
        t1 = time.monotonic()
        while time.monotonic() - t1 < 5 and len(cg_tasks(cgs)) > idle:
            time.sleep(0.02)
    b1 = busy_s()
    if cgc:
        res["cg_client_cpu_s"] = round((cg_usage_ns(cgc) - c0) / 1e9, 3)
    if cgs:
        res["cg_server_cpu_s"] = round((cg_usage_ns(cgs) - s0) / 1e9, 3)
    if cgf:
        res["cg_fwd_cpu_s"] = round((cg_usage_ns(cgf) - f0) / 1e9, 3)
    res["load1"] = load1
    # CPU the rest of the machine (e.g. a concurrent test suite) used while
    # COMMAND ran: busy time of the whole machine minus our cgroups.
    ours = sum(res.get(k, 0) for k in ("cg_client_cpu_s", "cg_server_cpu_s", "cg_fwd_cpu_s"))
    res["machine_busy_s"] = round(b1 - b0, 2)
    if cgc and cgs:
        res["other_cpu_s"] = round(max(0.0, (b1 - b0) - ours), 2)
    if logs:
        acc, ses = count_new(logs, nhosts, before)
        res["accepted_total"] = sum(acc)
        res["sessions_total"] = sum(ses)
        res["accepted_per_host"] = [min(acc), max(acc)]
        res["sessions_per_host"] = [min(ses), max(ses)]
    print(json.dumps(res), flush=True)
    sys.exit(0 if code == 0 else 1)


if __name__ == "__main__":
    main()
