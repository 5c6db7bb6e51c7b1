"""The control socket (supervisord/proto/control.h) against a real arbord
with real services, spoken from Python (tests/integration/control_client.py)
while arborctl does not exist yet.

What arbord answers is checked against the processes themselves: pids
against /proc, stops against the process being gone when RESULT arrives,
kill against what the service itself says it received. The robustness
tests send what no well-behaved client would, and after each check that
arbord still serves, still supervises, and has not leaked a descriptor.
"""

import os
import pwd
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

import control_client as cc
from harness import NOTIFY_CLIENT, ArbordTest, pid_alive, proc_cmdline, proc_environ, wait_until

NC = NOTIFY_CLIENT
SLEEPER = "/bin/sleep 1000"
PY = sys.executable

# A service for these tests. Arguments, in any order:
#   slow-stop=SECS  on SIGTERM: print term-received, sleep, exit 0
#   trap-usr1       print "got-usr1 PID" on SIGUSR1
#   child           fork a child (same process group) that does the same
#   lines=N         print line-1 .. line-N at start
#   big=N:LEN       print N lines of LEN bytes, as fast as it can
#   after=PATH      do all that only once PATH exists
# then "ready", then wait for signals forever.
SVC_PY = r'''
import os, signal, sys, time
opts = dict(a.split("=", 1) if "=" in a else (a, "") for a in sys.argv[1:])
def say(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()
if "after" in opts:
    while not os.path.exists(opts["after"]):
        time.sleep(0.02)
if "trap-usr1" in opts:
    signal.signal(signal.SIGUSR1, lambda s, f: say("got-usr1 %d" % os.getpid()))
    if "child" in opts:
        # "ready" only once the child has its own handler: before that it
        # would answer SIGUSR1 with the parent's.
        armed_r, armed_w = os.pipe()
        if os.fork() == 0:
            signal.signal(signal.SIGUSR1, lambda s, f: say("child-got-usr1 %d" % os.getpid()))
            os.close(armed_w)
            while True:
                signal.pause()
        os.close(armed_w)
        os.read(armed_r, 1)
        os.close(armed_r)
if "slow-stop" in opts:
    delay = float(opts["slow-stop"])
    def on_term(s, f):
        say("term-received")
        time.sleep(delay)
        say("term-done")
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
for i in range(int(opts.get("lines", "0"))):
    say("line-%d" % (i + 1))
if "big" in opts:
    n, length = (int(x) for x in opts["big"].split(":"))
    line = "x" * length
    for i in range(n):
        say("%06d %s" % (i, line))
say("ready")
while True:
    signal.pause()
'''


class ControlTest(ArbordTest):
    """ArbordTest plus the control socket."""

    def setUp(self):
        super().setUp()
        self.svc_py = os.path.join(self.tmp, "svc.py")
        with open(self.svc_py, "w") as f:
            f.write(SVC_PY)
        self.flags = os.path.join(self.tmp, "flags")
        os.mkdir(self.flags)

    def tearDown(self):
        # Pids the tests learnt from status, not only from the log.
        self.extra_pids += getattr(self, "seen_pids", [])
        # A clean shutdown where possible (the harness SIGKILLs arbord
        # otherwise), so that a sanitizer build reports leaks at exit.
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except Exception:
                pass
        super().tearDown()

    def py_service(self, name, *args, **keys):
        self.service(name, f"{PY} -u {self.svc_py} {' '.join(args)}", **keys)

    def flag(self, name):
        return os.path.join(self.flags, name)

    # ---- talking to arbord ----

    @property
    def sock(self):
        return cc.socket_path(self.run)

    def req(self, command, units=(), **options):
        return cc.request(self.run, command, units, **options)

    def result(self, command, units=(), **options):
        """The RESULT of a request, asserting nothing else came with it."""
        result, frames, logs = self.req(command, units, **options)
        self.assertEqual((frames, logs), ([], []), f"{command}: unexpected frames")
        return result

    def status(self, units=()):
        frames = cc.status(self.run, units)
        self.seen_pids = getattr(self, "seen_pids", []) + [
            f.int("pid") for f in frames if "pid" in f]
        return frames

    def smap(self, units=()):
        return {f["name"]: f for f in self.status(units)}

    def unit(self, name):
        return self.smap([name])[name]

    def start_arbord(self, *args, **kw):
        self.start(*args, **kw)
        # The socket file appears at bind(), a moment before listen():
        # wait until a connection is accepted.
        def listening():
            if self.proc.poll() is not None:
                return True
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(self.sock)
                return True
            except (FileNotFoundError, ConnectionRefusedError):
                return False
        wait_until(listening, what="the control socket")
        self.assertIsNone(self.proc.poll(), f"arbord exited:\n{self.log()}")
        return self.proc

    def wait_state(self, name, state, timeout=15):
        return wait_until(lambda: (lambda u: u if u["state"] == state else None)(self.unit(name)),
                          timeout=timeout, what=f"{name} to be {state}")

    def wait_all_running(self, names=None, timeout=15):
        def check():
            m = self.smap()
            want = names or m.keys()
            return m if all(m[n]["state"] == "running" for n in want) else None
        return wait_until(check, timeout=timeout, what="every unit running")

    def pids(self, names=None):
        m = self.smap()
        return {n: f.int("pid") for n, f in m.items()
                if f["kind"] == "service" and (names is None or n in names)}

    def fds(self):
        return cc.fd_count(self.proc.pid)

    def clients(self):
        return cc.control_connections(self.proc.pid, self.run)

    def fd_baseline(self):
        """arbord's fd count with no client connected."""
        wait_until(lambda: self.clients() == 0, what="no control clients")
        self.baseline_map = self.fd_map()
        return len(self.baseline_map)

    def fd_map(self):
        d = f"/proc/{self.proc.pid}/fd"
        out = {}
        for fd in os.listdir(d):
            try:
                out[int(fd)] = os.readlink(f"{d}/{fd}")
            except OSError:
                pass
        return out

    def wait_fds(self, baseline, timeout=15):
        """arbord's descriptors back to `baseline` (clients and old pipes gone)."""
        try:
            wait_until(lambda: self.fds() == baseline, timeout=timeout,
                       what=f"arbord's fd count back to {baseline}")
        except AssertionError:
            raise AssertionError(f"fd leak: {self.fds()} open, baseline {baseline}: "
                                 f"{self.fd_map()}; at baseline: {getattr(self, 'baseline_map', '?')}")

    def assert_supervising(self, name="w"):
        """arbord still serves status and still restarts a killed service."""
        self.assertIsNone(self.proc.poll(), "arbord died")
        before = self.unit(name)
        self.assertEqual(before["state"], "running")
        os.kill(before.int("pid"), signal.SIGKILL)
        after = wait_until(
            lambda: (lambda u: u if u["state"] == "running" and u.int("pid") != before.int("pid")
                     else None)(self.unit(name)),
            what=f"{name} restarted after a kill")
        self.assertEqual(after.int("restarts"), before.int("restarts") + 1)
        return after

    def log_bytes(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def service_log(self, name, pattern, count=1, timeout=15):
        """Wait for `count` captured lines of `name` matching `pattern`."""
        return self.wait_log(rf"^{re.escape(name)}\[\d+\]: .*{pattern}", count, timeout)


def ppid_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def cmdline(pid):
    return proc_cmdline(pid).split(b"\0")


# ---------------------------------------------------------------------------


class Status(ControlTest):
    def tree(self):
        self.supervisor("root", ["a", "grp", "c", "t", "n"], Intensity=20, Period="10s")
        self.supervisor("grp", ["g1", "g2"], Intensity=20)
        for name in ("a", "c", "g1", "g2"):
            self.service(name, SLEEPER)
        # A temporary service that crashes with status 7 once told to.
        self.service("t", f"/bin/sh -c 'while [ ! -e {self.flag('t')} ]; do sleep 0.02; done; exit 7'",
                     Restart="temporary")
        self.service("n", f"{NC} READY=1 'STATUS=serving 42 clients'", Type="notify")
        self.start_arbord()
        return self.wait_all_running()

    def test_every_unit_once_depth_first_in_start_order_with_parents(self):
        self.tree()
        frames = self.status()
        names = [f["name"] for f in frames]
        self.assertEqual(names, ["root", "a", "grp", "g1", "g2", "c", "t", "n"])
        parents = {f["name"]: f.get("parent") for f in frames}
        self.assertEqual(parents, {"root": None, "a": "root", "grp": "root", "g1": "grp",
                                   "g2": "grp", "c": "root", "t": "root", "n": "root"})
        depths = {f["name"]: f.int("depth") for f in frames}
        self.assertEqual(depths, {"root": 0, "a": 1, "grp": 1, "g1": 2, "g2": 2, "c": 1,
                                  "t": 1, "n": 1})
        kinds = {f["name"]: f["kind"] for f in frames}
        self.assertEqual(kinds["root"], "supervisor")
        self.assertEqual(kinds["grp"], "supervisor")
        self.assertEqual(kinds["g1"], "service")
        self.assertEqual(frames[0].get("strategy"), "one-for-one")
        self.assertEqual({f["name"]: f.get("type") for f in frames if f["kind"] == "service"},
                         {"a": "exec", "c": "exec", "g1": "exec", "g2": "exec", "t": "exec",
                          "n": "notify"})
        for f in frames:
            self.assertEqual(f["state"], "running", f)
            self.assertEqual(f.int("restarts"), 0, f)
            self.assertEqual(f.int("held"), 0, f)
            self.assertNotIn("exit_code", f)
            self.assertNotIn("exit_signal", f)
            if f["kind"] == "supervisor":
                self.assertNotIn("pid", f)

    def test_pids_are_the_real_processes(self):
        self.tree()
        frames = self.status()
        for f in frames:
            if f["kind"] != "service":
                continue
            pid = f.int("pid")
            self.assertTrue(pid_alive(pid), f)
            self.assertEqual(pid, self.pid_of(f["name"]))
            self.assertEqual(ppid_of(pid), self.proc.pid, f"{f['name']} is not arbord's child")
            env = proc_environ(pid)
            self.assertEqual(env.get(b"ARBOR_UNIT"), f["name"].encode(), f)
        self.assertEqual(cmdline(self.unit("a").int("pid"))[:2], [b"/bin/sleep", b"1000"])

    def test_restarts_last_exit_and_uptime_follow_reality(self):
        self.tree()
        a = self.unit("a")
        # uptime_ms grows with real time.
        u1 = a.int("uptime_ms")
        self.assertGreaterEqual(u1, 0)
        wait_until(lambda: self.unit("a").int("uptime_ms") >= u1 + 200, what="uptime to grow")
        # Two real crashes: two restarts, new pids, the last exit's signal.
        pid = a.int("pid")
        for n in (1, 2):
            os.kill(pid, signal.SIGKILL)
            a = wait_until(lambda: (lambda u: u if u.int("restarts") == n and
                                    u["state"] == "running" else None)(self.unit("a")),
                           what=f"restart {n}")
            self.assertNotEqual(a.int("pid"), pid)
            self.assertTrue(pid_alive(a.int("pid")))
            self.assertFalse(pid_alive(pid))
            pid = a.int("pid")
        self.assertEqual(a.int("exit_signal"), signal.SIGKILL)
        self.assertNotIn("exit_code", a)
        self.assertLess(a.int("uptime_ms"), u1 + 200 + 60_000)
        # The uptime restarted with the new instance.
        self.assertLess(a.int("uptime_ms"), self.unit("c").int("uptime_ms"))
        # Nobody else moved.
        self.assertEqual(self.unit("c").int("restarts"), 0)
        # A crash with a status: the temporary t exits 7 and is not restarted.
        open(self.flag("t"), "w").close()
        t = self.wait_state("t", "failed")
        self.assertEqual(t.int("exit_code"), 7)
        self.assertNotIn("exit_signal", t)
        self.assertNotIn("pid", t)
        self.assertNotIn("uptime_ms", t)
        self.assertEqual(t.int("restarts"), 0)

    def test_status_text_from_a_notify_service(self):
        self.tree()
        n = wait_until(lambda: (lambda u: u if "status" in u else None)(self.unit("n")),
                       what="STATUS= to show")
        self.assertEqual(n["status"], "serving 42 clients")

    def test_held_after_an_operator_stop(self):
        self.tree()
        self.assertEqual(self.result("stop", ["c"]).int("exit"), 0)
        c = self.unit("c")
        self.assertEqual(c["state"], "stopped")
        self.assertEqual(c.int("held"), 1)
        self.assertNotIn("pid", c)
        self.assertEqual(self.unit("a").int("held"), 0)
        self.assertEqual(self.result("start", ["c"]).int("exit"), 0)
        self.assertEqual(self.unit("c").int("held"), 0)

    def test_named_units_give_only_their_subtrees(self):
        self.tree()
        self.assertEqual([f["name"] for f in self.status(["grp"])], ["grp", "g1", "g2"])
        self.assertEqual([f.int("depth") for f in self.status(["grp"])], [1, 2, 2])
        self.assertEqual([f["name"] for f in self.status(["g2"])], ["g2"])
        self.assertEqual([f["name"] for f in self.status(["c", "grp"])], ["c", "grp", "g1", "g2"])
        self.assertEqual(len(self.status(["root"])), 8)

    def test_unknown_unit_is_exit_3_and_nothing_happens(self):
        self.tree()
        before = self.pids()
        result, frames, logs = self.req("status", ["nosuch"])
        self.assertEqual((result.int("ok"), result.int("exit")), (0, 3))
        self.assertIn("nosuch", result["error"])
        self.assertEqual((frames, logs), ([], []))
        # Even mixed with real units, and for commands that change things.
        for command in ("status", "stop", "restart", "start", "kill", "wait"):
            units = ["a", "nosuch"] if command != "wait" else ["nosuch"]
            result, frames, logs = self.req(command, units)
            self.assertEqual(result.int("exit"), 3, f"{command}: {result}")
            self.assertEqual((frames, logs), ([], []))
        result = self.result("logs", ["nosuch"])
        self.assertEqual(result.int("exit"), 3)
        self.assertEqual(self.pids(), before)
        self.assertEqual(self.log_lines(r"stopping"), [])
        self.assertTrue(all(f.int("restarts") == 0 for f in self.status()))


# ---------------------------------------------------------------------------


class StartStopRestart(ControlTest):
    def test_stop_returns_only_after_the_process_is_gone(self):
        self.supervisor("root", ["slow", "w"])
        self.py_service("slow", "slow-stop=0.7", "child", "trap-usr1")
        self.service("w", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        self.service_log("slow", "ready")
        pid = self.unit("slow").int("pid")
        # Its child, in the same process group.
        child = wait_until(lambda: [int(p) for p in os.listdir("/proc") if p.isdigit()
                                    and pid_alive(int(p)) and ppid_of_safe(int(p)) == pid],
                           what="slow's child")[0]
        t0 = time.monotonic()
        result = self.result("stop", ["slow"])
        elapsed = time.monotonic() - t0
        self.assertFalse(pid_alive(pid), "stop returned before the process was gone")
        self.assertFalse(pid_alive(child), "stop returned before the process group was gone")
        self.assertEqual((result.int("ok"), result.int("exit")), (1, 0), result)
        self.assertGreaterEqual(elapsed, 0.6, "the service takes 0.7s to stop")
        self.assertIn("slow: stopped", result.get("message", ""))
        self.assertEqual(self.unit("slow")["state"], "stopped")
        self.service_log("slow", "term-done")
        # Stopping what is stopped is done at once.
        self.assertEqual(self.result("stop", ["slow"]).int("exit"), 0)

    def test_restart_gives_a_new_pid_running_when_result_arrives(self):
        self.supervisor("root", ["a", "b"])
        self.service("a", SLEEPER)
        self.service("b", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        old = self.pids()
        for n in (1, 2, 3):
            result = self.result("restart", ["a"])
            self.assertEqual(result.int("exit"), 0, result)
            a = self.unit("a")
            self.assertEqual(a["state"], "running")
            self.assertTrue(pid_alive(a.int("pid")))
            self.assertFalse(pid_alive(old["a"]))
            self.assertNotEqual(a.int("pid"), old["a"])
            self.assertIn(f"running (pid {a.int('pid')})", result["message"])
            # An operator restart is not a restart by the parent.
            self.assertEqual(a.int("restarts"), 0)
            old["a"] = a.int("pid")
        self.assertEqual(self.pids()["b"], old["b"])
        # Restarting several at once.
        result = self.result("restart", ["a", "b"])
        self.assertEqual(result.int("exit"), 0)
        self.assertEqual(len(result.all("message")), 2)
        now = self.pids()
        self.assertTrue(all(pid_alive(p) and p != old[n] for n, p in now.items()))

    def root_tree(self):
        self.supervisor("root", ["a", "grp"])
        self.supervisor("grp", ["g"])
        self.service("a", SLEEPER)
        self.service("g", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        return self.pids()

    def wait_restarted(self, before):
        return wait_until(lambda: (lambda m: m if all(
            m[n]["state"] == "running" and m[n].int("pid") != before[n] for n in before)
            else None)(self.smap()), what="every service restarted")

    def test_restart_of_the_root_returns_when_done(self):
        # `restart root` restarts every child and answers once they run.
        before = self.root_tree()
        try:
            result, _, _ = cc.request(self.run, "restart", ["root"], timeout=5)
        finally:
            self.wait_restarted(before)
        self.assertEqual(result.int("exit"), 0, result)

    def test_restart_of_the_root_is_not_counted_as_restarts(self):
        # `restart root` is an operator action: no child's `restarts` grows.
        before = self.root_tree()
        self.assertEqual(self.result("restart", ["root"], no_block=1).int("exit"), 0)
        m = self.wait_restarted(before)
        self.assertEqual([m[n].int("restarts") for n in ("a", "grp", "g")], [0, 0, 0])

    def test_restart_of_the_root_restarts_every_child(self):
        before = self.root_tree()
        result = self.result("restart", ["root"], no_block=1)
        self.assertEqual(result.int("exit"), 0, result)
        m = self.wait_restarted(before)
        for name in ("a", "g"):
            self.assertEqual(m[name]["state"], "running")
            self.assertNotEqual(m[name].int("pid"), before[name])
            self.assertFalse(pid_alive(before[name]))
        self.assertIsNone(self.proc.poll())

    def test_start_of_a_notify_service_returns_only_after_ready(self):
        self.supervisor("root", ["w", "n"])
        self.service("w", SLEEPER)
        self.service("n", f"{NC} sleep:1 READY=1", Type="notify")
        self.start_arbord()
        self.wait_all_running()
        self.assertEqual(self.result("stop", ["n"]).int("exit"), 0)
        t0 = time.monotonic()
        result = self.result("start", ["n"])
        elapsed = time.monotonic() - t0
        n = self.unit("n")
        self.assertEqual(result.int("exit"), 0, result)
        self.assertEqual(n["state"], "running", "start returned before READY")
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertEqual(len(self.running_pids("n")), 2)
        # The same for restart.
        t0 = time.monotonic()
        self.assertEqual(self.result("restart", ["n"]).int("exit"), 0)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertEqual(self.unit("n")["state"], "running")

    def test_a_failing_start_is_exit_1_with_an_error(self):
        self.supervisor("root", ["w", "f"])
        self.service("w", SLEEPER)
        # Ready normally; once the flag exists it dies before READY.
        self.service("f", f"/bin/sh -c 'test -e {self.flag('f')} && exit 3; exec {NC} READY=1'",
                     Type="notify", Restart="temporary")
        self.start_arbord()
        self.wait_all_running()
        self.assertEqual(self.result("stop", ["f"]).int("exit"), 0)
        open(self.flag("f"), "w").close()
        result = self.result("start", ["f"])
        self.assertEqual((result.int("ok"), result.int("exit")), (0, 1), result)
        self.assertRegex(result["error"], r"^f: failed.*exit status 3")
        self.assertEqual(self.unit("f")["state"], "failed")
        # An exec failure the same way.
        self.service("f", f"{self.tmp}/no/such/binary", Restart="temporary")
        self.assertEqual(self.result("reload").int("exit"), 0)
        # (The reload tries it once; a start while that is under way would
        # meet the bug of test_start_while_the_unit_is_still_starting.)
        self.wait_state("f", "failed")
        result = self.result("start", ["f"])
        self.assertEqual(result.int("exit"), 1, result)
        self.assertIn("f: failed", result["error"])
        self.assertEqual(self.unit("w")["state"], "running")

    def test_no_block_returns_at_once(self):
        self.supervisor("root", ["w", "n"])
        self.service("w", SLEEPER)
        self.service("n", f"{NC} sleep:1.5 READY=1", Type="notify")
        self.start_arbord()
        self.wait_all_running()
        t0 = time.monotonic()
        result = self.result("restart", ["n"], no_block=1)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(result.int("exit"), 0)
        self.assertIn(self.unit("n")["state"], ("stopping", "starting"))
        self.wait_state("n", "running")
        self.assertGreaterEqual(time.monotonic() - t0, 1.4)
        # stop no_block: a slow stop is still under way when RESULT comes.
        self.py_service("w", "slow-stop=1")
        self.assertEqual(self.result("reload").int("exit"), 0)
        self.service_log("w", "ready")
        pid = self.unit("w").int("pid")
        result = self.result("stop", ["w"], no_block=1)
        self.assertEqual(result.int("exit"), 0)
        self.assertTrue(pid_alive(pid))
        self.assertEqual(self.unit("w")["state"], "stopping")
        self.wait_state("w", "stopped")
        self.assertFalse(pid_alive(pid))
        # start no_block on the notify service.
        self.assertEqual(self.result("stop", ["n"]).int("exit"), 0)
        t0 = time.monotonic()
        self.assertEqual(self.result("start", ["n"], no_block=1).int("exit"), 0)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(self.unit("n")["state"], "starting")
        self.wait_state("n", "running")

    def test_operator_stop_holds_and_never_counts_against_intensity(self):
        # Intensity=2: three restarts within a minute and the root gives up.
        self.supervisor("root", ["a", "x", "y"], Strategy="one-for-all", Intensity=2,
                        Period="60s")
        self.service("a", SLEEPER)
        self.service("x", SLEEPER)
        self.service("y", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        x = self.unit("x").int("pid")
        self.assertEqual(self.result("stop", ["x"]).int("exit"), 0)
        self.assertFalse(pid_alive(x))
        # A group restart (one-for-all: y dies) does not start a held child.
        y = self.unit("y").int("pid")
        os.kill(y, signal.SIGKILL)
        wait_until(lambda: (lambda m: m["y"]["state"] == "running" and m["y"].int("pid") != y
                            and m["a"]["state"] == "running")(self.smap()),
                   what="the group restart")
        xs = self.unit("x")
        self.assertEqual((xs["state"], xs.int("held")), ("stopped", 1))
        self.assertEqual(len(self.running_pids("x")), 1)
        self.assertEqual(self.unit("root").int("restarts"), 0)
        # Past the time any restart would take, still stopped.
        wait_until(lambda: self.unit("a").int("uptime_ms") > 1000, what="a second to pass")
        self.assertEqual(self.unit("x")["state"], "stopped")
        self.assertEqual(len(self.log_lines(r"^arbord: x: starting pid")), 1)
        # Operator stops and starts, many times: never a restart, never gives up.
        for i in range(5):
            self.assertEqual(self.result("start", ["x"]).int("exit"), 0)
            self.assertEqual(self.unit("x")["state"], "running")
            self.assertEqual(self.result("stop", ["x"]).int("exit"), 0)
            self.assertEqual(self.result("restart", ["a"]).int("exit"), 0)
        self.assertEqual(self.result("start", ["x"]).int("exit"), 0)
        m = self.smap()
        self.assertTrue(all(f["state"] == "running" for f in m.values()), m)
        self.assertEqual(m["x"].int("restarts"), 0)
        self.assertEqual(m["x"].int("held"), 0)
        self.assertEqual(self.log_lines("giving up"), [])
        self.assertIsNone(self.proc.poll())
        # And the second restart it is allowed is still there to use.
        os.kill(m["a"].int("pid"), signal.SIGKILL)
        wait_until(lambda: (lambda a: a["state"] == "running" and a.int("pid") != m["a"].int("pid"))
                   (self.unit("a")), what="a restarted")
        self.assertEqual(self.log_lines("giving up"), [])

    def test_stop_and_start_a_whole_subtree(self):
        self.supervisor("root", ["a", "grp", "c"])
        self.supervisor("grp", ["g1", "sub", "g2"])
        self.supervisor("sub", ["s1"])
        for name in ("a", "c", "g1", "g2", "s1"):
            self.service(name, SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        result = self.result("stop", ["grp"])
        self.assertEqual(result.int("exit"), 0, result)
        for name in ("g1", "g2", "s1"):
            self.assertFalse(pid_alive(before[name]), f"{name} still alive after stop grp")
        m = self.smap()
        for name in ("grp", "g1", "sub", "s1", "g2"):
            self.assertEqual(m[name]["state"], "stopped", name)
        self.assertEqual(m["grp"].int("held"), 1)
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopping"), ["grp", "g2", "sub", "s1", "g1"])
        self.assertEqual((m["a"].int("pid"), m["c"].int("pid")), (before["a"], before["c"]))
        # The tree goes on: a crash elsewhere is handled, grp stays stopped.
        os.kill(before["c"], signal.SIGKILL)
        self.wait_running("c", count=2)
        self.assertEqual(self.unit("grp")["state"], "stopped")
        result = self.result("start", ["grp"])
        self.assertEqual(result.int("exit"), 0, result)
        m = self.smap()
        for name in ("grp", "g1", "sub", "s1", "g2"):
            self.assertEqual(m[name]["state"], "running", name)
        for name in ("g1", "g2", "s1"):
            self.assertTrue(pid_alive(m[name].int("pid")))
            self.assertNotEqual(m[name].int("pid"), before[name])
        self.assertEqual(m["a"].int("pid"), before["a"])
        # Restart the subtree: new pids, in start order.
        result = self.result("restart", ["grp"])
        self.assertEqual(result.int("exit"), 0, result)
        m2 = self.smap()
        for name in ("g1", "g2", "s1"):
            self.assertNotEqual(m2[name].int("pid"), m[name].int("pid"))
            self.assertTrue(pid_alive(m2[name].int("pid")))
        self.assertEqual(self.order_of(r"^arbord: (\w+): starting pid")[-3:], ["g1", "s1", "g2"])

    def test_start_while_the_unit_is_still_starting_waits_for_ready(self):
        # `start` of a unit that is STARTING answers once it is ready.
        self.supervisor("root", ["w", "n"])
        self.service("w", SLEEPER)
        self.service("n", f"{NC} sleep:1 READY=1", Type="notify")
        self.start_arbord()
        self.wait_all_running()
        self.assertEqual(self.result("restart", ["n"], no_block=1).int("exit"), 0)
        self.wait_state("n", "starting")
        result, _, _ = cc.request(self.run, "start", ["n"], timeout=5)
        self.assertEqual(result.int("exit"), 0)
        self.assertEqual(self.unit("n")["state"], "running")

    def test_start_while_the_unit_is_still_stopping_starts_it_again(self):
        # `start` of a unit that is STOPPING starts it again once stopped.
        self.supervisor("root", ["w", "slow"])
        self.service("w", SLEEPER)
        self.py_service("slow", "slow-stop=1")
        self.start_arbord()
        self.wait_all_running()
        self.service_log("slow", "ready")
        self.assertEqual(self.result("stop", ["slow"], no_block=1).int("exit"), 0)
        self.assertEqual(self.unit("slow")["state"], "stopping")
        try:
            result, _, _ = cc.request(self.run, "start", ["slow"], timeout=5)
            self.assertEqual(result.int("exit"), 0)
        finally:
            self.wait_log(r"^arbord: slow: stopped")
        self.assertEqual(self.unit("slow")["state"], "running")


def ppid_of_safe(pid):
    try:
        return ppid_of(pid)
    except (OSError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------------------


class Kill(ControlTest):
    def test_signal_reaches_the_process_group(self):
        self.supervisor("root", ["k", "w"])
        self.py_service("k", "trap-usr1", "child")
        self.service("w", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        self.service_log("k", "ready")
        pid = self.unit("k").int("pid")
        result = self.result("kill", ["k"], signal=int(signal.SIGUSR1))
        self.assertEqual((result.int("ok"), result.int("exit")), (1, 0), result)
        self.service_log("k", f"got-usr1 {pid}")
        self.service_log("k", "child-got-usr1")
        # Still the same instance: it handled the signal.
        k = self.unit("k")
        self.assertEqual((k["state"], k.int("pid"), k.int("restarts")), ("running", pid, 0))
        # The default signal is SIGTERM: a real kill, then a real restart.
        self.assertEqual(self.result("kill", ["w"]).int("exit"), 0)
        w = wait_until(lambda: (lambda u: u if u.int("restarts") == 1 and u["state"] == "running"
                                else None)(self.unit("w")), what="w restarted")
        self.assertEqual(w.int("exit_signal"), signal.SIGTERM)

    def test_kill_of_a_stopped_service_fails(self):
        self.supervisor("root", ["k", "w"])
        self.service("k", SLEEPER)
        self.service("w", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        self.assertEqual(self.result("stop", ["k"]).int("exit"), 0)
        result = self.result("kill", ["k"], signal=int(signal.SIGUSR1))
        self.assertEqual((result.int("ok"), result.int("exit")), (0, 1), result)
        self.assertIn("not running", result["error"])
        # A bad signal number is a usage error.
        self.assertEqual(self.result("kill", ["w"], signal=99999).int("exit"), 2)
        self.assertEqual(self.result("kill", ["w"], signal="USR1").int("exit"), 2)
        self.assertEqual(self.unit("w").int("restarts"), 0)


# ---------------------------------------------------------------------------


class Logs(ControlTest):
    def test_last_n_lines_in_order_with_pid_and_time(self):
        self.supervisor("root", ["p", "grp"])
        self.supervisor("grp", ["q"])
        t0 = time.time() * 1000
        self.service("p", "/bin/sh -c 'for i in $(seq 1 30); do echo line-$i; done; exec sleep 1000'")
        self.service("q", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        self.service_log("p", "line-30")
        pid = self.unit("p").int("pid")
        result, frames, logs = self.req("logs", ["p"], lines=5)
        t1 = time.time() * 1000
        self.assertEqual(result.int("exit"), 0)
        self.assertEqual(frames, [])
        self.assertEqual([l["line"] for l in logs], [f"line-{i}" for i in range(26, 31)])
        for l in logs:
            self.assertEqual(l["unit"], "p")
            self.assertEqual(l.int("pid"), pid)
            self.assertTrue(t0 - 1000 <= l.int("time_ms") <= t1 + 1000,
                            f"time_ms {l['time_ms']} not within [{t0}, {t1}]")
        times = [l.int("time_ms") for l in logs]
        self.assertEqual(times, sorted(times))
        # Default 10; more than there is gives all; 0 gives none.
        _, _, logs = self.req("logs", ["p"])
        self.assertEqual([l["line"] for l in logs], [f"line-{i}" for i in range(21, 31)])
        _, _, logs = self.req("logs", ["p"], lines=1000)
        self.assertEqual([l["line"] for l in logs], [f"line-{i}" for i in range(1, 31)])
        _, _, logs = self.req("logs", ["p"], lines=0)
        self.assertEqual(logs, [])
        # A quiet service has no lines, and that is fine.
        result, _, logs = self.req("logs", ["q"], lines=5)
        self.assertEqual((result.int("exit"), logs), (0, []))
        # Lines of the previous instance keep their own pid.
        os.kill(pid, signal.SIGKILL)
        self.service_log("p", "line-30", count=2)
        new = wait_until(lambda: (lambda u: u.int("pid") if u["state"] == "running" and
                                  u.int("pid") != pid else None)(self.unit("p")), what="new p")
        _, _, logs = self.req("logs", ["p"], lines=31)
        self.assertEqual(logs[0]["line"], "line-30")
        self.assertEqual(logs[0].int("pid"), pid)
        self.assertEqual([l.int("pid") for l in logs[1:]], [new] * 30)

    def test_logs_of_a_supervisor_fail(self):
        self.supervisor("root", ["grp"])
        self.supervisor("grp", ["q"])
        self.service("q", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        for unit in ("grp", "root"):
            result, frames, logs = self.req("logs", [unit])
            self.assertEqual((result.int("ok"), result.int("exit")), (0, 1), result)
            self.assertEqual((frames, logs), ([], []))
        # One unit only.
        self.assertEqual(self.result("logs", ["q", "grp"]).int("exit"), 2)
        self.assertEqual(self.result("logs").int("exit"), 2)

    def test_follow_streams_new_lines_until_closed(self):
        fifo = os.path.join(self.tmp, "fifo")
        os.mkfifo(fifo)
        self.supervisor("root", ["w", "cat"])
        self.service("w", SLEEPER)
        self.service("cat", f"/bin/sh -c 'echo before; exec cat {fifo}'")
        self.start_arbord()
        self.wait_all_running()
        self.service_log("cat", "before")
        baseline = self.fd_baseline()
        writer = wait_until(lambda: _open_writer(fifo), what="cat to open its fifo")
        try:
            conn = cc.open_request(self.run, "logs", ["cat"], lines=1, follow=1)
            first = conn.recv_frame(timeout=5)
            self.assertEqual((first.type, first["line"]), (cc.LOG, "before"))
            for i in range(1, 6):
                os.write(writer, f"live-{i}\n".encode())
                t0 = time.time() * 1000
                f = conn.recv_frame(timeout=5)
                self.assertEqual(f.type, cc.LOG, f)
                self.assertEqual((f["unit"], f["line"]), ("cat", f"live-{i}"))
                self.assertEqual(f.int("pid"), self.unit("cat").int("pid"))
                self.assertLess(abs(f.int("time_ms") - t0), 2000)
            # A second follower: the last line (which also tells us it is
            # following now), then the new ones, as the first does.
            conn2 = cc.open_request(self.run, "logs", ["cat"], lines=1, follow=1)
            self.assertEqual(conn2.recv_frame(timeout=5)["line"], "live-5")
            os.write(writer, b"both\n")
            self.assertEqual(conn.recv_frame(timeout=5)["line"], "both")
            self.assertEqual(conn2.recv_frame(timeout=5)["line"], "both")
            conn2.close()
            # Others are served meanwhile.
            self.assertEqual(len(self.status()), 3)
            conn.close()
        finally:
            os.close(writer)
        # cat got EOF and exited: restarted; the followers are gone.
        self.wait_fds(baseline)
        self.assert_supervising()

    def test_follow_ends_with_an_error_when_the_unit_goes_away(self):
        self.supervisor("root", ["w", "p"])
        self.service("w", SLEEPER)
        self.service("p", "/bin/sh -c 'echo hello; exec sleep 1000'")
        self.start_arbord()
        self.wait_all_running()
        self.service_log("p", "hello")
        conn = cc.open_request(self.run, "logs", ["p"], lines=10, follow=1)
        self.assertEqual(conn.recv_frame(timeout=5)["line"], "hello")
        os.unlink(os.path.join(self.units, "p.service"))
        self.supervisor("root", ["w"])
        self.assertEqual(self.result("reload").int("exit"), 0)
        result, _, logs = conn.read_reply(timeout=5)
        self.assertIsNotNone(result)
        self.assertEqual(result.int("exit"), 1)
        conn.close()


def _try_connect(s, path):
    try:
        s.setblocking(False)
        s.connect(path)
        return True
    except BlockingIOError:
        return False


def _open_writer(path):
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


# ---------------------------------------------------------------------------


class Wait(ControlTest):
    def tree(self):
        self.supervisor("root", ["w", "n", "t"])
        self.service("w", SLEEPER)
        self.service("n", f"{NC} sleep:1 READY=1", Type="notify")
        self.service("t", "/bin/sh -c 'exit 5'", Restart="temporary")
        self.start_arbord()
        wait_until(lambda: (lambda m: m["n"]["state"] == "running" and m["t"]["state"] == "failed")
                   (self.smap()), what="n running and t failed")

    def timed(self, *args, **kw):
        t0 = time.monotonic()
        result = self.result("wait", *args, **kw)
        return result, time.monotonic() - t0

    def test_running_unit_is_ready_at_once(self):
        self.tree()
        for unit in ("w", "n", "root"):
            result, elapsed = self.timed([unit])
            self.assertEqual((result.int("ok"), result.int("exit")), (1, 0), result)
            self.assertLess(elapsed, 1.0)

    def test_a_starting_unit_is_waited_for(self):
        self.tree()
        self.assertEqual(self.result("restart", ["n"], no_block=1).int("exit"), 0)
        self.assertIn(self.unit("n")["state"], ("stopping", "starting"))
        result, elapsed = self.timed(["n"])
        self.assertEqual(result.int("exit"), 0, result)
        self.assertEqual(self.unit("n")["state"], "running")
        self.assertGreaterEqual(elapsed, 0.5)
        # A long enough timeout changes nothing.
        self.assertEqual(self.result("restart", ["n"], no_block=1).int("exit"), 0)
        result, elapsed = self.timed(["n"], timeout_ms=10_000)
        self.assertEqual(result.int("exit"), 0, result)

    def test_stopped_or_failed_unit_fails_at_once(self):
        self.tree()
        result, elapsed = self.timed(["t"])
        self.assertEqual((result.int("ok"), result.int("exit")), (0, 1), result)
        self.assertLess(elapsed, 1.0)
        self.assertIn("t: failed", result["error"])
        self.assertEqual(self.result("stop", ["w"]).int("exit"), 0)
        result, elapsed = self.timed(["w"])
        self.assertEqual(result.int("exit"), 1, result)
        self.assertLess(elapsed, 1.0)
        # A stop under way while waiting for ready: fails, does not hang.
        self.assertEqual(self.result("restart", ["n"], no_block=1).int("exit"), 0)
        conn = cc.open_request(self.run, "wait", ["n"])
        self.assertEqual(self.result("stop", ["n"]).int("exit"), 0)
        result, _, _ = conn.read_reply(timeout=5)
        conn.close()
        self.assertEqual(result.int("exit"), 1, result)

    def test_timeout(self):
        self.supervisor("root", ["w", "n"])
        self.service("w", SLEEPER)
        self.service("n", f"{NC} sleep:1 READY=1", Type="notify")
        self.start_arbord()
        self.wait_all_running()
        self.service("n", f"{NC} sleep:60 READY=1", Type="notify", StartTimeout="120s")
        self.assertEqual(self.result("reload").int("exit"), 0)
        self.assertEqual(self.unit("n")["state"], "starting")
        result, elapsed = self.timed(["n"], timeout_ms=700)
        self.assertEqual((result.int("ok"), result.int("exit")), (0, 1), result)
        self.assertGreaterEqual(elapsed, 0.6)
        self.assertLess(elapsed, 3.0)
        self.assertIn("timed out", result["error"])
        self.assertEqual(self.unit("n")["state"], "starting")
        # timeout_ms=0 on a starting unit: at once.
        result, elapsed = self.timed(["n"], timeout_ms=0)
        self.assertEqual(result.int("exit"), 1)
        self.assertLess(elapsed, 1.0)
        self.assertEqual(self.result("wait", ["n"], timeout_ms=-5).int("exit"), 2)
        self.assertEqual(self.result("wait", ["n", "w"]).int("exit"), 2)


# ---------------------------------------------------------------------------


class Shutdown(ControlTest):
    def test_result_then_exit_0_in_reverse_order(self):
        self.supervisor("root", ["a", "grp", "c"])
        self.supervisor("grp", ["g1", "g2"])
        for name in ("a", "c", "g1", "g2"):
            self.service(name, SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        pids = self.pids()
        conn = cc.open_request(self.run, "shutdown")
        result, frames, logs = conn.read_reply()
        conn.close()
        self.assertIsNotNone(result, "no RESULT for shutdown")
        self.assertEqual((result.int("ok"), result.int("exit")), (1, 0), result)
        self.assertEqual(self.wait_exit(), 0)
        for name, pid in pids.items():
            self.assertFalse(pid_alive(pid), name)
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopping"),
                         ["root", "c", "grp", "g2", "g1", "a"])
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopped"),
                         ["c", "g2", "g1", "grp", "a", "root"])
        self.assertFalse(os.path.exists(self.sock))

    def test_stop_of_the_root_is_a_shutdown(self):
        self.supervisor("root", ["a", "b"])
        self.service("a", SLEEPER)
        self.service("b", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        pids = self.pids()
        conn = cc.open_request(self.run, "stop", ["root"])
        result, _, _ = conn.read_reply()
        conn.close()
        self.assertIsNotNone(result, "no RESULT for stop root")
        self.assertEqual(result.int("exit"), 0, result)
        self.assertEqual(self.wait_exit(), 0)
        self.assertFalse(any(pid_alive(p) for p in pids.values()))
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopped"), ["b", "a", "root"])

    def test_requests_during_a_shutdown(self):
        self.supervisor("root", ["a", "slow"])
        self.service("a", SLEEPER)
        self.py_service("slow", "slow-stop=1")
        self.start_arbord()
        self.wait_all_running()
        self.service_log("slow", "ready")
        conn = cc.open_request(self.run, "shutdown")
        self.wait_log(r"^arbord: slow: stopping")
        # Reading still works; changing is refused; a second shutdown waits too.
        self.assertEqual(len(self.status()), 3)
        result = self.result("start", ["slow"])
        self.assertEqual(result.int("exit"), 1)
        self.assertIn("shutting down", result["error"])
        result = self.result("reload")
        self.assertEqual(result.int("exit"), 1)
        conn2 = cc.open_request(self.run, "shutdown")
        for c in (conn, conn2):
            result, _, _ = c.read_reply()
            c.close()
            self.assertEqual(result.int("exit"), 0, result)
        self.assertEqual(self.wait_exit(), 0)


# ---------------------------------------------------------------------------

# Our own user, one per test process (runs may overlap), removed at the end.
TEST_USER = f"arbctl{os.getpid()}"


class Access(ControlTest):
    created_user = False

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root to create a user and connect as it")
        try:
            pwd.getpwnam(TEST_USER)
        except KeyError:
            if not shutil.which("useradd"):
                raise unittest.SkipTest("no useradd")
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", TEST_USER], check=True)
            cls.created_user = True
        pw = pwd.getpwnam(TEST_USER)
        cls.uid, cls.gid = pw.pw_uid, pw.pw_gid

    @classmethod
    def tearDownClass(cls):
        if cls.created_user:
            subprocess.run(["userdel", TEST_USER], check=False)

    def as_user(self, command, units=(), **options):
        return cc.request_as(self.uid, self.gid, self.run, command, units, **options)

    def test_others_may_read_but_not_change(self):
        os.chmod(self.tmp, 0o755)
        self.supervisor("root", ["a", "p"])
        self.service("a", SLEEPER)
        self.service("p", "/bin/sh -c 'echo hello; exec sleep 1000'")
        self.start_arbord()
        self.wait_all_running()
        self.service_log("p", "hello")
        before = self.pids()
        # Reading.
        result, frames, _ = self.as_user("status")
        self.assertEqual(result.int("exit"), 0)
        self.assertEqual([f["name"] for f in frames], ["root", "a", "p"])
        self.assertEqual(frames[1].int("pid"), before["a"])
        result, _, logs = self.as_user("logs", ["p"], lines=5)
        self.assertEqual(result.int("exit"), 0)
        self.assertEqual([l["line"] for l in logs], ["hello"])
        result, _, _ = self.as_user("wait", ["a"])
        self.assertEqual(result.int("exit"), 0, result)
        # Changing.
        for command, units, opts in [("start", ["a"], {}), ("stop", ["a"], {}),
                                     ("restart", ["a"], {}), ("kill", ["a"], {"signal": 9}),
                                     ("reload", [], {}), ("shutdown", [], {}),
                                     ("stop", ["root"], {})]:
            result, frames, logs = self.as_user(command, units, **opts)
            self.assertEqual((result.int("ok"), result.int("exit")), (0, 1), f"{command}: {result}")
            self.assertIn("permission denied", result["error"], command)
            self.assertIn(command, result["error"])
            self.assertIn(str(self.uid), result["error"])
            self.assertEqual((frames, logs), ([], []))
        self.assertEqual(self.pids(), before)
        self.assertTrue(all(pid_alive(p) for p in before.values()))
        self.assertEqual(self.log_lines("stopping|reload|SIGHUP"), [])
        self.assertTrue(all(f.int("restarts") == 0 for f in self.status()))
        self.assertIsNone(self.proc.poll())
        # Root still may.
        self.assertEqual(self.result("restart", ["a"]).int("exit"), 0)
        self.assertNotEqual(self.pids()["a"], before["a"])

    def hold_followers_as(self, n, unit):
        """A child process, as the unprivileged user, that opens `n`
        `logs follow=1` connections and holds them until we close `release`.
        Returns (pid, release_fd, how many it opened)."""
        ready_r, ready_w = os.pipe()
        release_r, release_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                os.close(release_w)
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
                conns = []
                for _ in range(n):
                    try:
                        conns.append(cc.open_request(self.run, "logs", [unit], lines=1,
                                                     follow=1, timeout=5))
                    except Exception:
                        break
                os.write(ready_w, str(len(conns)).encode())
                os.close(ready_w)
                os.read(release_r, 1)
            finally:
                os._exit(0)
        os.close(ready_w)
        os.close(release_r)
        with os.fdopen(ready_r, "rb") as f:
            opened = int(f.read() or b"0")
        return pid, release_w, opened

    def test_readers_cannot_lock_root_out(self):
        # Readers cannot lock root out: at the client limit a privileged
        # newcomer makes room by evicting the oldest unprivileged client.
        os.chmod(self.tmp, 0o755)
        self.supervisor("root", ["a", "p"])
        self.service("a", SLEEPER)
        self.service("p", "/bin/sh -c 'echo hello; exec sleep 1000'")
        self.start_arbord()
        self.wait_all_running()
        self.service_log("p", "hello")
        pid, release, opened = self.hold_followers_as(300, "p")
        try:
            self.assertGreaterEqual(opened, 256)
            result, frames, _ = self.req("status")
            self.assertEqual((result.int("exit"), len(frames)), (0, 3))
            self.assertEqual(self.result("restart", ["a"]).int("exit"), 0)
        finally:
            os.close(release)
            os.waitpid(pid, 0)
        wait_until(lambda: self.clients() == 0, what="the followers to go")
        self.assertEqual(len(self.status()), 3)

    def test_setpriv_connection_is_refused_too(self):
        # The same through a separate program, as arborctl will be.
        if not shutil.which("setpriv"):
            self.skipTest("no setpriv")
        os.chmod(self.tmp, 0o755)
        self.supervisor("root", ["a"])
        self.service("a", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        here = os.path.join(self.tmp, "py")
        os.mkdir(here)
        shutil.copy(cc.__file__, here)
        os.chmod(here, 0o755)
        os.chmod(os.path.join(here, "control_client.py"), 0o644)
        script = ("import sys, control_client as cc; r,_,_ = cc.request(sys.argv[1], 'stop', ['a']);"
                  " print(r['exit'], r['error'])")
        out = subprocess.run(["setpriv", "--reuid", str(self.uid), "--regid", str(self.gid),
                              "--clear-groups", PY, "-c", script, self.run],
                             capture_output=True, text=True, cwd=here, timeout=30,
                             env=dict(os.environ, PYTHONPATH=here, PYTHONDONTWRITEBYTECODE="1"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.startswith("1 permission denied"), out.stdout)
        self.assertEqual(self.pids(), before)


# ---------------------------------------------------------------------------


class Robustness(ControlTest):
    """Every case: arbord survives, serves the next client, still restarts a
    killed service, and ends up with exactly the fds it had."""

    def setUp(self):
        super().setUp()
        self.supervisor("root", ["w", "talk"], Intensity=100, Period="10s")
        self.service("w", SLEEPER)
        self.py_service("talk", f"after={self.flag('talk')}", "big=5000:4000")
        self.start_arbord()
        self.wait_all_running()
        self.baseline = self.fd_baseline()

    def settle(self):
        self.assert_supervising()
        self.wait_fds(self.baseline)
        self.assertEqual(self.stop(), 0, "arbord did not shut down cleanly")

    def expect_dropped(self, conn, timeout=5):
        """The server closes without a RESULT (or with a failing one) and
        never sends a UNIT or LOG frame."""
        frames = conn.wait_closed(timeout=timeout)
        conn.close()
        for f in frames:
            self.assertEqual(f.type, cc.RESULT, f"unexpected {f!r}")
            self.assertEqual(f.int("ok"), 0, f)
        return frames

    def test_garbage_bytes(self):
        rng = random.Random(1234)
        for junk in (rng.randbytes(4096), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                     b"\xff" * 64, b"\x00" * 64):
            conn = cc.connect(self.run)
            conn.send_raw(junk)
            self.expect_dropped(conn)
        # Garbage after a good HELLO.
        conn = cc.connect(self.run)
        conn.hello()
        conn.send_raw(rng.randbytes(512))
        self.expect_dropped(conn)
        self.settle()

    def test_a_header_announcing_4_GiB(self):
        for ftype in (cc.HELLO, cc.REQUEST):
            conn = cc.connect(self.run)
            conn.send_raw(struct.pack("=IHH", 0xFFFFFFFF, ftype, 0))
            t0 = time.monotonic()
            self.expect_dropped(conn, timeout=5)
            self.assertLess(time.monotonic() - t0, 3, "it waited for the payload")
        # Just over the limit, after HELLO.
        conn = cc.connect(self.run)
        conn.hello()
        conn.send_raw(struct.pack("=IHH", 128 * 1024 + 1, cc.REQUEST, 0))
        self.expect_dropped(conn)
        # At the limit is fine.
        conn = cc.connect(self.run)
        pad = 128 * 1024 - len(cc.encode_fields([("version", 1)])) - 2 - 3 - 4
        hello = cc.encode_fields([("pad", b"p" * pad), ("version", 1)])
        self.assertEqual(len(hello), 128 * 1024)
        conn.send_frame(cc.HELLO, hello)
        self.assertEqual(conn.recv_frame().type, cc.HELLO)
        conn.send_request("status")
        result, frames, _ = conn.read_reply()
        conn.close()
        self.assertEqual((result.int("exit"), len(frames)), (0, 3))
        self.settle()

    def test_a_truncated_frame_then_close(self):
        for data in (cc.frame(cc.HELLO, [("version", 1)])[:-3], b"\x10\x00\x00",
                     cc.frame(cc.HELLO, [("version", 1)]) +
                     cc.frame(cc.REQUEST, cc.request_pairs("stop", ["w"]))[:-2]):
            conn = cc.connect(self.run)
            conn.send_raw(data)
            conn.close()
        # The truncated stop did nothing.
        self.assertEqual(self.unit("w").int("restarts"), 0)
        self.assertEqual(self.log_lines("stopping"), [])
        self.settle()

    def test_a_wrong_version(self):
        for version in (2, 0, -1, "x", b"", 10 ** 30):
            conn = cc.connect(self.run)
            conn.send_frame(cc.HELLO, [("version", version)])
            frames = conn.wait_closed()
            conn.close()
            self.assertEqual(len(frames), 1, frames)
            self.assertEqual(frames[0].type, cc.RESULT)
            self.assertEqual(frames[0].int("ok"), 0)
            self.assertIn("version", frames[0]["error"])
        conn = cc.connect(self.run)
        conn.send_frame(cc.HELLO, b"")
        self.expect_dropped(conn)
        self.settle()

    def test_request_before_hello(self):
        conn = cc.connect(self.run)
        conn.send_frame(cc.REQUEST, cc.request_pairs("stop", ["w"]))
        self.expect_dropped(conn)
        self.assertEqual(self.log_lines("stopping"), [])
        # A second HELLO is a protocol error as well.
        conn = cc.connect(self.run)
        conn.hello()
        conn.send_frame(cc.HELLO, [("version", 1)])
        self.expect_dropped(conn)
        # So is a REQUEST after the REQUEST.
        conn = cc.connect(self.run)
        conn.hello()
        conn.send_raw(cc.frame(cc.REQUEST, cc.request_pairs("wait", ["w"], timeout_ms=60_000)) +
                      cc.frame(cc.REQUEST, cc.request_pairs("stop", ["w"])))
        frames = conn.wait_closed()
        conn.close()
        self.assertEqual([f.type for f in frames], [cc.RESULT])
        self.assertEqual(self.unit("w")["state"], "running")
        self.settle()

    def test_an_unknown_command(self):
        for command in ("frobnicate", "", "STATUS", "status " * 10, "x" * 10000):
            result = self.result(command)
            self.assertEqual((result.int("ok"), result.int("exit")), (0, 2), result)
            self.assertIn("unknown command", result["error"])
        # No command at all.
        conn = cc.connect(self.run)
        conn.hello()
        conn.send_frame(cc.REQUEST, [("unit", "w")])
        result, frames, _ = conn.read_reply()
        conn.close()
        self.assertEqual(result.int("exit"), 2)
        self.settle()

    def test_malformed_fields(self):
        good = cc.encode_fields([("command", "status")])
        cases = [
            good + struct.pack("=H", 500) + b"abc",               # klen past the end
            good + struct.pack("=H", 3) + b"uni",                 # no room for vlen
            good + struct.pack("=H", 4) + b"unit" + struct.pack("=I", 0xFFFFFFF0) + b"w",
            good + b"\x01",                                       # half a klen
            struct.pack("=H", 0xFFFF) + b"k" * 10,
        ]
        for payload in cases:
            conn = cc.connect(self.run)
            conn.hello()
            conn.send_frame(cc.REQUEST, payload)
            frames = conn.wait_closed()
            conn.close()
            self.assertFalse([f for f in frames if f.type != cc.RESULT], frames)
            for f in frames:
                self.assertEqual(f.int("exit"), 2, f)
        # Malformed HELLO.
        conn = cc.connect(self.run)
        conn.send_frame(cc.HELLO, struct.pack("=H", 40) + b"version")
        self.expect_dropped(conn)
        # An overlong unit name, a huge list of units.
        for name in ("w" * 65, "w" * 5000, "w" * 64):
            result = self.result("stop", [name])
            self.assertEqual(result.int("exit"), 3, (name[:10], result))
        result, frames, _ = self.req("status", ["w"] * 9000)
        self.assertEqual(result.int("exit"), 0)
        self.assertEqual(self.unit("w")["state"], "running")
        self.settle()

    def test_a_unit_name_with_a_nul_is_no_such_unit(self):
        # Names never contain NUL: unit="w\0junk" must not be taken for w.
        result = self.result("stop", ["w\0junk"], no_block=1)
        self.assertEqual(result.int("exit"), 3, result)
        self.assertEqual(self.log_lines("w: stopping"), [])
        self.assertEqual(self.unit("w")["state"], "running")
        # Nor is command="stop\0x" a stop.
        result = self.result("stop\0x", ["w"])
        self.assertEqual(result.int("exit"), 2, result)
        self.assertEqual(self.unit("w")["state"], "running")
        self.settle()

    def test_frame_types_0_and_99(self):
        for ftype in (0, 99, cc.UNIT, cc.LOG, cc.RESULT):
            for after_hello in (False, True):
                conn = cc.connect(self.run)
                if after_hello:
                    conn.hello()
                conn.send_frame(ftype, cc.request_pairs("stop", ["w"]))
                self.expect_dropped(conn)
        # A non-zero reserved field.
        conn = cc.connect(self.run)
        conn.send_frame(cc.HELLO, [("version", 1)], reserved=7)
        self.expect_dropped(conn)
        self.assertEqual(self.log_lines("stopping"), [])
        self.settle()

    def test_a_silent_client_does_not_block_others(self):
        silent = cc.connect(self.run)
        half = cc.connect(self.run)
        half.hello()
        t0 = time.monotonic()
        self.assertEqual(len(self.status()), 3)
        self.assertLess(time.monotonic() - t0, 2)
        self.assert_supervising()
        silent.close()
        half.close()
        self.settle()

    def test_a_silent_client_is_dropped_after_about_10s(self):
        silent = cc.connect(self.run)
        half = cc.connect(self.run)
        half.hello()
        t0 = time.monotonic()
        self.assertEqual(silent.wait_closed(timeout=20), [])
        self.assertEqual(half.wait_closed(timeout=20), [])
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 7)
        self.assertLess(elapsed, 14)
        silent.close()
        half.close()
        self.settle()

    def test_1000_abandoned_connections(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        conns = []
        try:
            for i in range(1000):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                # The backlog may be full for a moment: EAGAIN, retry.
                wait_until(lambda: _try_connect(s, self.sock), interval=0.001,
                           what=f"connection {i} accepted")
                s.settimeout(10)
                if i % 3 == 1:
                    s.sendall(cc.frame(cc.HELLO, [("version", 1)]))
                elif i % 3 == 2:
                    s.sendall(cc.frame(cc.HELLO, [("version", 1)])[:5])
                conns.append(s)
            # arbord holds at most 256 of them.
            wait_until(lambda: self.fds() <= self.baseline + 256,
                       what="arbord to hold at most 256 clients")
            self.assertLessEqual(self.clients(), 256)
            # With all of them still open, a normal request is served promptly.
            t0 = time.monotonic()
            result, frames, _ = self.req("status")
            self.assertLess(time.monotonic() - t0, 2.0)
            self.assertEqual((result.int("exit"), len(frames)), (0, 3))
            self.assertLessEqual(self.fds(), self.baseline + 256)
            self.assert_supervising()
            self.assertLessEqual(self.fds(), self.baseline + 256)
        finally:
            for s in conns:
                s.close()
        self.settle()

    def test_a_follower_that_never_reads_is_dropped(self):
        conn = cc.Connection(self.run, connect=False)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.sock.connect(self.sock)
        conn.hello()
        conn.send_request("logs", ["talk"], lines=0, follow=1)
        rss_before = cc.rss_kb(self.proc.pid)
        # 5000 lines of 4 kB: 20 MB, far past the 8 MiB arbord may queue.
        open(self.flag("talk"), "w").close()
        # Others are served while it talks.
        self.assertEqual(len(self.status()), 3)
        # (The log gets big: search it as bytes, not line by line.)
        wait_until(lambda: b"dropping a client that does not read" in self.log_bytes(),
                   timeout=30, interval=0.1, what="arbord to drop the follower")
        wait_until(lambda: [l["line"] for l in self.req("logs", ["talk"], lines=1)[2]] == ["ready"],
                   timeout=30, interval=0.1, what="talk to finish talking")
        rss_after = cc.rss_kb(self.proc.pid)
        self.assertLess(rss_after - rss_before, 64 * 1024,
                        f"arbord grew from {rss_before} kB to {rss_after} kB")
        # What it had queued is cut off: far less than 20 MB ever arrives.
        received = 0
        conn.sock.settimeout(10)
        while True:
            data = conn.sock.recv(1 << 20)
            if not data:
                break
            received += len(data)
        conn.close()
        self.assertLess(received, 16 * 1024 * 1024)
        self.assertEqual(len(self.status()), 3)
        # A reading follower meanwhile is fine.
        reader = cc.open_request(self.run, "logs", ["talk"], lines=3, follow=1)
        lines = [reader.recv_frame(timeout=5)["line"] for _ in range(3)]
        reader.close()
        self.assertEqual(lines[-1], "ready")
        self.settle()


if __name__ == "__main__":
    unittest.main()
