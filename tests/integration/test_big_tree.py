"""A tree of 5,000 services must load, start and stop (a test, not a timing).

5,000 Type=exec services (/bin/sleep) under ten supervisors of 500 under
root. arbord must start every one, and on SIGTERM stop every one, in
reverse order, and exit 0 with no process left behind.
"""

import os
import re
import resource
import signal
import time
import unittest

from harness import ArbordTest, pid_alive, proc_environ

SERVICES = 5000
GROUPS = 10
START_DEADLINE = 300.0  # generous: this is not a timing
STOP_DEADLINE = 240.0
RUNNING = re.compile(r"^arbord: ([\w.-]+): running \(pid (\d+)\)$")


def cgroups_usable():
    """Whether arbord will likely give each service a cgroup (2 more fds each)."""
    try:
        with open("/proc/self/mountinfo") as f:
            has_cgroup2 = any(" - cgroup2 " in line for line in f)
    except OSError:
        return False
    return has_cgroup2 and os.geteuid() == 0


class BigTree(ArbordTest):
    def setUp(self):
        super().setUp()
        # arbord raises its soft fd limit to the hard one. A service costs its
        # notify socket, and where cgroups work its cgroup directory and
        # cgroup.procs (15,000 fds for 5,000 services, measured), plus a spawn
        # pipe while it starts.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = max(12000, SERVICES * (3 if cgroups_usable() else 1) + 1000)
        if hard != resource.RLIM_INFINITY and hard < need:
            self.skipTest(f"hard RLIMIT_NOFILE is {hard}, below the {need} fds {SERVICES} "
                          f"services need; raise it (ulimit -Hn) to run this test")
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
        if pid_max < SERVICES + 2000:
            self.skipTest(f"kernel.pid_max is {pid_max}: too small for {SERVICES} services")
        if os.geteuid() != 0:
            nproc, _ = resource.getrlimit(resource.RLIMIT_NPROC)
            if nproc != resource.RLIM_INFINITY and nproc < SERVICES + 1000:
                self.skipTest(f"RLIMIT_NPROC is {nproc}: too small for {SERVICES} services")

    def tearDown(self):
        # The harness kills every logged pid that is still alive (and the
        # cgroups); make sure arbord itself is gone first even if a wait
        # above timed out.
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        # On failure show the end of the log, not all ~15,000 lines of it.
        show = os.environ.get("ARBOR_TEST_SHOW_LOG", "1")
        if self._outcome_failed() and show == "1":
            tail = "\n".join(self.log().splitlines()[-80:])
            print(f"\n----- arbord log, last 80 lines ({self.id()}) -----\n{tail}\n-----")
        pids = self.logged_pids()
        os.environ["ARBOR_TEST_SHOW_LOG"] = "0"
        try:
            super().tearDown()  # kills every logged pid still alive
        finally:
            os.environ["ARBOR_TEST_SHOW_LOG"] = show
        survivors = [p for p in pids if pid_alive(p)
                     and b"ARBOR_UNIT" in b"".join(proc_environ(p).keys())]
        for p in survivors:  # one more round, if a kill raced with exit
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def write_tree(self):
        groups = [f"group{g:02d}" for g in range(GROUPS)]
        self.supervisor("root", groups, Intensity=10)
        names = []
        per_group = SERVICES // GROUPS
        for g, group in enumerate(groups):
            members = [f"svc{g:02d}-{i:04d}" for i in range(per_group)]
            self.supervisor(group, members)
            for name in members:
                self.write_unit(f"{name}.service",
                                "[Service]\nExecStart=/bin/sleep 1000\n"
                                "StandardOutput=null\nStandardError=null\n")
            names += members
        return names

    def running(self):
        """{name: pid} of every 'running (pid N)' line so far."""
        found = {}
        for line in self.log().splitlines():
            m = RUNNING.match(line)
            if m:
                found.setdefault(m.group(1), []).append(int(m.group(2)))
        return found

    def test_5000_services_load_start_and_stop(self):
        self.big_tree()

    # The process-tree fallback finds an exited service's orphans among
    # arbord's own children (/proc/PID/task/*/children), not by scanning
    # every process, so it scales too.
    def test_5000_services_without_cgroups(self):
        self.big_tree("--no-cgroups")

    def big_tree(self, *args, stop_deadline=STOP_DEADLINE):
        names = self.write_tree()
        status, out, err = self.check()
        self.assertEqual(status, 0, err[:2000])
        self.assertEqual(len(out.splitlines()), SERVICES + GROUPS + 1)

        began = time.monotonic()
        self.start(*args)
        deadline = began + START_DEADLINE
        while True:
            running = self.running()
            if len(running) >= SERVICES:
                break
            self.assertIsNone(self.proc.poll(),
                              f"arbord exited ({self.proc.returncode}) with "
                              f"{len(running)} of {SERVICES} services running")
            self.assertLess(time.monotonic(), deadline,
                            f"only {len(running)} of {SERVICES} running after "
                            f"{START_DEADLINE:.0f}s")
            time.sleep(0.5)
        started = time.monotonic()

        # Every service started exactly once, each in its own live process
        # that is really that service.
        self.assertEqual(sorted(running), sorted(names))
        self.assertEqual([n for n, pids in running.items() if len(pids) != 1], [])
        pids = {n: p[0] for n, p in running.items()}
        self.assertEqual(len(set(pids.values())), SERVICES)
        dead = [n for n, p in pids.items() if not pid_alive(p)]
        self.assertEqual(dead, [])
        wrong = [n for n, p in pids.items()
                 if proc_environ(p).get(b"ARBOR_UNIT") != n.encode()]
        self.assertEqual(wrong, [])
        self.assertFalse(self.log_lines(r": failed"), "a service failed")
        # Start order is Children= order.
        starts = self.order_of(r"^arbord: (svc[\w-]+): starting pid")
        self.assertEqual(starts, names)
        self.assertTrue(self.log_lines(r"^arbord: root: running$"))

        self.assertEqual(self.stop(timeout=stop_deadline), 0)
        stopped = time.monotonic()
        alive = [n for n, p in pids.items() if pid_alive(p)]
        self.assertEqual(alive, [], f"{len(alive)} services outlived arbord")
        # Stopped one by one in reverse start order.
        stops = self.order_of(r"^arbord: (svc[\w-]+): stopping \(SIGTERM\)")
        self.assertEqual(stops, names[::-1])
        self.assertEqual(len(self.log_lines(r"^arbord: svc[\w-]+: stopped \(")), SERVICES)
        self.assertTrue(self.log_lines(r"^arbord: exiting with status 0$"))
        if os.environ.get("ARBOR_TEST_VERBOSE"):
            print(f"\n  {SERVICES} services: started in {started - began:.1f}s, "
                  f"stopped in {stopped - started:.1f}s")


if __name__ == "__main__":
    unittest.main()
