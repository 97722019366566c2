#!/usr/bin/env python3
"""Host-side CPU of one check, as sshd runs it (`LOGIN_SHELL -c LINE`).

Usage: scripts/bench/check_cost.py [RUNS] [SHELL...]   (default 1000 runs; bash)

Runs each command line RUNS times on this machine and prints the CPU time
(user + system, from the children's rusage) per run: `true` (the floor's
command), the check under `sh -c` (how it was sent before), and the check
as rbuild sends it now (in the login shell itself). The state directory
holds up-to-date stacks (each with two running services, whose cgroup
directories the check tests: the drift check) and the clock an apply
leaves, as on a host with nothing due; one stack, then five. The command
lines are built here the way src/remote/script.rs builds them; the check's
unit tests pin that format.
"""
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# the check's parts, joined as src/remote/script.rs joins them
SOURCE = "\n".join(
    open(os.path.join(HERE, "..", "..", "src", "remote", "sh", part)).read()
    for part in ("head.sh", "state.sh", "check.sh")
)
CHECK = SOURCE[: SOURCE.index("\n#@rbuild-cut\n")]
# as src/remote/script.rs strip(): no comment lines, no indentation
CHECK = "".join(l.lstrip() + "\n" for l in CHECK.splitlines() if l.strip() and not l.lstrip().startswith("#"))
PRELUDE = "\\unalias -a\n[ -z \"${ZSH_VERSION-}\" ] || emulate -R sh\nIFS=' \t\n'\n"


def cpu_ms(shell, line, runs):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run([shell, "-c", line], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used / runs * 1000


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    shells = sys.argv[2:] or ["bash"]
    with tempfile.TemporaryDirectory() as state:
        now = int(time.time())
        names = [f"web{k}" for k in range(5)]
        for n in names:
            # two services whose "cgroups" exist: the drift check's test
            cgs = []
            for svc in ("app", "db"):
                d = os.path.join(state, "cg", n, svc)
                os.makedirs(d)
                # svc:PID:DIR, the pid a live one (this process): the
                # restart check's test
                cgs.append(f"{svc}:{os.getpid()}:{d}")
            with open(os.path.join(state, f"{n}.state"), "w") as f:
                f.write(
                    f"version=2\nhash=h1\nbuilt_at={now}\ngen=2\nlast_gen=2\nlast_result=ok\n"
                    f"cgroups={','.join(cgs)}\n"
                    f"generation=1 {now - 100} h0 app=sha256:a0,db=sha256:d0 -\n"
                    f"generation=2 {now} h1 app=sha256:a1,db=sha256:d0 -\nend=1\n"
                )
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()
        up = open("/proc/uptime").read().split(".")[0]
        with open(os.path.join(state, ".clock"), "w") as f:
            f.write(f"{boot} {now} {up}\n")
        print(f"{runs} runs each; CPU ms per run (user + system)")
        for count in (1, 5):
            args = ["4", "TOKEN", "check", state, "hold"]
            for n in names[:count]:
                args += [n, "h1", "86400"]
            direct = PRELUDE + shlex.join(["set", "--"] + args) + "\n" + CHECK
            wrapped = shlex.join(["sh", "-c", CHECK, "rbuild"] + args)
            out = subprocess.run(["bash", "-c", direct], capture_output=True, text=True).stdout
            assert "@rbuild:TOKEN end\n" in out and "running=1" in out, out
            for shell in shells:
                for name, line in [
                    ("true", "true"),
                    (f"check, {count} stack(s), sh -c", wrapped),
                    (f"check, {count} stack(s), login shell", direct),
                ]:
                    print(f"{shell:5} {name:34} {cpu_ms(shell, line, runs):6.2f}")


if __name__ == "__main__":
    main()
