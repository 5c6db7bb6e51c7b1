"""arbord under a service manager of its own (systemd's sd_notify side):
READY=1 once the whole tree is up, STOPPING=1 when it begins to stop, and
the manager's NOTIFY_SOCKET never leaks to services."""

import os
import signal
import socket
import unittest

from harness import NOTIFY_CLIENT, ArbordTest, proc_environ, wait_until


class Manager(ArbordTest):
    def setUp(self):
        super().setUp()
        self.sock_path = os.path.join(self.tmp, "manager.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.settimeout(0.05)
        self.messages = []

    def tearDown(self):
        self.sock.close()
        super().tearDown()

    def received(self):
        """Every datagram so far, as one list of lines."""
        while True:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, BlockingIOError):
                break
            self.messages.extend(data.decode().splitlines())
        return self.messages

    def wait_message(self, line):
        return wait_until(lambda: line in self.received(), what=f"{line} from arbord")

    def test_ready_after_the_tree_and_stopping_at_shutdown(self):
        self.supervisor("root", ["a", "slow"])
        self.service("a", "/bin/sleep 1000")
        # Not ready for a while: arbord must not claim readiness before it.
        self.service("slow", f"{NOTIFY_CLIENT} sleep:1 READY=1", Type="notify")
        self.start(env={"NOTIFY_SOCKET": self.sock_path})
        self.wait_log(r"^arbord: slow: starting pid")
        self.assertNotIn("READY=1", self.received())
        self.wait_message("READY=1")
        # By the time READY=1 arrives, the whole tree is running.
        self.assertTrue(self.log_lines(r"^arbord: slow: running"))
        self.assertTrue(self.log_lines(r"^arbord: root: running"))
        self.assertNotIn("STOPPING=1", self.received())
        self.proc.send_signal(signal.SIGTERM)
        self.wait_message("STOPPING=1")
        self.assertEqual(self.wait_exit(), 0)
        self.assertLess(self.received().index("READY=1"), self.received().index("STOPPING=1"))

    def test_the_managers_socket_does_not_reach_services(self):
        self.service("a", "/bin/sleep 1000")
        self.start(env={"NOTIFY_SOCKET": self.sock_path})
        pid = self.wait_running("a")
        env = wait_until(lambda: proc_environ(pid) or None, what="a's environment")
        self.assertNotEqual(env.get(b"NOTIFY_SOCKET"), self.sock_path.encode())
        self.assertTrue(env.get(b"NOTIFY_SOCKET", b"").endswith(b"/notify/a"))
        self.wait_message("READY=1")
        self.assertEqual(self.stop(), 0)

    def test_without_a_manager_nothing_is_sent(self):
        self.service("a", "/bin/sleep 1000")
        self.start()
        self.wait_running("a")
        self.assertEqual(self.stop(), 0)
        self.assertEqual(self.received(), [])

    def test_journal_stream_not_ours_still_logs_to_stderr(self):
        # JOURNAL_STREAM naming some other stream: stderr is not the
        # journal, so lines still go to stderr (the log file here).
        self.service("a", "/bin/sh -c 'echo hello-from-a; exec sleep 1000'")
        self.start(env={"JOURNAL_STREAM": "1:1"})
        self.wait_log(r"^a\[\d+\]: hello-from-a$")
        self.assertEqual(self.stop(), 0)


if __name__ == "__main__":
    unittest.main()
