#!/usr/bin/env python3
"""64-byte messages through an arbor mailbox against a raw AF_UNIX datagram
socketpair, in the same run; then throughput while the receiver is
restarted every second.

    bench/mailbox_bench.py [--build DIR] [--messages N] [--pings N] [--rounds R]

Each figure is the median of R rounds. Everything started is stopped.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def number(pattern, text):
    return float(re.search(pattern, text).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--messages", type=int, default=1000000)
    ap.add_argument("--pings", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--restart-seconds", type=float, default=10.0)
    args = ap.parse_args()
    b = os.path.abspath(args.build)
    bench, arbord, arborctl = (os.path.join(b, x) for x in
                               ("bench/mailbox_bench", "arbord", "arborctl"))
    tmp = tempfile.mkdtemp(prefix="arbor-mbench-")
    units, rundir = os.path.join(tmp, "u"), os.path.join(tmp, "r")
    os.mkdir(units)
    reply = os.path.join(tmp, "reply.sock")
    with open(os.path.join(units, "rx.service"), "w") as f:
        f.write(f"[Service]\nExecStart={bench} receiver\nMailbox=yes\n"
                f"Environment=BENCH_REPLY={reply} BENCH_COUNT_FILE={tmp}/count\n")
    with open(os.path.join(units, "root.supervisor"), "w") as f:
        f.write("[Supervisor]\nIntensity=1000\nPeriod=10s\nChildren=rx\n")
    log = open(os.path.join(tmp, "arbord.log"), "wb")
    proc = subprocess.Popen([arbord, "-u", units, "-r", rundir], stdout=log, stderr=log)
    mailbox = os.path.join(rundir, "mailbox", "rx")
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([arborctl, "-r", rundir, "wait", "rx", "--timeout", "10s"],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("rx did not start")
            time.sleep(0.05)
        raw_tp, raw_rtt, mb_tp, mb_rtt, bound_tp = [], [], [], [], []
        for _ in range(args.rounds):
            out = run([bench, "raw", str(args.messages), str(args.pings)])
            raw_tp.append(number(r"raw throughput (\d+)", out))
            raw_rtt.append(number(r"raw rtt p50 ([\d.]+)", out))
            out = run([bench, "bound", str(args.messages), os.path.join(tmp, "bound.sock")])
            bound_tp.append(number(r"bound throughput (\d+)", out))
            # The receiver's count restarts with each round's service restart-free run.
            with open(os.path.join(tmp, "count"), "w") as f:
                f.write("0\n")
            run([arborctl, "-r", rundir, "restart", "rx"])
            out = run([bench, "send", mailbox, reply, str(args.messages)])
            mb_tp.append(number(r"mailbox throughput (\d+)", out))
            out = run([bench, "ping", mailbox, reply, str(args.pings)])
            mb_rtt.append(number(r"mailbox rtt p50 ([\d.]+)", out))
        # Throughput while the receiver is killed every second.
        stop = threading.Event()

        def killer():
            while not stop.wait(1.0):
                subprocess.run([arborctl, "-r", rundir, "kill", "-s", "KILL", "rx"],
                               capture_output=True)
        t = threading.Thread(target=killer)
        t.start()
        out = run([bench, "timed", mailbox, str(args.restart_seconds)])
        stop.set()
        t.join()
        restarts = int(re.search(r'"restarts":(\d+)', run(
            [arborctl, "-r", rundir, "--json", "status", "rx"])).group(1))
        under = number(r"under restarts (\d+)", out)
        rtp, rrtt = statistics.median(raw_tp), statistics.median(raw_rtt)
        mtp, mrtt = statistics.median(mb_tp), statistics.median(mb_rtt)
        print(f"rounds: {args.rounds}; {args.messages} messages and {args.pings} round trips each")
        btp = statistics.median(bound_tp)
        print(f"| | raw socketpair | raw bound socket | mailbox | mailbox / socketpair | mailbox / bound |")
        print(f"|---|---|---|---|---|---|")
        print(f"| throughput, 64-byte messages | {rtp:,.0f}/s | {btp:,.0f}/s | {mtp:,.0f}/s | "
              f"{mtp / rtp:.2f}x | {mtp / btp:.2f}x |")
        print(f"| round trip p50 | {rrtt:.1f} us | | {mrtt:.1f} us | {mrtt / rrtt:.2f}x | |")
        print(f"| throughput while the receiver is SIGKILLed every second "
              f"({restarts} restarts in {args.restart_seconds:.0f} s) | | | {under:,.0f}/s | | |")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
