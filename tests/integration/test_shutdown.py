"""Shutdown (issue point 4): SIGTERM/SIGINT stop the tree in reverse start
order, depth first; KillSignal=, Shutdown= and brutal-kill; no descendant
survives its service, with cgroups and with the process-tree fallback
(--no-cgroups); arbord removes its cgroup; repeated SIGTERM and SIGHUP.
"""

import os
import re
import signal
import time
import unittest

from harness import ArbordTest, pid_alive, proc_environ, start_time, wait_until

SLEEPER = "/bin/sleep 1000"
# Ignores SIGTERM (the ignored disposition is inherited by the sleeps too)
# and says so once the trap is in place, so the test knows when to stop it.
IGNORES_TERM = "/bin/sh -c 'trap \"\" TERM; echo armed; while :; do sleep 0.1; done'"


def proc_stat(pid):
    """Fields after the command name: [state, ppid, pgrp, session, ...]."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cgroup2_base(arbord_pid):
    """Where arbord makes its cgroup (as the harness computes it), or None."""
    try:
        with open("/proc/self/cgroup") as f:
            own = next(l[3:].strip() for l in f if l.startswith("0::"))
        with open("/proc/self/mountinfo") as f:
            mount = next(l.split()[4] for l in f if " - cgroup2 " in l)
    except (OSError, StopIteration):
        return None
    return os.path.join(mount + own, f"arbord-{arbord_pid}")


def cgroups_usable():
    """True when this process may make a cgroup2 directory beside arbord's."""
    base = cgroup2_base(os.getpid())
    if base is None:
        return False
    probe = os.path.join(os.path.dirname(base), f"arbor-test-probe-{os.getpid()}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    os.rmdir(probe)
    return True


def kill_recorded(pid, cmdline):
    """SIGKILL a pid this test recorded, if it is still that process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read() != cmdline:
                return
        os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass


class ShutdownTest(ArbordTest):
    """Adds a tag in arbord's environment, inherited by every service, to
    find this test's processes in /proc whatever they did to themselves."""

    def setUp(self):
        super().setUp()
        self.tag = f"ARBOR_TEST_TAG={self.tmp}".encode()

    def start(self, *args, env=None):
        full = {"ARBOR_TEST_TAG": self.tmp}
        full.update(env or {})
        return super().start(*args, env=full)

    def tagged_processes(self):
        """Live processes from this test that carry ARBOR_UNIT."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            env = proc_environ(pid)
            if b"ARBOR_UNIT" in env and env.get(b"ARBOR_TEST_TAG") == self.tmp.encode():
                if pid_alive(pid):
                    found.append(pid)
        return found

    def kill_tagged(self):
        """Our own leftovers, whatever happened (the harness only knows the
        main pids that arbord logged): until none is left, as killing one
        may let another be found."""
        def none_left():
            found = self.tagged_processes()
            for pid in found:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return not found
        wait_until(none_left, timeout=5, what="this test's leftover processes to be gone")

    def tearDown(self):
        self.kill_tagged()
        super().tearDown()
        # Again once arbord is dead: a service it restarted meanwhile may
        # have left more.
        self.kill_tagged()

    def assert_no_tagged_processes(self, timeout=3):
        wait_until(lambda: not self.tagged_processes(), timeout=timeout,
                   what="every process of this test (ARBOR_UNIT + tag) to be gone")

    def events(self):
        """(name, 'stopping'|'stopped') in log order, services and supervisors."""
        out = []
        for line in self.log().splitlines():
            m = re.match(r"^arbord: ([\w.-]+): (stopping|stopped)( \(|$)", line)
            if m:
                out.append((m.group(1), m.group(2)))
        return out


class StopOrder(ShutdownTest):
    def nested_tree(self):
        # root: a, sub1(b, sub2(x, y), c), d ; start order a b x y c d.
        self.supervisor("root", ["a", "sub1", "d"])
        self.supervisor("sub1", ["b", "sub2", "c"])
        self.supervisor("sub2", ["x", "y"])
        for name in "abdxy":
            self.service(name, SLEEPER)
        # c takes a while to stop: b must not be signalled before c is gone.
        self.service("c", "/bin/sh -c 'trap \"sleep 0.3; exit 0\" TERM; echo armed; "
                          "while :; do sleep 0.1; done'")
        self.start()
        self.wait_log(r"^c\[\d+\]: armed")
        self.wait_log(r"^arbord: root: running")
        starts = self.order_of(r"^arbord: ([\w.-]+): starting pid")
        self.assertEqual(starts, ["a", "b", "x", "y", "c", "d"])

    def check_reverse_depth_first(self):
        expected = [
            ("root", "stopping"),
            ("d", "stopping"), ("d", "stopped"),
            ("sub1", "stopping"),
            ("c", "stopping"), ("c", "stopped"),
            ("sub2", "stopping"),
            ("y", "stopping"), ("y", "stopped"),
            ("x", "stopping"), ("x", "stopped"),
            ("sub2", "stopped"),
            ("b", "stopping"), ("b", "stopped"),
            ("sub1", "stopped"),
            ("a", "stopping"), ("a", "stopped"),
            ("root", "stopped"),
        ]
        self.assertEqual(self.events(), expected)
        self.wait_log(r"^arbord: c: stopped \(exit status 0\)")

    def test_sigterm_stops_in_reverse_order_depth_first_and_exits_0(self):
        self.nested_tree()
        self.assertEqual(self.stop(signal.SIGTERM), 0)
        self.assertTrue(self.log_lines(r"^arbord: SIGTERM: shutting down"))
        self.check_reverse_depth_first()
        self.assert_no_tagged_processes()

    def test_sigint_stops_in_reverse_order_depth_first_and_exits_0(self):
        self.nested_tree()
        self.assertEqual(self.stop(signal.SIGINT), 0)
        self.assertTrue(self.log_lines(r"^arbord: SIGINT: shutting down"))
        self.check_reverse_depth_first()
        self.assert_no_tagged_processes()


class StopSignals(ShutdownTest):
    def test_kill_signal_is_the_signal_sent(self):
        self.service("k", "/bin/sh -c 'trap \"echo got-usr1; exit 0\" USR1; "
                          "trap \"echo got-term; exit 0\" TERM; echo armed; "
                          "while :; do sleep 0.1; done'",
                     KillSignal="SIGUSR1")
        self.start()
        pid = self.wait_running("k")
        self.wait_log(rf"^k\[{pid}\]: armed")
        self.assertEqual(self.stop(), 0)
        self.wait_log(r"^arbord: k: stopping \(SIGUSR1\)")
        self.assertTrue(self.log_lines(rf"^k\[{pid}\]: got-usr1$"))
        self.assertFalse(self.log_lines(r"got-term"))
        self.assertTrue(self.log_lines(r"^arbord: k: stopped \(exit status 0\)"))

    def test_service_ignoring_sigterm_is_sigkilled_after_shutdown_timeout(self):
        self.service("stubborn", IGNORES_TERM, Shutdown="1s")
        self.service("other", SLEEPER)
        self.start()
        pid = self.wait_running("stubborn")
        self.wait_log(rf"^stubborn\[{pid}\]: armed")
        self.wait_running("other")
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.wait_log(r"^arbord: stubborn: stopping \(SIGTERM\)")
        self.assertEqual(self.wait_exit(), 0)
        took = time.monotonic() - began
        self.assertTrue(self.log_lines(r"^arbord: stubborn: stopped \(killed by SIGKILL\)"))
        self.assertGreaterEqual(took, 0.9, "SIGKILL came before Shutdown=1s had passed")
        self.assertLess(took, 4.5, "SIGKILL did not come soon after Shutdown=1s")
        self.assertFalse(pid_alive(pid))
        self.assert_no_tagged_processes()

    def test_brutal_kill_sends_sigkill_at_once(self):
        self.service("brutal", "/bin/sh -c 'trap \"echo got-term; exit 0\" TERM; echo armed; "
                               "while :; do sleep 0.1; done'",
                     Shutdown="brutal-kill")
        self.start()
        pid = self.wait_running("brutal")
        self.wait_log(rf"^brutal\[{pid}\]: armed")
        began = time.monotonic()
        self.assertEqual(self.stop(), 0)
        self.assertLess(time.monotonic() - began, 3)
        self.assertTrue(self.log_lines(r"^arbord: brutal: stopping \(SIGKILL\)"))
        self.assertTrue(self.log_lines(r"^arbord: brutal: stopped \(killed by SIGKILL\)"))
        self.assertFalse(self.log_lines(r"got-term"))
        self.assert_no_tagged_processes()

    def test_second_sigterm_during_slow_shutdown_changes_nothing(self):
        self.supervisor("root", ["first", "slow"])
        self.service("first", SLEEPER)
        self.service("slow", IGNORES_TERM, Shutdown="2s")
        self.start()
        pid = self.wait_running("slow")
        self.wait_log(rf"^slow\[{pid}\]: armed")
        self.wait_running("first")
        self.proc.send_signal(signal.SIGTERM)
        self.wait_log(r"^arbord: slow: stopping \(SIGTERM\)")
        self.proc.send_signal(signal.SIGTERM)
        self.wait_log(r"^arbord: SIGTERM again")
        self.proc.send_signal(signal.SIGINT)
        self.wait_log(r"^arbord: SIGINT again")
        self.assertEqual(self.wait_exit(), 0)
        self.assertTrue(self.log_lines(r"^arbord: slow: stopped \(killed by SIGKILL\)"))
        self.assertEqual(self.events(), [
            ("root", "stopping"),
            ("slow", "stopping"), ("slow", "stopped"),
            ("first", "stopping"), ("first", "stopped"),
            ("root", "stopped"),
        ])
        self.assertEqual(len(self.log_lines(r"^arbord: \w+: starting pid")), 2)
        self.assert_no_tagged_processes()

    def test_sighup_does_not_kill_arbord(self):
        self.service("a", SLEEPER)
        self.service("b", SLEEPER)
        self.start()
        a = self.wait_running("a")
        b = self.wait_running("b")
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log(r"SIGHUP|[Rr]eload")
        self.assertIsNone(self.proc.poll())
        # Still supervising: a killed service comes back.
        os.kill(b, signal.SIGKILL)
        self.wait_running("b", count=2)
        self.assertIsNone(self.proc.poll())
        self.assertTrue(pid_alive(a))
        self.assertEqual(self.running_pids("a"), [a])
        self.assertEqual(self.stop(), 0)


class EscapedDescendants:
    """Mixin: a service whose grandchild double-forks and calls setsid().
    NO_CGROUPS picks the tracking mode."""

    NO_CGROUPS = False

    def start_mode(self):
        return self.start(*(["--no-cgroups"] if self.NO_CGROUPS else []))

    def escaping_service(self, name="esc"):
        pidfile = os.path.join(self.tmp, f"{name}.grandchild")
        # The subshell forks the setsid'd sh and exits at once, so the
        # grandchild is orphaned (to arbord, the subreaper) in its own session.
        self.service(
            name,
            "/bin/sh -c '(setsid sh -c \"echo \\$\\$ > "
            f"{pidfile}.tmp && mv {pidfile}.tmp {pidfile}; exec sleep 1001\" &); "
            "exec sleep 1000'")
        return pidfile

    def read_grandchild(self, pidfile, not_pid=None):
        def read():
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                return None
            return pid if pid != not_pid and pid_alive(pid) else None
        pid = wait_until(read, what=f"a grandchild pid in {pidfile}")
        # Its start time too: once it has died, a later process with its
        # pid must not pass for it.
        self.started = getattr(self, "started", {})
        self.started[pid] = start_time(pid)
        self.extra_pids.append(pid)
        self.addCleanup(kill_recorded, pid, b"sleep\x001001\x00")
        return pid

    def alive(self, grandchild):
        return pid_alive(grandchild, self.started[grandchild])

    def assert_escaped(self, grandchild, service_pid, unit=b"esc"):
        # Orphaned: arbord, the child subreaper, adopts it once the subshell
        # that forked it has exited.
        wait_until(lambda: int(proc_stat(grandchild)[1]) == self.proc.pid, timeout=5,
                   what=f"the grandchild {grandchild} to be adopted by arbord")
        stat = proc_stat(grandchild)
        # Own session and group: signalling the service's group misses it.
        self.assertEqual(int(stat[3]), grandchild)
        self.assertEqual(int(stat[2]), grandchild)
        self.assertNotEqual(int(stat[2]), service_pid)
        env = proc_environ(grandchild)
        self.assertEqual(env.get(b"ARBOR_UNIT"), unit)

    def check_cgroup_mode(self, service_pid):
        base = cgroup2_base(self.proc.pid)
        if self.NO_CGROUPS:
            self.assertFalse(base and os.path.exists(base),
                             "--no-cgroups, yet arbord made a cgroup")
            return
        self.assertTrue(os.path.isdir(base), f"arbord made no cgroup {base}")
        with open(f"/proc/{service_pid}/cgroup") as f:
            self.assertIn(f"arbord-{self.proc.pid}/esc", f.read())

    def test_grandchild_that_left_the_group_dies_when_arbord_stops(self):
        pidfile = self.escaping_service()
        self.service("plain", SLEEPER)
        self.start_mode()
        pid = self.wait_running("esc")
        self.wait_running("plain")
        self.check_cgroup_mode(pid)
        grandchild = self.read_grandchild(pidfile)
        self.assert_escaped(grandchild, pid)
        arbord = self.proc.pid
        self.assertEqual(self.stop(), 0)
        wait_until(lambda: not self.alive(grandchild), timeout=5,
                   what=f"the escaped grandchild {grandchild} to die")
        self.assert_no_tagged_processes()
        base = cgroup2_base(arbord)
        self.assertFalse(base and os.path.exists(base),
                         f"arbord left its cgroup {base} after a clean exit")

    def test_grandchild_that_left_the_group_dies_with_its_main_process(self):
        pidfile = self.escaping_service()
        self.service("plain", SLEEPER)
        self.start_mode()
        pid = self.wait_running("esc")
        self.check_cgroup_mode(pid)
        grandchild = self.read_grandchild(pidfile)
        self.assert_escaped(grandchild, pid)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.alive(grandchild), timeout=5,
                   what=f"the escaped grandchild {grandchild} to die with its service")
        # The service is restarted (permanent) with a fresh grandchild, and
        # the tree goes on.
        new = self.wait_running("esc", count=2)
        self.assertNotEqual(new, pid)
        new_grandchild = self.read_grandchild(pidfile, not_pid=grandchild)
        self.assertTrue(pid_alive(self.pid_of("plain")))
        self.assertEqual(self.stop(), 0)
        wait_until(lambda: not self.alive(new_grandchild), timeout=5,
                   what="the second grandchild to die")
        self.assert_no_tagged_processes()

    def scrubbed_grandchild_dies_when_arbord_stops(self):
        # As above, but the grandchild also clears its environment (env -i),
        # so nothing in /proc/PID/environ ties it to the service.
        pidfile = os.path.join(self.tmp, "esc.grandchild")
        self.service(
            "esc",
            "/bin/sh -c '(setsid env -i sh -c \"echo \\$\\$ > "
            f"{pidfile}.tmp && mv {pidfile}.tmp {pidfile}; exec sleep 1001\" &); "
            "exec sleep 1000'")
        self.service("plain", SLEEPER)
        self.start_mode()
        pid = self.wait_running("esc")
        self.wait_running("plain")
        grandchild = self.read_grandchild(pidfile)
        self.assert_escaped(grandchild, pid, unit=None)
        self.assertEqual(self.stop(), 0)
        wait_until(lambda: not self.alive(grandchild), timeout=5,
                   what=f"the escaped grandchild {grandchild} (no environment) to die")

    def test_grandchild_of_a_temporary_service_dies_when_it_exits(self):
        # The main process exits by itself (normal exit, not restarted);
        # what it left behind must still go.
        pidfile = os.path.join(self.tmp, "t.grandchild")
        self.service(
            "t",
            "/bin/sh -c '(setsid sh -c \"echo \\$\\$ > "
            f"{pidfile}.tmp && mv {pidfile}.tmp {pidfile}; exec sleep 1001\" &); "
            f"while ! test -s {pidfile}; do sleep 0.05; done; exit 0'",
            Restart="temporary")
        self.service("plain", SLEEPER)
        self.start_mode()
        self.wait_running("plain")
        self.wait_log(r"^arbord: t: exited \(exit status 0\)")
        try:
            with open(pidfile) as f:
                grandchild = int(f.read().strip())
        except (OSError, ValueError):
            self.fail("the service exited without its grandchild's pid file")
        self.extra_pids.append(grandchild)
        wait_until(lambda: not pid_alive(grandchild), timeout=5,
                   what=f"the grandchild {grandchild} of an exited service to die")
        self.assertEqual(self.stop(), 0)
        self.assert_no_tagged_processes()

    def test_orphans_caught_inside_execve_die_with_their_service(self):
        # Escaped orphans that exec again and again. Without cgroups arbord
        # tells an orphan by the ARBOR_UNIT= in /proc/PID/environ, which
        # reads empty while the process is inside an exec (0.4-8% of reads
        # of these, as measured here): 20 of them, 5 crashes, 100 chances.
        loop = os.path.join(self.tmp, "loop.sh")
        with open(loop, "w") as f:
            f.write(f"exec /bin/sh {loop}\n")
        pids = os.path.join(self.tmp, "loopers")
        os.mkdir(pids)
        self.supervisor("root", ["esc"], Intensity=100, Period="60s")
        # Each instance's orphans write their pids under the instance's own.
        self.service(
            "esc",
            f"/bin/sh -c 'mkdir {pids}/$$ && for i in $(seq 20); do "
            f"(setsid sh -c \"echo > {pids}/$$/\\$\\$; exec /bin/sh {loop}\" &); "
            "done; exec sleep 1000'")
        self.start_mode()
        arbord = self.proc.pid

        def adopted(main):
            loopers = {}
            for name in os.listdir(os.path.join(pids, str(main))):
                stat = proc_stat(int(name))
                if not stat or int(stat[1]) != arbord:
                    return None
                loopers[int(name)] = stat[19]
            return loopers if len(loopers) == 20 else None

        for crash in range(5):
            main = self.wait_running("esc", count=crash + 1)
            wait_until(lambda: os.path.isdir(os.path.join(pids, str(main))),
                       what=f"instance {main} to begin")
            loopers = wait_until(lambda: adopted(main), timeout=5,
                                 what=f"instance {main}'s 20 orphans adopted by arbord")
            os.kill(main, signal.SIGKILL)
            wait_until(lambda: not any(pid_alive(p, t) for p, t in loopers.items()),
                       timeout=5, what=f"instance {main}'s orphans to die with it")
        self.assertEqual(self.stop(), 0)
        self.assert_no_tagged_processes()


class DescendantsWithCgroups(EscapedDescendants, ShutdownTest):
    NO_CGROUPS = False

    def test_grandchild_without_environment_dies_when_arbord_stops(self):
        self.scrubbed_grandchild_dies_when_arbord_stops()

    @classmethod
    def setUpClass(cls):
        if not cgroups_usable():
            raise unittest.SkipTest("no writable cgroup2 hierarchy here")


class DescendantsWithoutCgroups(EscapedDescendants, ShutdownTest):
    NO_CGROUPS = True

    # With --no-cgroups, a double-forked setsid() grandchild that ran
    # `env -i` cannot be attributed to its service, but once the tree has
    # stopped every orphan arbord adopted came from a service: none survives.
    def test_grandchild_without_environment_dies_when_arbord_stops(self):
        self.scrubbed_grandchild_dies_when_arbord_stops()


class CgroupCleanup(ShutdownTest):
    @classmethod
    def setUpClass(cls):
        if not cgroups_usable():
            raise unittest.SkipTest("no writable cgroup2 hierarchy here")

    def test_cgroup_dir_is_removed_after_clean_exit(self):
        self.supervisor("root", ["a", "sub"])
        self.supervisor("sub", ["b", "c"])
        for name in "abc":
            self.service(name, SLEEPER)
        self.service("c", IGNORES_TERM, Shutdown="500ms")
        self.start()
        pids = {n: self.wait_running(n) for n in "abc"}
        self.wait_log(rf"^c\[{pids['c']}\]: armed")
        base = cgroup2_base(self.proc.pid)
        self.assertTrue(os.path.isdir(base), f"no cgroup {base} while running")
        for name, pid in pids.items():
            self.assertTrue(os.path.isdir(os.path.join(base, name)))
            with open(f"/proc/{pid}/cgroup") as f:
                self.assertIn(f"arbord-{self.proc.pid}/{name}\n", f.read())
        self.assertEqual(self.stop(), 0)
        self.assertFalse(os.path.exists(base), f"arbord left {base} after a clean exit")
        self.assert_no_tagged_processes()

    def test_no_cgroups_option_makes_no_cgroup(self):
        self.service("a", SLEEPER)
        self.start("--no-cgroups")
        pid = self.wait_running("a")
        base = cgroup2_base(self.proc.pid)
        self.assertFalse(os.path.exists(base))
        with open(f"/proc/{pid}/cgroup") as f:
            self.assertNotIn("arbord-", f.read())
        self.assertEqual(self.stop(), 0)


if __name__ == "__main__":
    unittest.main()
