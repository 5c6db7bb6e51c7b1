"""arbord as PID 1 (issue 5; SPEC section 5; notes/protocols.md section 7).

Every test but the last class runs arbord as PID 1 of a new PID namespace:

    unshare --pid --fork --mount-proc arbord -u U -r R

self.proc is the `unshare` process and arbord is its only child; its exit
status is arbord's. Inside the namespace arbord has pid 1 and its services
small pids (those are what its log shows); from here, out in the host's
namespace, they are found through the NSpid line of /proc/PID/status and
the /proc/PID/ns/pid link they share with arbord.

What `unshare` (util-linux 2.38) does with signals, and why the tests signal
arbord itself: with --fork it blocks SIGINT and SIGTERM before forking (the
child restores the mask before it execs arbord) and only waits. A SIGTERM or
SIGINT sent to `unshare` therefore stays pending and is never forwarded:
nothing happens. Any other signal with a default action (SIGQUIT, SIGHUP,
SIGUSR1...) kills `unshare` and orphans arbord, which goes on running. So
every signal below goes to arbord's host pid. As the namespace's init,
arbord gets, from an ancestor namespace, only the signals it has a handler
for (plus SIGKILL and SIGSTOP); the others are dropped by the kernel.

When PID 1 exits the kernel SIGKILLs whatever is left in its namespace, so
"nothing is left after arbord exited" proves nothing by itself: the tests
that are about leftovers look at how they ended (SIGTERM first? while
arbord still ran?), not only at whether they did.

The last class runs plain `arbord --init` in the host's namespace, where it
must end its own leftover descendants and nothing else on the machine.
"""

import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
import unittest

from harness import ARBORD, DEFAULT_TIMEOUT, ArbordTest, pid_alive, proc_environ, wait_until

UNSHARE = shutil.which("unshare") or "unshare"
NSENTER = shutil.which("nsenter") or "nsenter"
SLEEPER = "/bin/sleep 1000"
# Ignores SIGTERM (the sleeps inherit the ignored disposition) and says so
# once the trap is in place.
IGNORES_TERM = "/bin/sh -c 'trap \"\" TERM; echo armed; while :; do sleep 0.1; done'"

# A service that makes N orphans for PID 1: each of its N children forks a
# grandchild and exits at once, so the grandchild is re-parented to the
# namespace's init (arbord). The grandchild waits until getppid() says 1,
# appends "1" to OUT (or "0" if that never happened), and exits: N zombies
# for arbord to reap.
STORM_PY = r'''
import os, signal, sys, time
out, n = sys.argv[1], int(sys.argv[2])
fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            deadline = time.monotonic() + 10
            while os.getppid() != 1 and time.monotonic() < deadline:
                time.sleep(0.001)
            os.write(fd, b"1" if os.getppid() == 1 else b"0")
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
print(f"forked {n}", flush=True)
while True:
    signal.pause()
'''

# A service that leaves one process behind and then becomes `sleep 1000`.
# The leftover is double-forked (an orphan), in a session of its own, and
# re-executed with an EMPTY environment (no ARBOR_UNIT: nothing ties it to
# the service). Options:
#   --pidfile P      write its pid (as seen in its namespace) to P, last
#   --marker M       on SIGTERM, write "TERM" to M and exit 0
#   --ignore-term    ignore SIGTERM instead
#   --cgroup PROCS   first move itself into that cgroup (out of the service's)
# With `stage2` first it is the leftover itself (what nsenter runs directly).
LEFTOVER_PY = r'''
import os, signal, sys, time

def leftover(args):
    ignore = "--ignore-term" in args
    rest = [a for a in args if a != "--ignore-term"]
    opts = dict(zip(rest[::2], rest[1::2]))
    if ignore:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        def on_term(signum, frame):
            with open(opts["--marker"], "w") as f:
                f.write("TERM\n")
            os._exit(0)
        signal.signal(signal.SIGTERM, on_term)
    if "--cgroup" in opts:
        with open(opts["--cgroup"], "w") as f:
            f.write("0")
    tmp = opts["--pidfile"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.rename(tmp, opts["--pidfile"])
    while True:
        signal.pause()

if sys.argv[1] == "stage2":
    leftover(sys.argv[2:])
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve(sys.executable, [sys.executable, sys.argv[0], "stage2"] + sys.argv[1:], {})
    os._exit(0)
os.waitpid(pid, 0)
os.execv("/bin/sleep", ["sleep", "1000"])
'''


# ---- /proc ----

def proc_stat(pid):
    """Fields after the command name: [state, ppid, pgrp, session, ...]."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def start_time(pid):
    """Field 22 of /proc/PID/stat: tells a pid from a later reuse of it."""
    try:
        return int(proc_stat(pid)[19])
    except (OSError, IndexError, ValueError):
        return None


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        pass
    return out


def nspids(pid):
    """The NSpid line: the pid in each namespace, outermost first."""
    return [int(p) for p in proc_status(pid).get("NSpid", "").split()]


def pid_ns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def sigbit(sig):
    return 1 << (int(sig) - 1)


def kill_if_same(pid, started):
    """SIGKILL pid if it is still the process we recorded."""
    if pid and started is not None and start_time(pid) == started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class CloseWatch:
    """inotify IN_CLOSE_WRITE on some files, in the kernel's order."""

    IN_CLOSE_WRITE = 0x8
    IN_CLOEXEC = 0o2000000

    def __init__(self, test, names):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(self.IN_CLOEXEC)
        if self.fd < 0:
            test.skipTest(f"no inotify: {os.strerror(ctypes.get_errno())}")
        test.addCleanup(os.close, self.fd)
        self.names = {}
        for path, name in names.items():
            open(path, "a").close()
            wd = libc.inotify_add_watch(self.fd, path.encode(), self.IN_CLOSE_WRITE)
            if wd < 0:
                test.skipTest(f"inotify_add_watch: {os.strerror(ctypes.get_errno())}")
            self.names[wd] = name
        self.seen = []

    def read(self, count, timeout=DEFAULT_TIMEOUT):
        """Names of the files closed so far, once `count` were (or timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < count or count == 0:
            left = max(0.0, deadline - time.monotonic()) if count else 0
            if not select.select([self.fd], [], [], left)[0]:
                break
            data = os.read(self.fd, 65536)
            while data:
                wd, _mask, _cookie, size = struct.unpack_from("iIII", data)
                self.seen.append(self.names.get(wd, wd))
                data = data[16 + size:]
            if count == 0:
                break
        return list(self.seen)


# ---- cgroups ----

def own_cgroup2_dir():
    """The cgroup2 directory this process is in, or None."""
    try:
        with open("/proc/self/cgroup") as f:
            own = next(l[3:].strip() for l in f if l.startswith("0::"))
        with open("/proc/self/mountinfo") as f:
            mount = next(l.split()[4] for l in f if " - cgroup2 " in l)
    except (OSError, StopIteration):
        return None
    return os.path.normpath(mount + own)


def cgroups_usable():
    """True when we may make a cgroup2 directory beside arbord's."""
    base = own_cgroup2_dir()
    if base is None:
        return False
    probe = os.path.join(base, f"arbor-pid1-probe-{os.getpid()}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    os.rmdir(probe)
    return True


def remove_group_when_empty(group):
    """Remove a cgroup this test made, once its processes are gone."""
    def empty():
        with open(os.path.join(group, "cgroup.procs")) as f:
            return not f.read()
    try:
        wait_until(empty, timeout=5, what=f"{group} to empty")
        os.rmdir(group)
    except (OSError, AssertionError):
        pass


def unshare_problem():
    """None if `unshare --pid --fork --mount-proc` works here, else why not."""
    try:
        r = subprocess.run([UNSHARE, "--pid", "--fork", "--mount-proc", "/bin/true"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if r.returncode != 0:
        return r.stderr.strip() or f"exit status {r.returncode}"
    return None


class Pid1Test(ArbordTest):
    """arbord as PID 1 of a new PID namespace (see the module docstring)."""

    @classmethod
    def setUpClass(cls):
        problem = unshare_problem()
        if problem:
            raise unittest.SkipTest(
                "cannot make a PID namespace with `unshare --pid --fork --mount-proc` "
                f"(needs root or CAP_SYS_ADMIN): {problem}")

    def setUp(self):
        super().setUp()
        self.arbord = None          # arbord's pid in the host's namespace
        self.arbord_started = None  # its start time, against pid reuse
        self.ns = None              # its /proc/PID/ns/pid link
        self.sigkilled = False

    # -- starting and stopping --

    def start(self, *args, env=None, hold=None):
        """Start arbord as PID 1. With hold=PATH, arbord holds PATH open for
        writing (fd 9, from a shell that then execs it) until it exits: its
        last close is the moment arbord's exit released its files."""
        self.logfile = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        if env:
            full_env.update(env)
        wrapper = ["/bin/sh", "-c", 'exec 9>>"$0" && exec "$@"', hold] if hold else []
        self.proc = subprocess.Popen(
            [UNSHARE, "--pid", "--fork", "--mount-proc", *wrapper,
             ARBORD, "-u", self.units, "-r", self.run, *args],
            stdout=self.logfile, stderr=subprocess.STDOUT, env=full_env)
        arbord_exe = os.path.realpath(shutil.which(ARBORD) or ARBORD)

        def exec_done():
            # unshare's child is pid 1 of the namespace from the fork on;
            # it is arbord once it has exec'd (only then are the handlers
            # there, and the mask unshare blocked restored).
            for child in children(self.proc.pid):
                try:
                    if os.readlink(f"/proc/{child}/exe") == arbord_exe:
                        return child
                except OSError:
                    pass
            if self.proc.poll() is not None:
                raise AssertionError(f"unshare exited ({self.proc.returncode}):\n{self.log()}")
            return None

        self.arbord = wait_until(exec_done, what="unshare's child to exec arbord")
        self.arbord_started = start_time(self.arbord)
        self.ns = pid_ns(self.arbord)
        self.assertEqual(nspids(self.arbord)[-1], 1, "arbord is not PID 1 of its namespace")
        self.assertEqual(len(nspids(self.arbord)), 2)
        # Its handlers are in place once it logs that it starts the tree.
        self.wait_log(r"^arbord: starting \d+ services")
        return self.proc

    def send(self, sig):
        os.kill(self.arbord, sig)

    def stop(self, sig=signal.SIGTERM, timeout=DEFAULT_TIMEOUT):
        self.send(sig)
        return self.wait_exit(timeout)

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            # Killing arbord makes the kernel kill its whole namespace, and
            # then unshare exits; unshare itself only after that.
            if self.arbord and start_time(self.arbord) == self.arbord_started:
                self.sigkilled = True
                kill_if_same(self.arbord, self.arbord_started)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        super().tearDown()

    def logged_pids(self):
        # The log's pids are the namespace's: meaningless here, and every
        # process of the namespace is dead once arbord is.
        return []

    def remove_cgroups(self, _unshare_pid):
        """arbord's cgroup is `arbord-1` (its pid in the namespace); after a
        SIGKILL its directories are left, empty. Remove the empty ones only:
        never kill anything in a directory of that shared name."""
        if not self.sigkilled:
            return
        base = own_cgroup2_dir()
        if not base:
            return
        base = os.path.join(base, "arbord-1")

        def removed():
            try:
                for d in os.listdir(base):
                    p = os.path.join(base, d)
                    if os.path.isdir(p):
                        os.rmdir(p)
                os.rmdir(base)
            except FileNotFoundError:
                return True
            except OSError:
                return False
            return True
        try:
            wait_until(removed, timeout=3, what=f"{base} to be removable")
        except AssertionError:
            pass

    # -- the namespace, seen from here --

    def ns_processes(self):
        """Host pids of every process (zombies too) in arbord's namespace."""
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and len(nspids(int(entry))) == 2 and pid_ns(int(entry)) == self.ns:
                out.append(int(entry))
        return out

    def zombies(self):
        out = []
        for pid in self.ns_processes():
            try:
                if proc_stat(pid)[0] == "Z":
                    out.append(pid)
            except (OSError, IndexError):
                pass
        return out

    def host_pid(self, nspid):
        """The host pid of the process that has pid `nspid` in the namespace."""
        def find():
            for pid in self.ns_processes():
                if nspids(pid)[-1] == nspid:
                    return pid
            return None
        return wait_until(find, timeout=5, what=f"namespace pid {nspid} in /proc")

    def host_pid_of(self, name):
        return self.host_pid(self.pid_of(name))

    def kill_service(self, name, sig=signal.SIGKILL):
        pid = self.host_pid_of(name)
        os.kill(pid, sig)
        return pid

    def assert_running_normally(self):
        self.assertIsNone(self.proc.poll(), self.log())
        self.assertNotIn(proc_stat(self.arbord)[0], ("T", "t", "Z", "X"))

    def script(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def read_pidfile(self, path):
        def read():
            try:
                with open(path) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                return None
        return wait_until(read, what=f"a pid in {path}")

    def assert_no_warning_left(self):
        self.assertFalse(self.log_lines(r"processes are still left"), self.log())


class OrphanStorm(Pid1Test):
    def test_1000_orphans_leave_no_zombie_and_supervision_goes_on(self):
        n = 1000
        storm = self.script("storm.py", STORM_PY)
        out = os.path.join(self.tmp, "orphans")
        self.supervisor("root", ["storm", "witness"])
        self.service("storm", f"{sys.executable} {storm} {out} {n}")
        self.service("witness", SLEEPER)
        self.start()
        self.wait_running("witness")
        self.wait_log(rf"^storm\[\d+\]: forked {n}$", timeout=120)

        def orphaned():
            try:
                return os.path.getsize(out) >= n
            except OSError:
                return False
        wait_until(orphaned, timeout=60, what=f"{n} grandchildren to be orphaned and exit")
        with open(out) as f:
            self.assertEqual(f.read(), "1" * n, "some grandchild never had PID 1 as parent")
        # Every one of them was reaped: no zombie in the namespace, and only
        # arbord and the two services are left in it.
        wait_until(lambda: not self.zombies(), timeout=5,
                   what="no zombie left in the namespace")
        expected = {self.arbord, self.host_pid_of("storm"), self.host_pid_of("witness")}
        wait_until(lambda: set(self.ns_processes()) == expected, timeout=5,
                   what="only arbord, storm and witness in the namespace")
        # arbord keeps supervising: a killed service comes back.
        self.assert_running_normally()
        self.kill_service("witness")
        self.wait_running("witness", count=2)
        self.assertEqual(len(self.running_pids("storm")), 1)
        self.assertFalse(self.zombies())
        self.assertEqual(self.stop(), 0)


class StopSignals(Pid1Test):
    def three_services(self):
        self.supervisor("root", ["a", "b", "c"])
        for name in "abc":
            self.service(name, SLEEPER)
        self.start()
        for name in "abc":
            self.wait_running(name)
        self.assertEqual(self.order_of(r"^arbord: (\w+): starting pid"), ["a", "b", "c"])

    def check_stop(self, sig):
        self.three_services()
        self.assertEqual(self.stop(sig), 0)
        name = signal.Signals(sig).name
        self.assertTrue(self.log_lines(rf"^arbord: {name}: shutting down$"), self.log())
        # Reverse start order, each one gone before the next is signalled.
        events = self.order_of(r"^arbord: (\w+: (?:stopping|stopped))( \(|$)")
        self.assertEqual(events, ["root: stopping",
                                  "c: stopping", "c: stopped", "b: stopping", "b: stopped",
                                  "a: stopping", "a: stopped", "root: stopped"])
        self.assertEqual(len(self.log_lines(r"^arbord: \w: stopped \(killed by SIGTERM\)$")), 3)
        self.assertTrue(self.log_lines(r"^arbord: exiting with status 0$"))
        self.assert_no_warning_left()
        self.assertFalse(pid_alive(self.arbord))

    def test_sigterm_stops_in_reverse_order_and_exits_0(self):
        self.check_stop(signal.SIGTERM)

    def test_sigint_stops_in_reverse_order_and_exits_0(self):
        self.check_stop(signal.SIGINT)

    def test_sigquit_stops_in_reverse_order_and_exits_0(self):
        self.check_stop(signal.SIGQUIT)

    def test_service_ignoring_sigterm_is_sigkilled_at_its_shutdown_bound(self):
        self.supervisor("root", ["other", "stubborn"])
        self.service("other", SLEEPER)
        self.service("stubborn", IGNORES_TERM, Shutdown="1s")
        self.start()
        pid = self.wait_running("stubborn")
        self.wait_log(rf"^stubborn\[{pid}\]: armed")
        self.wait_running("other")
        began = time.monotonic()
        self.send(signal.SIGTERM)
        self.assertEqual(self.wait_exit(), 0)
        took = time.monotonic() - began
        self.assertTrue(self.log_lines(r"^arbord: stubborn: stopping \(SIGTERM\)"))
        self.assertTrue(self.log_lines(r"^arbord: stubborn: stopped \(killed by SIGKILL\)"))
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopped \("), ["stubborn", "other"])
        self.assertGreaterEqual(took, 0.9, "SIGKILL came before Shutdown=1s had passed")
        self.assertLess(took, 4.5, "SIGKILL did not come soon after Shutdown=1s")
        self.assert_no_warning_left()


class ExitStatus(Pid1Test):
    def significant_job(self, command):
        self.supervisor("root", ["a", "job"], AutoShutdown="any-significant")
        self.service("a", SLEEPER)
        self.service("job", command, Restart="temporary", Significant="yes")

    def test_significant_child_exiting_7_makes_arbord_and_unshare_exit_7(self):
        gate = os.path.join(self.tmp, "go")
        self.significant_job(f"/bin/sh -c 'while [ ! -e {gate} ]; do sleep 0.02; done; exit 7'")
        self.start()
        self.wait_running("a")
        self.wait_running("job")
        open(gate, "w").close()
        self.assertEqual(self.wait_exit(), 7)  # unshare's status: arbord's
        self.assertTrue(self.log_lines(r"^arbord: job: failed \(exit status 7\)"))
        self.assertTrue(self.log_lines(r"^arbord: a: stopped \(killed by SIGTERM\)"))
        self.assertTrue(self.log_lines(r"^arbord: exiting with status 7$"))

    def test_significant_child_killed_by_sigsegv_makes_arbord_exit_139(self):
        self.significant_job(SLEEPER)
        self.start()
        self.wait_running("a")
        self.kill_service("job", signal.SIGSEGV)
        self.assertEqual(self.wait_exit(), 128 + signal.SIGSEGV)
        self.assertTrue(self.log_lines(r"^arbord: job: failed \(killed by SIGSEGV\)"))

    def test_root_giving_up_exits_1(self):
        self.supervisor("root", ["first", "crash"], Intensity=2, Period="10s")
        self.service("first", SLEEPER)
        self.service("crash", "/bin/sh -c 'sleep 0.1; exit 1'")
        self.start()
        self.assertEqual(self.wait_exit(timeout=30), 1)
        self.assertEqual(len(self.log_lines(r"^arbord: crash: starting pid")), 3)
        self.assertTrue(self.log_lines(r"^arbord: root: .*giving up"))
        self.assertTrue(self.log_lines(r"^arbord: exiting with status 1$"))


class Descendants(Pid1Test):
    def escaping_service(self, name="esc"):
        """A service whose grandchild setsid()s in a double fork: an orphan
        (re-parented to PID 1) in its own session and group."""
        pidfile = os.path.join(self.tmp, f"{name}.grandchild")
        script = self.script(f"{name}.sh",
                             f"( setsid sh -c 'echo $$ > {pidfile}.tmp && "
                             f"mv {pidfile}.tmp {pidfile}; exec sleep 1001' & )\n"
                             "exec sleep 1000\n")
        self.service(name, f"/bin/sh {script}")
        return pidfile

    def grandchild_dies_with_its_service(self, *args):
        pidfile = self.escaping_service()
        self.service("plain", SLEEPER)
        self.start(*args)
        main = self.host_pid_of("esc")
        grandchild = self.host_pid(self.read_pidfile(pidfile))
        wait_until(lambda: int(proc_stat(grandchild)[1]) == self.arbord, timeout=5,
                   what="the grandchild to be re-parented to PID 1")
        stat = proc_stat(grandchild)
        self.assertEqual(int(stat[3]), grandchild, "the grandchild has no session of its own")
        self.assertNotEqual(int(stat[2]), int(proc_stat(main)[2]))
        os.remove(pidfile)
        os.kill(main, signal.SIGKILL)
        wait_until(lambda: not pid_alive(grandchild), timeout=5,
                   what="the setsid'd grandchild to die with its service")
        # Restarted, with a new grandchild; the rest is untouched.
        self.wait_running("esc", count=2)
        self.host_pid(self.read_pidfile(pidfile))
        self.assertEqual(len(self.running_pids("plain")), 1)
        self.assertEqual(self.stop(), 0)
        self.assert_no_warning_left()

    def test_setsid_grandchild_dies_with_its_service_with_cgroups(self):
        if not cgroups_usable():
            self.skipTest("no writable cgroup2 hierarchy here")
        self.grandchild_dies_with_its_service()

    def test_setsid_grandchild_dies_with_its_service_without_cgroups(self):
        self.grandchild_dies_with_its_service("--no-cgroups")

    def test_escaped_process_is_ended_by_arbord_before_it_exits(self):
        # Without cgroups, `env -i setsid sleep` double-forked cannot be told
        # to be the service's (no ARBOR_UNIT, own session, parent PID 1), so
        # it outlives the service's stop. When arbord exits, the kernel kills
        # it anyway: check that arbord ended it itself, before it exited.
        # Witnesses: the escaped sleep holds a file open for writing, and so
        # does arbord; inotify queues their IN_CLOSE_WRITE in the order the
        # kernel closed them (inotify(7)), however late this test reads. A
        # process's files are closed in do_exit() before, for PID 1, the
        # kernel kills the rest of the namespace: the sleep's close first
        # means arbord killed it; arbord's first means the kernel did.
        escaped_file = os.path.join(self.tmp, "escaped.witness")
        arbord_file = os.path.join(self.tmp, "arbord.witness")
        closes = CloseWatch(self, {escaped_file: "escaped sleep", arbord_file: "arbord"})
        pidfile = os.path.join(self.tmp, "escaped.pid")
        script = self.script("esc.sh",
                             f"( env -i setsid sh -c 'echo $$ > {pidfile}.tmp && "
                             f"mv {pidfile}.tmp {pidfile}; exec sleep 1000 3>>{escaped_file}' & )\n"
                             "exec sleep 1000\n")
        self.service("esc", f"/bin/sh {script}")
        self.service("plain", SLEEPER)
        self.start("--no-cgroups", hold=arbord_file)
        self.wait_running("plain")
        escaped = self.host_pid(self.read_pidfile(pidfile))
        wait_until(lambda: os.path.exists(f"/proc/{escaped}/fd/3")
                   and proc_stat(escaped)[1] == str(self.arbord),
                   timeout=5, what="the escaped sleep, re-parented to PID 1, to hold its file")
        self.assertEqual(os.readlink(f"/proc/{self.arbord}/fd/9"), arbord_file)
        self.assertNotIn(b"ARBOR_UNIT", proc_environ(escaped))
        self.assertEqual(int(proc_stat(escaped)[3]), escaped)
        self.assertEqual(closes.read(0), [], "a witness was closed before the stop")

        self.send(signal.SIGTERM)
        self.assertEqual(self.wait_exit(), 0)
        order = closes.read(2)
        self.assertEqual(order, ["escaped sleep", "arbord"],
                         "the escaped process was still there when arbord exited "
                         "(killed by the kernel, not by arbord)")
        self.assertTrue(self.log_lines(r"^arbord: exiting with status 0$"))
        self.assert_no_warning_left()

    # -- what is left once the tree has stopped: SIGTERM, 2 s, SIGKILL --

    def leftover_outside_every_service(self, *args, ignore_term=False, no_cgroups=False):
        """A service leaves a process that nothing ties to it; with cgroups
        it even moves itself out of the service's cgroup. Returns
        (leftover host pid, marker path)."""
        helper = self.script("leftover.py", LEFTOVER_PY)
        pidfile = os.path.join(self.tmp, "leftover.pid")
        marker = os.path.join(self.tmp, "leftover.marker")
        opts = f"--pidfile {pidfile} --marker {marker}"
        if ignore_term:
            opts += " --ignore-term"
        if not no_cgroups:
            group = os.path.join(own_cgroup2_dir(), f"arbor-pid1-test-{os.getpid()}")
            os.makedirs(group, exist_ok=True)
            self.addCleanup(remove_group_when_empty, group)
            opts += f" --cgroup {group}/cgroup.procs"
        self.service("leaver", f"{sys.executable} {helper} {opts}")
        self.service("plain", SLEEPER)
        self.start(*(["--no-cgroups"] if no_cgroups else []), *args)
        self.wait_running("plain")
        leftover = self.host_pid(self.read_pidfile(pidfile))
        wait_until(lambda: proc_stat(leftover)[1] == str(self.arbord), timeout=5,
                   what="the leftover to be re-parented to PID 1")
        if not no_cgroups:
            with open(f"/proc/{leftover}/cgroup") as f:
                self.assertNotIn("arbord-", f.read())
        return leftover, marker

    def check_leftover_got_sigterm(self, leftover, marker):
        self.send(signal.SIGTERM)
        wait_until(lambda: os.path.exists(marker) or self.proc.poll() is not None,
                   what="the leftover's SIGTERM marker, or arbord's exit")
        obeyed = time.monotonic()
        self.assertEqual(self.wait_exit(), 0)
        after = time.monotonic() - obeyed
        self.assertTrue(os.path.exists(marker),
                        "the leftover got no SIGTERM before the end (SIGKILL only)")
        self.assertFalse(pid_alive(leftover))
        # It obeyed SIGTERM at once: arbord must not wait out its 2 s grace.
        self.assertLess(after, 1.5, f"arbord exited {after:.2f}s after the leftover obeyed SIGTERM")
        self.assert_no_warning_left()

    def test_leftover_outside_every_service_gets_sigterm_first(self):
        if not cgroups_usable():
            self.skipTest("no writable cgroup2 hierarchy here")
        self.check_leftover_got_sigterm(*self.leftover_outside_every_service())

    def test_leftover_ignoring_sigterm_gets_sigkill_after_the_grace(self):
        if not cgroups_usable():
            self.skipTest("no writable cgroup2 hierarchy here")
        leftover, marker = self.leftover_outside_every_service(ignore_term=True)
        self.wait_running("leaver")
        began = time.monotonic()
        self.assertEqual(self.stop(), 0)
        took = time.monotonic() - began
        self.assertGreaterEqual(took, 1.9, "SIGKILL came before the 2 s grace")
        self.assertLess(took, 6, "arbord was slow to SIGKILL the leftover after the grace")
        self.assertFalse(pid_alive(leftover))
        self.assertFalse(os.path.exists(marker))
        self.assert_no_warning_left()

    # With --no-cgroups too, what is left gets SIGTERM, 2 s, then SIGKILL.
    def test_leftover_without_cgroups_gets_sigterm_first(self):
        self.check_leftover_got_sigterm(*self.leftover_outside_every_service(no_cgroups=True))

    # As PID 1, kill(-1) reaches processes that are not arbord's children
    # (entered with setns, as `docker exec` or `nsenter` do) too.
    def test_process_entered_with_nsenter_gets_sigterm_first(self):
        helper = self.script("leftover.py", LEFTOVER_PY)
        pidfile = os.path.join(self.tmp, "entered.pid")
        marker = os.path.join(self.tmp, "entered.marker")
        self.service("plain", SLEEPER)
        self.start()
        self.wait_running("plain")
        entered = subprocess.Popen(
            [NSENTER, "-t", str(self.arbord), "--pid", "--",
             sys.executable, helper, "stage2", "--pidfile", pidfile, "--marker", marker])
        self.addCleanup(lambda: (entered.poll() is None and entered.kill(), entered.wait()))
        inside = self.host_pid(self.read_pidfile(pidfile))
        self.assertEqual(pid_ns(inside), self.ns)
        self.assertEqual(proc_stat(inside)[1], str(entered.pid), "not nsenter's child")
        self.assertEqual(self.stop(), 0)
        wait_until(lambda: entered.poll() is not None, timeout=5, what="nsenter to end")
        self.assertTrue(os.path.exists(marker),
                        f"the entered process got no SIGTERM (nsenter: {entered.returncode})")


class OtherSignals(Pid1Test):
    def test_sigtstp_sigttin_sigttou_do_not_stop_it(self):
        self.service("a", SLEEPER)
        self.start()
        self.wait_running("a")
        ignored = int(proc_status(self.arbord)["SigIgn"], 16)
        for count, sig in enumerate((signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU), start=2):
            self.assertTrue(ignored & sigbit(sig), f"{sig.name} is not ignored")
            self.send(sig)
            # Still supervising: a killed service comes back...
            self.kill_service("a")
            self.wait_running("a", count=count)
            # ... and not stopped.
            self.assert_running_normally()
        self.assertEqual(self.stop(), 0)

    def test_sigusr1_logs_the_tree(self):
        self.supervisor("root", ["a", "sub"])
        self.supervisor("sub", ["b"])
        self.service("a", SLEEPER)
        self.service("b", SLEEPER)
        self.start()
        a = self.wait_running("a")
        b = self.wait_running("b")
        self.wait_log(r"^arbord: root: running$")
        self.send(signal.SIGUSR1)
        self.wait_log(r"^arbord:     b: running pid \d+ restarts 0$")
        tree = [l for l in self.log().splitlines() if re.search(r"restarts \d+$", l)]
        self.assertEqual(tree, [
            "arbord: root: running restarts 0",
            f"arbord:   a: running pid {a} restarts 0",
            "arbord:   sub: running restarts 0",
            f"arbord:     b: running pid {b} restarts 0",
        ])
        self.assert_running_normally()
        self.assertEqual(self.stop(), 0)

    def test_sigusr2_and_sighup_do_not_kill_it(self):
        self.service("a", SLEEPER)
        self.service("b", SLEEPER)
        self.start()
        a = self.wait_running("a")
        self.wait_running("b")
        self.send(signal.SIGUSR2)
        self.wait_log(r"^arbord: SIGUSR2: ignored$")
        self.assert_running_normally()
        self.send(signal.SIGHUP)
        self.wait_log(r"^arbord: SIGHUP: reloading ")
        self.assert_running_normally()
        # Nothing changed in the units: nothing restarted; still supervising.
        self.kill_service("b")
        self.wait_running("b", count=2)
        self.assertEqual(self.running_pids("a"), [a])
        self.assert_running_normally()
        self.assertEqual(self.stop(), 0)


class Reexec(Pid1Test):
    def test_reexec_as_pid1_keeps_the_services_and_a_clean_stop(self):
        self.service("a", SLEEPER)
        self.start()
        a = self.wait_running("a")
        host_a = self.host_pid_of("a")
        ctl = os.environ.get("ARBORCTL", "arborctl")
        r = subprocess.run([ctl, "-r", self.run, "reexec"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("arbord pid 1,", r.stdout)
        self.assert_running_normally()
        # Still the namespace's init and still supervising the same process.
        self.kill_service("a")
        self.assertNotEqual(self.wait_running("a", count=2), a)
        self.assertFalse(pid_alive(host_a))
        self.assertEqual(self.stop(), 0)


class TwoNamespaces(Pid1Test):
    """Two containers made with `unshare --pid` only share their cgroup."""

    # Two arbords, each PID 1 of its own namespace but in one cgroup, get
    # cgroups of their own (arbord-1, arbord-1.1): stopping one leaves the
    # other's services alone.
    def test_stopping_one_pid1_arbord_leaves_another_alone(self):
        if not cgroups_usable():
            self.skipTest("no writable cgroup2 hierarchy here")
        other_units = os.path.join(self.tmp, "u2")
        os.mkdir(other_units)
        with open(os.path.join(other_units, "c.service"), "w") as f:
            f.write(f"[Service]\nExecStart={SLEEPER}\n")
        other_log = open(os.path.join(self.tmp, "other.log"), "wb")
        self.addCleanup(other_log.close)
        other = subprocess.Popen(
            [UNSHARE, "--pid", "--fork", "--mount-proc",
             ARBORD, "-u", other_units, "-r", os.path.join(self.tmp, "r2")],
            stdout=other_log, stderr=subprocess.STDOUT)

        def other_log_text():
            with open(os.path.join(self.tmp, "other.log")) as f:
                return f.read()

        def end_other():
            for child in children(other.pid):
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                other.wait(timeout=10)
            except subprocess.TimeoutExpired:
                other.kill()
                other.wait()
        self.addCleanup(end_other)
        wait_until(lambda: "c: running (pid 2)" in other_log_text(),
                   what="the other arbord's service c to run")
        self.service("a", SLEEPER)
        self.start()
        self.wait_running("a")
        self.assertEqual(self.stop(), 0)
        other_arbord = children(other.pid)
        self.assertIsNone(other.poll(), other_log_text())
        self.assertNotIn("c: failed", other_log_text())
        for child in other_arbord:
            os.kill(child, signal.SIGTERM)
        self.assertEqual(other.wait(timeout=DEFAULT_TIMEOUT), 0, other_log_text())


class InitWithoutNamespace(ArbordTest):
    """Plain `arbord --init`, not PID 1: at the end it ends its own leftover
    descendants (it is their child subreaper) and nothing else."""

    def setUp(self):
        super().setUp()
        # A canary of ours, unrelated to arbord: it must survive.
        self.canary = subprocess.Popen(["/bin/sleep", "1000"])
        self.addCleanup(lambda: (self.canary.poll() is None and self.canary.kill(),
                                 self.canary.wait()))

    def script(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def read_pidfile(self, path):
        def read():
            try:
                with open(path) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                return None
        pid = wait_until(read, what=f"a pid in {path}")
        started = start_time(pid)
        self.addCleanup(kill_if_same, pid, started)
        return pid

    def check_leftover_ended_and_canary_alive(self, leftover):
        self.assertEqual(int(proc_stat(leftover)[1]), self.proc.pid,
                         "the leftover was not adopted by arbord (child subreaper)")
        self.assertEqual(self.stop(), 0)
        wait_until(lambda: not pid_alive(leftover), timeout=5,
                   what=f"arbord's leftover descendant {leftover} to be gone")
        self.assertIsNone(self.canary.poll(), "arbord --init killed a process not its own")
        self.assertTrue(pid_alive(self.canary.pid))
        self.assertFalse(self.log_lines(r"processes are still left"), self.log())

    def test_init_ends_a_leftover_that_left_its_cgroup_and_nothing_else(self):
        if not cgroups_usable():
            self.skipTest("no writable cgroup2 hierarchy here")
        group = os.path.join(own_cgroup2_dir(), f"arbor-init-test-{os.getpid()}")
        os.makedirs(group, exist_ok=True)
        self.addCleanup(remove_group_when_empty, group)
        helper = self.script("leftover.py", LEFTOVER_PY)
        pidfile = os.path.join(self.tmp, "leftover.pid")
        marker = os.path.join(self.tmp, "leftover.marker")
        self.service("leaver", f"{sys.executable} {helper} --pidfile {pidfile} "
                               f"--marker {marker} --cgroup {group}/cgroup.procs")
        self.service("plain", SLEEPER)
        self.start("--init")
        self.wait_running("plain")
        leftover = self.read_pidfile(pidfile)
        wait_until(lambda: int(proc_stat(leftover)[1]) == self.proc.pid, timeout=5,
                   what="the leftover to be adopted by arbord")
        with open(f"/proc/{leftover}/cgroup") as f:
            self.assertNotIn("arbord-", f.read())
        self.check_leftover_ended_and_canary_alive(leftover)
        # Only --init's end-of-run sweep reaches it (its cgroup is not a
        # service's), and that sweep begins with SIGTERM.
        self.assertTrue(os.path.exists(marker), "the leftover got no SIGTERM")

    def test_init_without_cgroups_ends_a_leftover_and_nothing_else(self):
        pidfile = os.path.join(self.tmp, "escaped.pid")
        script = self.script("esc.sh",
                             f"( env -i setsid sh -c 'echo $$ > {pidfile}.tmp && "
                             f"mv {pidfile}.tmp {pidfile}; exec sleep 1000' & )\n"
                             "exec sleep 1000\n")
        self.service("esc", f"/bin/sh {script}")
        self.service("plain", SLEEPER)
        self.start("--init", "--no-cgroups")
        self.wait_running("plain")
        leftover = self.read_pidfile(pidfile)
        wait_until(lambda: int(proc_stat(leftover)[1]) == self.proc.pid, timeout=5,
                   what="the leftover to be adopted by arbord")
        self.assertNotIn(b"ARBOR_UNIT", proc_environ(leftover))
        self.check_leftover_ended_and_canary_alive(leftover)

    def test_job_control_signals_do_not_stop_it(self):
        # Here, unlike as PID 1, the kernel would stop arbord on SIGTSTP,
        # SIGTTIN or SIGTTOU if it left them at their default action.
        self.service("a", SLEEPER)
        self.start("--init")
        self.wait_running("a")
        for count, sig in enumerate((signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU), start=2):
            self.proc.send_signal(sig)
            self.kill_service("a")
            self.wait_running("a", count=count)
            self.assertNotIn(proc_stat(self.proc.pid)[0], ("T", "t"), f"{sig.name} stopped arbord")
        self.assertIsNone(self.proc.poll())
        self.assertEqual(self.stop(), 0)


if __name__ == "__main__":
    unittest.main()
