"""OTP strategies and restart types, with real processes killed for real."""

import os
import signal
import unittest

from harness import ArbordTest, pid_alive, wait_until

SLEEPER = "/bin/sleep 1000"


class Strategies(ArbordTest):
    def tree(self, strategy, restart=None):
        self.supervisor("root", ["a", "b", "c"], Strategy=strategy, Intensity=10, Period="10s")
        for name in "abc":
            extra = {"Restart": restart} if restart and name == "b" else {}
            self.service(name, SLEEPER, **extra)
        self.start()
        return {n: self.wait_running(n) for n in "abc"}

    def test_one_for_one_restarts_only_the_failed_child(self):
        pids = self.tree("one-for-one")
        os.kill(pids["b"], signal.SIGKILL)
        new_b = self.wait_running("b", count=2)
        self.assertNotEqual(new_b, pids["b"])
        self.assertTrue(pid_alive(pids["a"]) and pid_alive(pids["c"]))
        self.assertEqual(len(self.running_pids("a")), 1)
        self.assertEqual(len(self.running_pids("c")), 1)
        self.assertEqual(self.stop(), 0)

    def test_one_for_all_restarts_every_child_stopping_in_reverse(self):
        pids = self.tree("one-for-all")
        os.kill(pids["b"], signal.SIGKILL)
        for n in "abc":
            self.wait_running(n, count=2)
        stops = self.order_of(r"^arbord: (\w+): stopping \(SIG")
        self.assertEqual(stops, ["c", "a"])
        starts = self.order_of(r"^arbord: (\w+): starting pid")[3:]
        self.assertEqual(starts, ["a", "b", "c"])
        for n in "ac":
            self.assertFalse(pid_alive(pids[n]))
        self.assertEqual(self.stop(), 0)

    def test_rest_for_one_restarts_the_failed_child_and_those_after_it(self):
        pids = self.tree("rest-for-one")
        os.kill(pids["b"], signal.SIGKILL)
        self.wait_running("c", count=2)
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopping \(SIG"), ["c"])
        self.assertEqual(self.order_of(r"^arbord: (\w+): starting pid")[3:], ["b", "c"])
        self.assertTrue(pid_alive(pids["a"]))
        self.assertEqual(len(self.running_pids("a")), 1)
        self.assertEqual(self.stop(), 0)

    def test_temporary_sibling_stopped_by_group_restart_is_not_started_again(self):
        self.supervisor("root", ["a", "t", "c"], Strategy="one-for-all")
        self.service("a", SLEEPER)
        self.service("t", SLEEPER, Restart="temporary")
        self.service("c", SLEEPER)
        self.start()
        t = self.wait_running("t")
        c = self.wait_running("c")
        os.kill(c, signal.SIGKILL)
        self.wait_running("c", count=2)
        self.wait_running("a", count=2)
        self.assertFalse(pid_alive(t))
        self.assertEqual(len(self.running_pids("t")), 1)
        self.assertEqual(self.stop(), 0)


class ManyExitsAtOnce(ArbordTest):
    def test_every_exit_is_seen_when_sigchlds_merge(self):
        # 40 services block opening one FIFO for reading; opening it for
        # writing and closing it ends them all in the same instant. Their
        # SIGCHLDs merge (a standard signal is pending at most once), so
        # only some exits are named by a signal; arbord must still restart
        # every one, exactly once.
        fifo = os.path.join(self.tmp, "go")
        os.mkfifo(fifo)
        names = [f"s{i}" for i in range(40)]
        self.supervisor("root", names, Intensity=1000, Period="1s")
        for name in names:
            self.service(name, f"/bin/sh -c 'read x < {fifo}; exit 3'")
        self.start()
        first = {name: self.pid_of(name) for name in names}
        # Every instance is blocked in open() on the FIFO once /proc says so.
        wait_until(lambda: all(fifo_reader(pid) for pid in first.values()),
                   what="every service to wait on the FIFO")
        with open(fifo, "w"):
            pass
        for name in names:
            self.wait_log(rf"^arbord: {name}: failed \(exit status 3\)$")
            second = self.wait_running(name, 2)
            self.assertNotEqual(second, first[name])
        for name in names:
            self.assertEqual(len(self.log_lines(rf"^arbord: {name}: failed ")), 1, name)
        self.assertEqual(self.stop(), 0)


def fifo_reader(pid):
    """True once pid (a shell) is blocked opening a FIFO for reading."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read() in ("fifo_open", "wait_for_partner")
    except OSError:
        return False


class RestartTypes(ArbordTest):
    def run_one(self, restart, command, kill=None):
        self.supervisor("root", ["s", "witness"])
        self.service("s", command, Restart=restart)
        self.service("witness", SLEEPER)
        self.start()
        pid = self.wait_running("s")
        self.wait_running("witness")
        if kill:
            os.kill(pid, kill)
        return pid

    def test_permanent_is_restarted_after_a_normal_exit(self):
        self.run_one("permanent", "/bin/sh -c 'sleep 0.2; exit 0'")
        self.wait_running("s", count=3)
        self.assertEqual(self.stop(), 0)

    def test_transient_is_restarted_after_an_abnormal_exit(self):
        self.run_one("transient", "/bin/sh -c 'sleep 0.2; exit 7'")
        self.wait_log(r"^arbord: s: failed \(exit status 7\)")
        self.wait_running("s", count=2)
        self.assertEqual(self.stop(), 0)

    def test_transient_is_not_restarted_after_exit_0(self):
        self.run_one("transient", "/bin/sh -c 'sleep 0.2; exit 0'")
        self.wait_log(r"^arbord: s: exited \(exit status 0\)")
        # The witness shows the tree is still up; nothing new started for s.
        self.assertEqual(len(self.log_lines(r"^arbord: s: starting pid")), 1)
        self.assertEqual(self.stop(), 0)
        self.assertEqual(len(self.log_lines(r"^arbord: s: starting pid")), 1)

    def test_transient_killed_by_its_own_stop_signal_is_not_restarted(self):
        self.run_one("transient", SLEEPER, kill=signal.SIGTERM)
        self.wait_log(r"^arbord: s: stopped \(killed by SIGTERM\)")
        self.assertEqual(self.stop(), 0)
        self.assertEqual(len(self.log_lines(r"^arbord: s: starting pid")), 1)

    def test_transient_killed_by_another_signal_is_restarted(self):
        self.run_one("transient", SLEEPER, kill=signal.SIGKILL)
        self.wait_running("s", count=2)
        self.assertEqual(self.stop(), 0)

    def test_systemd_spelling_on_failure_means_transient(self):
        self.run_one("on-failure", SLEEPER, kill=signal.SIGSEGV)
        self.wait_running("s", count=2)
        self.assertEqual(self.stop(), 0)

    def test_temporary_is_never_restarted(self):
        self.run_one("temporary", SLEEPER, kill=signal.SIGKILL)
        self.wait_log(r"^arbord: s: failed \(killed by SIGKILL\)")
        self.assertEqual(self.stop(), 0)
        self.assertEqual(len(self.log_lines(r"^arbord: s: starting pid")), 1)


if __name__ == "__main__":
    unittest.main()
