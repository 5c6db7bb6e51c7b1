"""Fault injection (issue 7 part 3): real arbord, real services, real faults.

Each test provokes one fault from outside, the way it happens on a real
machine, and checks that arbord neither crashes nor hangs nor spins nor
grows without bound, says what happened, and recovers once the fault is
gone:

- fork failing: arbord runs as a uid of its own with RLIMIT_NPROC too low
  for one more process, then the limit is lifted with prlimit(2);
- EMFILE on the control socket: arbord's RLIMIT_NOFILE lowered with
  prlimit(2) while clients connect, then raised again;
- a service writing to stdout as fast as it can while arbord's stderr is a
  slowly read pipe;
- floods of notify datagrams and of control connections;
- arbord stopped with SIGSTOP while services die, then SIGCONT;
- 5,000 units reloaded 20 times;
- a read-only, full or forbidden runtime directory at start, and no leak
  when arbord exits that early;
- clone3(2) failing (strace injects ENOSYS), as under Docker's seccomp
  profile, and pidfd_open(2) failing, as under valgrind.

CPU time and RSS are read from /proc as correctness checks ("no busy
loop", "bounded memory") with generous bounds, never as speed figures.
RSS bounds apply to plain builds only: ASan's quarantine holds freed
memory. ARBOR_FAULTS_VERBOSE=1 prints the figures measured.
"""

import os
import pwd
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import control_client as cc
from harness import (ARBORD, DEFAULT_TIMEOUT, VALGRIND, ArbordTest, pid_alive, proc_cmdline,
                     wait_until)
from test_shutdown import cgroups_usable

ARBORCTL = os.environ.get("ARBORCTL", "arborctl")
SLEEPER = "/bin/sleep 1000"
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
IS_ROOT = os.geteuid() == 0


def sanitized():
    """Whether arbord is built with AddressSanitizer, whose quarantine keeps
    up to 256 MB of freed memory: RSS bounds mean nothing there."""
    path = ARBORD if os.sep in ARBORD else shutil.which(ARBORD)
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except (OSError, TypeError):
        return False


ASAN = sanitized()


def note(msg):
    """Figures for the record, shown with ARBOR_FAULTS_VERBOSE=1."""
    if os.environ.get("ARBOR_FAULTS_VERBOSE") == "1":
        sys.stderr.write(f"\n  [faults] {msg}")


def cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def max_fd(pid):
    return max(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))


def processes_of_uid(uid):
    """Pids whose real uid is `uid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            found.append(int(entry))
                        break
        except OSError:
            pass
    return found


def free_uid():
    """A uid with no account and no process: RLIMIT_NPROC counts per uid."""
    taken = {p.pw_uid for p in pwd.getpwall()}
    # In random order: another run of these tests may be using one.
    for uid in random.sample(range(61000, 65000), 50):
        if uid not in taken and not processes_of_uid(uid):
            return uid
    raise unittest.SkipTest("no free uid in 61000..64999")


def prlimit_as(uid, gid, pid, which, limits):
    """prlimit(2) on pid from a child running as uid/gid: without
    CAP_SYS_RESOURCE (which root may lack in a container) only a process of
    the same ids may change another's limits."""
    child = os.fork()
    if child == 0:
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            resource.prlimit(pid, which, limits)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise AssertionError(f"prlimit({pid}, {which}, {limits}) as uid {uid} failed")


def try_connect(path):
    """A connected socket, or None if the server's backlog is full."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(path)
    except (BlockingIOError, InterruptedError, ConnectionRefusedError, FileNotFoundError):
        # Unix stream sockets complete or fail at once; EAGAIN = backlog full.
        s.close()
        return None
    s.setblocking(True)
    return s


def closed_by_peer(sock, timeout):
    """True if the server closes `sock` (EOF or reset) within timeout;
    whatever it sends first is read and ignored."""
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            if sock.recv(65536) == b"":
                return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


class FaultTest(ArbordTest):
    """ArbordTest with arbord started our own way (a preexec hook, stderr
    through a pipe) and the control socket at hand."""

    def setUp(self):
        super().setUp()
        self.pump = None
        self.seen_pids = []

    def tearDown(self):
        # A clean shutdown where possible (sanitizer builds report leaks at
        # exit); the harness SIGKILLs arbord otherwise.
        if self.proc and self.proc.poll() is None:
            if proc_state(self.proc.pid) == "T":
                self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.pump:
            self.pump.join(timeout=30)
        self.extra_pids += self.seen_pids
        super().tearDown()

    # ---- starting arbord ----

    def launch(self, *args, preexec_fn=None, pipe_stderr=False, pump_rate=None):
        """Start arbord on self.units and self.run. With pipe_stderr, its
        stderr is a pipe that a thread copies to the log file, at most
        pump_rate bytes a second (None: as fast as it can)."""
        self.logfile = open(self.log_path, "wb")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        argv = self.arbord_command([ARBORD, "-u", self.units, "-r", self.run, *args])
        if not pipe_stderr:
            self.proc = subprocess.Popen(argv, stdout=self.logfile, stderr=subprocess.STDOUT,
                                         env=env, preexec_fn=preexec_fn)
            return self.proc
        r, w = os.pipe()
        try:
            self.proc = subprocess.Popen(argv, stdout=w, stderr=w, env=env,
                                         preexec_fn=preexec_fn)
        finally:
            os.close(w)
        self.pump = threading.Thread(target=self._pump, args=(r, pump_rate), daemon=True)
        self.pump.start()
        return self.proc

    def _pump(self, fd, rate):
        chunk = 16384
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while True:
                data = pipe.read(chunk)
                if not data:
                    return
                self.logfile.write(data)
                self.logfile.flush()
                if rate:
                    time.sleep(len(data) / rate)

    def launch_and_wait(self, *args, **kw):
        """launch(), then wait until the control socket accepts."""
        self.launch(*args, **kw)
        self.wait_serving()
        return self.proc

    def wait_serving(self, timeout=DEFAULT_TIMEOUT):
        def serving():
            self.assertIsNone(self.proc.poll(), f"arbord exited:\n{self.log()}")
            probe = try_connect(cc.socket_path(self.run)) if os.path.exists(
                cc.socket_path(self.run)) else None
            if probe is None:
                return False
            probe.close()
            try:
                return cc.request(self.run, "status", timeout=timeout)[0].int("exit") == 0
            except (OSError, cc.ProtocolError):
                return False
        wait_until(serving, timeout=timeout, interval=0.05, what="arbord to serve requests")

    # ---- talking to arbord ----

    def smap(self, units=(), timeout=DEFAULT_TIMEOUT):
        result, frames, _ = cc.request(self.run, "status", units, timeout=timeout)
        self.assertEqual(result.int("exit"), 0, repr(result))
        self.seen_pids += [f.int("pid") for f in frames if "pid" in f]
        return {f["name"]: f for f in frames}

    def result(self, command, units=(), timeout=DEFAULT_TIMEOUT, **options):
        return cc.request(self.run, command, units, timeout=timeout, **options)[0]

    def running_pid(self, name):
        """name's pid, once status says it is running."""
        def running():
            u = self.smap([name])[name]
            return u.int("pid") if u["state"] == "running" else None
        return wait_until(running, interval=0.05, what=f"{name} to be running")

    def assert_supervising(self, name):
        """Kill name's process; arbord must start a new one."""
        old = self.running_pid(name)
        os.kill(old, signal.SIGKILL)
        def restarted():
            u = self.smap([name])[name]
            return u if u["state"] == "running" and u.int("pid") not in (None, old) else None
        new = wait_until(restarted, interval=0.05, what=f"{name} to be restarted")
        self.assertTrue(pid_alive(new.int("pid")))
        return new.int("pid")


# ---- fork failing ----------------------------------------------------------


@unittest.skipUnless(IS_ROOT, "needs root: arbord runs as a uid of its own with a low RLIMIT_NPROC")
class ForkFailing(FaultTest):
    """RLIMIT_NPROC counts the processes of a real uid, and root ignores it:
    arbord runs as an unused uid, allowed itself and one service."""

    def test_failed_forks_are_logged_and_counted_then_starts_work_once_lifted(self):
        uid = free_uid()
        for path in (self.tmp, self.units):
            os.chown(path, uid, uid)
        self.supervisor("root", ["steady", "fsup"])
        # fsup gives up after 3 restarts of f; being transient, root then
        # carries on without it.
        self.supervisor("fsup", ["f"], Intensity=3, Period="60s", Restart="transient")
        self.service("steady", SLEEPER)
        self.service("f", SLEEPER)

        _, hard = resource.getrlimit(resource.RLIMIT_NPROC)

        def as_uid_with_two_processes():
            os.setgroups([])
            os.setgid(uid)
            # arbord and steady; the hard limit stays, to lift the soft
            # one later without CAP_SYS_RESOURCE.
            resource.setrlimit(resource.RLIMIT_NPROC, (2, hard))
            os.setuid(uid)

        self.launch_and_wait(preexec_fn=as_uid_with_two_processes)
        self.wait_log(r"^arbord: fsup: failed$")
        fails = self.log_lines(r"^arbord: f: cannot start: fork: Resource temporarily unavailable$")
        self.assertEqual(len(fails), 4, "the first start and 3 restarts")
        self.assertEqual(self.log_lines(r"^arbord: f: running"), [])
        units = self.smap()
        self.assertEqual((units["f"]["state"], units["f"].int("restarts")), ("failed", 3))
        self.assertEqual(units["fsup"]["state"], "failed")
        self.assertEqual(units["root"]["state"], "running")
        self.assertEqual(units["steady"]["state"], "running")
        self.assertEqual(len(processes_of_uid(uid)), 2, "arbord and steady only")
        # Still supervising what it has: steady's restart is the one fork
        # the limit allows.
        self.assert_supervising("steady")

        # Lift the limit on the running arbord: f starts on request.
        prlimit_as(uid, uid, self.proc.pid, resource.RLIMIT_NPROC, (hard, hard))
        result = self.result("start", ["fsup"])
        self.assertEqual(result.int("exit"), 0, repr(result))
        f = self.smap(["f"])["f"]
        self.assertEqual(f["state"], "running")
        with open(f"/proc/{f.int('pid')}/status") as st:
            self.assertIn(f"Uid:\t{uid}\t", st.read())
        self.assert_supervising("f")
        self.assertEqual(self.stop(), 0)
        self.assertEqual(processes_of_uid(uid), [])


# ---- EMFILE on the control socket --------------------------------------------


@unittest.skipIf(VALGRIND, "valgrind keeps fds of its own at the top of the range and "
                           "emulates the fd limit")
class OutOfFds(FaultTest):
    """arbord's soft RLIMIT_NOFILE lowered at runtime with prlimit(2) (the
    hard one stays, so it can be raised again without CAP_SYS_RESOURCE)."""

    CPU_BOUND = 0.5  # seconds of CPU over a 2 s window; a busy loop uses ~2

    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1024:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1024), hard))
        self.supervisor("root", ["a", "b", "t"])
        self.service("a", SLEEPER)
        self.service("b", SLEEPER)
        self.service("t", SLEEPER, Restart="temporary")

    def set_nofile(self, soft):
        hard = resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE)[1]
        resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))

    def restore_nofile(self):
        if self.proc.poll() is None:
            hard = resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE)[1]
            resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (hard, hard))

    def cpu_over(self, seconds):
        """arbord's CPU seconds over a wall-clock window (a measurement
        window, not a wait for something)."""
        before = cpu_seconds(self.proc.pid)
        time.sleep(seconds)
        return cpu_seconds(self.proc.pid) - before

    def connect_many(self, n):
        """n connections to the control socket, each accepted or refused by
        the time it returns (a full backlog is retried)."""
        path = cc.socket_path(self.run)
        socks = []
        for i in range(n):
            socks.append(wait_until(lambda: try_connect(path), interval=0.005,
                                    what=f"connection {i} to be taken"))
        return socks

    def test_clients_using_up_the_fds_are_shed_and_serving_resumes(self):
        self.launch_and_wait()
        pid = self.proc.pid
        baseline = fd_count(pid)
        t_pid = self.running_pid("t")
        limit = max_fd(pid) + 1 + 20  # room for about 20 clients
        self.set_nofile(limit)
        self.addCleanup(self.restore_nofile)
        clients = self.connect_many(200)
        try:
            self.wait_log(r"^arbord: control: out of file descriptors: \d+ connections? refused$")
            # Every fd below the limit is taken; the rest were closed at once.
            wait_until(lambda: fd_count(pid) == limit, what=f"arbord to hold {limit} fds")
            shed = sum(closed_by_peer(c, 0.2) for c in clients[-50:])
            self.assertGreater(shed, 0, "no connection was refused")
            # Degraded: a request now is refused too, with a close, not a hang.
            refused = wait_until(lambda: try_connect(cc.socket_path(self.run)),
                                 what="a connection")
            self.assertTrue(closed_by_peer(refused, DEFAULT_TIMEOUT),
                            "a connection arbord had no fd for was left hanging")
            refused.close()
            # No busy loop while it is out of fds.
            cpu = self.cpu_over(2.0)
            self.assertLess(cpu, self.CPU_BOUND, f"arbord used {cpu:.2f}s of CPU in 2s")
            note(f"EMFILE: {shed}/50 last clients refused; {cpu:.2f}s CPU in 2s out of fds")
            # Still supervising: an exit is seen (t is temporary: no fork).
            os.kill(t_pid, signal.SIGKILL)
            self.wait_log(r"^arbord: t: failed \(killed by SIGKILL\)$")
        finally:
            for c in clients:
                c.close()
        # Fds free again: serving resumes, with the limit still low.
        self.wait_serving()
        wait_until(lambda: fd_count(pid) <= baseline, what="arbord's fds back to the baseline")
        units = self.smap()
        self.assertEqual((units["a"]["state"], units["b"]["state"]), ("running", "running"))
        self.assertEqual(units["t"]["state"], "failed")
        self.assert_supervising("a")
        self.assertEqual(self.stop(), 0)

    def lowered_below_use(self):
        """Set the soft limit to 3, below every fd arbord holds (its spare
        fd included), and make a connection wait in the backlog."""
        self.launch_and_wait()
        self.baseline = fd_count(self.proc.pid)
        self.set_nofile(3)
        self.addCleanup(self.restore_nofile)
        pending = wait_until(lambda: try_connect(cc.socket_path(self.run)), what="a connection")
        self.addCleanup(pending.close)
        self.wait_log(r"^arbord: control: out of file descriptors: \d+ connections? refused$")
        return pending

    # With RLIMIT_NOFILE below the fds arbord already holds, freeing the
    # spare fd frees no usable number: arbord used to spin at 100% CPU on
    # the readable listening socket. It now stops listening for a second
    # at a time (the backlog keeps the clients) and sleeps.
    def test_no_busy_loop_when_the_limit_is_below_the_fds_in_use(self):
        self.lowered_below_use()
        refusals = len(self.log_lines(r"out of file descriptors"))
        cpu = self.cpu_over(2.0)
        refusals = len(self.log_lines(r"out of file descriptors")) - refusals
        self.restore_nofile()
        self.assertLess(cpu, self.CPU_BOUND, f"arbord used {cpu:.2f}s of CPU in 2s")
        self.assertLess(refusals, 10, f"{refusals} 'out of file descriptors' lines in 2s")

    def test_serving_resumes_when_the_limit_is_raised_again(self):
        pending = self.lowered_below_use()
        self.assertIsNone(self.proc.poll())
        self.restore_nofile()
        self.wait_serving()
        # The waiting client is either served now or was refused (closed),
        # never left hanging.
        pending.settimeout(DEFAULT_TIMEOUT)
        try:
            pending.sendall(cc.frame(cc.HELLO, [("version", 1)]))
            reply = pending.recv(4096)
        except (BrokenPipeError, ConnectionResetError):
            reply = b""
        if reply:
            self.assertEqual(cc.HEADER.unpack_from(reply)[1], cc.HELLO)
        pending.close()
        wait_until(lambda: fd_count(self.proc.pid) <= self.baseline,
                   what="arbord's fds back to the baseline")
        self.assert_supervising("a")
        self.assertEqual(self.stop(), 0)


# ---- a service flooding stdout ---------------------------------------------


def rss_kb(pid):
    return cc.rss_kb(pid)


def written_bytes(pid):
    """wchar of /proc/PID/io: what the process has written so far."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


class OutputFlood(FaultTest):
    LINE = "x" * 100
    RSS_GROWTH_KB = 64 * 1024

    def test_a_service_writing_as_fast_as_it_can(self):
        self.supervisor("root", ["other", "flood"])
        self.service("other", SLEEPER)
        self.service("flood", f"/usr/bin/yes {self.LINE}")
        # arbord's stderr is a pipe read at 1 MB/s: it cannot log it all.
        self.launch_and_wait(pipe_stderr=True, pump_rate=1 << 20)
        pid = self.proc.pid
        flood = self.pid_of("flood")
        self.wait_log(r"^arbord: \d+ log lines dropped \(stderr full\)$")
        rss0 = rss_kb(pid)
        samples, written = [], [written_bytes(flood)]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            # Requests are served while it floods.
            units = self.smap()
            self.assertEqual(units["flood"].int("pid"), flood)
            time.sleep(0.5)  # a sampling interval
            samples.append(rss_kb(pid))
            written.append(written_bytes(flood))
        # arbord kept reading: the service never stayed blocked on a full
        # pipe for a whole interval.
        stalls = [i for i in range(1, len(written)) if written[i] == written[i - 1]]
        self.assertEqual(stalls, [], f"bytes written by the service, every 0.5s: {written}")
        note(f"flood: {(written[-1] - written[0]) / (len(written) - 1) * 2 / 1e6:.0f} MB/s "
             f"written; arbord RSS {rss0} kB, then {samples} kB")
        # Memory is bounded: no growth past a few buffers.
        if not ASAN:
            self.assertLess(max(samples) - rss0, self.RSS_GROWTH_KB,
                            f"arbord's RSS from {rss0} kB: {samples}")
        # The ring behind `logs` keeps the latest lines, whole.
        _, _, logs = cc.request(self.run, "logs", ["flood"], lines=5)
        self.assertEqual([l["line"] for l in logs], [self.LINE] * 5)
        self.assertEqual({l.int("pid") for l in logs}, {flood})
        # Restarts work meanwhile, of a bystander and of the flood itself.
        self.assert_supervising("other")
        result = self.result("restart", ["flood"])
        self.assertEqual(result.int("exit"), 0, repr(result))
        new = self.smap(["flood"])["flood"].int("pid")
        self.assertNotEqual(new, flood)
        self.assertTrue(pid_alive(new))
        wait_until(lambda: written_bytes(new) > 1 << 20, what="the new instance to flood too")
        if not ASAN:
            self.assertLess(rss_kb(pid) - rss0, self.RSS_GROWTH_KB)
        self.assertEqual(self.stop(timeout=60), 0)
        dropped = sum(int(m) for m in re.findall(r"(?m)^arbord: (\d+) log lines dropped",
                                                  self.log()))
        self.assertGreater(dropped, 0)
        note(f"flood: {dropped} log lines dropped, logged as counts")


# ---- floods of notify datagrams and of control connections ---------------

# A Type=notify service that, once READY and once argv[2] exists, sends
# datagrams to its own NOTIFY_SOCKET as fast as the socket takes them until
# argv[3] exists and at least argv[1] are sent, cycling through: a valid
# STATUS=, a message with NUL bytes, an oversized one (20,000 bytes, past
# the 4,096 arbord reads), random bytes without NUL or '='. Then
# "STATUS=flood done N" (N sent), and it waits.
NOTIFY_FLOODER = r'''
import os, random, socket, sys, time
rng = random.Random(7)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
s.send(b"READY=1")
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
oversized = b"STATUS=" + b"x" * 20000
i = 0
while i < int(sys.argv[1]) or not (i % 1000 == 0 and os.path.exists(sys.argv[3])):
    kind = i % 4
    if kind == 0:
        s.send(b"STATUS=%d" % i)
    elif kind == 1:
        s.send(b"STATUS=\0garbage\0%d" % i)
    elif kind == 2:
        s.send(oversized)
    else:
        s.send(bytes(rng.choice(range(1, 256)) for _ in range(64)).replace(b"=", b"-"))
    i += 1
s.send(b"STATUS=flood done %d" % i)
while True:
    time.sleep(1000)
'''


class Floods(FaultTest):
    DATAGRAMS = 40000
    CLIENTS = 300  # 100 silent, 100 sending garbage, 100 asking for status

    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1024:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1024), hard))
        script = os.path.join(self.tmp, "flooder.py")
        with open(script, "w") as f:
            f.write(NOTIFY_FLOODER)
        self.supervisor("root", ["sib", "nf"])
        self.service("sib", SLEEPER)
        self.go, self.enough = os.path.join(self.tmp, "go"), os.path.join(self.tmp, "enough")
        self.service("nf", f"{PY} {script} {self.DATAGRAMS} {self.go} {self.enough}",
                     Type="notify")

    def status_client(self, results, i):
        deadline = time.monotonic() + DEFAULT_TIMEOUT * 4
        while True:
            try:
                result, frames, _ = cc.request(self.run, "status", timeout=DEFAULT_TIMEOUT * 4)
                results[i] = (result.int("exit"), sorted(f["name"] for f in frames))
                return
            except BlockingIOError:
                # The listen backlog is full for a moment: clients retry.
                if time.monotonic() > deadline:
                    results[i] = "the backlog stayed full"
                    return
                time.sleep(0.01)
            except Exception as e:  # judged by the caller
                results[i] = e
                return

    def test_notify_datagrams_and_control_connections(self):
        self.launch_and_wait()
        pid = self.proc.pid
        nf = self.pid_of("nf")
        baseline_fds = fd_count(pid)
        rss0 = rss_kb(pid)
        path = cc.socket_path(self.run)
        rng = random.Random(11)
        # While nf floods its notify socket: hundreds of control clients.
        open(self.go, "w").close()
        silent, garbage = [], []
        for i in range(100):
            silent.append(wait_until(lambda: try_connect(path), interval=0.005,
                                     what="a silent connection"))
            g = wait_until(lambda: try_connect(path), interval=0.005,
                           what="a garbage connection")
            junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))),
                    cc.frame(cc.HELLO, [("version", 1)], length=0xFFFFFFF0),
                    cc.frame(cc.REQUEST, [("command", "status")]),
                    cc.frame(99, b"\xff" * 50)][i % 4]
            try:
                g.sendall(junk)
                if i % 4 == 0:
                    g.shutdown(socket.SHUT_WR)  # what looks like a frame ends here
            except (BrokenPipeError, ConnectionResetError):
                pass
            garbage.append(g)
        results = [None] * 100
        threads = [threading.Thread(target=self.status_client, args=(results, i))
                   for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=DEFAULT_TIMEOUT * 8)
        expected = (0, ["nf", "root", "sib"])
        bad = [r for r in results if r != expected]
        self.assertEqual(bad, [], f"{len(bad)} of 100 status requests went wrong")
        # Garbage is answered with a close; the tree keeps working.
        for g in garbage:
            self.assertTrue(closed_by_peer(g, DEFAULT_TIMEOUT), "garbage was not dropped")
            g.close()
        self.assert_supervising("sib")
        flooding = self.smap(["nf"])["nf"].get("status", "")
        open(self.enough, "w").close()
        # Every datagram was handled, in order: the last STATUS= wins, each
        # oversized one was dropped and each NUL one ignored, with a warning.
        def flood_done():
            m = re.fullmatch(r"flood done (\d+)", self.smap(["nf"])["nf"].get("status", ""))
            return int(m.group(1)) if m else None
        sent = wait_until(flood_done, timeout=DEFAULT_TIMEOUT * 8, interval=0.2,
                          what="nf's flood to be handled")
        self.assertNotIn("flood done", flooding, "the flood was over before the clients were")
        self.assertGreaterEqual(sent, self.DATAGRAMS)
        too_long = len(range(2, sent, 4))
        with_nul = len(range(1, sent, 4))
        self.assertEqual(len(self.log_lines(r"^arbord: nf: notify message dropped: too long$")),
                         too_long)
        self.assertEqual(len(self.log_lines(r"^arbord: nf: notify message with a NUL byte")),
                         with_nul)
        nf_unit = self.smap(["nf"])["nf"]
        self.assertEqual((nf_unit["state"], nf_unit.int("pid"), nf_unit.int("restarts")),
                         ("running", nf, 0))
        for s in silent:
            s.close()
        wait_until(lambda: fd_count(pid) <= baseline_fds, what="arbord's fds back to the baseline")
        if not ASAN:
            self.assertLess(rss_kb(pid) - rss0, 16 * 1024, "arbord's RSS grew by 16 MB or more")
        note(f"floods: {sent} datagrams, {self.CLIENTS} clients; RSS {rss0} -> "
             f"{rss_kb(pid)} kB")
        self.assertEqual(self.stop(), 0)


# ---- SIGSTOP, then SIGCONT -------------------------------------------------


class StoppedAndContinued(FaultTest):
    def test_catches_up_after_sigcont(self):
        self.supervisor("root", ["victim", "crashsup"])
        self.supervisor("crashsup", ["crasher"], Intensity=1000, Period="10s")
        self.service("victim", SLEEPER)
        self.service("crasher", "/bin/sh -c 'sleep 0.2; exit 3'")
        self.launch_and_wait()
        self.wait_log(r"^arbord: crasher: starting pid \d+ \(restart 2\)$")
        victim = self.pid_of("victim")

        self.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: self.proc.poll() is None and self.proc.send_signal(signal.SIGCONT))
        wait_until(lambda: proc_state(self.proc.pid) == "T", what="arbord to stop")
        # The instance of the moment: no other starts now.
        crasher = int(re.search(r"pid (\d+)", self.log_lines(
            r"^arbord: crasher: starting pid")[-1]).group(1))
        restarts_before = len(self.log_lines(r"^arbord: crasher: starting pid"))
        os.kill(victim, signal.SIGKILL)
        # Both die while arbord cannot reap them.
        wait_until(lambda: proc_state(victim) == "Z", what="the victim to be a zombie")
        wait_until(lambda: proc_state(crasher) in ("Z", None), what="the crasher to exit")
        # A request sent now waits in the socket.
        conn = cc.Connection(self.run, timeout=DEFAULT_TIMEOUT)
        self.addCleanup(conn.close)
        conn.send_frame(cc.HELLO, [("version", 1)])
        conn.send_frame(cc.REQUEST, cc.request_pairs("status", ["victim"]))
        self.assertEqual(proc_state(self.proc.pid), "T")
        self.assertEqual(len(self.log_lines(r"^arbord: crasher: starting pid")), restarts_before)

        self.proc.send_signal(signal.SIGCONT)
        # The waiting request is answered.
        self.assertEqual(conn.recv_frame().type, cc.HELLO)
        result, frames, _ = conn.read_reply()
        self.assertEqual(result.int("exit"), 0, repr(result))
        self.assertEqual([f["name"] for f in frames], ["victim"])
        # The victim is reaped and restarted, once; the crasher goes on.
        new = self.wait_running("victim", count=2)
        self.assertNotEqual(new, victim)
        wait_until(lambda: proc_state(victim) is None, what="the victim's zombie to be reaped")
        self.wait_log(r"^arbord: victim: failed \(killed by SIGKILL\)$")
        self.wait_log(r"^arbord: crasher: starting pid", count=restarts_before + 2)
        units = self.smap()
        self.assertEqual((units["victim"]["state"], units["victim"].int("pid"),
                          units["victim"].int("restarts")), ("running", new, 1))
        self.assertEqual(units["crashsup"]["state"], "running")
        self.assertIn(proc_state(self.proc.pid), ("S", "R"))
        self.assert_supervising("victim")
        self.assertEqual(self.stop(), 0)


# ---- 5,000 units reloaded 20 times -----------------------------------------


class ManyReloads(FaultTest):
    """5,000 services under 10 supervisors, `arborctl reload` 20 times in a
    row: every other time with small changes (10 services changed, 2 added,
    2 removed), otherwise with nothing changed."""

    SERVICES = 5000
    GROUPS = 10
    RELOADS = 20
    START_DEADLINE = 300.0  # generous: not a timing
    RUNNING = re.compile(r"^arbord: ([\w.-]+): running \(pid (\d+)\)$", re.M)

    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 3 * self.SERVICES + 1000:
            self.skipTest(f"hard RLIMIT_NOFILE is {hard}: too small for {self.SERVICES} services")
        with open("/proc/sys/kernel/pid_max") as f:
            if int(f.read()) < self.SERVICES + 2000:
                self.skipTest("kernel.pid_max is too small for 5,000 services")
        if os.geteuid() != 0:
            nproc, _ = resource.getrlimit(resource.RLIMIT_NPROC)
            if nproc != resource.RLIM_INFINITY and nproc < self.SERVICES + 1000:
                self.skipTest(f"RLIMIT_NPROC is {nproc}: too small for {self.SERVICES} services")

    def tearDown(self):
        # On failure show the end of the log, not all of it.
        show = os.environ.get("ARBOR_TEST_SHOW_LOG", "1")
        if self._outcome_failed() and show == "1":
            tail = "\n".join(self.log().splitlines()[-60:])
            print(f"\n----- arbord log, last 60 lines ({self.id()}) -----\n{tail}\n-----")
        os.environ["ARBOR_TEST_SHOW_LOG"] = "0"
        try:
            super().tearDown()
        finally:
            os.environ["ARBOR_TEST_SHOW_LOG"] = show

    def write_service(self, name, generation=0):
        self.write_unit(f"{name}.service",
                        f"[Service]\nExecStart={SLEEPER}\nStandardOutput=null\n"
                        f"StandardError=null\nEnvironment=GENERATION={generation}\n")

    def write_group(self, group, members):
        self.supervisor(group, members)

    def reload(self):
        r = subprocess.run([ARBORCTL, "-r", self.run, "reload"], capture_output=True, text=True,
                           timeout=self.START_DEADLINE)
        self.assertEqual(r.returncode, 0, f"arborctl reload: {r.stdout}{r.stderr}")
        return r.stdout

    def services(self):
        """{name: (state, pid)} of every service, from status."""
        result, frames, _ = cc.request(self.run, "status", timeout=60)
        self.assertEqual(result.int("exit"), 0)
        return {f["name"]: (f["state"], f.int("pid")) for f in frames if f["kind"] == "service"}

    def test_5000_units_reloaded_20_times(self):
        per = self.SERVICES // self.GROUPS
        groups = {f"group{g}": [f"s{g}-{i:03d}" for i in range(per)] for g in range(self.GROUPS)}
        self.supervisor("root", list(groups))
        for group, members in groups.items():
            self.write_group(group, members)
            for name in members:
                self.write_service(name)
        self.launch("--no-cgroups")
        self.wait_log(r"^arbord: root: running$", timeout=self.START_DEADLINE)
        pid = self.proc.pid
        before = self.services()
        self.assertEqual(len(before), self.SERVICES)
        self.assertEqual({s for s, _ in before.values()}, {"running"})
        fds0, rss0 = fd_count(pid), rss_kb(pid)

        rng = random.Random(5)
        changed, added, removed = set(), set(), set()
        rss_mid = None
        for n in range(1, self.RELOADS + 1):
            if n % 2:
                # Small changes: 10 services edited, 2 added, 2 removed.
                g = f"group{rng.randrange(self.GROUPS)}"
                members = groups[g]
                for name in rng.sample([m for m in members if m not in added], 10):
                    self.write_service(name, generation=n)
                    changed.add(name)
                for name in rng.sample([m for m in members if m not in changed], 2):
                    members.remove(name)
                    os.unlink(os.path.join(self.units, f"{name}.service"))
                    removed.add(name)
                    added.discard(name)
                for k in range(2):
                    name = f"new{n}-{k}"
                    members.append(name)
                    self.write_service(name)
                    added.add(name)
                self.write_group(g, members)
                out = self.reload()
                self.assertIn("2 added, 2 removed, 10 changed", out)
            else:
                out = self.reload()
                self.assertIn("0 added, 0 removed, 0 changed", out)
            self.assertIsNone(self.proc.poll(), "arbord exited during the reloads")
            if n == 5:
                rss_mid = rss_kb(pid)

        # Converged: exactly the units on disk, every service running (a
        # reload returns before what it restarts is up: wait for that); the
        # changed ones (and only they) have new pids.
        expected = {m for members in groups.values() for m in members}
        def converged():
            now = self.services()
            self.assertEqual(set(now), expected)
            return now if all(s == "running" and p for s, p in now.values()) else None
        after = wait_until(converged, timeout=self.START_DEADLINE, interval=0.2,
                           what="every service to be running")
        changed -= removed
        kept = set(before) - changed - removed
        self.assertEqual([n for n in kept if after[n][1] != before[n][1]], [],
                         "unchanged services were restarted")
        self.assertEqual([n for n in changed if after[n][1] == before[n][1]], [],
                         "changed services kept their old process")
        for name in rng.sample(sorted(after), 20):
            self.assertTrue(pid_alive(after[name][1]), name)
        for name in removed:
            self.assertFalse(pid_alive(before[name][1]), f"removed {name} still runs")
        # fds back to the baseline (one notify socket a service, as many
        # services as before); RSS bounded, and flat over the last 15.
        wait_until(lambda: fd_count(pid) <= fds0, what=f"arbord's fds back to {fds0}")
        rss = rss_kb(pid)
        if not ASAN:
            self.assertLess(rss - rss0, 32 * 1024, f"RSS {rss0} kB -> {rss} kB")
            self.assertLess(rss - rss_mid, 8 * 1024, f"RSS after 5 reloads {rss_mid} kB, after "
                            f"{self.RELOADS} {rss} kB")
        note(f"reloads: fds {fds0} -> {fd_count(pid)}, RSS {rss0} -> {rss_mid} (5) -> {rss} kB")
        self.assertEqual(self.stop(timeout=self.START_DEADLINE), 0)


# ---- a read-only or full runtime directory at start -------------------------


def can_unshare_mounts():
    if not IS_ROOT or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


class RuntimeDirectory(FaultTest):
    """What arbord says, and its exit status, when it cannot make its
    runtime directory its own. Mounts are made in a mount namespace of
    arbord's own (unshare --mount), gone when it exits."""

    def setUp(self):
        super().setUp()
        self.supervisor("root", ["a"])
        self.service("a", SLEEPER)

    def launch_after(self, script, run_dir, preexec_fn=None):
        """Run `script` (sh) in a new mount namespace, then arbord there."""
        argv = self.arbord_command([ARBORD, "-u", self.units, "-r", run_dir])
        self.logfile = open(self.log_path, "wb")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
             script + '\nexec "$@"', "sh", *argv],
            stdout=self.logfile, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn)
        return self.proc

    def outcome(self):
        """Wait until arbord exits or has started its tree anyway; return
        its exit status, or None if it is running."""
        wait_until(lambda: self.proc.poll() is not None or self.log_lines(r"root: running$"),
                   what="arbord to exit or start")
        return self.proc.poll()

    def assert_refused(self, run_dir, reason):
        status = self.outcome()
        self.assertIsNotNone(status, f"arbord runs with runtime directory {run_dir}")
        self.assertNotEqual(status, 0)
        errors = self.log_lines(re.escape(run_dir))
        self.assertTrue(errors, f"no message names {run_dir}")
        self.assertTrue(any(reason in line for line in errors), f"no '{reason}' in {errors}")
        self.assertEqual(self.log_lines(r"starting pid"), [], "a service was started")
        note(f"runtime dir: exit {status}: {errors[0]}")

    @unittest.skipUnless(can_unshare_mounts(), "needs root and unshare --mount")
    def test_read_only_runtime_directory(self):
        os.mkdir(self.run)
        self.launch_after(f"mount -t tmpfs -o ro,size=64k tmpfs '{self.run}'", self.run)
        self.assert_refused(self.run, "Read-only file system")

    @unittest.skipUnless(can_unshare_mounts(), "needs root and unshare --mount")
    def test_runtime_directory_to_create_on_a_read_only_file_system(self):
        parent = os.path.join(self.tmp, "ro")
        os.mkdir(parent)
        run_dir = os.path.join(parent, "run")
        self.launch_after(f"mount -t tmpfs -o ro,size=64k tmpfs '{parent}'", run_dir)
        self.assert_refused(run_dir, "Read-only file system")

    # A runtime directory whose file system has no space left (blocks, not
    # inodes) was only a warning ("cannot write DIR/arbord.pid") and the
    # tree started; now it is refused with the reason.
    def assert_refused_when_full(self, mount_options, fill, df_column):
        """The runtime directory: a tmpfs with `mount_options`, filled by
        the shell command `fill` until df's `df_column` says 0 left."""
        os.mkdir(self.run)
        self.launch_after(
            f"mount -t tmpfs -o {mount_options} tmpfs '{self.run}'\n"
            f"{fill}\n"
            f"test \"$(df --output={df_column} '{self.run}' | tail -1)\" -eq 0", self.run)
        self.assert_refused(self.run, "No space left on device")

    @unittest.skipUnless(can_unshare_mounts(), "needs root and unshare --mount")
    def test_full_runtime_directory(self):
        self.assert_refused_when_full(
            "size=16k", f"dd if=/dev/zero of='{self.run}/fill' bs=4k 2>/dev/null || true", "avail")

    @unittest.skipUnless(can_unshare_mounts(), "needs root and unshare --mount")
    def test_runtime_directory_without_free_inodes(self):
        self.assert_refused_when_full(
            "size=16k,nr_inodes=4",
            f"for i in 1 2 3 4; do touch '{self.run}'/f$i 2>/dev/null || true; done", "iavail")

    @unittest.skipUnless(IS_ROOT, "needs root to run arbord as a uid of its own")
    def test_runtime_directory_not_writable_by_arbord(self):
        uid = free_uid()
        for path in (self.tmp, self.units):  # (valgrind's log goes to self.tmp)
            os.chown(path, uid, uid)
        os.mkdir(self.run, 0o500)
        os.chown(self.run, uid, uid)
        os.chmod(self.run, 0o500)

        def as_uid():
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        self.launch(preexec_fn=as_uid)
        self.assert_refused(self.run, "Permission denied")

    # arbord exits before its loop in these cases; what it allocated by then
    # must be freed (a copy of the command line for `arborctl reexec` was
    # not, until 3cbfe16). Leaks are seen by LeakSanitizer or valgrind.
    def test_nothing_leaks_when_arbord_exits_early(self):
        if not ASAN and not shutil.which("valgrind"):
            self.skipTest("needs an ASan build or valgrind to see leaks")
        bad = os.path.join(self.tmp, "bad")
        os.mkdir(bad)
        with open(os.path.join(bad, "x.service"), "w") as f:
            f.write("[Service]\nExecStart=/bin/true\nNoSuchKey=1\n")
        blocker = os.path.join(self.tmp, "a-file")
        open(blocker, "w").close()
        cases = {
            "--check": ([ARBORD, "--check", "-u", self.units], 0),
            "bad units": ([ARBORD, "-u", bad, "-r", self.run], 2),
            "unusable runtime directory": (
                [ARBORD, "-u", self.units, "-r", os.path.join(blocker, "run")], 1),
        }
        for what, (argv, expected) in cases.items():
            with self.subTest(what):
                vlog = os.path.join(self.tmp, f"memcheck-{len(what)}.log")
                if not ASAN:
                    argv = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,"
                            "indirect", "--error-exitcode=97", f"--log-file={vlog}", *argv]
                r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
                report = r.stderr
                if os.path.exists(vlog):
                    with open(vlog) as f:
                        report += f.read()
                self.assertNotIn("LeakSanitizer", report)
                self.assertNotIn("definitely lost in loss record", report)
                self.assertEqual(r.returncode, expected, report)


# ---- no clone3(2), no pidfd_open(2) -----------------------------------------


@unittest.skipUnless(shutil.which("strace"), "needs strace, to make a system call fail")
class UnderStrace(FaultTest):
    """arbord under strace, which makes one system call fail with ENOSYS."""

    def setUp(self):
        super().setUp()
        self.arbord_pid = None

    def tearDown(self):
        # strace lives as long as arbord: while it does, the pid is arbord's.
        if self.arbord_pid and self.proc.poll() is None and pid_alive(self.arbord_pid):
            os.kill(self.arbord_pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.arbord_pid, signal.SIGKILL)
                self.proc.wait()
                self.remove_cgroups(self.arbord_pid)
        super().tearDown()

    def launch_without(self, call, *arbord_args):
        """arbord (not its children: no -f) with every `call` failing."""
        self.logfile = open(self.log_path, "wb")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        # LeakSanitizer cannot run under ptrace (it fails at exit, status 1):
        # under strace the ASan build checks memory errors, not leaks.
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
        self.proc = subprocess.Popen(
            ["strace", "-qq", "-o", "/dev/null", "-e", f"trace={call}",
             "-e", f"inject={call}:error=ENOSYS",
             ARBORD, "-u", self.units, "-r", self.run, "-v", *arbord_args],
            stdout=self.logfile, stderr=subprocess.STDOUT, env=env)

        def traced():
            self.assertIsNone(self.proc.poll(), f"strace exited:\n{self.log()}")
            try:
                with open(os.path.join(self.run, "arbord.pid")) as f:
                    return int(f.read())
            except (OSError, ValueError):
                return None
        self.arbord_pid = wait_until(traced, what="arbord under strace to write its pid")


class WithoutClone3(UnderStrace):
    """clone3(2) unavailable, as before Linux 5.3 and under Docker's default
    seccomp profile: a service cannot be born in its cgroup, so its child
    joins the cgroup before it execs, restarts included."""

    def test_services_join_their_cgroups_and_restart(self):
        if not cgroups_usable():
            self.skipTest("no writable cgroup2 hierarchy here")
        self.supervisor("root", ["a", "b"])
        self.service("a", SLEEPER)
        self.service("b", SLEEPER)
        self.launch_without("clone3")
        for count in (1, 2, 3):
            pids = {n: self.wait_running(n, count=count) for n in "ab"}
            for name, pid in pids.items():
                with open(f"/proc/{pid}/cgroup") as f:
                    self.assertIn(f"arbord-{self.arbord_pid}/{name}\n", f.read())
            os.kill(pids["a"], signal.SIGKILL)
            os.kill(pids["b"], signal.SIGKILL)


class WithoutPidfd(UnderStrace):
    """pidfd_open(2) unavailable, as before Linux 5.3, under some seccomp
    profiles and under valgrind 3.19 (found by tests/valgrind.sh): strace
    injects ENOSYS into arbord's calls to it. A main pid moved by MAINPID=
    to a process that is not arbord's child is then not watched."""

    def setUp(self):
        super().setUp()
        self.script = os.path.join(self.tmp, "m.sh")

    def service_with_a_new_main_pid(self, body, prelude="", **keys):
        """m: a shell that runs `prelude`, starts `sleep 1000 &`, names it
        MAINPID= with READY=1, then runs `body`."""
        with open(self.script, "w") as f:
            f.write("#!/bin/sh\n" + prelude + "sleep 1000 &\nsystemd-notify MAINPID=$! READY=1\n" +
                    body)
        os.chmod(self.script, 0o755)
        self.supervisor("root", ["m"])
        self.service("m", self.script, Type="notify", **keys)

    def launch_without_pidfd(self):
        self.launch_without("pidfd_open")
        line = self.wait_log(r"^arbord: m: main pid is now \d+$")[-1]
        main = int(line.rsplit(" ", 1)[1])
        self.extra_pids.append(main)
        self.wait_log(r"^arbord: m: cannot watch main pid \d+: Function not implemented; "
                      r"polling it instead$")
        self.wait_running("m")
        # Until `sleep 1000 &` has exec'd, its child is the shell with the
        # shell's TERM trap: a SIGTERM there is spent, and sleep lives on.
        wait_until(lambda: proc_cmdline(main).startswith(b"sleep\0"),
                   what=f"main pid {main} to exec sleep")
        return main

    # Without pidfd_open(2) (old kernels, seccomp, valgrind) a main pid
    # moved by MAINPID= to a process that is not arbord's child used to go
    # unwatched; arbord now polls it every 200 ms.
    def test_a_dead_main_pid_is_noticed_and_restarted(self):
        self.service_with_a_new_main_pid("wait\n")
        main = self.launch_without_pidfd()
        os.kill(main, signal.SIGKILL)
        self.wait_log(r"^arbord: reaped pid \d+ \(not a main process\)$")  # the shell
        self.wait_running("m", count=2)

    # The same: a stop waits for that main pid, which only polling sees go.
    def test_a_stop_completes_when_the_main_pid_is_reaped_by_its_parent(self):
        # The trap is set before READY=1: a SIGTERM right after it must
        # find it in place.
        self.service_with_a_new_main_pid(
            "wait\nwait\necho 'main reaped by the shell'\nexec sleep 1000\n",
            prelude="trap 'echo got TERM' TERM\n", Shutdown="1s")
        self.launch_without_pidfd()
        os.kill(self.arbord_pid, signal.SIGTERM)
        self.wait_log(r"^m\[\d+\]: main reaped by the shell$")
        try:
            status = self.proc.wait(timeout=DEFAULT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"arbord did not exit within {DEFAULT_TIMEOUT}s of SIGTERM")
        self.assertEqual(status, 0)
        self.wait_log(r"^arbord: m: stopped")


if __name__ == "__main__":
    unittest.main()
