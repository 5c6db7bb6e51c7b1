"""AutoShutdown and Significant= (SPEC section 3, OTP 24's auto_shutdown).

When a significant child ends by itself and is not restarted (a temporary
one on any exit, a transient one on a normal exit), any-significant shuts
its supervisor down normally, all-significant does so when the last such
child has ended. At the root that ends arbord with the child's exit status
(128+N for signal N). Stops by the operator or by a strategy never count.
"""

import os
import re
import signal
import time
import unittest

from harness import ArbordTest, pid_alive

SLEEPER = "/bin/sleep 1000"


class AutoShutdownTest(ArbordTest):
    def gate(self, name):
        """A path the test creates to let a waiting service go on."""
        return os.path.join(self.tmp, f"go-{name}")

    def wait_for(self, name, then):
        """A command that waits for the test's go-NAME file, then runs `then`."""
        return (f"/bin/sh -c 'while [ ! -e {self.gate(name)} ]; do sleep 0.02; done; {then}'")

    def release(self, name):
        with open(self.gate(name), "w"):
            pass

    def assert_all_gone(self):
        alive = [p for p in set(self.logged_pids()) if pid_alive(p)]
        self.assertEqual(alive, [], self.log())

    def assert_stays_up(self, seconds=0.5):
        """arbord keeps running for a while (polls, fails at once if it exits)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.assertIsNone(self.proc.poll(), self.log())
            time.sleep(0.02)

    def significant_root(self, job_command, restart, mode="any-significant", **job_keys):
        """root [a, b, job, c]; job is significant."""
        self.supervisor("root", ["a", "b", "job", "c"], AutoShutdown=mode, Intensity=5)
        for n in "abc":
            self.service(n, SLEEPER)
        self.service("job", job_command, Restart=restart, Significant="yes", **job_keys)
        self.start()
        return {n: self.wait_running(n) for n in "abc"}


class AnySignificant(AutoShutdownTest):
    def test_temporary_exit_3_ends_arbord_with_3_stopping_in_reverse(self):
        pids = self.significant_root(self.wait_for("job", "exit 3"), "temporary")
        self.release("job")
        self.assertEqual(self.wait_exit(), 3)
        self.assertTrue(self.log_lines(r"^arbord: job: failed \(exit status 3\)"))
        self.assertTrue(self.log_lines(r"^arbord: root: a significant child ended: shutting down"))
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopping \(SIG"), ["c", "b", "a"])
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopped \("), ["c", "b", "a"])
        self.assertTrue(self.log_lines(r"^arbord: exiting with status 3$"))
        for pid in pids.values():
            self.assertFalse(pid_alive(pid))
        self.assert_all_gone()
        self.assertEqual(len(self.log_lines(r"^arbord: job: starting pid")), 1)

    def test_temporary_killed_by_sigsegv_ends_arbord_with_139(self):
        self.significant_root(SLEEPER, "temporary")
        self.kill_service("job", signal.SIGSEGV)
        self.assertEqual(self.wait_exit(), 128 + signal.SIGSEGV)
        self.assertTrue(self.log_lines(r"^arbord: job: failed \(killed by SIGSEGV\)"))
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopping \(SIG"), ["c", "b", "a"])
        self.assert_all_gone()

    def test_transient_exit_0_ends_arbord_with_0(self):
        self.significant_root(self.wait_for("job", "exit 0"), "transient")
        self.release("job")
        self.assertEqual(self.wait_exit(), 0)
        self.assertTrue(self.log_lines(r"^arbord: job: exited \(exit status 0\)"))
        self.assertTrue(self.log_lines(r"^arbord: root: a significant child ended: shutting down"))
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopping \(SIG"), ["c", "b", "a"])
        self.assert_all_gone()

    def test_transient_exit_3_is_abnormal_so_restarted_not_shut_down(self):
        # A transient child's non-zero exit is abnormal: it is restarted, and
        # AutoShutdown does not fire. (Only its exit 0 is "ended by itself".)
        self.significant_root("/bin/sh -c 'sleep 0.2; exit 3'", "transient")
        self.wait_log(r"^arbord: job: failed \(exit status 3\)")
        self.wait_running("job", count=2)
        self.assertFalse(self.log_lines(r"a significant child ended"))
        self.assertIsNone(self.proc.poll())
        self.assertEqual(self.stop(), 0)

    def test_transient_killed_by_sigsegv_is_restarted_not_shut_down(self):
        self.significant_root(SLEEPER, "transient")
        first = self.kill_service("job", signal.SIGSEGV)
        self.assertNotEqual(self.wait_running("job", count=2), first)
        self.assertFalse(self.log_lines(r"a significant child ended"))
        self.assertIsNone(self.proc.poll())
        self.assertEqual(self.stop(), 0)

    def test_transient_killed_by_its_stop_signal_ends_arbord_with_143(self):
        # Killed by its own stop signal is reason shutdown: not restarted, so
        # it ended by itself; the status is 128+SIGTERM.
        self.significant_root(SLEEPER, "transient")
        self.kill_service("job", signal.SIGTERM)
        self.assertEqual(self.wait_exit(), 128 + signal.SIGTERM)
        self.assert_all_gone()

    def test_operator_shutdown_is_not_a_significant_end(self):
        self.significant_root(SLEEPER, "temporary")
        self.wait_running("job")
        self.assertEqual(self.stop(), 0)
        self.assertFalse(self.log_lines(r"a significant child ended"))
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopping \(SIG"), ["c", "job", "b", "a"])

    def test_stop_by_a_strategy_is_not_a_significant_end(self):
        # one-for-all: killing a stops the significant temporary t as
        # collateral; t is not started again (temporary) and AutoShutdown
        # must not fire.
        self.supervisor("root", ["a", "t", "w"], Strategy="one-for-all",
                        AutoShutdown="any-significant", Intensity=5)
        self.service("a", SLEEPER)
        self.service("t", SLEEPER, Restart="temporary", Significant="yes")
        self.service("w", SLEEPER)
        self.start()
        t = self.wait_running("t")
        self.wait_running("w")
        self.kill_service("a")
        self.wait_running("a", count=2)
        self.wait_running("w", count=2)
        self.assertFalse(pid_alive(t))
        self.assert_stays_up()
        self.assertFalse(self.log_lines(r"a significant child ended"))
        self.assertEqual(len(self.running_pids("t")), 1)
        self.assertEqual(self.stop(), 0)

    def test_significant_end_while_a_sibling_is_still_starting(self):
        # job ends while later (notify, never ready, StartTimeout 30s) is
        # still starting: the shutdown stops later at once rather than
        # waiting out its StartTimeout.
        self.supervisor("root", ["job", "later"], AutoShutdown="any-significant")
        self.service("job", self.wait_for("job", "exit 4"), Restart="temporary",
                     Significant="yes")
        self.service("later", SLEEPER, Type="notify", StartTimeout="30s")
        self.start()
        self.wait_log(r"^arbord: later: starting pid")
        self.release("job")
        self.assertEqual(self.wait_exit(timeout=10), 4)
        self.assertTrue(self.log_lines(r"^arbord: later: stopping \(SIGTERM\)"))
        self.assertFalse(self.log_lines(r"StartTimeout"))
        self.assert_all_gone()

    def test_non_significant_temporary_exit_does_not_shut_down(self):
        self.supervisor("root", ["a", "tmp", "sig"], AutoShutdown="any-significant")
        self.service("a", SLEEPER)
        self.service("tmp", "/bin/sh -c 'exit 9'", Restart="temporary")
        self.service("sig", SLEEPER, Restart="temporary", Significant="yes")
        self.start()
        self.wait_running("sig")
        self.wait_log(r"^arbord: tmp: failed \(exit status 9\)")
        self.assert_stays_up()
        self.assertEqual(self.stop(), 0)


class AllSignificant(AutoShutdownTest):
    def test_waits_for_the_last_significant_child(self):
        self.supervisor("root", ["a", "j1", "j2", "b"], AutoShutdown="all-significant")
        self.service("a", SLEEPER)
        self.service("j1", self.wait_for("j1", "exit 4"), Restart="temporary", Significant="yes")
        self.service("j2", self.wait_for("j2", "exit 5"), Restart="temporary", Significant="yes")
        self.service("b", SLEEPER)
        self.start()
        pids = {n: self.wait_running(n) for n in ["a", "b"]}
        self.release("j1")
        self.wait_log(r"^arbord: j1: failed \(exit status 4\)")
        self.assert_stays_up()
        self.assertTrue(all(pid_alive(p) for p in pids.values()))
        self.assertFalse(self.log_lines(r"a significant child ended"))
        self.release("j2")
        self.assertEqual(self.wait_exit(), 5)
        self.assertEqual(self.order_of(r"^arbord: (\w+): stopping \(SIG"), ["b", "a"])
        self.assert_all_gone()

    def test_a_restarted_significant_child_has_not_ended(self):
        # j1 (transient) crashes once and is restarted: it has not ended, so
        # j2's end does not shut the supervisor down; j1's later exit 0 does,
        # and arbord's status is that of the last one to end.
        self.supervisor("root", ["j1", "j2"], AutoShutdown="all-significant", Intensity=5)
        mark = os.path.join(self.tmp, "j1-crashed")
        self.service("j1", self.wait_for(
            "j1", f"rm {self.gate('j1')}; [ -e {mark} ] && exit 0; touch {mark}; exit 3"),
            Restart="transient", Significant="yes")
        self.service("j2", self.wait_for("j2", "exit 6"), Restart="temporary", Significant="yes")
        self.start()
        self.wait_running("j2")
        self.release("j1")
        self.wait_log(r"^arbord: j1: failed \(exit status 3\)")
        self.wait_running("j1", count=2)
        self.release("j2")
        self.wait_log(r"^arbord: j2: failed \(exit status 6\)")
        self.assert_stays_up()
        self.assertFalse(self.log_lines(r"a significant child ended"))
        self.release("j1")
        self.assertEqual(self.wait_exit(), 0)
        self.assertTrue(self.log_lines(r"^arbord: j1: exited \(exit status 0\)"))


class Nested(AutoShutdownTest):
    def nested(self, sub_restart, root_keys=None, sub_keys=None, code=7):
        """root [sub, witness]; sub [x, job] with AutoShutdown=any-significant."""
        self.supervisor("root", ["sub", "witness"], Intensity=20, **(root_keys or {}))
        self.supervisor("sub", ["x", "job"], AutoShutdown="any-significant",
                        Restart=sub_restart, **(sub_keys or {}))
        self.service("x", SLEEPER)
        self.service("job", self.wait_for("job", f"rm -f {self.gate('job')}; exit {code}"),
                     Restart="temporary", Significant="yes")
        self.service("witness", SLEEPER)
        self.start()
        return self.wait_running("witness")

    def test_transient_sub_shut_down_by_its_significant_child_is_not_restarted(self):
        witness = self.nested("transient")
        x = self.wait_running("x")
        self.release("job")
        self.wait_log(r"^arbord: sub: shut down$")
        self.assertFalse(pid_alive(x))
        self.assertTrue(self.log_lines(r"^arbord: sub: a significant child ended: shutting down"))
        self.assert_stays_up()
        self.assertEqual(len(self.log_lines(r"^arbord: sub: starting$")), 1)
        self.assertEqual(self.running_pids("witness"), [witness])
        self.assertTrue(pid_alive(witness))
        self.assertEqual(self.stop(), 0)

    def test_temporary_sub_shut_down_is_not_restarted(self):
        witness = self.nested("temporary")
        self.release("job")
        self.wait_log(r"^arbord: sub: shut down$")
        self.assert_stays_up()
        self.assertEqual(len(self.log_lines(r"^arbord: sub: starting$")), 1)
        self.assertTrue(pid_alive(witness))
        self.assertEqual(self.stop(), 0)

    def test_permanent_sub_shut_down_is_restarted(self):
        witness = self.nested("permanent")
        first_x = self.wait_running("x")
        self.release("job")
        self.wait_log(r"^arbord: sub: shut down$")
        self.wait_log(r"^arbord: sub: starting$", count=2)
        self.assertNotEqual(self.wait_running("x", count=2), first_x)
        self.wait_running("job", count=2)
        self.assertEqual(self.running_pids("witness"), [witness])
        self.assertEqual(self.stop(), 0)

    def test_significant_end_climbs_to_the_root_with_its_status(self):
        # sub is itself significant under a root with AutoShutdown: the
        # job's status 7 becomes arbord's.
        self.nested("transient", root_keys={"AutoShutdown": "any-significant"},
                    sub_keys={"Significant": "yes"})
        self.release("job")
        self.assertEqual(self.wait_exit(), 7)
        self.assertTrue(self.log_lines(r"^arbord: root: a significant child ended: shutting down"))
        self.assert_all_gone()


class Oneshot(AutoShutdownTest):
    def test_oneshot_job_exiting_0_makes_arbord_exit_0(self):
        # The container "run one job" case: a helper service, then the job.
        self.supervisor("root", ["db", "job"], AutoShutdown="any-significant")
        self.service("db", SLEEPER)
        self.service("job", "/bin/sh -c 'echo working; sleep 0.2; echo done'", Type="oneshot",
                     Restart="transient", Significant="yes")
        self.start()
        self.assertEqual(self.wait_exit(), 0)
        self.assertTrue(self.log_lines(r"^job\[\d+\]: done$"))
        self.assertTrue(self.log_lines(r"^arbord: job: exited \(exit status 0\)"))
        self.assertTrue(self.log_lines(r"^arbord: db: stopping \(SIGTERM\)"))
        self.assertEqual(len(self.log_lines(r"^arbord: job: starting pid")), 1)
        self.assert_all_gone()

    def test_oneshot_job_failing_is_retried_until_intensity_then_exit_1(self):
        self.supervisor("root", ["db", "job"], AutoShutdown="any-significant", Intensity=2)
        self.service("db", SLEEPER)
        self.service("job", "/bin/sh -c 'exit 2'", Type="oneshot", Restart="transient",
                     Significant="yes")
        self.start()
        self.assertEqual(self.wait_exit(), 1)
        self.assertEqual(len(self.log_lines(r"^arbord: job: failed to start \(exit status 2\)")), 3)
        self.assert_all_gone()


    def test_temporary_oneshot_job_failing_ends_arbord_with_its_status(self):
        # A temporary job is never run again: its failure is its end.
        self.supervisor("root", ["db", "job"], AutoShutdown="any-significant")
        self.service("db", SLEEPER)
        self.service("job", "/bin/sh -c 'exit 5'", Type="oneshot", Restart="temporary",
                     Significant="yes")
        self.start()
        self.assertEqual(self.wait_exit(), 5)
        self.assertEqual(len(self.log_lines(r"^arbord: job: starting pid")), 1)
        self.assert_all_gone()


class Validation(AutoShutdownTest):
    def test_significant_permanent_is_rejected(self):
        self.supervisor("root", ["s"], AutoShutdown="any-significant")
        self.write_unit("s.service",
                        "[Service]\nExecStart=/bin/sleep 1000\nSignificant=yes\n")
        status, out, err = self.check()
        self.assertEqual(status, 1, out)
        self.assertRegex(err, rf"(?m)^{re.escape(self.units)}/s\.service:3: .*Significant")
        self.write_unit("s.service",
                        "[Service]\nExecStart=/bin/sleep 1000\nRestart=always\nSignificant=yes\n")
        status, out, err = self.check()
        self.assertEqual(status, 1, out)
        self.assertRegex(err, rf"(?m)^{re.escape(self.units)}/s\.service:4: .*permanent")
        # And arbord refuses to start it.
        self.start()
        self.assertEqual(self.wait_exit(), 2)
        self.assertNotIn("starting pid", self.log())

    def test_significant_permanent_supervisor_is_rejected(self):
        self.supervisor("root", ["sub"], AutoShutdown="any-significant")
        self.supervisor("sub", [], Significant="yes")
        status, out, err = self.check()
        self.assertEqual(status, 1, out)
        self.assertRegex(err, rf"(?m)^{re.escape(self.units)}/sub\.supervisor:\d+: .*Significant")

    def test_significant_under_auto_shutdown_never_is_rejected(self):
        self.supervisor("root", ["s"])
        self.service("s", SLEEPER, Restart="temporary", Significant="yes")
        status, out, err = self.check()
        self.assertEqual(status, 1, out)
        self.assertIn("AutoShutdown", err)

    def test_significant_transient_and_temporary_are_accepted(self):
        self.supervisor("root", ["s", "t"], AutoShutdown="all-significant")
        self.service("s", SLEEPER, Restart="transient", Significant="yes")
        self.service("t", SLEEPER, Restart="temporary", Significant="yes")
        status, out, err = self.check()
        self.assertEqual(status, 0, err)
        self.assertIn("auto-shutdown all-significant", out)
        self.assertEqual(len([l for l in out.splitlines() if l.endswith(" significant")]), 2,
                         out)


if __name__ == "__main__":
    unittest.main()
