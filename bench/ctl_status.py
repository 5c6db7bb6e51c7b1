#!/usr/bin/env python3
"""How fast `arborctl status` answers on a big tree.

Starts arbord on N services (default 5,000: /bin/sleep under 10
supervisors), waits until all are running, then times `arborctl status`
(the human tree) and `arborctl --json status` R times each, and prints the
median and the 90th percentile. Everything it starts it stops.

    bench/ctl_status.py [--build DIR] [--services N] [--runs R]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--services", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    arbord = os.path.abspath(os.path.join(args.build, "arbord"))
    arborctl = os.path.abspath(os.path.join(args.build, "arborctl"))
    tmp = tempfile.mkdtemp(prefix="arbor-bench-")
    units, run = os.path.join(tmp, "u"), os.path.join(tmp, "r")
    os.mkdir(units)
    groups = 10
    per = args.services // groups
    names = []
    for g in range(groups):
        children = [f"s{g:02d}-{i:04d}" for i in range(per)]
        names += children
        with open(os.path.join(units, f"g{g:02d}.supervisor"), "w") as f:
            f.write("[Supervisor]\nChildren=" + " ".join(children) + "\n")
        for c in children:
            with open(os.path.join(units, f"{c}.service"), "w") as f:
                f.write("[Service]\nExecStart=/bin/sleep 100000\nStandardOutput=null\n")
    with open(os.path.join(units, "root.supervisor"), "w") as f:
        f.write("[Supervisor]\nChildren=" + " ".join(f"g{g:02d}" for g in range(groups)) + "\n")
    log = open(os.path.join(tmp, "arbord.log"), "wb")
    proc = subprocess.Popen([arbord, "-u", units, "-r", run], stdout=log, stderr=log)
    try:
        t0 = time.monotonic()
        while True:
            r = subprocess.run([arborctl, "-r", run, "wait", "root", "--timeout", "1s"],
                               capture_output=True)
            if r.returncode == 0:
                break
            if time.monotonic() - t0 > 600:
                raise SystemExit("the tree did not start within 600 s")
        started = time.monotonic() - t0
        results = {}
        for label, cmd in (("status", [arborctl, "-r", run, "status"]),
                           ("--json status", [arborctl, "-r", run, "--json", "status"])):
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                times.append((time.perf_counter() - t) * 1000)
                assert r.returncode == 0, r.stderr
                assert r.stdout.count(b"\n") >= args.services or label != "status"
            times.sort()
            results[label] = (statistics.median(times), times[int(len(times) * 0.9) - 1],
                              len(r.stdout))
        print(f"services: {args.services}; tree started in {started:.1f} s")
        for label, (p50, p90, size) in results.items():
            print(f"arborctl {label:14s} p50 {p50:6.1f} ms  p90 {p90:6.1f} ms  ({size} bytes)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=600)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
