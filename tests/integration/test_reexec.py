"""`arborctl reexec` (SPEC section 7, supervisord/reexec.h): arbord executes
its binary again and every service, pid, stored fd, Listen= socket, queued
mailbox message and bit of supervision state (restart counts, the
intensity window) carries over. The services are test_upgrade's SVC_PY.
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import unittest

from harness import ArbordTest, pid_alive, wait_until
from test_upgrade import UpgradeTest, free_port

ARBORCTL = os.environ.get("ARBORCTL", "arborctl")
ARBORD = os.environ.get("ARBORD", "arbord")


class Reexec(UpgradeTest):
    def statuses(self):
        r = self.ctl("--json", "status")
        self.assertEqual(r.returncode, 0, r)
        import json
        return {u["name"]: u for u in json.loads(r.stdout)["units"]}

    def test_everything_carries_over(self):
        port = free_port()
        received = os.path.join(self.tmp, "received")
        self.supervisor("root", ["keeper", "web", "sink"], Intensity=50, Period="60s")
        self.service("keeper", self.exec_start("v1", "store"), Type="notify",
                     FileDescriptorStoreMax=1)
        self.service("web", self.exec_start("v1", "serve"), Type="notify",
                     Listen=f"127.0.0.1:{port}")
        self.service("sink", self.exec_start("v1", f"mailbox={received}"), Type="notify",
                     Mailbox="yes")
        self.start()
        for name in ("keeper", "web", "sink"):
            self.pid_of(name)
        os.kill(self.pid_of("keeper"), signal.SIGKILL)  # a restart to carry over
        self.wait_running("keeper", 2)
        # Messages held by arbord while the sink is stopped.
        self.assertEqual(self.ctl("stop", "sink").returncode, 0)
        path = os.path.join(self.run, "mailbox", "sink")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for i in range(500):
            s.sendto(f"m{i}".encode(), path)
        wait_until(lambda: "500 queued" in self.ctl("mailbox", "sink").stdout,
                   what="arbord to hold the 500 messages")
        before = self.statuses()
        arbord_pid = self.proc.pid

        r = self.ctl("reexec")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn(f"arbord pid {arbord_pid}", r.stdout)
        self.assertIsNone(self.proc.poll())
        after = self.statuses()
        for name in ("root", "keeper", "web", "sink"):
            for key in ("pid", "state", "restarts", "held"):
                self.assertEqual(after[name][key], before[name][key], (name, key))
        # The Listen= socket is still there and served by the same process.
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.assertEqual(c.recv(16), b"v1")
        c.close()
        # The queued messages, in order, once the sink is started again.
        self.assertIn("500 queued", self.ctl("mailbox", "sink").stdout)
        self.assertEqual(self.ctl("start", "sink").returncode, 0)
        wait_until(lambda: os.path.exists(received) and
                   len(open(received).read().split()) >= 500, what="the 500 messages")
        self.assertEqual(open(received).read().split(), [f"m{i}" for i in range(500)])
        # The fd store: the memfd comes back after another crash.
        os.kill(after["keeper"]["pid"], signal.SIGKILL)
        self.wait_running("keeper", 3)
        keeper = [r for r in self.reports() if r["names"] == ["state"] or r["stored"]]
        self.assertEqual(keeper[-1]["stored"], 2)
        # Recent output survived for `arborctl logs`.
        self.assertIn("re-executed", self.log())

    def test_the_intensity_window_carries_over(self):
        self.supervisor("root", ["a"], Intensity=2, Period="60s")
        self.service("a", self.exec_start("v1"), Type="notify")
        self.start()
        for i in range(2):
            os.kill(self.wait_running("a", i + 1), signal.SIGKILL)
        self.wait_running("a", 3)
        self.assertEqual(self.ctl("reexec").returncode, 0)
        # The third restart within the window is one too many.
        os.kill(self.wait_running("a", 3), signal.SIGKILL)
        self.wait_log(r"root: more than 2 restarts within 60000ms: giving up")
        self.assertEqual(self.wait_exit(), 1)

    def test_a_crash_right_after_the_reexec_is_restarted(self):
        self.service("a", self.exec_start("v1"), Type="notify")
        self.start()
        pid = self.pid_of("a")
        self.assertEqual(self.ctl("reexec").returncode, 0)
        os.kill(pid, signal.SIGKILL)
        self.assertNotEqual(self.wait_running("a", 2), pid)
        self.assertEqual(self.stop(), 0)

    def test_twice_in_a_row_then_a_clean_shutdown(self):
        self.service("a", self.exec_start("v1"), Type="notify")
        self.start()
        pid = self.pid_of("a")
        for _ in range(2):
            self.assertEqual(self.ctl("reexec").returncode, 0)
        self.assertEqual(self.statuses()["a"]["pid"], pid)
        self.assertEqual(self.stop(), 0)
        self.assertFalse(pid_alive(pid))

    def test_a_changed_unit_file_refuses_the_reexec(self):
        self.service("a", self.exec_start("v1"), Type="notify")
        self.start()
        pid = self.pid_of("a")
        self.service("a", self.exec_start("v2"), Type="notify")
        r = self.ctl("reexec")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("changed since it was loaded", r.stderr)
        self.assertEqual(self.ctl("reload").returncode, 0)
        self.assertEqual(self.ctl("reexec").returncode, 0)
        self.assertNotEqual(self.statuses()["a"]["pid"], pid, "reload restarted the changed unit")

    def test_a_bad_binary_leaves_the_old_arbord_running(self):
        exe = os.path.join(self.tmp, "arbord-copy")
        shutil.copy(ARBORD, exe)
        self.service("a", self.exec_start("v1"), Type="notify")
        self.proc = None
        self.logfile = open(self.log_path, "wb")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        # Not under valgrind even when the harness would use it: the binary
        # itself is what this test replaces.
        self.proc = subprocess.Popen([exe, "-u", self.units, "-r", self.run],
                                     stdout=self.logfile, stderr=subprocess.STDOUT, env=env)
        pid = self.pid_of("a")
        # Replace the binary by one that fails, as a broken upgrade would.
        os.unlink(exe)
        with open(exe, "w") as f:
            f.write("#!/bin/sh\nexit 3\n")
        os.chmod(exe, 0o755)
        r = self.ctl("reexec")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("--version failed (exit status 3)", r.stderr)
        self.assertIsNone(self.proc.poll())
        self.assertEqual(self.statuses()["a"]["pid"], pid)
        # The real binary back in place: now it works.
        os.unlink(exe)
        shutil.copy(ARBORD, exe)
        r = self.ctl("reexec")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(self.statuses()["a"]["pid"], pid)

    def test_a_mailbox_flood_across_the_reexec_loses_nothing(self):
        received = os.path.join(self.tmp, "received")
        self.service("sink", self.exec_start("v1", f"mailbox={received}"), Type="notify",
                     Mailbox="yes", MailboxCapacity=100000)
        self.start()
        self.pid_of("sink")
        path = os.path.join(self.run, "mailbox", "sink")
        total = 5000
        sent = []

        def sender():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            for i in range(total):
                s.sendto(f"m{i}".encode(), path)
                sent.append(i)
        t = threading.Thread(target=sender)
        t.start()
        try:
            wait_until(lambda: len(sent) > 100, what="the flood to start")
            self.assertEqual(self.ctl("reexec").returncode, 0)
        finally:
            t.join(60)

        def got():
            with open(received) as f:
                return f.read().split()
        wait_until(lambda: len(got()) >= total, what="every message")
        self.assertEqual(got(), [f"m{i}" for i in range(total)])


if __name__ == "__main__":
    unittest.main()
