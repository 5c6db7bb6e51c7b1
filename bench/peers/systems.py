"""The supervisors under test, each behind the same small interface, for
bench/side_by_side.py.

A Service is what to run: `sleep` (/bin/sleep 100000, the population of
idle services) or `svc` (bench_svc with options: a stamp on the FIFO, a
readiness signal, a crash). Each system writes its own configuration for a
list of services in a fresh directory, starts its supervisor as a child of
the driver (in a session of its own), says when everything runs, names its
supervisor processes (the services themselves never count), gives the
commands that show status, and stops.

    arbor        arbord -u UNITS -r RUNTIME (cgroups when writable, the
                 default; or --no-cgroups); one flat root.supervisor,
                 Intensity=1000000, Period=1s
    s6           s6-svscan -c MAX SCANDIR; one s6-supervise per service;
                 readiness through notification-fd where the service has it
    runit        runsvdir -P SCANDIR; one runsv per service; no readiness
    supervisord  supervisord -n -c CONF; autorestart=true, logs to NONE;
                 no readiness (startsecs is a timer, not a signal)
"""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "integration"))
from harness import wait_until  # noqa: E402
from procs import arbord_cgroup_in_use, count_comm, remove_arbord_cgroups, table

SLEEP = "/bin/sleep"


class Service:
    def __init__(self, name, kind="sleep", opts=(), ready=False):
        self.name = name
        self.kind = kind        # "sleep" or "svc"
        self.opts = list(opts)  # bench_svc options (for "svc")
        self.ready = ready      # signals readiness (Type=notify / notification-fd)


def installed(program):
    return shutil.which(program) is not None


def poll(predicate, timeout, interval=0.05, what="condition"):
    """wait_until of the integration tests' harness, with a coarser step."""
    return wait_until(predicate, timeout, interval, what)


class System:
    name = "?"
    programs = ()
    ready_opts = None  # bench_svc options that signal readiness, if the system has any
    quiet = False      # services' output to /dev/null where the system captures it

    def __init__(self, tracker, build, workdir):
        self.tracker = tracker
        self.build = build
        self.svc = os.path.join(build, "bench", "bench_svc")
        self.workdir = workdir
        self.proc = None   # the supervisor (the first, where there are several)
        self.roots = []    # every supervisor process started
        self.services = []

    @classmethod
    def available(cls):
        return all(installed(p) for p in cls.programs)

    def prepare(self, services):
        if os.path.exists(self.workdir):
            shutil.rmtree(self.workdir)
        os.makedirs(self.workdir)
        self.services = services
        self.write(services)

    def opts(self, service):
        """bench_svc's options for a service on this system."""
        extra = self.ready_opts if service.ready and self.ready_opts else []
        return service.opts + extra

    def svc_argv(self, service):
        if service.kind == "sleep":
            return [SLEEP, "100000"]
        return [self.svc] + self.opts(service)

    def n_sleep(self):
        return sum(1 for s in self.services if s.kind == "sleep")

    def n_svc(self):
        return sum(1 for s in self.services if s.kind == "svc")

    def wait_running(self, timeout):
        """Until every service's process is there (by its name in /proc)."""
        want_sleep, want_svc = self.n_sleep(), self.n_svc()

        def check():
            for p in self.roots:
                if p.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with status {p.returncode}")
            procs = table()
            roots = [p.pid for p in self.roots]
            return (sum(count_comm(r, {"sleep"}, procs) for r in roots) >= want_sleep and
                    sum(count_comm(r, {"bench_svc", "run"}, procs) for r in roots) >= want_svc)
        poll(check, timeout, interval=0.2, what=f"{len(self.services)} {self.name} services")

    def supervisor_pids(self):
        return [self.proc.pid]

    def open_fds(self):
        """File descriptors held by the supervisor processes."""
        n = 0
        for pid in self.supervisor_pids():
            try:
                n += len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                pass
        return n

    def status_commands(self):
        return {}

    def stop(self, timeout=300):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.tracker.sweep()
        self.after_sweep()
        self.clean()

    def after_sweep(self):
        pass

    def clean(self):
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_path(self):
        return os.path.join(self.workdir, "supervisor.log")

    def popen(self, cmd):
        log = open(self.log_path(), "ab")
        try:
            p = self.tracker.popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                   cwd=self.workdir)
        finally:
            log.close()
        self.roots.append(p)
        self.proc = self.roots[0]
        return p


class Arbor(System):
    name = "arbor"
    cgroups = True
    ready_opts = ["-n"]  # READY=1 on NOTIFY_SOCKET, with Type=notify

    def __init__(self, tracker, build, workdir):
        super().__init__(tracker, build, workdir)
        self.arbord = os.path.join(build, "arbord")
        self.arborctl = os.path.join(build, "arborctl")
        self.units = os.path.join(workdir, "units")
        self.runtime = os.path.join(workdir, "run")

    @classmethod
    def available(cls):
        return True

    def write(self, services):
        os.makedirs(self.units)
        names = [s.name for s in services]
        with open(os.path.join(self.units, "root.supervisor"), "w") as f:
            f.write("[Supervisor]\nIntensity=1000000\nPeriod=1s\n")
            for i in range(0, len(names), 400):  # lines stay well under 64 KiB
                f.write("Children=" + " ".join(names[i:i + 400]) + "\n")
        for s in services:
            with open(os.path.join(self.units, s.name + ".service"), "w") as f:
                f.write("[Service]\nExecStart=" + " ".join(self.svc_argv(s)) + "\n")
                if s.ready:
                    f.write("Type=notify\n")
                if self.quiet and s.kind == "sleep":
                    f.write("StandardOutput=null\nStandardError=null\n")

    def start(self):
        cmd = [self.arbord, "-u", self.units, "-r", self.runtime]
        if not self.cgroups:
            cmd.append("--no-cgroups")
        return self.popen(cmd)

    def control_socket(self):
        return os.path.join(self.runtime, "control.sock")

    def wait_ready_command(self, timeout):
        return [self.arborctl, "-r", self.runtime, "wait", "root", "--timeout", f"{int(timeout)}s"]

    def wait_ready(self, timeout, interval=0.005):
        """`arborctl wait root`: returns once arbord says the whole tree is
        ready. Exit 4 (nothing listens yet: arbord binds its socket before
        it listens) is retried."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"arbord exited with status {self.proc.returncode}")
            if os.path.exists(self.control_socket()):
                r = subprocess.run(self.wait_ready_command(timeout), capture_output=True,
                                   text=True)
                if r.returncode == 0:
                    return
                if r.returncode != 4:
                    raise RuntimeError(f"arborctl wait root exited {r.returncode}: "
                                       f"{r.stderr.strip()}")
            if time.monotonic() > deadline:
                raise TimeoutError("arbord's tree was not ready in time")
            time.sleep(interval)

    def wait_running(self, timeout):
        self.wait_ready(timeout, interval=0.05)

    def mode(self):
        if self.proc and self.proc.poll() is None:
            return "cgroups" if arbord_cgroup_in_use(self.proc.pid) else "process tree"
        return "?"

    def status_commands(self):
        return {"status": [self.arborctl, "-r", self.runtime, "status"],
                "--json status": [self.arborctl, "-r", self.runtime, "--json", "status"]}

    def stop(self, timeout=600):
        super().stop(timeout)

    def after_sweep(self):
        # An arbord that did not get to its own cleanup leaves cgroups.
        if self.proc:
            remove_arbord_cgroups(self.proc.pid)


class ArborNoCgroups(Arbor):
    name = "arbor --no-cgroups"
    cgroups = False


class S6(System):
    name = "s6"
    programs = ("s6-svscan", "s6-supervise", "s6-svstat")
    ready_opts = ["-f", "3"]  # a newline on fd 3, with notification-fd

    def __init__(self, tracker, build, workdir):
        super().__init__(tracker, build, workdir)
        self.scan = os.path.join(workdir, "scan")

    def write(self, services):
        os.makedirs(self.scan)
        for s in services:
            d = os.path.join(self.scan, s.name)
            os.mkdir(d)
            write_run(d, s, self.svc, self.opts(s))
            if s.ready:
                with open(os.path.join(d, "notification-fd"), "w") as f:
                    f.write("3\n")

    def start(self):
        # -c: s6-svscan maintains at most 1,000 services unless told more.
        return self.popen(["s6-svscan", "-c", str(max(1000, 2 * len(self.services) + 10)),
                           self.scan])

    def supervisor_pids(self):
        procs = table()
        return [self.proc.pid] + [p for p in _children(self.proc.pid, procs)
                                  if procs[p][1] == "s6-supervise"]

    def status_commands(self):
        # s6-svstat reads one service directory: one process per service.
        return {"status": ["sh", "-c", 'for d in "$1"/*/; do s6-svstat "$d" || exit 1; done',
                           "sh", self.scan]}


class Runit(System):
    name = "runit"
    programs = ("runsvdir", "runsv", "sv")
    # runsvdir refuses more than 1,000 service directories ("too many
    # services"): beyond that, one runsvdir per 1,000, as one would deploy.
    per_runsvdir = 1000

    def write(self, services):
        # The victim of the respawn figure gets a runsvdir of its own, so
        # that "1,000 others" are exactly one full runsvdir.
        self.dirs, self.scan_dirs = [], []
        groups = [[s for s in services if s.kind != "sleep"]]
        sleeps = [s for s in services if s.kind == "sleep"]
        groups += [sleeps[i:i + self.per_runsvdir]
                   for i in range(0, len(sleeps), self.per_runsvdir)]
        for k, group in enumerate(g for g in groups if g):
            scan = os.path.join(self.workdir, f"scan{k}")
            os.makedirs(scan)
            self.scan_dirs.append(scan)
            for s in group:
                d = os.path.join(scan, s.name)
                os.mkdir(d)
                write_run(d, s, self.svc, self.opts(s))
                self.dirs.append(d)

    def start(self):
        for scan in self.scan_dirs or [self.empty_scan()]:
            self.popen(["runsvdir", "-P", scan])
        return self.proc

    def empty_scan(self):
        scan = os.path.join(self.workdir, "scan0")
        os.makedirs(scan, exist_ok=True)
        return scan

    def supervisor_pids(self):
        procs = table()
        pids = []
        for root in self.roots:
            pids += [root.pid] + [p for p in _children(root.pid, procs)
                                  if procs[p][1] == "runsv"]
        return pids

    def status_commands(self):
        return {"status": ["sv", "status"] + self.dirs}

    def stop(self, timeout=60):
        # SIGTERM: runsvdir exits at once and leaves its runsv processes,
        # which the sweep kills by pid with their services (SIGHUP would
        # only make each runsv wait for its service to go down).
        for p in self.roots:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.roots:
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.tracker.sweep()
        self.clean()


class Supervisord(System):
    name = "supervisord"
    programs = ("supervisord", "supervisorctl")

    def __init__(self, tracker, build, workdir):
        super().__init__(tracker, build, workdir)
        self.conf = os.path.join(workdir, "supervisord.conf")
        self.crashing = False

    def write(self, services):
        n = len(services)
        sock = os.path.join(self.workdir, "supervisor.sock")
        lines = [
            "[unix_http_server]", f"file={sock}", "",
            "[supervisord]", "nodaemon=true", "user=root" if os.geteuid() == 0 else "",
            f"logfile={os.path.join(self.workdir, 'supervisord.log')}",
            f"pidfile={os.path.join(self.workdir, 'supervisord.pid')}",
            f"childlogdir={self.workdir}",
            # Each service holds three pipes to supervisord (stdin, stdout,
            # stderr): raise its fd floor, within the hard limit (above it
            # supervisord refuses to start).
            f"minfds={min(max(1024, 3 * n + 1024), hard_nofile())}",
            f"minprocs={max(200, 2 * n + 200)}", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "", "[supervisorctl]", f"serverurl=unix://{sock}", "",
        ]
        for s in services:
            lines += [f"[program:{s.name}]", "command=" + " ".join(self.svc_argv(s)),
                      "autorestart=true", "stdout_logfile=NONE", "stderr_logfile=NONE",
                      "stopwaitsecs=5"]
            # A crash within startsecs (default 1 s) is a failed start, and
            # three of those are FATAL: for the crash storm, count a start
            # as good at once so that it keeps restarting.
            if self.crashing:
                lines += ["startsecs=0"]
            lines.append("")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))

    def start(self):
        return self.popen(["supervisord", "-n", "-c", self.conf])

    def status_commands(self):
        return {"status": ["supervisorctl", "-c", self.conf, "status"]}


def hard_nofile():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def _children(pid, procs):
    return [p for p, (ppid, _, state) in procs.items() if ppid == pid and state != "Z"]


def write_run(d, s, svc, opts):
    """./run for s6 and runit: a link to bench_svc reading ./bench-args (no
    shell in the way), or a shell script that execs sleep."""
    run = os.path.join(d, "run")
    if s.kind == "sleep":
        with open(run, "w") as f:
            f.write(f"#!/bin/sh\nexec {SLEEP} 100000\n")
        os.chmod(run, 0o755)
    else:
        os.symlink(svc, run)
        with open(os.path.join(d, "bench-args"), "w") as f:
            f.write(" ".join(opts) + "\n")


SYSTEMS = {cls.name: cls for cls in (Arbor, ArborNoCgroups, S6, Runit, Supervisord)}
