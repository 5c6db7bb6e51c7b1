"""Restart intensity and escalation (SPEC section 3, OTP's add_restart).

A supervisor allows `Intensity` restarts within `Period`; the restart that
would be one too many is not done: the supervisor stops its other children
in reverse order and fails, and its parent treats it by its Restart= type.
"""

import os
import re
import signal
import time
import unittest

from harness import ArbordTest, pid_alive, proc_read

SLEEPER = "/bin/sleep 1000"
CRASH = "/bin/sh -c 'sleep 0.1; exit 1'"


def gave_up(name):
    return rf"^arbord: {re.escape(name)}: more than \d+ restarts within \d+ms: giving up"


class IntensityTest(ArbordTest):
    def starts(self, name):
        return self.log_lines(rf"^arbord: {re.escape(name)}: starting pid \d+")

    def restarts(self, name):
        return self.log_lines(rf"^arbord: {re.escape(name)}: starting pid \d+ \(restart \d+\)")

    def assert_all_gone(self):
        """Every process arbord ever started is gone."""
        alive = [p for p in set(self.logged_pids()) if pid_alive(p)]
        self.assertEqual(alive, [], self.log())

    def nested(self, sub_restart, root_intensity=10):
        """root [sub, witness]; sub [a, b, c, crash] with Intensity=3."""
        self.supervisor("root", ["sub", "witness"], Intensity=root_intensity, Period="60s")
        self.supervisor("sub", ["a", "b", "c", "crash"], Intensity=3, Period="10s",
                        Restart=sub_restart)
        for n in "abc":
            self.service(n, SLEEPER)
        self.service("crash", CRASH)
        self.service("witness", SLEEPER)
        self.start()


class GivingUp(IntensityTest):
    def check_sub_gave_up_after_three_restarts(self):
        """The first incarnation of sub: 1 start + 3 restarts of crash, then
        it gives up, stops c, b, a in that order and fails."""
        self.wait_log(r"^arbord: sub: failed$")
        log = self.log().splitlines()
        give_up = next(i for i, l in enumerate(log) if re.search(gave_up("sub"), l))
        failed = next(i for i, l in enumerate(log) if l == "arbord: sub: failed")
        before = log[:give_up]
        crash_starts = [l for l in before if re.match(r"arbord: crash: starting pid", l)]
        self.assertEqual(len(crash_starts), 4, "\n".join(before))
        self.assertEqual(
            [re.search(r"\(restart (\d+)\)", l).group(1) for l in crash_starts[1:]],
            ["1", "2", "3"])
        self.assertIn("more than 3 restarts within 10000ms", log[give_up])
        crash_failures = [l for l in before if re.match(r"arbord: crash: failed \(exit status 1\)", l)]
        self.assertEqual(len(crash_failures), 4)
        # After giving up: the others stopped in reverse order, then sub failed.
        stops = [re.match(r"arbord: (\w+): stopping \(SIG", l).group(1)
                 for l in log[give_up:failed] if re.match(r"arbord: (\w+): stopping \(SIG", l)]
        self.assertEqual(stops, ["c", "b", "a"])
        stopped = [re.match(r"arbord: (\w+): stopped \(", l).group(1)
                   for l in log[give_up:failed] if re.match(r"arbord: (\w+): stopped \(", l)]
        self.assertEqual(stopped, ["c", "b", "a"])
        # Nothing was started by sub between giving up and failing.
        self.assertFalse([l for l in log[give_up:failed] if "starting pid" in l])

    def test_crash_loop_gives_up_after_intensity_and_permanent_sub_is_restarted(self):
        self.nested("permanent")
        witness = self.wait_running("witness")
        self.check_sub_gave_up_after_three_restarts()
        # The parent restarts a permanent sub: it starts again with its children.
        self.wait_log(r"^arbord: sub: starting$", count=2)
        self.wait_running("a", count=2)
        self.assertEqual(self.running_pids("witness"), [witness])
        self.assertTrue(pid_alive(witness))
        self.assertEqual(self.stop(), 0)
        self.assert_all_gone()

    def test_transient_sub_that_gives_up_is_not_restarted(self):
        self.nested("transient")
        witness = self.wait_running("witness")
        self.check_sub_gave_up_after_three_restarts()
        self.assert_carries_on_without_sub(witness)

    def test_temporary_sub_that_gives_up_is_not_restarted(self):
        self.nested("temporary")
        witness = self.wait_running("witness")
        self.check_sub_gave_up_after_three_restarts()
        self.assert_carries_on_without_sub(witness)

    def assert_carries_on_without_sub(self, witness):
        # Give a wrong restart every chance to show: wait until root would
        # have restarted sub (its children's restarts are immediate), by
        # polling for a while that must NOT see it.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            self.assertEqual(len(self.log_lines(r"^arbord: sub: starting$")), 1, self.log())
            time.sleep(0.05)
        self.assertIsNone(self.proc.poll())
        self.assertEqual(self.running_pids("witness"), [witness])
        self.assertTrue(pid_alive(witness))
        self.assertEqual(len(self.starts("a")), 1)
        self.assertEqual(len(self.starts("crash")), 4)
        for n in "abc":
            self.assertFalse(pid_alive(self.running_pids(n)[0]))
        self.assertFalse(self.log_lines(gave_up("root")))
        self.assertEqual(self.stop(), 0)
        self.assertEqual(self.running_pids("witness"), [witness])
        self.assert_all_gone()

    def test_permanent_sub_failure_climbs_to_the_root_and_arbord_exits_1(self):
        self.nested("permanent", root_intensity=1)
        self.assertEqual(self.wait_exit(timeout=30), 1)
        # sub failed twice: root restarted it once (its one allowed restart),
        # then gave up itself.
        self.assertEqual(len(self.log_lines(r"^arbord: sub: starting$")), 2)
        self.assertEqual(len(self.log_lines(r"^arbord: sub: failed$")), 2)
        self.assertEqual(len(self.log_lines(gave_up("sub"))), 2)
        self.assertEqual(len(self.log_lines(gave_up("root"))), 1)
        self.assertIn("more than 1 restarts within 60000ms", self.log_lines(gave_up("root"))[0])
        self.assertTrue(self.log_lines(r"^arbord: root: failed$"))
        self.assertEqual(len(self.starts("crash")), 8)
        # Root stopped the witness when it gave up.
        self.assertTrue(self.log_lines(r"^arbord: witness: stopping \(SIGTERM\)"))
        self.assertTrue(self.log_lines(r"^arbord: exiting with status 1"))
        self.assert_all_gone()

    def test_root_giving_up_exits_1_and_leaves_no_process(self):
        self.root_gives_up()

    def test_root_giving_up_leaves_no_process_without_cgroups(self):
        self.root_gives_up("--no-cgroups")

    def root_gives_up(self, *args):
        self.supervisor("root", ["first", "crash", "last"], Intensity=2, Period="10s")
        self.service("first", SLEEPER)
        # The crasher leaves a grandchild behind in its own session: it too must go.
        self.service("crash", "/bin/sh -c 'setsid /bin/sleep 1000 & sleep 0.1; exit 1'")
        self.service("last", SLEEPER)
        self.start(*args)
        self.assertEqual(self.wait_exit(timeout=30), 1)
        self.assertEqual(len(self.starts("crash")), 3)
        self.assertEqual(len(self.restarts("crash")), 2)
        self.assertEqual(len(self.log_lines(gave_up("root"))), 1)
        stops = self.order_of(r"^arbord: (\w+): stopping \(SIG")
        self.assertEqual(stops, ["last", "first"])
        self.assert_all_gone()
        # And no process still carries a service's environment from this arbord.
        leftovers = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or not pid_alive(int(entry)):
                continue
            env = proc_read(int(entry), "environ")
            if self.run.encode() in env and b"ARBOR_UNIT" in env:
                leftovers.append(int(entry))
        self.assertEqual(leftovers, [])

    def test_intensity_0_gives_up_at_the_first_crash(self):
        self.supervisor("root", ["sub", "witness"], Intensity=5)
        self.supervisor("sub", ["s"], Intensity=0, Restart="transient")
        self.service("s", SLEEPER)
        self.service("witness", SLEEPER)
        self.start()
        self.wait_running("witness")
        pid = self.kill_service("s")
        self.wait_log(r"^arbord: sub: failed$")
        self.assertEqual(len(self.log_lines(gave_up("sub"))), 1)
        self.assertIn("more than 0 restarts", self.log_lines(gave_up("sub"))[0])
        self.assertEqual(len(self.starts("s")), 1)
        self.assertFalse(pid_alive(pid))
        self.assertEqual(self.stop(), 0)

    def test_intensity_0_at_the_root_exits_1_at_the_first_crash(self):
        self.supervisor("root", ["s", "witness"], Intensity=0)
        self.service("s", SLEEPER)
        self.service("witness", SLEEPER)
        self.start()
        witness = self.wait_running("witness")
        self.kill_service("s", signal.SIGSEGV)
        self.assertEqual(self.wait_exit(), 1)
        self.assertEqual(len(self.starts("s")), 1)
        self.assertFalse(pid_alive(witness))

    def test_stops_by_the_operator_never_count(self):
        # SIGTERM to the whole tree is an operator stop; with Intensity=0 any
        # counted restart would make the exit status 1.
        self.supervisor("root", ["a", "b"], Intensity=0)
        self.service("a", SLEEPER)
        self.service("b", SLEEPER)
        self.start()
        self.wait_running("b")
        self.assertEqual(self.stop(), 0)
        self.assertFalse(self.log_lines(gave_up("root")))


class FailedStarts(IntensityTest):
    def test_exec_of_a_missing_program_counts_each_retry(self):
        self.supervisor("root", ["witness", "broken"], Intensity=2, Period="10s")
        self.service("witness", SLEEPER)
        self.service("broken", "/nonexistent/program --flag")
        self.start()
        self.assertEqual(self.wait_exit(), 1)
        failed = self.log_lines(r"^arbord: broken: failed to start")
        self.assertEqual(len(failed), 3, self.log())
        self.assertEqual(len(self.log_lines(r"^arbord: broken: cannot start /nonexistent/program")),
                         3)
        self.assertFalse(self.log_lines(r"^arbord: broken: running"))
        self.assertEqual(len(self.log_lines(gave_up("root"))), 1)
        self.assert_all_gone()

    def test_program_not_in_path_counts_each_retry(self):
        self.supervisor("root", ["witness", "broken"], Intensity=2, Period="10s")
        self.service("witness", SLEEPER)
        self.service("broken", "no-such-program-anywhere-arbor")
        self.start()
        self.assertEqual(self.wait_exit(), 1)
        self.assertEqual(
            len(self.log_lines(r"^arbord: broken: cannot start no-such-program-anywhere-arbor")),
            3, self.log())
        self.assertEqual(len(self.log_lines(r"^arbord: broken: failed to start")), 3)
        self.assertEqual(len(self.log_lines(gave_up("root"))), 1)
        self.assert_all_gone()

    def test_notify_service_exiting_before_ready_counts_each_retry(self):
        self.supervisor("root", ["witness", "sub"], Intensity=5)
        self.supervisor("sub", ["early"], Intensity=3, Period="10s", Restart="temporary")
        self.service("witness", SLEEPER)
        self.service("early", "/bin/sh -c 'exit 3'", Type="notify")
        self.start()
        witness = self.wait_running("witness")
        self.wait_log(r"^arbord: sub: failed$")
        failed = self.log_lines(r"^arbord: early: failed to start \(exit status 3\)")
        self.assertEqual(len(failed), 4, self.log())
        self.assertEqual(len(self.restarts("early")), 3)
        self.assertFalse(self.log_lines(r"^arbord: early: running"))
        self.assertIsNone(self.proc.poll())
        self.assertTrue(pid_alive(witness))
        self.assertEqual(self.stop(), 0)
        self.assertEqual(len(self.log_lines(r"^arbord: sub: starting$")), 1)
        self.assert_all_gone()

    def test_transient_sub_giving_up_before_ready_is_not_restarted(self):
        # SPEC section 3: a transient supervisor that gave up is not
        # restarted, even if it gave up before it was ready; its parent
        # carries on without it (the witness keeps its pid).
        self.supervisor("root", ["witness", "sub", "after"], Intensity=1, Period="60s")
        self.supervisor("sub", ["early"], Intensity=1, Period="10s", Restart="transient")
        self.service("witness", SLEEPER)
        self.service("early", "/bin/sh -c 'exit 3'", Type="notify")
        self.service("after", SLEEPER)
        self.start()
        witness = self.wait_running("witness")
        self.wait_log(r"^arbord: sub: failed$")
        self.wait_running("after")
        self.assertEqual(len(self.log_lines(r"^arbord: early: failed to start")), 2)
        self.assertEqual(len(self.log_lines(r"^arbord: sub: starting$")), 1)
        self.assertFalse(self.log_lines(gave_up("root")))
        self.assertTrue(pid_alive(witness))
        self.assertEqual(self.stop(), 0)
        self.assert_all_gone()

    def test_oneshot_failing_counts_each_retry(self):
        self.supervisor("root", ["job", "after"], Intensity=2)
        self.service("job", "/bin/sh -c 'exit 4'", Type="oneshot")
        self.service("after", SLEEPER)
        self.start()
        self.assertEqual(self.wait_exit(), 1)
        self.assertEqual(len(self.log_lines(r"^arbord: job: failed to start \(exit status 4\)")), 3)
        # Children start in order: the one after the job never started.
        self.assertFalse(self.starts("after"))


class Window(IntensityTest):
    def test_restarts_older_than_period_are_forgotten(self):
        # Each instance lives 1.2s, longer than Period=1s: every restart finds
        # the window empty, so Intensity=1 is never exceeded.
        self.supervisor("root", ["sub", "witness"], Intensity=0)
        self.supervisor("sub", ["slow"], Intensity=1, Period="1s")
        self.service("slow", "/bin/sh -c 'sleep 1.2; exit 1'")
        self.service("witness", SLEEPER)
        self.start()
        self.wait_log(r"^arbord: slow: starting pid \d+ \(restart 5\)", timeout=30)
        self.assertFalse(self.log_lines(gave_up("sub")), self.log())
        self.assertFalse(self.log_lines(r"^arbord: sub: failed"))
        self.assertEqual(len(self.log_lines(r"^arbord: slow: failed \(exit status 1\)")), 5)
        self.assertIsNone(self.proc.poll())
        self.assertEqual(self.stop(), 0)
        self.assertFalse(self.log_lines(gave_up("sub")))

    def test_restarts_within_period_are_counted(self):
        # The same service with a window longer than its life gives up at
        # the second crash.
        self.supervisor("root", ["sub", "witness"], Intensity=0)
        self.supervisor("sub", ["slow"], Intensity=1, Period="10s", Restart="temporary")
        self.service("slow", "/bin/sh -c 'sleep 0.3; exit 1'")
        self.service("witness", SLEEPER)
        self.start()
        self.wait_log(r"^arbord: sub: failed$")
        self.assertEqual(len(self.starts("slow")), 2)
        self.assertEqual(len(self.log_lines(gave_up("sub"))), 1)
        self.assertEqual(self.stop(), 0)

    def test_group_restart_counts_once(self):
        # one-for-all with Intensity=1: one crash restarts all three children,
        # which is one restart, not three; the second crash gives up.
        self.supervisor("root", ["sub", "witness"], Intensity=0)
        self.supervisor("sub", ["a", "b", "c"], Strategy="one-for-all", Intensity=1,
                        Period="60s", Restart="temporary")
        for n in "abc":
            self.service(n, SLEEPER)
        self.service("witness", SLEEPER)
        self.start()
        self.wait_running("witness")
        os.kill(self.wait_running("b"), signal.SIGKILL)
        for n in "abc":
            self.wait_running(n, count=2)
        self.assertFalse(self.log_lines(gave_up("sub")))
        os.kill(self.wait_running("c", count=2), signal.SIGKILL)
        self.wait_log(r"^arbord: sub: failed$")
        self.assertEqual(len(self.log_lines(gave_up("sub"))), 1)
        self.assertEqual(self.stop(), 0)


if __name__ == "__main__":
    unittest.main()
