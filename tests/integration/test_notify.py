"""The sd_notify protocol against a real arbord: readiness (Type=notify,
StartTimeout, EXTEND_TIMEOUT_USEC), STATUS= and STOPPING=, the watchdog,
MAINPID=, and who may speak for a service on its notify socket.

Senders are the real libsystemd (tests/helpers/notify_client.c), the real
`systemd-notify`, and raw datagrams from Python where the point is bytes
that no well-behaved client would send.

Some tests freeze arbord with SIGSTOP to make a race deterministic: while
arbord is stopped, a sender can send and exit (and be reaped by its own
parent) before arbord reads its datagram, and a child of arbord that exits
stays a zombie, so arbord sees its exit and its last messages together.
"""

import array
import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest
from contextlib import contextmanager

from harness import ARBORD, NOTIFY_CLIENT, ArbordTest, pid_alive, proc_environ, wait_until

NC = NOTIFY_CLIENT
SLEEPER = "/bin/sleep 1000"
NOBODY_UID = 65534
NOBODY_GID = 65534
AS_NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
NOT_OURS = "ignored: not a process of this service"


def send_datagram(path, data, fds=()):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        if fds:
            s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))],
                       0, path)
        else:
            s.sendto(data, path)


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


class NotifyTest(ArbordTest):
    def setUp(self):
        super().setUp()
        # Services and senders running as nobody must reach the sockets
        # and scripts under the (0700) temporary directory.
        os.chmod(self.tmp, 0o755)
        self.flags = os.path.join(self.tmp, "flags")
        os.mkdir(self.flags)
        os.chmod(self.flags, 0o777)

    # ---- helpers ----

    def script(self, name, body):
        """An sh script in the temporary directory; returns its path."""
        path = os.path.join(self.tmp, name + ".sh")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, 0o755)
        return path

    def pyscript(self, name, body):
        """A Python script run by the service; returns an ExecStart value."""
        path = os.path.join(self.tmp, name + ".py")
        with open(path, "w") as f:
            f.write(body)
        os.chmod(path, 0o644)
        return f"{sys.executable} {path}"

    def flag(self, name):
        """A path services (even as nobody) and the test can create."""
        return os.path.join(self.flags, name)

    def touch(self, name):
        with open(self.flag(name), "w"):
            pass

    def wait_for_flag(self, name):
        """A shell loop a service runs until the test touches the flag."""
        return f"while [ ! -e {self.flag(name)} ]; do sleep 0.02; done"

    def notify_path(self, name):
        return os.path.join(self.run, "notify", name)

    def starting_pid(self, name, count=1):
        lines = self.wait_log(rf"^arbord: {re.escape(name)}: starting pid \d+", count)
        return int(re.search(r"starting pid (\d+)", lines[count - 1]).group(1))

    def hold(self, seconds, predicate, what):
        """Poll for `seconds`: predicate must hold every time."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.assertTrue(predicate(), what)
            time.sleep(0.02)

    def arbord_fds(self):
        return sorted(os.listdir(f"/proc/{self.proc.pid}/fd"), key=int)

    def line_index(self, pattern):
        for i, line in enumerate(self.log().splitlines()):
            if re.search(pattern, line):
                return i
        self.fail(f"no /{pattern}/ in the log")

    @contextmanager
    def frozen(self):
        """arbord stopped (SIGSTOP) for the duration of the block."""
        self.proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: proc_state(self.proc.pid) == "T", what="arbord to stop")
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def sender(self, path, data, uid=None, gid=None):
        """Fork a process that sends `data` to `path` (as uid/gid if given)
        and then stays alive until the test ends. Returns its pid."""
        release_r, release_w = os.pipe()
        sent_r, sent_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(release_w)
                os.close(sent_r)
                if gid is not None:
                    os.setgroups([])
                    os.setgid(gid)
                if uid is not None:
                    os.setuid(uid)
                send_datagram(path, data)
                os.write(sent_w, b"1")
                os.read(release_r, 1)
                status = 0
            finally:
                os._exit(status)
        os.close(release_r)
        os.close(sent_w)

        def release():
            os.close(release_w)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.addCleanup(release)
        sent = os.read(sent_r, 1)
        os.close(sent_r)
        self.assertEqual(sent, b"1", "the sender could not send")
        return pid

    def run_as_nobody(self, argv, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        r = subprocess.run(AS_NOBODY + argv, env=full_env, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, f"{argv} as nobody: {r.stderr}")


class Readiness(NotifyTest):
    def test_sibling_is_not_started_until_ready(self):
        self.supervisor("root", ["n", "sib"])
        self.service("n", f"{NC} echo:waiting sleep:1.5 READY=1", Type="notify")
        self.service("sib", SLEEPER)
        self.start()
        pid = self.starting_pid("n")
        t0 = time.monotonic()
        # Inside the sleep before READY=1: n is still starting, sib not begun.
        self.wait_log(rf"^n\[{pid}\]: waiting$")
        self.assertTrue(pid_alive(pid))
        self.assertEqual(self.log_lines(r"^arbord: n: running"), [])
        self.assertEqual(self.log_lines(r"^arbord: sib: starting"), [])
        self.assertEqual(self.wait_running("n"), pid)
        sib = self.wait_running("sib")
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.assertLess(self.line_index(r"^arbord: n: running"),
                        self.line_index(r"^arbord: sib: starting pid"))
        self.assertTrue(pid_alive(sib))
        self.assertEqual(self.stop(), 0)

    def test_systemd_notify_from_a_shell_script(self):
        # systemd-notify (v252, as root) sends READY=1 on behalf of its
        # parent, then BARRIER=1 with a pipe fd and waits until the receiver
        # closes it: rc=0 shows arbord did, and did not make it time out.
        self.supervisor("root", ["n", "sib"])
        self.service("n", self.script("n", "systemd-notify --ready --status='up and running'\n"
                                           'echo "rc=$?"\n'
                                           "exec sleep 1000"), Type="notify")
        self.service("sib", SLEEPER)
        self.start("-v")
        pid = self.starting_pid("n")
        self.assertEqual(self.wait_running("n"), pid)
        self.wait_running("sib")
        self.wait_log(r"^arbord: n: status: up and running$")
        self.assertEqual(self.wait_log(rf"^n\[{pid}\]: rc=")[0], f"n[{pid}]: rc=0")
        self.assertEqual(self.stop(), 0)

    def test_systemd_notify_as_the_service_user(self):
        self.supervisor("root", ["n", "sib"])
        self.service("n", self.script("n", "systemd-notify --ready\n"
                                           'echo "rc=$? uid=$(id -u)"\n'
                                           "exec sleep 1000"), Type="notify", User="nobody")
        self.service("sib", SLEEPER)
        self.start()
        pid = self.starting_pid("n")
        self.assertEqual(self.wait_running("n"), pid)
        self.wait_running("sib")
        self.assertEqual(self.wait_log(rf"^n\[{pid}\]: rc=")[0],
                         f"n[{pid}]: rc=0 uid={NOBODY_UID}")
        self.assertEqual(self.stop(), 0)

    def test_systemd_notify_no_block_that_has_exited_before_arbord_reads(self):
        # As a non-root user systemd-notify sends with its own pid; with
        # --no-block it exits at once. arbord is frozen while it sends and
        # exits (and its shell reaps it): when arbord reads READY=1 the
        # sender is gone, and its uid (the service's) must do.
        self.supervisor("root", ["n", "sib"])
        self.service("n", self.script("n", f"{self.wait_for_flag('go')}\n"
                                           "systemd-notify --no-block --ready && "
                                           f"touch {self.flag('sent')}\n"
                                           "exec sleep 1000"), Type="notify", User="nobody")
        self.service("sib", SLEEPER)
        self.start()
        pid = self.starting_pid("n")
        with self.frozen():
            self.touch("go")
            wait_until(lambda: os.path.exists(self.flag("sent")), what="systemd-notify to finish")
            self.assertEqual(self.log_lines(r"^arbord: n: running"), [])
        self.assertEqual(self.wait_running("n"), pid)
        self.wait_running("sib")
        self.assertEqual(self.log_lines(NOT_OURS), [])
        self.assertEqual(self.stop(), 0)

    def test_ready_from_a_vanished_child_of_a_root_service(self):
        # The READY=1 sender (notify_client's forked child) has exited and
        # been reaped, and so has notify_client, before arbord reads.
        self.supervisor("root", ["n", "sib"])
        self.service("n", self.script("n", f"{self.wait_for_flag('go')}\n"
                                           f"{NC} fork-notify:READY=1 exit:0 && "
                                           f"touch {self.flag('sent')}\n"
                                           "exec sleep 1000"), Type="notify")
        self.service("sib", SLEEPER)
        self.start()
        pid = self.starting_pid("n")
        with self.frozen():
            self.touch("go")
            wait_until(lambda: os.path.exists(self.flag("sent")), what="notify_client to finish")
        self.assertEqual(self.wait_running("n"), pid)
        self.wait_running("sib")
        self.assertEqual(self.stop(), 0)

    def test_ready_from_a_forked_child_that_exits_at_once(self):
        self.supervisor("root", ["n", "sib"])
        self.service("n", f"{NC} fork-notify:READY=1", Type="notify")
        self.service("sib", SLEEPER)
        self.start()
        pid = self.starting_pid("n")
        # The main pid stays the service's pid, not the child's.
        self.assertEqual(self.wait_running("n"), pid)
        self.wait_running("sib")
        self.assertTrue(pid_alive(pid))
        self.assertEqual(self.stop(), 0)

    def test_start_timeout_stops_and_restarts_as_a_failed_start(self):
        # Transient, and killed by its own stop signal: that would be a
        # clean "shutdown" exit, but a start timeout is a failed start, so
        # it is restarted, and each counts against Intensity=1.
        self.supervisor("root", ["n", "sib"], Intensity=1, Period="60s")
        self.service("n", f"{NC} pause", Type="notify", StartTimeout="500ms",
                     Restart="transient")
        self.service("sib", SLEEPER)
        self.start()
        first = self.starting_pid("n")
        t0 = time.monotonic()
        self.wait_log(r"^arbord: n: not ready after StartTimeout; stopping it")
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        wait_until(lambda: not pid_alive(first), what="the timed-out instance to die")
        self.wait_log(r"^arbord: n: failed \(killed by SIGTERM\)")
        second = self.starting_pid("n", count=2)
        self.assertNotEqual(second, first)
        self.assertRegex(self.log_lines(r"^arbord: n: starting pid")[1], r"\(restart 1\)$")
        # The second timeout is a second restart within the period: root gives up.
        self.assertEqual(self.wait_exit(), 1)
        self.assertEqual(len(self.log_lines(r"^arbord: n: not ready after StartTimeout")), 2)
        self.assertTrue(self.log_lines(r"^arbord: root: more than 1 restarts"))
        self.assertEqual(self.log_lines(r"^arbord: n: running"), [])
        self.assertEqual(self.log_lines(r"^arbord: sib: starting"), [])
        self.assertFalse(pid_alive(second))

    def test_extend_timeout_usec_moves_the_start_deadline(self):
        self.supervisor("root", ["n", "sib"])
        self.service("n", f"{NC} EXTEND_TIMEOUT_USEC=5000000 sleep:2 READY=1", Type="notify",
                     StartTimeout="1s")
        self.service("sib", SLEEPER)
        self.start()
        pid = self.starting_pid("n")
        t0 = time.monotonic()
        self.assertEqual(self.wait_running("n"), pid)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.wait_running("sib")
        self.assertEqual(self.log_lines(r"not ready after StartTimeout"), [])
        self.assertEqual(len(self.log_lines(r"^arbord: n: starting pid")), 1)
        self.assertEqual(self.stop(), 0)

    def test_extend_timeout_usec_expires_too(self):
        self.supervisor("root", ["n"])
        self.service("n", f"{NC} EXTEND_TIMEOUT_USEC=2000000 pause", Type="notify",
                     StartTimeout="500ms")
        self.start()
        self.starting_pid("n")
        t0 = time.monotonic()
        self.wait_log(r"^arbord: n: not ready after StartTimeout")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 1.3, "the extension was not applied")
        self.assertLess(elapsed, 8, "the extended deadline never came")
        self.starting_pid("n", count=2)
        self.assertEqual(self.stop(), 0)

    def test_exit_before_ready_is_a_failed_start(self):
        # Exit 0 before READY=1 is still a failed start: a transient service
        # is restarted, and each counts (Intensity=1: the second gives up).
        self.supervisor("root", ["n", "sib"], Intensity=1, Period="60s")
        self.service("n", f"{NC} sleep:0.1 exit:0", Type="notify", Restart="transient")
        self.service("sib", SLEEPER)
        self.start()
        self.wait_log(r"^arbord: n: failed to start \(exit status 0\)")
        self.starting_pid("n", count=2)
        self.assertEqual(self.wait_exit(), 1)
        self.assertEqual(len(self.log_lines(r"^arbord: n: failed to start \(exit status 0\)")), 2)
        self.assertEqual(self.log_lines(r"^arbord: n: running"), [])
        self.assertEqual(self.log_lines(r"^arbord: sib: starting"), [])

    def test_ready_sent_just_before_exiting_counts(self):
        # arbord sees the exit and the READY=1 together: READY comes first.
        self.supervisor("root", ["n", "sib"])
        self.service("n", self.script("n", f"{self.wait_for_flag('go')}\n"
                                           f"exec {NC} READY=1 exit:0"),
                     Type="notify", Restart="transient")
        self.service("sib", SLEEPER)
        self.start()
        pid = self.starting_pid("n")
        with self.frozen():
            self.touch("go")
            wait_until(lambda: not pid_alive(pid), what="n to exit (a zombie while arbord sleeps)")
        self.wait_log(r"^arbord: n: exited \(exit status 0\)")
        self.assertEqual(self.wait_running("n"), pid)
        self.wait_running("sib")
        self.assertEqual(self.log_lines(r"^arbord: n: failed"), [])
        self.assertEqual(len(self.log_lines(r"^arbord: n: starting pid")), 1)
        self.assertEqual(self.stop(), 0)

    def test_ready_from_exec_simple_and_oneshot_services_is_ignored(self):
        self.supervisor("root", ["e", "s", "o", "n", "sib"])
        self.service("e", f"{NC} READY=1 READY=1 STATUS=e-sent", Type="exec")
        self.service("s", f"{NC} READY=1 READY=1 STATUS=s-sent", Type="simple")
        self.service("o", f"{NC} READY=1 STATUS=o-sent sleep:0.3 exit:0", Type="oneshot")
        # A notify service that says READY=1 twice is ready once.
        self.service("n", f"{NC} READY=1 READY=1 STATUS=n-sent", Type="notify")
        self.service("sib", SLEEPER)
        self.start("-v")
        pids = {x: self.wait_running(x) for x in "esn"}
        self.wait_running("sib")
        for x in "eson":
            self.wait_log(rf"^arbord: {x}: status: {x}-sent$")
        self.wait_log(r"^arbord: e: READY=1 ignored: Type=exec", count=2)
        self.wait_log(r"^arbord: s: READY=1 ignored: Type=simple", count=2)
        self.wait_log(r"^arbord: o: READY=1 ignored: Type=oneshot")
        # The oneshot is done only when it exits 0, after the sleep.
        self.assertLess(self.line_index(r"^arbord: o: status: o-sent"),
                        self.line_index(r"^arbord: o: exited \(exit status 0\)"))
        self.assertLess(self.line_index(r"^arbord: o: exited"),
                        self.line_index(r"^arbord: n: starting pid"))
        for x in "esn":
            self.assertEqual(len(self.log_lines(rf"^arbord: {x}: running")), 1)
            self.assertEqual(len(self.log_lines(rf"^arbord: {x}: starting pid")), 1)
            self.assertTrue(pid_alive(pids[x]))
        self.assertEqual(self.log_lines(r"^arbord: o: running"), [])
        self.assertEqual(self.stop(), 0)

    # NOTIFY_SOCKET is absolute even when arbord is given a relative -r.
    def test_relative_runtime_directory_still_gives_an_absolute_notify_socket(self):
        self.supervisor("root", ["n"])
        self.service("n", f"{NC} READY=1", Type="notify")
        self.logfile = open(self.log_path, "wb")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen([ARBORD, "-u", self.units, "-r", "r"], cwd=self.tmp,
                                     stdout=self.logfile, stderr=subprocess.STDOUT, env=env)
        line = self.wait_log(r"^arbord: n: (running|failed)")[0]
        self.assertRegex(line, r"running")
        pid = self.wait_running("n")
        self.assertEqual(proc_environ(pid)[b"NOTIFY_SOCKET"],
                         os.path.join(self.tmp, "r", "notify", "n").encode())
        self.assertEqual(self.stop(), 0)


class StatusAndStopping(NotifyTest):
    def test_status_is_logged_at_debug_level(self):
        self.supervisor("root", ["n"])
        self.service("n", f"{NC} 'STATUS=warming up' READY=1 'STATUS=serving 3 clients'",
                     Type="notify")
        self.start("-v")
        self.wait_running("n")
        self.wait_log(r"^arbord: n: status: warming up$")
        self.wait_log(r"^arbord: n: status: serving 3 clients$")
        self.assertLess(self.line_index(r"status: warming up"),
                        self.line_index(r"status: serving 3 clients"))
        self.assertEqual(self.stop(), 0)

    def test_status_is_not_logged_without_v(self):
        self.supervisor("root", ["n", "sib"])
        self.service("n", f"{NC} STATUS=quiet READY=1", Type="notify")
        self.service("sib", SLEEPER)
        self.start()
        self.wait_running("sib")
        self.assertEqual(self.log_lines(r"status: quiet"), [])
        self.assertEqual(self.stop(), 0)

    def test_stopping_is_logged(self):
        self.supervisor("root", ["n"])
        self.service("n", f"{NC} READY=1 sleep:0.2 STOPPING=1 pause", Type="notify")
        self.start()
        pid = self.wait_running("n")
        self.wait_log(r"^arbord: n: service says it is stopping")
        self.assertLess(self.line_index(r"^arbord: n: running"),
                        self.line_index(r"^arbord: n: service says it is stopping"))
        self.assertTrue(pid_alive(pid))
        self.assertEqual(self.stop(), 0)


class Watchdog(NotifyTest):
    def test_a_pinging_service_stays_up(self):
        self.supervisor("root", ["n"])
        # Pings every 500ms: a loaded machine cannot make them that late.
        self.service("n", f"{NC} READY=1 watchdog-loop", Type="notify", WatchdogSec="1s")
        self.start()
        pid = self.wait_running("n")
        self.hold(4.0, lambda: pid_alive(pid) and not self.log_lines(r"watchdog timeout"),
                  "a service pinging WATCHDOG=1 was killed")
        self.assertEqual(len(self.log_lines(r"^arbord: n: starting pid")), 1)
        self.assertEqual(self.stop(), 0)

    def test_a_silent_service_is_killed_with_sigabrt_and_restarted(self):
        self.supervisor("root", ["n"])
        self.service("n", f"{NC} READY=1 WATCHDOG=1 pause", Type="notify", WatchdogSec="300ms",
                     WorkingDirectory=self.tmp)
        self.start()
        pid = self.wait_running("n")
        t0 = time.monotonic()
        self.wait_log(r"^arbord: n: watchdog timeout; sending SIGABRT")
        self.assertGreaterEqual(time.monotonic() - t0, 0.1)
        self.wait_log(r"^arbord: n: failed \(killed by SIGABRT\)")
        self.assertFalse(pid_alive(pid))
        new = self.wait_running("n", count=2)
        self.assertNotEqual(new, pid)
        # The new instance has its own WATCHDOG_PID.
        self.assertEqual(proc_environ(new).get(b"WATCHDOG_PID"), str(new).encode())
        self.assertEqual(self.stop(), 0)

    def test_watchdog_trigger_kills_at_once(self):
        self.supervisor("root", ["n"])
        self.service("n", f"{NC} READY=1 sleep:0.2 WATCHDOG=trigger pause", Type="notify",
                     WatchdogSec="60s", WorkingDirectory=self.tmp)
        self.start()
        pid = self.wait_running("n")
        self.wait_log(r"^arbord: n: watchdog timeout; sending SIGABRT", timeout=10)
        self.wait_log(r"^arbord: n: failed \(killed by SIGABRT\)")
        self.assertFalse(pid_alive(pid))
        self.wait_running("n", count=2)
        self.assertEqual(self.stop(), 0)

    def test_watchdog_environment(self):
        self.supervisor("root", ["w", "plain"])
        self.service("w", self.script("w", 'echo "wd pid=$WATCHDOG_PID usec=$WATCHDOG_USEC '
                                           'self=$$ sock=$NOTIFY_SOCKET"\nexec sleep 1000'),
                     WatchdogSec="2min")
        self.service("plain", self.script("plain", 'echo "plain wd=[$WATCHDOG_PID'
                                                   '$WATCHDOG_USEC] sock=$NOTIFY_SOCKET"\n'
                                                   "exec sleep 1000"))
        # Whatever arbord itself inherited must not reach the services.
        self.start(env={"WATCHDOG_PID": "1", "WATCHDOG_USEC": "7", "NOTIFY_SOCKET": "/nowhere"})
        pid = self.wait_running("w")
        line = self.wait_log(rf"^w\[{pid}\]: wd ")[0]
        self.assertEqual(line, f"w[{pid}]: wd pid={pid} usec=120000000 self={pid} "
                               f"sock={self.notify_path('w')}")
        env = proc_environ(pid)  # after the exec: sleep kept them
        self.assertEqual(env.get(b"WATCHDOG_PID"), str(pid).encode())
        self.assertEqual(env.get(b"WATCHDOG_USEC"), b"120000000")
        plain = self.wait_running("plain")
        line = self.wait_log(rf"^plain\[{plain}\]: plain ")[0]
        self.assertEqual(line, f"plain[{plain}]: plain wd=[] sock={self.notify_path('plain')}")
        self.assertNotIn(b"WATCHDOG_PID", proc_environ(plain))
        self.assertEqual(self.stop(), 0)

    # WATCHDOG_USEC= from the service changes its watchdog timeout (sd_notify(3)).
    def test_watchdog_usec_from_the_service_overrides_the_timeout(self):
        self.supervisor("root", ["n"])
        self.service("n", f"{NC} READY=1 WATCHDOG_USEC=500000 pause", Type="notify",
                     WatchdogSec="60s", WorkingDirectory=self.tmp)
        self.start()
        self.wait_running("n")
        self.wait_log(r"^arbord: n: watchdog timeout; sending SIGABRT", timeout=5)
        self.assertEqual(self.stop(), 0)


class MainPid(NotifyTest):
    def main_pid_line(self, name):
        line = self.wait_log(rf"^arbord: {re.escape(name)}: main pid is now \d+")[-1]
        return int(re.search(r"now (\d+)", line).group(1))

    def test_mainpid_from_a_shell_then_kill_the_new_main(self):
        self.supervisor("root", ["m", "sib"])
        self.service("m", self.script("m", "sleep 1000 &\n"
                                           "systemd-notify MAINPID=$! READY=1\n"
                                           f"{self.wait_for_flag('go')}\n"
                                           "exit 0"), Type="notify")
        self.service("sib", SLEEPER)
        self.start("-v")
        shell = self.starting_pid("m")
        main = self.main_pid_line("m")
        self.extra_pids.append(main)
        self.assertNotEqual(main, shell)
        self.assertTrue(pid_alive(main))
        # MAINPID= came in the same message as READY=1, and first.
        self.assertEqual(self.wait_running("m"), main)
        self.wait_running("sib")
        # The old main pid exits: that is not the service's exit any more.
        self.touch("go")
        self.wait_log(rf"^arbord: reaped pid {shell} \(not a main process\)")
        self.assertEqual(self.log_lines(r"^arbord: m: (failed|exited|stopped)"), [])
        self.assertTrue(pid_alive(main))
        # The new main pid dies: the service is restarted.
        os.kill(main, signal.SIGKILL)
        self.wait_log(r"^arbord: m: failed \(killed by SIGKILL\)")
        self.wait_running("m", count=2)
        self.extra_pids.append(self.main_pid_line("m"))
        self.assertEqual(len(self.running_pids("sib")), 1)
        # Let the new shell exit before stopping: a stop while it still
        # runs may let it reap the new main pid (see the shutdown test below).
        shell = self.starting_pid("m", count=2)
        self.wait_log(rf"^arbord: reaped pid {shell} \(not a main process\)")
        self.assertEqual(self.stop(), 0)

    # MAINPID= sent by a main process that exits in the same loop turn moves
    # the main pid; the old process's exit is not the service's.
    def test_mainpid_sent_by_a_main_process_that_exits_at_once(self):
        self.supervisor("root", ["m"])
        self.service("m", self.script("m", "sleep 1000 &\n"
                                           f"{self.wait_for_flag('go')}\n"
                                           "systemd-notify --no-block MAINPID=$! READY=1"),
                     Type="notify")
        self.start("-v")
        shell = self.starting_pid("m")
        with self.frozen():
            self.touch("go")
            wait_until(lambda: not pid_alive(shell), what="the shell to exit")
        main = self.main_pid_line("m")
        self.extra_pids.append(main)
        self.wait_running("m")
        self.wait_log(rf"^arbord: (reaped pid {shell} |m: (exited|failed|stopped))")
        self.assertEqual(self.log_lines(r"^arbord: m: (exited|failed|stopped)"), [])
        self.assertTrue(pid_alive(main))
        self.assertEqual(len(self.log_lines(r"^arbord: m: starting pid")), 1)
        self.assertEqual(self.stop(), 0)

    # A new main pid that is not arbord's child is watched through a pidfd.
    def test_killing_a_new_main_pid_whose_parent_lives_on_restarts_the_service(self):
        self.supervisor("root", ["m"])
        self.service("m", self.script("m", "sleep 1000 &\n"
                                           "systemd-notify MAINPID=$! READY=1\n"
                                           "wait"), Type="notify")
        self.start("-v")
        shell = self.starting_pid("m")
        main = self.main_pid_line("m")
        self.extra_pids.append(main)
        self.wait_running("m")
        os.kill(main, signal.SIGKILL)
        wait_until(lambda: not pid_alive(shell), what="the shell to end")
        self.wait_running("m", count=2, timeout=5)
        self.assertEqual(self.stop(), 0)

    # A main pid named by MAINPID= whose real parent (the old main process,
    # which survives SIGTERM here) reaps it: arbord watches it through a
    # pidfd, so the stop completes (status unknown) and arbord exits.
    def test_shutdown_when_the_new_main_pid_is_reaped_by_its_parent(self):
        self.supervisor("root", ["m"])
        self.service("m", self.script("m", "trap 'echo got TERM' TERM\n"
                                           "sleep 1000 &\n"
                                           "systemd-notify MAINPID=$! READY=1\n"
                                           "wait\n"
                                           "wait\n"
                                           'echo "main reaped by the shell"\n'
                                           "exec sleep 1000"),
                     Type="notify", Shutdown="1s")
        self.start("-v")
        main = self.main_pid_line("m")
        self.extra_pids.append(main)
        self.wait_running("m")
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(timeout=8), 0)
        # Who reaps the main pid first (its parent, or arbord once the
        # parent is killed) is a race; either way the stop completes.
        self.wait_log(r"^arbord: m: stopped")
        self.assertFalse(pid_alive(main))

    def test_mainpid_of_another_service_from_a_non_root_sender_is_ignored(self):
        self.supervisor("root", ["other", "m"])
        self.service("other", SLEEPER)
        pidfile = self.flag("other.pid")
        self.service("m", self.script("m", f"while [ ! -s {pidfile} ]; do sleep 0.02; done\n"
                                           f'systemd-notify MAINPID="$(cat {pidfile})" READY=1\n'
                                           "exec sleep 1000"),
                     Type="notify", User="nobody")
        self.start()
        other = self.wait_running("other")
        with open(pidfile + ".tmp", "w") as f:
            f.write(f"{other}\n")
        os.rename(pidfile + ".tmp", pidfile)
        self.wait_log(rf"^arbord: m: MAINPID={other} ignored: not a process of this service")
        m = self.wait_running("m")  # READY=1 in the same message still counts
        self.assertEqual(self.log_lines(r"main pid is now"), [])
        # other's process is still other's: killing it restarts other, not m.
        os.kill(other, signal.SIGKILL)
        self.wait_running("other", count=2)
        self.assertEqual(self.log_lines(r"^arbord: m: (failed|exited|stopped)"), [])
        self.assertTrue(pid_alive(m))
        self.assertEqual(self.stop(), 0)

    # MAINPID= naming another service's process is ignored, even from root.
    def test_mainpid_of_another_service_from_root_is_ignored(self):
        self.supervisor("root", ["other", "m"])
        self.service("other", SLEEPER)
        pidfile = self.flag("other.pid")
        self.service("m", self.script("m", f"while [ ! -s {pidfile} ]; do sleep 0.02; done\n"
                                           f'systemd-notify MAINPID="$(cat {pidfile})" READY=1\n'
                                           "exec sleep 1000"), Type="notify")
        self.start()
        other = self.wait_running("other")
        with open(pidfile + ".tmp", "w") as f:
            f.write(f"{other}\n")
        os.rename(pidfile + ".tmp", pidfile)
        line = self.wait_log(rf"^arbord: m: (MAINPID={other} ignored|main pid is now)")[0]
        self.assertRegex(line, "ignored")
        self.assertEqual(self.stop(), 0)

    def test_mainpid_1_from_a_non_root_sender_is_ignored(self):
        self.supervisor("root", ["m"])
        self.service("m", self.script("m", "systemd-notify MAINPID=1 READY=1\nexec sleep 1000"),
                     Type="notify", User="nobody")
        self.start()
        line = self.wait_log(r"^arbord: m: (MAINPID=1 ignored|main pid is now)")[0]
        if "main pid is now" in line:
            self.proc.kill()  # before arbord can signal pid 1
            self.fail(line)
        self.assertRegex(line, r"MAINPID=1 ignored: not a process of this service")
        pid = self.wait_running("m")
        self.assertTrue(pid_alive(pid))
        self.assertEqual(self.stop(), 0)

    # MAINPID= naming arbord itself (or pid 1) is ignored, even from root.
    def test_mainpid_naming_arbord_itself_is_ignored(self):
        self.supervisor("root", ["m"])
        self.service("m", self.script("m", "systemd-notify MAINPID=$PPID READY=1\n"
                                           "exec sleep 1000"), Type="notify")
        self.start()
        line = self.wait_log(r"^arbord: m: (MAINPID=\d+ ignored|main pid is now)")[0]
        self.assertIn(f"MAINPID={self.proc.pid} ignored", line)
        self.assertEqual(self.stop(), 0)


class Attribution(NotifyTest):
    def waiting_service(self, name="s"):
        """A notify service that becomes ready only when the test says so."""
        self.service(name, self.script(name, f"{self.wait_for_flag('go')}\n"
                                             f"exec {NC} READY=1"), Type="notify")

    def assert_still_starting(self, name="s", sibling="sib"):
        self.assertEqual(self.log_lines(rf"^arbord: {name}: running"), [])
        self.assertEqual(self.log_lines(rf"^arbord: {sibling}: starting"), [])

    def test_a_sender_of_another_uid_is_ignored(self):
        self.supervisor("root", ["s", "sib"])
        self.waiting_service()
        self.service("sib", SLEEPER)
        self.start()
        pid = self.starting_pid("s")
        path = self.notify_path("s")
        # A live sender (still there when arbord reads) ...
        live = self.sender(path, b"READY=1", uid=NOBODY_UID, gid=NOBODY_GID)
        self.wait_log(rf"^arbord: s: notify message from pid {live} \(uid {NOBODY_UID}\) "
                      f"{NOT_OURS}")
        # ... and systemd-notify, gone before arbord reads.
        with self.frozen():
            self.run_as_nobody(["systemd-notify", "--no-block", "--ready"],
                                   env={"NOTIFY_SOCKET": path})
        self.wait_log(rf"^arbord: s: notify message from pid \d+ \(uid {NOBODY_UID}\) {NOT_OURS}",
                      count=2)
        self.assert_still_starting()
        self.assertTrue(pid_alive(pid))
        # The service itself still can.
        self.touch("go")
        self.assertEqual(self.wait_running("s"), pid)
        self.wait_running("sib")
        self.assertEqual(self.stop(), 0)

    def test_a_root_process_outside_the_service_is_ignored(self):
        self.supervisor("root", ["s", "sib"])
        self.waiting_service()
        self.service("sib", SLEEPER)
        self.start()
        self.starting_pid("s")
        send_datagram(self.notify_path("s"), b"READY=1")  # from this test, alive
        self.wait_log(rf"^arbord: s: notify message from pid {os.getpid()} \(uid 0\) {NOT_OURS}")
        self.assert_still_starting()
        self.touch("go")
        self.wait_running("s")
        self.wait_running("sib")
        self.assertEqual(self.stop(), 0)

    def test_a_process_of_another_service_is_ignored(self):
        self.supervisor("root", ["other", "s", "sib"])
        # other's process sends READY=1 to s's socket and stays alive.
        self.service("other", self.script("other", f"{self.wait_for_flag('go-other')}\n"
                                                   f"NOTIFY_SOCKET={self.notify_path('s')} "
                                                   f"exec {NC} READY=1 pause"))
        self.waiting_service()
        self.service("sib", SLEEPER)
        self.start()
        other = self.wait_running("other")
        self.starting_pid("s")
        self.touch("go-other")
        self.wait_log(rf"^arbord: s: notify message from pid {other} \(uid 0\) {NOT_OURS}")
        self.assert_still_starting()
        self.assertTrue(pid_alive(other))
        self.touch("go")
        self.wait_running("s")
        self.wait_running("sib")
        self.assertEqual(self.stop(), 0)


    GARBAGE = r'''
import os, socket, sys, time
path = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def send(b):
    s.sendto(b, path)
for b in [
    b"",                      # empty
    b"\0",                    # one trailing NUL: tolerated, empty
    b"READY=1\0junk",         # an embedded NUL: the whole message is ignored
    b"\0READY=1",
    b"\0\0",
    b"READY=1" + b"x" * 10240,  # 10 KiB: too long, dropped whole
    b"READY=1\n" + b"y" * 4200,
    b"no equals sign at all",
    b"READY",
    b"=",
    b"==1",
    b"READY=0",
    b"READY=1x",
    b"READY=11",
    b"ready=1",
    b" READY=1",
    b"\n\r\n\r",
    b"\xff\xfe\xfd binary \x01\x02",
    b"MAINPID=abc",
    b"MAINPID=-5",
    b"MAINPID=0",
    b"MAINPID=99999999999999999999",
    b"EXTEND_TIMEOUT_USEC=-1",
    b"EXTEND_TIMEOUT_USEC=99999999999999999999999",
    b"WATCHDOG=garbage",
    b"WATCHDOG_USEC=nope",
    b"ERRNO=x",
    b"X_UNKNOWN=1\nOTHER=2",
    b"STATUS=" + b"z" * 4000 + b"\0",
]:
    send(b)
send(b"STATUS=garbage done")
open(sys.argv[1], "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.02)
send(b"READY=1")
while True:
    time.sleep(1000)
'''

    def test_garbage_datagrams_are_ignored_and_arbord_keeps_serving(self):
        self.supervisor("root", ["g", "sib"])
        self.service("g", self.pyscript("g", self.GARBAGE) +
                     f" {self.flag('sent')} {self.flag('go')}", Type="notify")
        self.service("sib", SLEEPER)
        self.start("-v")
        pid = self.starting_pid("g")
        self.wait_log(r"^arbord: g: status: garbage done$")  # all before it were handled
        self.assertTrue(os.path.exists(self.flag("sent")))
        self.assertEqual(len(self.log_lines(r"^arbord: g: notify message with a NUL byte ignored")),
                         3)
        self.assertEqual(len(self.log_lines(r"^arbord: g: notify message dropped: too long")), 2)
        self.assertTrue(self.log_lines(r"^arbord: g: status: z{4000}$"))
        self.assertEqual(self.log_lines(r"main pid is now|MAINPID"), [])
        self.assert_still_starting("g")
        self.assertEqual(self.log_lines(r"not ready after|watchdog"), [])
        self.assertIsNone(self.proc.poll())
        # Garbage from outside the service, too.
        path = self.notify_path("g")
        for data in [b"", b"\0\0", b"READY=1" * 2000, b"junk"]:
            send_datagram(path, data)
        self.wait_log(NOT_OURS, count=3)
        self.wait_log(r"^arbord: g: notify message dropped: too long", count=3)
        self.assert_still_starting("g")
        # Still serving: the service becomes ready, the tree goes on, a
        # killed service is restarted.
        self.touch("go")
        self.assertEqual(self.wait_running("g"), pid)
        sib = self.wait_running("sib")
        os.kill(sib, signal.SIGKILL)
        self.wait_running("sib", count=2)
        self.assertEqual(self.stop(), 0)

    FDS = r'''
import array, os, socket, sys, time
path = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def send(b, n):
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(n)]
    s.sendmsg([b], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))], 0, path)
    for fd in fds:
        os.close(fd)
s.sendto(b"READY=1", path)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
for i in range(20):
    send(b"FDSTORE=1\nFDNAME=x", 3)    # no FileDescriptorStoreMax: not kept
    send(b"STATUS=with fds", 2)
    send(b"\0\0", 2)                    # ignored (NUL)
    send(b"x" * 9000, 2)                # dropped (too long)
send(b"FDSTORE=1", 253)                 # the most one message can carry
s.sendto(b"STATUS=fds done", path)
while True:
    time.sleep(1000)
'''

    def test_fds_passed_with_datagrams_are_not_leaked(self):
        self.supervisor("root", ["f"])
        self.service("f", self.pyscript("f", self.FDS) + f" {self.flag('go')}", Type="notify")
        self.start("-v")
        self.wait_running("f")
        before = self.arbord_fds()
        # From the service itself: every kind of message, with fds.
        self.touch("go")
        self.wait_log(r"^arbord: f: status: fds done$")
        self.assertEqual(len(self.log_lines(r"^arbord: f: status: with fds$")), 20)
        self.assertEqual(self.arbord_fds(), before)
        # From a stranger: refused, and its fds closed too.
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(253)]
        try:
            for _ in range(10):
                send_datagram(self.notify_path("f"), b"READY=1", fds[:5])
            send_datagram(self.notify_path("f"), b"FDSTORE=1", fds)
            send_datagram(self.notify_path("f"), b"z" * 9000, fds[:7])
        finally:
            for fd in fds:
                os.close(fd)
        self.wait_log(NOT_OURS, count=11)
        self.wait_log(r"^arbord: f: notify message dropped: too long", count=21)
        self.assertEqual(self.arbord_fds(), before)
        self.assertEqual(self.stop(), 0)


if __name__ == "__main__":
    unittest.main()
