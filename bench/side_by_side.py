#!/usr/bin/env python3
"""arbor side by side with s6, runit and supervisord, and with the
machine's own limits, in one run (issue 6). bench/run.sh is the way in: it
installs the peers, builds arbor and calls this.

    bench/side_by_side.py --build DIR [--smoke] [--systems a,b,...]
                          [--skip figure,...] [--json FILE]

For every system (arbor with cgroups, the default where cgroup2 is
writable; arbor --no-cgroups; s6; runit; supervisord), one after the
other, never two at once:

  populations  N idle /bin/sleep services (and, for the respawn figure, one
               bench_svc victim), for each N the figures need: supervisor
               memory at 0 and each N; crash-to-respawn with 1 and 1,000
               others; status latency; idle wakeups, CPU and system calls.
  ready        N bench_svc services, each stamping CLOCK_MONOTONIC at
               its entry point on a FIFO; from the supervisor's start to the last
               one exec'd (and, where the system has readiness, ready).
  storm        services that exit 1 after a short sleep, restarted for
               ever: supervisor CPU, starts per second, status latency.

and once: the bare spawn loops and the one-child supervisor (bench/
spawn_floor.c), bench/mailbox_bench.py, and bench/ctl_status.py. Prints
a Markdown table. Every process it starts is in a session of its own and
is killed by pid at the end of its phase (the driver is a child
subreaper, see peers/procs.py).

--smoke: a few services, one iteration of everything, short windows;
exits 1 unless every measurement produced a number. It asserts nothing
about speed.
"""
import argparse
import datetime
import json
import os
import platform
import queue
import random
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))

from procs import Tracker, become_subreaper, delta, memory, snapshot  # noqa: E402
from systems import SYSTEMS, Arbor, Service, poll  # noqa: E402

FULL = dict(
    respawn_others=[1, 1000], respawn_samples=20, respawn_uptime=1.2,
    memory_sizes=[100, 1000, 10000], status_sizes=[1000, 5000], status_runs=10,
    idle_n=1000, idle_seconds=10, strace_sample=50,
    ready_n=1000, ready_runs=5,
    storm_n=100, storm_life_ms=50, storm_warmup=3.0, storm_seconds=10, storm_status_runs=10,
    settle=2.0, quiet=1.0, start_timeout=900, long_idle_seconds=65,
    # mailbox_bench's receiver reports every 10,000 messages: keep multiples.
    mailbox=["--messages", "200000", "--pings", "5000", "--rounds", "3",
             "--restart-seconds", "5"],
    ctl_status=[(1000, 20), (5000, 20)],
    systems=",".join(SYSTEMS),
)
SMOKE = dict(
    respawn_others=[4], respawn_samples=1, respawn_uptime=0.1,
    memory_sizes=[4], status_sizes=[4], status_runs=1,
    idle_n=4, idle_seconds=1, strace_sample=2,
    ready_n=4, ready_runs=1,
    storm_n=3, storm_life_ms=50, storm_warmup=0.3, storm_seconds=1, storm_status_runs=1,
    settle=0.1, quiet=0.05, start_timeout=60, long_idle_seconds=2,
    mailbox=["--messages", "10000", "--pings", "200", "--rounds", "1",
             "--restart-seconds", "2"],
    ctl_status=[(10, 2)],
    systems="arbor,s6,runit,supervisord",
)

# The bare loops a start is held against; "cgroup" also makes a cgroup per
# child and starts it in there, as arbord does by default.
PLAIN_FLOORS = ("posix_spawn", "vfork", "fork")
FIGURES = ["respawn", "memory", "status", "idle", "ready", "storm", "floor", "mailbox",
           "ctl_status"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- statistics and formatting ----

def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def spread(values):
    """(median, low, high): p10/p90 from 10 values on, else min/max."""
    if not values:
        return None
    if len(values) >= 10:
        return pct(values, 50), pct(values, 10), pct(values, 90)
    return statistics.median(values), min(values), max(values)


def num(x, digits=None):
    if x is None:
        return "?"
    if digits is None:
        a = abs(x)
        digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    s = f"{x:,.{digits}f}"
    return s


def cell_spread(values, digits=None):
    s = spread(values)
    if s is None:
        return None
    if len(values) == 1:
        return num(s[0], digits)
    return f"{num(s[0], digits)} ({num(s[1], digits)}–{num(s[2], digits)})"


# ---- the stamp FIFO ----

class Stamps:
    """Lines "PID NS" that bench_svc writes (stamped at its entry point), read by a thread."""

    def __init__(self, path):
        self.path = path
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # always a reader and a writer
        self.q = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        buf = b""
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        while not self.stop.is_set():
            if not p.poll(100):
                continue
            try:
                buf += os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            *lines, buf = buf.split(b"\n")
            for line in lines:
                pid, ns = line.split()
                self.q.put((int(pid), int(ns)))

    def get(self, timeout):
        return self.q.get(timeout=timeout)

    def take(self, n, timeout):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(out)} of {n} services reported their start")
            try:
                out.append(self.q.get(timeout=left))
            except queue.Empty:
                pass
        return out

    def close(self):
        self.stop.set()
        self.thread.join()
        os.close(self.fd)
        os.unlink(self.path)


# ---- the benchmark ----

class Bench:
    def __init__(self, args, settings):
        self.args = args
        self.s = settings
        self.build = os.path.abspath(args.build)
        self.svc = os.path.join(self.build, "bench", "bench_svc")
        self.floor_bin = os.path.join(self.build, "bench", "spawn_floor")
        self.tmp = tempfile.mkdtemp(prefix="arbor-sbs-")
        self.tracker = Tracker()
        self.results = {}  # (figure, column) -> value or {"error": text}
        self.expected = []  # (figure, column) that must hold a number (smoke)
        self.notes = []
        self.fifo_n = 0
        self.arbor_mode = {}
        self.fds_per_service = {}  # largest population so far: fds its supervisor process holds
        self.quiet_sizes = set()

    # -- bookkeeping --

    def put(self, figure, column, value):
        self.results[(figure, column)] = value

    def fail(self, figure, column, error):
        log(f"{column}: {figure}: {error}")
        self.results[(figure, column)] = {"error": str(error).splitlines()[0][:120]}

    def expect(self, figure, column):
        self.expected.append((figure, column))

    def want(self, figure):
        return figure not in self.args.skip

    def stamps(self):
        self.fifo_n += 1
        return Stamps(os.path.join(self.tmp, f"stamps-{self.fifo_n}.fifo"))

    def workdir(self, system_cls, what):
        slug = re.sub(r"[^a-z0-9]+", "-", system_cls.name.lower()).strip("-")
        return os.path.join(self.tmp, f"{slug}-{what}")

    # -- populations: memory, respawn, status, idle --

    def population_plan(self):
        s = self.s
        plan = {}
        if self.want("memory"):
            plan[0] = set()
            for n in s["memory_sizes"]:
                plan.setdefault(n, set()).add("memory")
        if self.want("respawn"):
            for n in s["respawn_others"]:
                plan.setdefault(n, set()).add("respawn")
        if self.want("status"):
            for n in s["status_sizes"]:
                plan.setdefault(n, set()).add("status")
        if self.want("idle"):
            plan.setdefault(s["idle_n"], set()).add("idle")
        if "memory" in self.args.skip:
            plan.pop(0, None)
        return sorted(plan.items())

    def populations(self, cls):
        s = self.s
        base = None
        for n, figures in self.population_plan():
            victim = "respawn" in figures
            stamps = self.stamps() if victim else None
            services = []
            if victim:
                # Readiness where the system has it: s6-supervise waits 1 s
                # before a restart unless the service was ready over 1 s.
                services.append(Service("victim", "svc", ["-s", stamps.path],
                                        ready=cls.name == "s6"))
            services += [Service(f"s{i:05d}") for i in range(n)]
            system = cls(self.tracker, self.build, self.workdir(cls, f"pop{n}"))
            for f in figures:
                self.expect_population(f, n, cls.name)
            if n == 0:
                self.expect(("memory-base",), cls.name)
            log(f"{cls.name}: {len(services)} services ({', '.join(sorted(figures)) or 'base'})")
            try:
                self.check_fds(system, cls, n, len(services))
                system.prepare(services)
                t0 = time.monotonic()
                system.start()
                system.wait_running(s["start_timeout"])
                log(f"{cls.name}: {len(services)} running after {time.monotonic() - t0:.1f} s")
                if isinstance(system, Arbor):
                    self.arbor_mode[cls.name] = system.mode()
                time.sleep(s["settle"])
                if n == 0:
                    base = memory(system.supervisor_pids())
                    self.put(("memory-base",), cls.name, base)
                if "memory" in figures:
                    self.measure_memory(system, n, len(services), base)
                if "respawn" in figures:
                    self.measure_respawn(("respawn", n), cls.name, system, stamps)
                if "status" in figures:
                    self.measure_status(n, cls.name, system)
                if "idle" in figures:
                    self.measure_idle(n, cls.name, system)
            except Exception as e:  # a peer that cannot do it: say so, go on
                # What this population measured before the failure stands.
                keys = [(f, n) for f in figures] + ([("memory-base",)] if n == 0 else [])
                for key in keys:
                    if (key, cls.name) not in self.results:
                        self.fail(key, cls.name, e)
            finally:
                system.stop()
                if stamps:
                    stamps.close()

    def check_fds(self, system, cls, n, count):
        """Every service costs its supervisor some file descriptors (arbord:
        a notify socket, and a pipe for its output; supervisord: a pipe for
        each of stdin, stdout and stderr), all in one process, whose hard
        RLIMIT_NOFILE an unprivileged container may not raise. Predict from
        the largest population measured so far; arbord then runs with its
        services' output to /dev/null (one fd less each), a peer is left
        out with the reason."""
        per = self.fds_per_service.get(cls.name)
        if per is None:
            return
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        need = int(per * count + 64)
        if need <= hard:
            return
        if isinstance(system, Arbor):
            system.quiet = True
            self.notes.append(f"{cls.name} at {n:,} services: StandardOutput=null and "
                              f"StandardError=null for the sleep services (about {per:.1f} fds "
                              f"per service with the default log would need {need:,}, and "
                              f"RLIMIT_NOFILE's hard limit is {hard:,} here)")
            self.quiet_sizes.add((cls.name, n))
            return
        raise RuntimeError(f"would need about {need:,} fds in one process "
                           f"({per:.1f} per service); the hard limit is {hard:,} here")

    def expect_population(self, figure, n, column):
        if figure == "respawn":
            self.expect(("respawn", n), column)
        elif figure == "memory":
            self.expect(("memory", n), column)
        elif figure == "status":
            self.expect(("status", n), column)
        elif figure == "idle":
            self.expect(("idle", n), column)

    def measure_memory(self, system, n, count, base):
        rss, pss, pte, anon = memory(system.supervisor_pids())
        fds = system.open_fds()
        # The busiest single process decides whether a limit is hit.
        top = max(len(os.listdir(f"/proc/{p}/fd")) for p in system.supervisor_pids())
        if not system.quiet:
            self.fds_per_service[system.name] = top / count
        value = {"services": count, "rss": rss, "pss": pss, "pte": pte, "anon": anon,
                 "fds": fds, "fds_top": top, "quiet": system.quiet}
        if base:
            value.update(rss_per=(rss - base[0]) / count, pss_per=(pss - base[1]) / count,
                         pte_per=(pte - base[2]) / count, anon_per=(anon - base[3]) / count)
        self.put(("memory", n), system.name, value)

    def measure_respawn(self, key, column, system, stamps):
        """SIGKILL the victim once it has been up respawn_uptime; the
        latency is from just before kill() to the replacement's entry point."""
        s = self.s
        pid, ns = stamps.get(timeout=60)
        samples = []
        for _ in range(s["respawn_samples"]):
            wait = ns / 1e9 + s["respawn_uptime"] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            t = time.monotonic_ns()
            os.kill(pid, signal.SIGKILL)
            while True:
                npid, nns = stamps.get(timeout=30)
                if npid != pid:
                    break
            samples.append((nns - t) / 1e6)
            pid, ns = npid, nns
        self.put(key, column, samples)

    def time_command(self, cmd, runs):
        """Wall time of `cmd`, a fresh process each run, in ms. A command
        that takes over 2 s is run 3 times at most."""
        times, lines = [], 0
        while len(times) < runs:
            t = time.perf_counter()
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            times.append((time.perf_counter() - t) * 1000)
            lines = r.stdout.count(b"\n")
            if times[0] > 2000:
                runs = min(runs, 3)
        return times, lines, r.returncode

    def measure_status(self, n, column, system):
        for label, cmd in system.status_commands().items():
            key = ("status", n) if label == "status" else ("status-json", n)
            if label != "status":
                self.expect(key, column)
            times, lines, rc = self.time_command(cmd, self.s["status_runs"])
            # The tables have a line per service; --json is one line.
            if lines < (len(system.services) if label == "status" else 1) or rc != 0:
                self.fail(key, column, f"{label}: {lines} lines, exit {rc}")
            else:
                self.put(key, column, times)

    def measure_idle(self, n, column, system):
        """Context switches and CPU of every supervisor process, a snapshot
        a second for long_idle_seconds (libev sleeps 59.743 s at most when
        nothing is armed: a 10 s window can miss that); the first
        idle_seconds are the 10 s figures. Then strace -c, separately (a
        tracer wakes its tracees)."""
        s = self.s
        pids = system.supervisor_pids()
        snaps = [snapshot(pids)]
        t0 = time.monotonic()
        for i in range(max(s["idle_seconds"], s["long_idle_seconds"])):
            time.sleep(max(0.0, t0 + i + 1 - time.monotonic()))
            snaps.append(snapshot(pids))
        seconds = time.monotonic() - t0
        short = snaps[:s["idle_seconds"] + 1]
        cpu, vol, invol = delta(short[0], short[-1])
        lcpu, lvol, linvol = delta(snaps[0], snaps[-1])
        value = {"processes": len(pids), "seconds": s["idle_seconds"], "switches": vol + invol,
                 "voluntary": vol, "cpu_ms_per_s": cpu / 1e6 / s["idle_seconds"],
                 "long_seconds": seconds, "long_switches": lvol + linvol,
                 "long_cpu_ms_per_s": lcpu / 1e6 / seconds,
                 "switches_per_second": [v + i for _, v, i in
                                         (delta(a, b) for a, b in zip(snaps, snaps[1:]))]}
        if shutil.which("strace") and self.want("strace"):
            self.expect(("idle-syscalls", n), column)
            try:
                value["syscalls"], value["strace_note"] = self.strace_idle(system, pids)
                self.put(("idle-syscalls", n), column, value["syscalls"])
            except Exception as e:
                self.fail(("idle-syscalls", n), column, e)
        self.put(("idle", n), column, value)

    def strace_idle(self, system, pids):
        """System calls over idle_seconds: strace -c -f on the supervisor;
        for s6 and runit the scanner and a sample of the per-service
        supervisors, scaled up to all of them."""
        root, rest = pids[0], pids[1:]
        sample = random.sample(rest, min(len(rest), self.s["strace_sample"]))
        groups = [[root]] + ([sample] if sample else [])
        outs, procs = [], []
        for i, group in enumerate(groups):
            out = os.path.join(self.tmp, f"strace-{i}.out")
            cmd = ["strace", "-c", "-f", "-qq", "-o", out]
            for p in group:
                cmd += ["-p", str(p)]
            procs.append(self.tracker.popen(cmd, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            outs.append(out)
        time.sleep(self.s["idle_seconds"])
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait(timeout=60)
        counts = [strace_total(o) for o in outs]
        total = counts[0]
        note = "all"
        if sample:
            total += counts[1] * len(rest) / len(sample)
            note = f"scanner + {len(sample)} of {len(rest)} supervisors, scaled"
        return total, note

    # -- ready and spawn throughput --

    def ready(self, cls):
        s = self.s
        n = s["ready_n"]
        variants = ["exec"] + (["ready"] if cls.ready_opts else [])
        if not cls.ready_opts:
            self.put(("ready", "ready"), cls.name, {"text": "no readiness protocol"})
        for variant in variants:
            key = ("ready", variant)
            self.expect(key, cls.name)
            if cls.name.startswith("arbor") and variant == "exec":
                self.expect(("spawn-rate",), cls.name)
            runs = []
            try:
                for r in range(s["ready_runs"]):
                    # The machine's limit, measured just before, under the
                    # same load (the machine is shared: compare neighbours).
                    floors = self.floor_once(n) if variant == "exec" and self.want("floor") \
                        else {}
                    plain = [floors[m] for m in PLAIN_FLOORS if m in floors]
                    floor = max(plain) if plain else None
                    runs.append(self.ready_once(cls, n, variant == "ready"))
                    runs[-1]["floor_rate"] = floor
                    runs[-1]["floor_cgroup_rate"] = floors.get("cgroup")
                    log(f"{cls.name}: {n} {variant}: {runs[-1]['seconds']:.2f} s"
                        + (f" (bare loop just before: {n / floor:.2f} s)" if floor else ""))
            except Exception as e:
                self.fail(key, cls.name, e)
                continue
            self.put(key, cls.name, runs)
            if cls.name.startswith("arbor") and variant == "exec":
                self.put(("spawn-rate",), cls.name, runs)

    def ready_once(self, cls, n, ready):
        stamps = self.stamps()
        system = cls(self.tracker, self.build, self.workdir(cls, "ready"))
        try:
            system.prepare([Service(f"r{i:05d}", "svc", ["-s", stamps.path], ready=ready)
                            for i in range(n)])
            # Right after a thousand exits (the last run, the bare loop) the
            # kernel is still busy freeing them: measured, that delays the
            # first start by up to 0.5 s. Let it finish.
            time.sleep(self.s["quiet"])
            t0 = time.monotonic_ns()
            system.start()
            got = None
            if isinstance(system, Arbor):
                # The supervisor's own word that the whole tree is ready.
                system.wait_ready(self.s["start_timeout"], interval=0.001)
                got = time.monotonic_ns()
            marks = stamps.take(n, self.s["start_timeout"])
            first = min(ns for _, ns in marks)
            last = max(ns for _, ns in marks)
            end = max(got or 0, last)
            return {"seconds": (end - t0) / 1e9, "first_to_last": (last - first) / 1e9,
                    "last_exec": (last - t0) / 1e9, "n": n,
                    "ready_known": got is not None}
        finally:
            system.stop()
            stamps.close()

    # -- crash storm --

    def storm(self, cls):
        s = self.s
        key = ("storm",)
        self.expect(key, cls.name)
        counter = os.path.join(self.tmp, f"storm-{cls.name.replace(' ', '')}.count")
        open(counter, "w").close()
        services = [Service(f"c{i:03d}", "svc", ["-x", str(s["storm_life_ms"]), "-c", counter])
                    for i in range(s["storm_n"])]
        system = cls(self.tracker, self.build, self.workdir(cls, "storm"))
        system.crashing = True
        log(f"{cls.name}: crash storm, {len(services)} services")
        try:
            system.prepare(services)
            system.start()
            poll(lambda: os.path.getsize(counter) >= len(services), s["start_timeout"],
                 what="every crashing service to start once")
            time.sleep(s["storm_warmup"])
            if system.proc.poll() is not None:
                raise RuntimeError(f"{cls.name} exited during the storm")
            pids = system.supervisor_pids()
            snaps, counts, stamps_t = [snapshot(pids)], [os.path.getsize(counter)], [time.monotonic()]
            for i in range(s["storm_seconds"]):
                time.sleep(max(0.0, stamps_t[0] + i + 1 - time.monotonic()))
                snaps.append(snapshot(pids))
                counts.append(os.path.getsize(counter))
                stamps_t.append(time.monotonic())
            cpu_share, starts = [], []
            for i in range(1, len(snaps)):
                dt = stamps_t[i] - stamps_t[i - 1]
                cpu_share.append(delta(snaps[i - 1], snaps[i])[0] / 1e9 / dt * 100)
                starts.append((counts[i] - counts[i - 1]) / dt)
            cpu_total = delta(snaps[0], snaps[-1])[0]
            started = counts[-1] - counts[0]
            value = {"cpu_percent": cpu_share, "starts_per_s": starts,
                     "cpu_us_per_start": cpu_total / 1e3 / started if started else None}
            cmds = system.status_commands()
            if "status" in cmds:
                self.expect(("storm-status",), cls.name)
                times, lines, rc = self.time_command(cmds["status"], s["storm_status_runs"])
                value["status_ms"] = times
                if lines >= len(services):
                    self.put(("storm-status",), cls.name, times)
                else:
                    self.fail(("storm-status",), cls.name, f"status: {lines} lines, exit {rc}")
            if system.proc.poll() is not None:
                raise RuntimeError(f"{cls.name} exited during the storm")
            self.put(key, cls.name, value)
        except Exception as e:
            self.fail(key, cls.name, e)
        finally:
            system.stop()

    # -- once: the floors, mailboxes, ctl_status.py --

    def floor_once(self, n):
        """One run of each bare spawn loop (bench/spawn_floor.c) over n
        services; every run is kept under ("floor", mode). Returns each
        loop's rate, to hold the system run next to it against."""
        rates = {}
        for mode in PLAIN_FLOORS + ("cgroup",):
            # Let the kernel finish with the last run's thousand exits first.
            time.sleep(self.s["quiet"])
            key = ("floor", mode)
            # The cgroup loop needs a writable cgroup2: not every machine.
            if mode != "cgroup" and key not in [k for k, _ in self.expected]:
                self.expect(key, "floor")
            stamps = self.stamps()
            try:
                # It holds its children until its stdin closes: every one
                # of them reports its start first.
                p = self.tracker.popen([self.floor_bin, mode, str(n), self.svc, "-s",
                                        stamps.path], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, cwd=self.tmp,
                                       env=dict(os.environ, SPAWN_FLOOR_HOLD="1"))
                line = p.stdout.readline().split()
                try:
                    if len(line) != 5:
                        raise RuntimeError(f"spawn_floor {mode}: no result")
                    stamps.take(n, 60)
                finally:
                    p.stdin.close()
                    p.wait(timeout=120)
                    p.stdout.close()
                if p.returncode != 0:
                    raise RuntimeError(f"spawn_floor {mode} exited {p.returncode}")
                run = {"seconds": float(line[2]), "rate": float(line[3]),
                       "p50_us": float(line[4])}
                prev = self.results.get((key, "floor"))
                self.put(key, "floor", (prev if isinstance(prev, list) else []) + [run])
                rates[mode] = run["rate"]
            except Exception as e:
                self.fail(key, "floor", e)
            finally:
                stamps.close()
                self.tracker.sweep()
        return rates

    def floor(self):
        # The one-child supervisor: the floor of crash-to-respawn.
        key = ("respawn", self.s["respawn_others"][0])
        self.expect(key, "floor")
        stamps = self.stamps()
        try:
            self.tracker.popen([self.floor_bin, "supervise", "0", self.svc, "-s", stamps.path],
                               cwd=self.tmp)
            self.measure_respawn(key, "floor", None, stamps)
        except Exception as e:
            self.fail(key, "floor", e)
        finally:
            self.tracker.sweep()
            stamps.close()

    def mailbox(self):
        key = ("mailbox",)
        self.expect(key, "arbor")
        cmd = [sys.executable, os.path.join(HERE, "mailbox_bench.py"), "--build", self.build]
        log("mailbox_bench.py " + " ".join(self.s["mailbox"]))
        try:
            r = subprocess.run(cmd + self.s["mailbox"], capture_output=True, text=True,
                               timeout=900, cwd=self.tmp)
            if r.returncode != 0:
                raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip()
                                   else f"exit {r.returncode}")
            out = r.stdout

            def grab(pattern):
                m = re.search(pattern, out)
                if not m:
                    raise RuntimeError(f"no match for {pattern!r} in mailbox_bench output")
                return m

            m = grab(r"\| throughput, 64-byte messages \| ([\d,]+)/s \| ([\d,]+)/s \| ([\d,]+)/s")
            rtt = grab(r"\| round trip p50 \| ([\d.]+) us \| \| ([\d.]+) us")
            under = grab(r"SIGKILLed every second \((\d+) restarts in (\d+) s\) \| \| \| ([\d,]+)/s")
            rounds = grab(r"rounds: (\d+)")
            val = lambda s: float(s.replace(",", ""))  # noqa: E731
            self.put(key, "arbor", {
                "socketpair": val(m.group(1)), "bound": val(m.group(2)),
                "mailbox": val(m.group(3)), "rtt_raw_us": val(rtt.group(1)),
                "rtt_mailbox_us": val(rtt.group(2)), "restarts": int(under.group(1)),
                "restart_seconds": int(under.group(2)), "under_restarts": val(under.group(3)),
                "rounds": int(rounds.group(1))})
        except Exception as e:
            self.fail(key, "arbor", e)
        finally:
            self.tracker.sweep()

    def ctl_status(self):
        for n, runs in self.s["ctl_status"]:
            key = ("ctl_status", n)
            self.expect(key, "arbor")
            cmd = [sys.executable, os.path.join(HERE, "ctl_status.py"), "--build", self.build,
                   "--services", str(n), "--runs", str(runs)]
            log(f"ctl_status.py --services {n} --runs {runs}")
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                                   cwd=self.tmp)
                if r.returncode != 0:
                    raise RuntimeError(f"exit {r.returncode}")
                value = {}
                for label in ("status", "--json status"):
                    m = re.search(r"arborctl " + re.escape(label) +
                                  r"\s+p50\s+([\d.]+) ms\s+p90\s+([\d.]+) ms", r.stdout)
                    if not m:
                        raise RuntimeError(f"no '{label}' line in ctl_status.py output")
                    value[label] = (float(m.group(1)), float(m.group(2)))
                self.put(key, "arbor", value)
            except Exception as e:
                self.fail(key, "arbor", e)
            finally:
                self.tracker.sweep()


def strace_total(path):
    """Calls in strace -c's "total" line; an empty summary is 0 calls."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise RuntimeError("strace wrote no summary")
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[-1] == "total":
            return int(parts[3])
    return 0


# ---- the table ----

def render(bench, columns):
    s, R = bench.s, bench.results

    def get(figure, column):
        v = R.get((figure, column))
        if isinstance(v, dict) and "error" in v:
            return None, "failed: " + v["error"]
        if isinstance(v, dict) and "text" in v:
            return None, v["text"]
        return v, None

    rows = []

    def row(label, figure, fn, cols=None):
        cells = []
        for c in columns:
            if cols is not None and c not in cols:
                cells.append("")
                continue
            v, err = get(figure, c)
            if err:
                cells.append(err)
            elif v is None:
                cells.append("")
            else:
                cells.append(fn(v, c) or "")
        if any(cells):
            rows.append((label, cells))

    for o in s["respawn_others"]:
        row(f"1. crash → respawn, {o:,} other service{'s' if o > 1 else ''}, ms",
            ("respawn", o), lambda v, c: cell_spread(v))
    for n in s["memory_sizes"]:
        row(f"2. memory per service at {n:,}: PSS / anonymous PSS (RSS), KiB", ("memory", n),
            lambda v, c: (f"{num(v['pss_per'])} / {num(v['anon_per'])} ({num(v['rss_per'])})" +
                          (" †" if v.get("quiet") else "")) if "pss_per" in v else "")
    n_pte = s["memory_sizes"][len(s["memory_sizes"]) // 2]
    row(f"2. page tables per service at {n_pte:,} (kernel memory, not in PSS), KiB",
        ("memory", n_pte), lambda v, c: num(v["pte_per"]) if "pte_per" in v else "")
    row(f"2. file descriptors per service at {n_pte:,}, busiest supervisor process",
        ("memory", n_pte), lambda v, c: num(v["fds_top"] / v["services"], 2))
    row("2. supervisor alone, 0 services: PSS / anonymous PSS (RSS), KiB", ("memory-base",),
        lambda v, c: f"{num(v[1])} / {num(v[3])} ({num(v[0])})")
    n = s["ready_n"]

    def ready_cell(v, c):
        secs = [r["seconds"] for r in v]
        return cell_spread(secs, 2 if max(secs) < 10 else 1)
    row(f"3. start → all {n:,} exec'd, s", ("ready", "exec"), ready_cell)
    row(f"3. start → all {n:,} ready (READY=1 / notification-fd), s", ("ready", "ready"),
        ready_cell)

    def floor_cell(mode):
        v, err = get(("floor", mode), "floor")
        if err:
            return err
        return f"{mode} {num(statistics.median([r['rate'] for r in v]), 0)}" if v else ""

    fl = {m: get(("floor", m), "floor")[0] for m in PLAIN_FLOORS}
    fastest = any(fl.values())

    def rate_cell(v, c):
        if c == "floor":
            return None
        rates = [r["n"] / r["seconds"] for r in v]
        inner = [(r["n"] - 1) / r["first_to_last"] for r in v if r["first_to_last"] > 0]
        return f"{num(statistics.median(rates), 0)} ({num(statistics.median(inner), 0)})"
    cells = []
    for c in columns:
        if c == "floor":
            cells.append(" / ".join(filter(None, (floor_cell(m) for m in
                                                  PLAIN_FLOORS + ("cgroup",)))))
        else:
            v, err = get(("ready", "exec"), c)
            cells.append(err or (rate_cell(v, c) if v else ""))
    if any(cells):
        rows.append((f"4. spawn throughput, {n:,} services: per second from start "
                     "(first → last exec)", cells))
    if fastest:
        def ratio(v, c):
            # Each run against the fastest bare loop run just before it.
            rates = [r["n"] / r["seconds"] / r["floor_rate"] for r in v if r.get("floor_rate")]
            inner = [(r["n"] - 1) / r["first_to_last"] / r["floor_rate"] for r in v
                     if r.get("floor_rate") and r["first_to_last"] > 0]
            if not rates:
                return ""
            return (f"{cell_spread(rates, 2)}; {cell_spread(inner, 2)}" if inner
                    else cell_spread(rates, 2))
        row("4. … as a ratio to the fastest bare loop run just before each: from start; "
            "first → last exec", ("ready", "exec"),
            ratio,
            cols=[c for c in columns if c != "floor"])

        def cgroup_ratio(v, c):
            inner = [(r["n"] - 1) / r["first_to_last"] / r["floor_cgroup_rate"] for r in v
                     if r.get("floor_cgroup_rate") and r["first_to_last"] > 0]
            return cell_spread(inner, 2) if inner else ""
        row("4. … a cgroup per service, first → last exec, as a ratio to the bare loop that "
            "also makes a cgroup per child (mkdir, clone3 into it)", ("ready", "exec"),
            cgroup_ratio, cols=[c for c in columns if c == "arbor"])
    for n in s["status_sizes"]:
        row(f"5. status, {n:,} services, ms", ("status", n), lambda v, c: cell_spread(v))
        row(f"5. --json status, {n:,} services, ms", ("status-json", n),
            lambda v, c: cell_spread(v))
    for n, _ in s["ctl_status"]:
        row(f"5. status / --json status, {n:,} services in 10 supervisors "
            "(bench/ctl_status.py), p50 / p90 ms", ("ctl_status", n),
            lambda v, c: (f"{num(v['status'][0])} / {num(v['status'][1])}; "
                          f"{num(v['--json status'][0])} / {num(v['--json status'][1])}"))
    mb, err = get(("mailbox",), "arbor")
    if mb or err:
        def mcell(fn):
            return [(fn(mb) if mb else err) if c == "arbor" else
                    (fn_floor(mb, fn) if c == "floor" and mb else "") for c in columns]

        def fn_floor(v, fn):
            return {"tp": f"socketpair {num(v['socketpair'], 0)}; bound socket "
                          f"{num(v['bound'], 0)}",
                    "rtt": f"socketpair {num(v['rtt_raw_us'])}"}.get(fn.__name__, "")

        def tp(v):
            return (f"{num(v['mailbox'], 0)} ({v['mailbox'] / v['socketpair']:.2f}x pair, "
                    f"{v['mailbox'] / v['bound']:.2f}x bound)")

        def rtt(v):
            return f"{num(v['rtt_mailbox_us'])} ({v['rtt_mailbox_us'] / v['rtt_raw_us']:.2f}x)"

        def restarts(v):
            return (f"{num(v['under_restarts'], 0)} ({v['restarts']} restarts in "
                    f"{v['restart_seconds']} s)")
        rows.append(("6. mailbox, 64-byte messages per second", mcell(tp)))
        rows.append(("6. mailbox round trip p50, µs", mcell(rtt)))
        rows.append(("6. mailbox messages per second, receiver SIGKILLed every second",
                     mcell(restarts)))
    n, secs = s["idle_n"], s["idle_seconds"]
    row(f"7. idle, {n:,} services: context switches in {secs} s (all supervisor processes)",
        ("idle", n), lambda v, c: f"{v['switches']:,} ({v['processes']:,} processes)")
    row(f"7. idle: system calls in {secs} s (strace -c -f)", ("idle-syscalls", n),
        lambda v, c: num(v, 0) + (" (sampled)" if c in ("s6", "runit") else ""))
    row("7. idle: supervisor CPU, ms per second", ("idle", n),
        lambda v, c: num(v["cpu_ms_per_s"], 3))
    row(f"7. idle: context switches in {s['long_idle_seconds']} s", ("idle", n),
        lambda v, c: f"{v['long_switches']:,}")
    sn, life = s["storm_n"], s["storm_life_ms"]
    row(f"8. storm, {sn} services exiting 1 after {life} ms: supervisor CPU, % of one core",
        ("storm",), lambda v, c: cell_spread(v["cpu_percent"], 1))
    row("8. storm: starts per second", ("storm",), lambda v, c: cell_spread(v["starts_per_s"], 0))
    row("8. storm: supervisor CPU per start, µs", ("storm",),
        lambda v, c: num(v["cpu_us_per_start"], 0) if v["cpu_us_per_start"] else "")
    row("8. storm: status latency during it, ms", ("storm-status",), lambda v, c: cell_spread(v))

    head = "| figure | " + " | ".join(columns) + " |"
    sep = "|---|" + "---|" * len(columns)
    return "\n".join([head, sep] + ["| " + label + " | " + " | ".join(cells) + " |"
                                    for label, cells in rows])


def machine():
    debian = open("/etc/debian_version").read().strip() if os.path.exists(
        "/etc/debian_version") else "?"
    versions = []
    for pkg in ("s6", "runit", "supervisor"):
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                           text=True)
        if r.returncode == 0:
            versions.append(f"{pkg} {r.stdout}")
    return (f"{os.cpu_count()} cores, Linux {platform.release()}, Debian {debian}; "
            + ", ".join(versions))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--systems", help="default: all (the smoke run: all but arbor "
                    "--no-cgroups); those not installed are left out")
    ap.add_argument("--skip", default="", help="figures to leave out: " + ",".join(FIGURES))
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--set", action="append", default=[],
                    help="override a setting, e.g. --set respawn_samples=5")
    ap.add_argument("--tmp", help="where every system keeps its files (default: /dev/shm "
                    "when it is a tmpfs, as /run is on a normal machine; else $TMPDIR)")
    args = ap.parse_args()
    args.skip = set(filter(None, args.skip.split(",")))
    # Runtime files belong on a tmpfs (/run): on a disk file system every
    # socket or FIFO made costs an inode allocation (on ext4 a scan for
    # recently deleted inodes), which measures the disk, not the supervisor.
    tmp = args.tmp or ("/dev/shm" if is_tmpfs("/dev/shm") else None)
    if tmp:
        os.environ["TMPDIR"] = tmp  # for the helper scripts too
        tempfile.tempdir = tmp
    settings = dict(SMOKE if args.smoke else FULL)
    for kv in args.set:
        k, v = kv.split("=", 1)
        settings[k] = json.loads(v)

    # Room for 10,000 services and their pipes (arbord raises its soft limit
    # to the hard one; supervisord wants minfds).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    become_subreaper()

    bench = Bench(args, settings)
    columns = []
    classes = []
    for name in (args.systems or settings["systems"]).split(","):
        cls = SYSTEMS[name]
        if cls.available():
            classes.append(cls)
        else:
            bench.notes.append(f"{name}: not installed, left out")
    columns = ["floor"] + [c.name for c in classes]

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    started = time.monotonic()
    load0 = os.getloadavg()
    interrupted = False
    try:
        if bench.want("floor"):
            bench.floor()
        for cls in classes:
            bench.populations(cls)
            if bench.want("ready"):
                bench.ready(cls)
            if bench.want("storm"):
                bench.storm(cls)
        if bench.want("mailbox"):
            bench.mailbox()
        if bench.want("ctl_status"):
            bench.ctl_status()
    except KeyboardInterrupt:
        interrupted = True
        bench.notes.append("interrupted: the figures above are what was measured by then")
    finally:
        bench.tracker.sweep()
        shutil.rmtree(bench.tmp, ignore_errors=True)

    elapsed = time.monotonic() - started
    load1 = os.getloadavg()
    print(f"<!-- {datetime.date.today()}; {machine()}; "
          f"{subprocess.run([os.path.join(bench.build, 'arbord'), '--version'], capture_output=True, text=True).stdout.strip()}; "
          f"arbor mode: {', '.join(f'{k}: {v}' for k, v in bench.arbor_mode.items())}; "
          f"files in {tempfile.gettempdir()}; "
          f"load average {load0[0]:.2f} at start, {load1[0]:.2f} at end; "
          f"{elapsed / 60:.1f} min -->")
    print(render(bench, columns))
    for note in bench.notes:
        print(f"\n{note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": settings, "results": [
                {"figure": list(k[0]) if isinstance(k[0], tuple) else k[0], "column": k[1],
                 "value": v} for k, v in bench.results.items()]}, f, indent=1, default=str)

    if interrupted:
        return 130
    missing = []
    for key in bench.expected:
        v = bench.results.get(key)
        if v is None or (isinstance(v, dict) and "error" in v) or not has_number(v):
            missing.append(f"{key[1]}: {key[0]}: {v}")
    if missing:
        print("\nmeasurements without a number:\n  " + "\n  ".join(missing), file=sys.stderr)
        if args.smoke:
            return 1
    return 0


def is_tmpfs(path):
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split()[1] == path and line.split()[2] == "tmpfs" for line in f)
    except OSError:
        return False


def has_number(v):
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return v == v  # not NaN
    if isinstance(v, (list, tuple)):
        return len(v) > 0 and all(has_number(x) for x in v)
    if isinstance(v, dict):
        nums = [x for k, x in v.items() if not isinstance(x, (str, bool)) and x is not None
                and k not in ("strace_note",)]
        return len(nums) > 0 and all(has_number(x) for x in nums)
    return False


if __name__ == "__main__":
    sys.exit(main())
