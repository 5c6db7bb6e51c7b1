"""Reload against a real arbord, through the control protocol (command=
reload) and through SIGHUP: only what changed changes.

SPEC: "a service restarts only when its own unit file changed; a
supervisor's new settings apply without restarting its children, which are
started or stopped as its new Children= says"; a bad unit changes nothing.
Every claim is checked against real pids (status and /proc).
"""

import os
import re
import signal
import time
import unittest

import control_client as cc
from harness import NOTIFY_CLIENT, pid_alive, proc_cmdline, wait_until
from test_control import SLEEPER, ControlTest

NC = NOTIFY_CLIENT
RELOAD_DONE = r"^arbord: (reloaded: |reload: \d+ problems? in )"


class ReloadTest(ControlTest):
    def reload(self, via="control"):
        """Reload; for control, return the RESULT (checked ok); for SIGHUP,
        wait until arbord logs the outcome and return that line."""
        if via == "control":
            result = self.result("reload")
            self.assertEqual((result.int("ok"), result.int("exit")), (1, 0), result)
            self.assertTrue(result.get("message", "").startswith("reloaded: "), result)
            return result
        n = len(self.log_lines(RELOAD_DONE))
        self.proc.send_signal(signal.SIGHUP)
        return self.wait_log(RELOAD_DONE, count=n + 1)[n]

    def remove_unit(self, filename):
        os.unlink(os.path.join(self.units, filename))

    def names(self):
        return [f["name"] for f in self.status()]

    def parents(self):
        return {f["name"]: f.get("parent") for f in self.status()}

    def assert_same_pids(self, before, names=None):
        now = self.pids()
        for name in names or before:
            self.assertEqual(now.get(name), before[name], f"{name} was restarted")
            self.assertTrue(pid_alive(before[name]), name)

    def starts_since(self, mark):
        """Names of services started (by pid) after log line `mark`."""
        lines = self.log().splitlines()[mark:]
        return [m.group(1) for l in lines
                if (m := re.match(r"^arbord: ([\w.-]+): starting pid", l))]

    def stops_since(self, mark):
        lines = self.log().splitlines()[mark:]
        return [m.group(1) for l in lines
                if (m := re.match(r"^arbord: ([\w.-]+): stopping \(SIG", l))]

    def mark(self):
        return len(self.log().splitlines())


class Added(ReloadTest):
    def added(self, via):
        self.supervisor("root", ["a", "c"])
        self.service("a", SLEEPER)
        self.service("c", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        mark = self.mark()
        self.supervisor("root", ["a", "b", "sub", "c"])
        self.service("b", f"{NC} READY=1", Type="notify")
        self.supervisor("sub", ["s1", "s2"], Strategy="one-for-all")
        self.service("s1", SLEEPER)
        self.service("s2", SLEEPER)
        outcome = self.reload(via)
        text = outcome if isinstance(outcome, str) else outcome["message"]
        self.assertIn("4 added, 0 removed, 0 changed", text)
        m = self.wait_all_running()
        self.assertEqual(self.names(), ["root", "a", "b", "sub", "s1", "s2", "c"])
        self.assertEqual(self.parents(), {"root": None, "a": "root", "b": "root", "sub": "root",
                                          "s1": "sub", "s2": "sub", "c": "root"})
        self.assertEqual(m["sub"]["strategy"], "one-for-all")
        self.assertEqual(m["b"]["type"], "notify")
        self.assert_same_pids(before)
        self.assertEqual(self.starts_since(mark), ["b", "s1", "s2"])
        self.assertEqual(self.stops_since(mark), [])
        for name in ("b", "s1", "s2"):
            self.assertTrue(pid_alive(m[name].int("pid")))
        # The new ones are supervised like the others.
        self.assert_supervising("s2")
        self.wait_running("s1", count=2)  # one-for-all in sub
        self.assert_same_pids(before)

    def test_added_units_start_in_their_place_via_control(self):
        self.added("control")

    def test_added_units_start_in_their_place_via_sighup(self):
        self.added("sighup")


class Removed(ReloadTest):
    def test_removed_units_stop_and_disappear(self):
        self.supervisor("root", ["a", "b", "grp", "c"])
        self.supervisor("grp", ["g1", "g2"])
        for name in ("a", "b", "c", "g1", "g2"):
            self.service(name, SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        mark = self.mark()
        self.supervisor("root", ["a", "c"])
        for f in ("b.service", "grp.supervisor", "g1.service", "g2.service"):
            self.remove_unit(f)
        result = self.reload()
        self.assertIn("0 added, 4 removed, 0 changed", result["message"])
        # Gone when the RESULT arrives.
        for name in ("b", "g1", "g2"):
            self.assertFalse(pid_alive(before[name]), f"{name} still running")
        self.assertEqual(self.names(), ["root", "a", "c"])
        self.assert_same_pids(before, ["a", "c"])
        self.assertEqual(sorted(self.stops_since(mark)), ["b", "g1", "g2"])
        self.assertEqual(self.starts_since(mark), [])
        # They are no units any more.
        for name in ("b", "grp", "g1"):
            self.assertEqual(self.result("status", [name]).int("exit"), 3)
            self.assertEqual(self.result("start", [name]).int("exit"), 3)
        self.assert_supervising("c")
        self.assertEqual(self.stop(), 0)

    def test_removed_via_sighup(self):
        self.supervisor("root", ["a", "b"])
        self.service("a", SLEEPER)
        self.service("b", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        self.supervisor("root", ["a"])
        self.remove_unit("b.service")
        self.assertIn("0 added, 1 removed", self.reload("sighup"))
        wait_until(lambda: not pid_alive(before["b"]), what="b to be gone")
        self.assertEqual(self.names(), ["root", "a"])
        self.assert_same_pids(before, ["a"])


class Changed(ReloadTest):
    def test_only_changed_services_restart(self):
        self.supervisor("root", ["s1", "grp", "s2", "s3"])
        self.supervisor("grp", ["g1", "g2", "g3"])
        for name in ("s1", "s2", "s3", "g1", "g2", "g3"):
            self.service(name, SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        mark = self.mark()
        # s2: a new command line; g2: only a Description; s3 and g1: the
        # same bytes written again (a newer mtime, no change).
        self.service("s2", "/bin/sleep 1001")
        self.write_unit("g2.service", f"[Unit]\nDescription=the second g\n\n"
                        f"[Service]\nExecStart={SLEEPER}\n")
        self.service("s3", SLEEPER)
        self.service("g1", SLEEPER)
        result = self.reload()
        self.assertIn("0 added, 0 removed, 2 changed", result["message"])
        m = self.wait_all_running()
        for name in ("s2", "g2"):
            self.assertNotEqual(m[name].int("pid"), before[name])
            self.assertTrue(pid_alive(m[name].int("pid")))
            self.assertFalse(pid_alive(before[name]))
        self.assert_same_pids(before, ["s1", "s3", "g1", "g3"])
        self.assertEqual(sorted(self.starts_since(mark)), ["g2", "s2"])
        self.assertEqual(sorted(self.stops_since(mark)), ["g2", "s2"])
        self.assertEqual(m["g2"]["description"], "the second g")
        self.assertEqual(proc_cmdline(m["s2"].int("pid")), b"/bin/sleep\x001001\x00")
        # A reload with nothing changed changes nothing.
        before = self.pids()
        mark = self.mark()
        result = self.reload("sighup")
        self.assertIn("0 added, 0 removed, 0 changed", result)
        self.assert_same_pids(before)
        self.assertEqual(self.starts_since(mark), [])
        self.assertEqual(self.stop(), 0)

    def test_changed_notify_service_restarts_and_is_waited_for(self):
        self.supervisor("root", ["a", "n", "z"])
        self.service("a", SLEEPER)
        self.service("n", f"{NC} READY=1", Type="notify")
        self.service("z", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        self.service("n", f"{NC} sleep:0.5 READY=1 STATUS=second", Type="notify")
        self.reload()
        n = self.wait_state("n", "running")
        self.assertNotEqual(n.int("pid"), before["n"])
        wait_until(lambda: self.unit("n").get("status") == "second", what="n's new STATUS=")
        self.assert_same_pids(before, ["a", "z"])


    def test_a_follower_of_a_changed_service_sees_the_new_instance(self):
        self.supervisor("root", ["a", "p"])
        self.service("a", SLEEPER)
        self.service("p", "/bin/sh -c 'echo first; exec sleep 1000'")
        self.start_arbord()
        self.wait_all_running()
        self.service_log("p", "first")
        old = self.unit("p").int("pid")
        conn = cc.open_request(self.run, "logs", ["p"], lines=1, follow=1)
        try:
            self.assertEqual(conn.recv_frame(timeout=5)["line"], "first")
            self.service("p", "/bin/sh -c 'echo second; exec sleep 1000'")
            self.reload()
            f = conn.recv_frame(timeout=5)
            self.assertEqual(f.type, cc.LOG, f)
            self.assertEqual(f["line"], "second")
            self.assertNotEqual(f.int("pid"), old)
            self.assertEqual(f.int("pid"), self.wait_state("p", "running").int("pid"))
        finally:
            conn.close()


class SupervisorSettings(ReloadTest):
    def test_new_strategy_applies_without_restarting_children(self):
        self.supervisor("root", ["grp", "w"])
        self.supervisor("grp", ["x", "y", "z"], Strategy="one-for-one", Intensity=5)
        for name in ("x", "y", "z", "w"):
            self.service(name, SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        # Under one-for-one, killing y restarts only y.
        self.assert_supervising("y")
        before = self.pids()
        mark = self.mark()
        self.supervisor("grp", ["x", "y", "z"], Strategy="one-for-all", Intensity=7,
                        Period="20s")
        self.supervisor("root", ["grp", "w"], Strategy="rest-for-one")
        result = self.reload()
        self.assertIn("0 added, 0 removed, 0 changed", result["message"])
        self.assert_same_pids(before)
        self.assertEqual(self.starts_since(mark), [])
        m = self.smap()
        self.assertEqual(m["grp"]["strategy"], "one-for-all")
        self.assertEqual(m["root"]["strategy"], "rest-for-one")
        self.assertEqual(m["grp"]["state"], "running")
        # Now killing y restarts x, y and z; w is untouched.
        os.kill(before["y"], signal.SIGKILL)
        m = wait_until(lambda: (lambda m: m if all(
            m[n]["state"] == "running" and m[n].int("pid") != before[n] for n in "xyz")
            else None)(self.smap()), what="one-for-all restart of x, y, z")
        self.assertEqual(m["w"].int("pid"), before["w"])
        self.assertEqual(self.stops_since(mark), ["z", "x"])
        self.assertEqual(self.starts_since(mark), ["x", "y", "z"])
        self.assertEqual(self.stop(), 0)

    def test_lower_intensity_applies(self):
        self.supervisor("root", ["grp", "w"])
        self.supervisor("grp", ["x"], Intensity=100, Restart="transient")
        self.service("x", SLEEPER)
        self.service("w", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        self.supervisor("grp", ["x"], Intensity=0, Restart="transient")
        self.reload("sighup")
        self.assert_same_pids(before)
        # Intensity=0: the first crash makes grp give up; transient: root
        # carries on without it.
        os.kill(before["x"], signal.SIGKILL)
        self.wait_log(r"^arbord: grp: more than 0 restarts")
        self.wait_state("grp", "failed")
        self.assertEqual(self.unit("w").int("pid"), before["w"])
        self.assertIsNone(self.proc.poll())


class Moved(ReloadTest):
    def test_moved_between_surviving_supervisors_keeps_its_pid(self):
        self.supervisor("root", ["s1", "s2"])
        self.supervisor("s1", ["x", "y"])
        self.supervisor("s2", ["z"])
        for name in ("x", "y", "z"):
            self.service(name, SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        mark = self.mark()
        self.supervisor("s1", ["x"])
        self.supervisor("s2", ["z", "y"], Strategy="one-for-all")
        result = self.reload()
        self.assertIn("0 added, 0 removed, 0 changed", result["message"])
        self.assert_same_pids(before)
        self.assertEqual(self.names(), ["root", "s1", "x", "s2", "z", "y"])
        self.assertEqual(self.parents()["y"], "s2")
        self.assertEqual(self.starts_since(mark), [])
        # Its new supervisor supervises it: one-for-all in s2 restarts z too.
        os.kill(before["y"], signal.SIGKILL)
        wait_until(lambda: (lambda m: all(m[n]["state"] == "running" and
                                          m[n].int("pid") != before[n] for n in "yz"))
                   (self.smap()), what="s2's one-for-all")
        self.assertEqual(self.unit("x").int("pid"), before["x"])
        self.assertEqual(self.stop(), 0)

    def test_moved_out_of_a_removed_supervisor_restarts_under_its_new_parent(self):
        self.supervisor("root", ["old", "keep"])
        self.supervisor("old", ["y", "o"])
        self.supervisor("keep", ["k"])
        for name in ("y", "o", "k"):
            self.service(name, SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        mark = self.mark()
        self.remove_unit("old.supervisor")
        self.remove_unit("o.service")
        self.supervisor("root", ["keep"])
        self.supervisor("keep", ["k", "y"])
        result = self.reload()
        self.assertIn("2 removed, 1 changed", result["message"])
        m = self.wait_all_running()
        self.assertEqual(self.names(), ["root", "keep", "k", "y"])
        self.assertEqual(m["y"]["parent"], "keep")
        self.assertNotEqual(m["y"].int("pid"), before["y"])
        self.assertFalse(pid_alive(before["y"]))
        self.assertFalse(pid_alive(before["o"]))
        self.assert_same_pids(before, ["k"])
        self.assertEqual(self.starts_since(mark), ["y"])
        self.assert_supervising("y")
        self.assertEqual(self.stop(), 0)


class Broken(ReloadTest):
    def test_a_broken_unit_changes_nothing(self):
        self.supervisor("root", ["a", "b"])
        self.service("a", SLEEPER)
        self.service("b", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        mark = self.mark()
        # Valid changes (a changed, c added, b removed) beside two bad files.
        self.service("a", "/bin/sleep 1001")
        self.service("c", SLEEPER)
        self.remove_unit("b.service")
        self.supervisor("root", ["a", "c", "x", "y"])
        self.write_unit("x.service", "[Service]\nExecStart=/bin/true\nBogus=1\n")
        self.write_unit("y.service", "[Service]\nExecStart=/bin/true\n  Type=simple\n")
        result, frames, logs = self.req("reload")
        self.assertEqual((frames, logs), ([], []))
        self.assertEqual((result.int("ok"), result.int("exit")), (0, 1), result)
        errors = result.all("error")
        self.assertTrue(any(re.search(r"x\.service:3: .*Bogus", e) for e in errors), errors)
        self.assertTrue(any(re.search(r"y\.service:3: ", e) for e in errors), errors)
        for e in errors:
            self.assertRegex(e, r"^\S+\.(service|supervisor)(:\d+)?: ")
        # Nothing changed.
        self.assertEqual(self.names(), ["root", "a", "b"])
        self.assert_same_pids(before)
        self.assertEqual(self.starts_since(mark), [])
        self.assertEqual(self.stops_since(mark), [])
        # SIGHUP: the same, in the log.
        line = self.reload("sighup")
        self.assertRegex(line, r"reload: 2 problems in ")
        self.wait_log(r"^arbord: reload: \S*x\.service:3: ")
        self.assertEqual(self.names(), ["root", "a", "b"])
        self.assert_same_pids(before)
        # Fixed: now everything applies at once.
        self.remove_unit("x.service")
        self.remove_unit("y.service")
        self.supervisor("root", ["a", "c"])
        result = self.reload()
        self.assertIn("1 added, 1 removed, 1 changed", result["message"])
        m = self.wait_all_running()
        self.assertEqual(self.names(), ["root", "a", "c"])
        self.assertNotEqual(m["a"].int("pid"), before["a"])
        self.assertFalse(pid_alive(before["b"]))
        self.assertEqual(self.stop(), 0)

    def test_a_structural_error_changes_nothing(self):
        self.supervisor("root", ["a", "grp"])
        self.supervisor("grp", ["g"])
        self.service("a", SLEEPER)
        self.service("g", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        # A cycle, a missing child, a unit in two supervisors.
        self.supervisor("grp", ["g", "grp2", "ghost"])
        self.supervisor("grp2", ["grp", "a"])
        result = self.result("reload")
        self.assertEqual(result.int("exit"), 1, result)
        self.assertGreaterEqual(len(result.all("error")), 2, result)
        self.assertTrue(any("ghost" in e for e in result.all("error")), result)
        self.assertEqual(self.names(), ["root", "a", "grp", "g"])
        self.assert_same_pids(before)


class Held(ReloadTest):
    def test_a_held_service_whose_file_changed_stays_stopped(self):
        self.supervisor("root", ["a", "h"])
        self.service("a", SLEEPER)
        self.service("h", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        self.assertEqual(self.result("stop", ["h"]).int("exit"), 0)
        mark = self.mark()
        self.service("h", "/bin/sleep 1002")
        result = self.reload()
        self.assertIn("1 changed", result["message"])
        h = self.unit("h")
        self.assertEqual((h["state"], h.int("held")), ("stopped", 1))
        self.assertEqual(self.starts_since(mark), [])
        self.assert_same_pids(before, ["a"])
        # A second reload does not start it either.
        self.reload("sighup")
        self.assertEqual(self.unit("h")["state"], "stopped")
        # Started by the operator, it runs the new command.
        self.assertEqual(self.result("start", ["h"]).int("exit"), 0)
        pid = self.unit("h").int("pid")
        self.assertEqual(proc_cmdline(pid), b"/bin/sleep\x001002\x00")

    def test_a_held_subtree_stays_stopped_and_new_children_do_not_start(self):
        self.supervisor("root", ["a", "grp"])
        self.supervisor("grp", ["g1"])
        self.service("a", SLEEPER)
        self.service("g1", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        self.assertEqual(self.result("stop", ["grp"]).int("exit"), 0)
        mark = self.mark()
        self.supervisor("grp", ["g1", "g2"])
        self.service("g2", SLEEPER)
        self.reload()
        m = self.smap()
        self.assertEqual([m[n]["state"] for n in ("grp", "g1", "g2")], ["stopped"] * 3)
        self.assertEqual(self.starts_since(mark), [])
        self.assertEqual(self.result("start", ["grp"]).int("exit"), 0)
        m = self.smap()
        self.assertEqual([m[n]["state"] for n in ("grp", "g1", "g2")], ["running"] * 3)


class Concurrent(ReloadTest):
    def test_a_reload_while_another_is_still_stopping(self):
        self.supervisor("root", ["a", "slow"])
        self.service("a", SLEEPER)
        self.py_service("slow", "slow-stop=1.5")
        self.start_arbord()
        self.wait_all_running()
        self.service_log("slow", "ready")
        before = self.pids()
        self.supervisor("root", ["a"])
        self.remove_unit("slow.service")
        t0 = time.monotonic()
        first = cc.open_request(self.run, "reload")
        self.service_log("slow", "term-received")
        # The second one, by either way, is refused while the first runs.
        self.service("b", SLEEPER)
        self.supervisor("root", ["a", "b"])
        result = self.result("reload")
        self.assertEqual((result.int("ok"), result.int("exit")), (0, 1), result)
        self.assertIn("already under way", result["error"])
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log(r"SIGHUP: a reload is already under way")
        # Reading is fine meanwhile.
        self.assertEqual(self.unit("slow")["state"], "stopping")
        result, _, _ = first.read_reply()
        first.close()
        self.assertEqual(result.int("exit"), 0, result)
        self.assertGreaterEqual(time.monotonic() - t0, 1.2)
        self.assertIn("0 added, 1 removed", result["message"])
        self.assertFalse(pid_alive(before["slow"]))
        # The refused one did nothing: b is not there until the next reload.
        self.assertEqual(self.names(), ["root", "a"])
        self.reload()
        self.wait_all_running()
        self.assertEqual(self.names(), ["root", "a", "b"])
        self.assert_same_pids(before, ["a"])

    def test_a_waiter_on_a_removed_unit_is_answered(self):
        self.supervisor("root", ["a", "n"])
        self.service("a", SLEEPER)
        self.service("n", f"{NC} sleep:60 READY=1", Type="notify", StartTimeout="120s")
        self.start_arbord("-v")
        self.wait_state("n", "starting")
        waiter = cc.open_request(self.run, "wait", ["n"])
        self.wait_log(r"control: wait from uid")
        before = self.pids()
        self.supervisor("root", ["a"])
        self.remove_unit("n.service")
        self.reload()
        result, _, _ = waiter.read_reply(timeout=5)
        waiter.close()
        self.assertIsNotNone(result)
        self.assertEqual((result.int("ok"), result.int("exit")), (0, 1), result)
        self.assertFalse(pid_alive(before["n"]))
        self.assertEqual(self.names(), ["root", "a"])
        self.assert_supervising("a")

    def test_operator_commands_during_a_reload(self):
        self.supervisor("root", ["a", "slow"])
        self.service("a", SLEEPER)
        self.py_service("slow", "slow-stop=1")
        self.start_arbord()
        self.wait_all_running()
        self.service_log("slow", "ready")
        self.py_service("slow", "slow-stop=1", "lines=1")
        first = cc.open_request(self.run, "reload")
        self.service_log("slow", "term-received")
        # Status and a restart of another unit are served while it stops.
        self.assertEqual(self.result("restart", ["a"]).int("exit"), 0)
        result, _, _ = first.read_reply()
        first.close()
        self.assertEqual(result.int("exit"), 0, result)
        self.wait_all_running()
        self.service_log("slow", "line-1")


class KindChange(ReloadTest):
    def test_a_service_becomes_a_supervisor_of_the_same_name_and_back(self):
        self.supervisor("root", ["a", "x", "z"])
        for name in ("a", "x", "z"):
            self.service(name, SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        before = self.pids()
        self.remove_unit("x.service")
        self.supervisor("x", ["x1", "x2"])
        self.service("x1", SLEEPER)
        self.service("x2", SLEEPER)
        self.reload()
        m = self.wait_all_running()
        self.assertEqual(self.names(), ["root", "a", "x", "x1", "x2", "z"])
        self.assertEqual(m["x"]["kind"], "supervisor")
        self.assertNotIn("pid", m["x"])
        self.assertEqual((m["x1"]["parent"], m["x2"]["parent"]), ("x", "x"))
        self.assertFalse(pid_alive(before["x"]))
        self.assert_same_pids(before, ["a", "z"])
        # And back.
        kids = self.pids(["x1", "x2"])
        self.remove_unit("x.supervisor")
        self.remove_unit("x1.service")
        self.remove_unit("x2.service")
        self.service("x", "/bin/sleep 1003")
        self.reload("sighup")
        m = self.wait_all_running()
        self.assertEqual(self.names(), ["root", "a", "x", "z"])
        self.assertEqual(m["x"]["kind"], "service")
        for pid in kids.values():
            self.assertFalse(pid_alive(pid))
        self.assert_same_pids(before, ["a", "z"])
        self.assert_supervising("x")
        self.assertEqual(self.stop(), 0)


class Big(ReloadTest):
    def test_200_services_change_10_remove_10_add_10(self):
        names = [f"s{i:03d}" for i in range(200)]
        self.supervisor("root", names)
        for name in names:
            self.service(name, SLEEPER)
        self.start_arbord()
        self.wait_all_running(timeout=60)
        before = self.pids()
        self.assertEqual(len(before), 200)
        changed = names[10:20]
        removed = names[100:110]
        added = [f"n{i:03d}" for i in range(10)]
        for name in changed:
            self.service(name, "/bin/sleep 1001")
        for name in removed:
            self.remove_unit(f"{name}.service")
        for name in added:
            self.service(name, SLEEPER)
        # The new ones go in the middle and at the end.
        new_order = [n for n in names if n not in removed]
        new_order = new_order[:50] + added[:5] + new_order[50:] + added[5:]
        self.supervisor("root", new_order)
        mark = self.mark()
        t0 = time.monotonic()
        result = self.reload()
        self.assertIn("10 added, 10 removed, 10 changed", result["message"])
        m = self.wait_all_running(timeout=60)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertEqual(self.names(), ["root"] + new_order)
        for name in removed:
            self.assertFalse(pid_alive(before[name]), name)
        for name in changed:
            self.assertNotEqual(m[name].int("pid"), before[name], name)
            self.assertFalse(pid_alive(before[name]), name)
        for name in added:
            self.assertTrue(pid_alive(m[name].int("pid")), name)
        unchanged = [n for n in names if n not in changed and n not in removed]
        self.assertEqual(len(unchanged), 180)
        self.assert_same_pids(before, unchanged)
        self.assertEqual(sorted(self.starts_since(mark)), sorted(changed + added))
        self.assertEqual(sorted(self.stops_since(mark)), sorted(changed + removed))
        self.assertEqual(self.stop(), 0)

    def test_units_a_reload_starts_start_in_children_order(self):
        # A reload starts new and changed units in Children= order.
        self.supervisor("root", ["db", "other"])
        self.service("db", SLEEPER)
        self.service("other", SLEEPER)
        self.start_arbord()
        self.wait_all_running()
        self.service("db", "/bin/sleep 1001")
        self.service("web", SLEEPER)
        self.supervisor("root", ["db", "web", "other"])
        mark = self.mark()
        self.reload()
        self.wait_all_running()
        self.assertEqual(self.starts_since(mark), ["db", "web"])


if __name__ == "__main__":
    unittest.main()
