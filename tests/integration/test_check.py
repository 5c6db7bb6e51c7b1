"""arbord --check, unit validation as the daemon sees it, long lines, options.

SPEC sections 2 and 5: every problem of a unit directory is reported at
once as FILE:LINE: message (FILE: message for whole-file problems); --check
exits 0 or 1; arbord itself refuses such a directory with status 2 and
starts nothing; lines up to 64 KiB parse whole.
"""

import hashlib
import os
import re
import signal
import subprocess
import unittest

from harness import ARBORD, ArbordTest, pid_alive

SLEEPER = "/bin/sleep 1000"


def tree_depths(text):
    """Map each node name of a --check tree to (line index, depth).

    A line is drawn like tree(1): four columns of rails per level, then the
    name, two spaces and its settings."""
    nodes = {}
    for index, line in enumerate(text.splitlines()):
        m = re.match(r"^((?:│   |    )*)(?:├── |└── )?([A-Za-z0-9][A-Za-z0-9_.-]*)  ", line)
        if not m:
            continue
        prefix = m.group(1)
        depth = len(prefix) // 4 + (0 if line[len(prefix):].startswith(m.group(2)) else 1)
        nodes[m.group(2)] = (index, depth)
    return nodes


class ValidTree(ArbordTest):
    def write_valid_tree(self):
        self.supervisor("root", ["db", "web", "cache"], Strategy="rest-for-one",
                        Intensity=3, Period="5s")
        self.service("db", SLEEPER, Type="notify")
        self.supervisor("web", ["app", "worker"], Restart="transient")
        self.service("app", SLEEPER)
        self.service("worker", SLEEPER, Restart="temporary")
        self.service("cache", SLEEPER)
        # Files that are not units are ignored.
        self.write_unit("README.txt", "not a unit\n")

    def test_valid_tree_is_printed_with_its_nesting_and_exits_0(self):
        self.write_valid_tree()
        status, out, err = self.check()
        self.assertEqual(status, 0, err)
        self.assertEqual(err, "")
        nodes = tree_depths(out)
        for name in ["root", "db", "web", "app", "worker", "cache"]:
            self.assertIn(name, nodes, out)
        depth = {n: d for n, (_, d) in nodes.items()}
        self.assertEqual(depth, {"root": 0, "db": 1, "web": 1, "cache": 1, "app": 2, "worker": 2},
                         out)
        line = {n: i for n, (i, _) in nodes.items()}
        # Start order, depth first: root, db, web, app, worker, cache.
        self.assertEqual(sorted(line, key=line.get),
                         ["root", "db", "web", "app", "worker", "cache"], out)
        self.assertNotIn("README", out)
        # The settings that decide supervision are shown.
        root_line = out.splitlines()[line["root"]]
        self.assertIn("rest-for-one", root_line)
        self.assertIn("3/5s", root_line)
        self.assertIn("notify", out.splitlines()[line["db"]])
        self.assertIn("temporary", out.splitlines()[line["worker"]])

    def test_implicit_root_adopts_unlisted_units_in_name_order(self):
        self.service("zeta", SLEEPER)
        self.service("alpha", SLEEPER)
        self.supervisor("mid", ["leaf"])
        self.service("leaf", SLEEPER)
        status, out, err = self.check()
        self.assertEqual(status, 0, err)
        nodes = tree_depths(out)
        self.assertEqual(nodes["root"][1], 0, out)
        self.assertIn("implicit", out.splitlines()[nodes["root"][0]])
        self.assertEqual({n: nodes[n][1] for n in ["alpha", "mid", "zeta", "leaf"]},
                         {"alpha": 1, "mid": 1, "zeta": 1, "leaf": 2}, out)
        order = sorted(["alpha", "mid", "zeta", "leaf"], key=lambda n: nodes[n][0])
        self.assertEqual(order, ["alpha", "mid", "leaf", "zeta"], out)

    def test_check_starts_nothing(self):
        self.write_valid_tree()
        status, out, err = self.check("-r", self.run)
        self.assertEqual(status, 0, err)
        self.assertFalse(os.path.exists(os.path.join(self.run, "control.sock")))
        self.assertFalse(os.path.exists(os.path.join(self.run, "notify")))


class BrokenDirectory(ArbordTest):
    """One directory with many problems at once."""

    def write_broken(self):
        # root lists: a (fine), b (bad file), dup, missing (no such unit), sub.
        self.write_unit("root.supervisor",
                        "[Supervisor]\n"
                        "Children=a b dup missing sub\n"        # line 2: missing
                        "Bogus=1\n")                           # line 3: unknown key
        self.service("a", SLEEPER)
        self.write_unit("b.service",
                        "[Service]\n"
                        "ExecStart=/bin/sleep 1000\n"
                        "Restart=sometimes\n"                  # line 3: bad value
                        "  Type=simple\n")                     # line 4: indented
        self.service("dup", SLEEPER)
        self.write_unit("sub.supervisor",
                        "[Supervisor]\n"
                        "Intensity=-1\n"                       # line 2: out of range
                        "Children=dup\n")                      # line 3: in two supervisors
        # A cycle nobody else lists: x -> y -> x.
        self.supervisor("x", ["y"])
        self.supervisor("y", ["x"])
        # A unit no supervisor lists, while root.supervisor exists.
        self.service("lonely", SLEEPER)
        # A bad file name.
        self.write_unit("bad@name.service", "[Service]\nExecStart=/bin/true\n")

    def expected(self):
        u = self.units
        return [
            (rf"^{re.escape(u)}/root\.supervisor:3: .*Bogus", "unknown key"),
            (rf"^{re.escape(u)}/root\.supervisor:2: .*missing", "missing child"),
            (rf"^{re.escape(u)}/b\.service:3: .*Restart=sometimes", "bad value"),
            (rf"^{re.escape(u)}/b\.service:4: .*indented", "indented continuation line"),
            (rf"^{re.escape(u)}/sub\.supervisor:2: .*Intensity", "out-of-range Intensity"),
            (rf"^{re.escape(u)}/sub\.supervisor:3: .*dup.*root\.supervisor",
             "unit in two supervisors"),
            (rf"^{re.escape(u)}/[xy]\.supervisor:2: .*cycle", "cycle"),
            (rf"^{re.escape(u)}/lonely\.service: .*not listed", "unit in no supervisor"),
            (rf"^{re.escape(u)}/bad@name\.service: .*name", "bad file name"),
        ]

    def test_check_reports_every_problem_and_exits_1(self):
        self.write_broken()
        status, out, err = self.check()
        self.assertEqual(status, 1, err)
        lines = err.splitlines()
        for pattern, what in self.expected():
            self.assertTrue(any(re.search(pattern, l) for l in lines),
                            f"{what}: no line matching /{pattern}/ in:\n{err}")
        # Every line is FILE:LINE: message or FILE: message, FILE in the directory.
        for l in lines:
            self.assertRegex(l, rf"^{re.escape(self.units)}/[^:]+(:\d+)?: \S")
        # The cycle is reported once, not once per member.
        self.assertEqual(len([l for l in lines if "cycle" in l]), 1, err)
        # Nothing on stdout: no tree for a broken set.
        self.assertEqual(out.strip(), "")

    def test_arbord_refuses_a_broken_directory_with_2_and_starts_nothing(self):
        self.write_broken()
        self.start()
        self.assertEqual(self.wait_exit(), 2)
        log = self.log()
        self.assertNotIn("starting pid", log)
        for pattern, what in self.expected():
            self.assertTrue(self.log_lines(pattern), f"{what} not reported:\n{log}")
        # No control socket, no notify sockets: nothing under RUNTIME at all.
        sockets = []
        for dirpath, dirnames, filenames in os.walk(self.run):
            sockets += [os.path.join(dirpath, f) for f in filenames + dirnames]
        self.assertFalse([s for s in sockets if s.endswith(".sock") or "/notify" in s],
                         sockets)
        self.assertFalse(os.path.exists(os.path.join(self.run, "control.sock")))
        self.assertFalse(os.path.exists(os.path.join(self.run, "notify")))

    def test_each_problem_alone_is_caught(self):
        """Each kind of problem is enough on its own to fail --check."""
        cases = {
            "unknown key": {"s.service": "[Service]\nExecStart=/bin/true\nFoo=bar\n"},
            "unknown section": {"s.service": "[Service]\nExecStart=/bin/true\n[Bogus]\n"},
            "bad value": {"s.service": "[Service]\nExecStart=/bin/true\nType=forking\n"},
            "bad duration": {"s.service": "[Service]\nExecStart=/bin/true\nShutdown=5 parsecs\n"},
            "zero period": {"p.supervisor": "[Supervisor]\nPeriod=0\n"},
            "intensity too big": {"p.supervisor": "[Supervisor]\nIntensity=1000001\n"},
            "missing child": {"p.supervisor": "[Supervisor]\nChildren=ghost\n"},
            "indented line": {"s.service": "[Service]\nExecStart=/bin/true\n  more\n"},
            "bad file name": {"-x.service": "[Service]\nExecStart=/bin/true\n"},
            "name too long": {"n" * 65 + ".service": "[Service]\nExecStart=/bin/true\n"},
            "duplicate name": {"d.service": "[Service]\nExecStart=/bin/true\n",
                               "d.supervisor": "[Supervisor]\n"},
            "self cycle": {"p.supervisor": "[Supervisor]\nChildren=p\n"},
            "no ExecStart": {"s.service": "[Service]\nType=exec\n"},
        }
        for what, files in cases.items():
            with self.subTest(what):
                for f in os.listdir(self.units):
                    os.unlink(os.path.join(self.units, f))
                for name, text in files.items():
                    self.write_unit(name, text)
                status, out, err = self.check()
                self.assertEqual(status, 1, f"{what}: {err}")
                self.assertRegex(err, rf"(?m)^{re.escape(self.units)}/[^:]+(:\d+)?: \S")

    def test_valid_intensity_bounds_are_accepted(self):
        self.supervisor("root", ["lo", "hi"])
        self.supervisor("lo", [], Intensity=0, Period="500ms")
        self.supervisor("hi", [], Intensity=1000000, Period="2min")
        status, out, err = self.check()
        self.assertEqual(status, 0, err)
        self.assertIn("0/500ms", out)
        self.assertIn("1000000/2min", out)


@unittest.skipUnless(os.geteuid() == 0, "the ownership rules apply to a root arbord")
class UntrustedFiles(ArbordTest):
    """As root, a unit file (or directory) another user owns or may write
    is a way to root: refused, naming the file."""

    def setUp(self):
        super().setUp()
        os.makedirs(self.units, exist_ok=True)
        os.chmod(self.units, 0o755)
        self.service("a", "/bin/sleep 100")
        self.path = os.path.join(self.units, "a.service")

    def assert_refused(self, message):
        status, out, err = self.check()
        self.assertEqual(status, 1, (out, err))
        self.assertIn(message, err)

    def test_a_root_owned_0644_file_is_fine(self):
        self.assertEqual(self.check()[0], 0)

    def test_a_world_writable_file_is_refused(self):
        os.chmod(self.path, 0o666)
        self.assert_refused(f"{self.path}: unit file writable by other users (mode 0666)")

    def test_a_group_writable_file_is_refused_unless_the_group_is_root(self):
        os.chmod(self.path, 0o664)
        os.chown(self.path, 0, 0)
        self.assertEqual(self.check()[0], 0)
        os.chown(self.path, 0, 65534)
        self.assert_refused("unit file writable by other users (mode 0664)")

    def test_a_file_owned_by_another_user_is_refused(self):
        os.chown(self.path, 65534, 0)
        self.assert_refused(f"{self.path}: unit file owned by uid 65534, not root")

    def test_a_world_writable_directory_is_refused(self):
        os.chmod(self.units, 0o777)
        self.assert_refused(f"{self.units}: unit directory writable by other users (mode 0777)")
        os.chmod(self.units, 0o1777)  # sticky, as /tmp: others cannot replace our files
        self.assertEqual(self.check()[0], 0)

    def test_arbord_refuses_to_start_and_reload_keeps_the_tree(self):
        self.start()
        pid = self.pid_of("a")
        os.chmod(self.path, 0o666)
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log(r"reload: .*unit file writable by other users")
        self.assertTrue(pid_alive(pid))
        self.assertEqual(self.stop(), 0)


class LongLines(ArbordTest):
    def test_children_line_with_1000_names_parses_whole(self):
        names = [f"svc-{i:04d}" for i in range(1000)]
        self.write_unit("root.supervisor", "[Supervisor]\nChildren=" + " ".join(names) + "\n")
        for n in names:
            self.write_unit(f"{n}.service", "[Service]\nExecStart=/bin/sleep 1000\n")
        status, out, err = self.check()
        self.assertEqual(status, 0, err[:2000])
        nodes = tree_depths(out)
        self.assertEqual(sorted(nodes), sorted(names + ["root"]))
        self.assertTrue(all(nodes[n][1] == 1 for n in names))
        # In the order written, which is not name order only by accident.
        self.assertEqual(sorted(names, key=lambda n: nodes[n][0]), names)

    def test_children_line_with_1000_names_in_reverse_keeps_its_order(self):
        names = [f"svc-{i:04d}" for i in range(1000)][::-1]
        self.write_unit("root.supervisor", "[Supervisor]\nChildren=" + " ".join(names) + "\n")
        for n in names:
            self.write_unit(f"{n}.service", "[Service]\nExecStart=/bin/sleep 1000\n")
        status, out, err = self.check()
        self.assertEqual(status, 0, err[:2000])
        nodes = tree_depths(out)
        self.assertEqual(sorted(names, key=lambda n: nodes[n][0]), names)

    def test_long_line_does_not_spill_into_a_new_key(self):
        # inih would split this at ~200 bytes and parse the tail as a line of
        # its own: "Type=bogus" would then be an error (or worse, a setting).
        filler = "x" * 300
        self.write_unit("root.supervisor", "[Supervisor]\nChildren=s\n")
        self.write_unit("s.service",
                        f"[Unit]\nDescription={filler}Type=bogus\n"
                        "[Service]\nExecStart=/bin/sleep 1000\n")
        status, out, err = self.check()
        self.assertEqual(status, 0, err)

    def test_line_just_under_64k_parses_and_over_64k_is_an_error(self):
        self.write_unit("root.supervisor", "[Supervisor]\nChildren=s\n")
        body = "[Unit]\nDescription=" + "d" * (65536 - len("Description=") - 1) + "\n"
        self.write_unit("s.service", body + "[Service]\nExecStart=/bin/sleep 1000\n")
        status, out, err = self.check()
        self.assertEqual(status, 0, err[:500])
        body = "[Unit]\nDescription=" + "d" * 70000 + "\n"
        self.write_unit("s.service", body + "[Service]\nExecStart=/bin/sleep 1000\n")
        status, out, err = self.check()
        self.assertEqual(status, 1)
        self.assertRegex(err, rf"(?m)^{re.escape(self.units)}/s\.service:2: .*long")

    ARG = "".join(f"{i:05d}," for i in range(1667))[:10000]  # any cut or split shows

    def test_10k_exec_start_runs_with_its_whole_argument(self):
        arg = self.ARG
        self.assertEqual(len(arg), 10000)
        self.write_unit("root.supervisor", "[Supervisor]\nChildren=sum witness\n")
        # The service reports the length and checksum of the argument it got.
        self.write_unit("sum.service",
                        "[Service]\nExecStart=/bin/sh -c 'printf %s \"$1\" | wc -c; "
                        "printf %s \"$1\" | md5sum' sh " + arg + "\nRestart=temporary\n")
        self.service("witness", SLEEPER)
        status, out, err = self.check()
        self.assertEqual(status, 0, err[:500])
        self.start()
        self.wait_log(r"^arbord: sum: exited \(exit status 0\)")
        self.wait_running("witness")
        pid = self.logged_pids()[0]
        self.wait_log(rf"^sum\[{pid}\]: [0-9a-f]{{32}}")
        self.assertTrue(self.log_lines(rf"^sum\[{pid}\]: 10000$"), self.log())
        digest = hashlib.md5(arg.encode()).hexdigest()
        self.assertTrue(self.log_lines(rf"^sum\[{pid}\]: {digest} "), self.log())
        self.assertEqual(self.stop(), 0)

    # A line over 8 KiB that arrived in one read() used to be cut at 8192
    # bytes, the rest dropped (fixed in dddd8a9): the output is logged whole,
    # in 4 KiB parts. A bare /bin/echo writes through stdio in 4096-byte
    # pieces, so whether arbord sees one read or three is a race; dd makes
    # it one write, the case that was broken.
    def test_10k_echo_output_is_logged_whole(self):
        arg = self.ARG
        self.write_unit("root.supervisor", "[Supervisor]\nChildren=echo witness\n")
        self.write_unit("echo.service",
                        "[Service]\nExecStart=/bin/sh -c '/bin/echo \"$1\" | "
                        "dd bs=64k iflag=fullblock status=none' sh " + arg +
                        "\nRestart=temporary\n")
        self.service("witness", SLEEPER)
        self.start()
        self.wait_log(r"^arbord: echo: exited \(exit status 0\)")
        self.wait_running("witness")
        pid = self.logged_pids()[0]
        # All the output is in once the witness runs after the echo exited
        # and arbord stopped: the stream is drained at exit at the latest.
        self.assertEqual(self.stop(), 0)
        parts = [l.split(": ", 1)[1] for l in self.log().splitlines()
                 if l.startswith(f"echo[{pid}]: ")]
        text = "".join(parts)
        self.assertEqual(len(text), 10000)
        self.assertEqual(text, arg)


class Options(ArbordTest):
    def run_arbord(self, *args, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run([ARBORD, *args], capture_output=True, text=True, timeout=30,
                              env=full_env)

    def test_help_and_version_exit_0(self):
        for opt in ["--help", "-h"]:
            r = self.run_arbord(opt)
            self.assertEqual(r.returncode, 0, opt)
            self.assertIn("--check", r.stdout)
            self.assertIn("Usage", r.stdout)
        for opt in ["--version", "-V"]:
            r = self.run_arbord(opt)
            self.assertEqual(r.returncode, 0, opt)
            self.assertRegex(r.stdout, r"^arbord \S+")

    def test_bad_options_exit_2(self):
        self.service("s", SLEEPER)
        for args in (["--bogus"], ["-Z"], ["-u"], ["-u", self.units, "stray"],
                     ["--check", "--units"]):
            with self.subTest(args=args):
                r = self.run_arbord(*args)
                self.assertEqual(r.returncode, 2, f"{args}: {r.stderr}")
                self.assertNotEqual(r.stderr, "")
                self.assertNotIn("starting pid", r.stderr)

    def test_missing_unit_directory_fails(self):
        missing = os.path.join(self.tmp, "nowhere")
        r = self.run_arbord("--check", "-u", missing)
        self.assertEqual(r.returncode, 1)
        self.assertIn(missing, r.stderr)
        r = self.run_arbord("-u", missing, "-r", self.run)
        self.assertEqual(r.returncode, 2)
        self.assertFalse(os.path.exists(os.path.join(self.run, "control.sock")))

    def test_units_from_the_environment(self):
        self.supervisor("root", ["envsvc"])
        self.service("envsvc", SLEEPER)
        r = self.run_arbord("--check", env={"ARBOR_UNITS": self.units})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("envsvc", r.stdout)


if __name__ == "__main__":
    unittest.main()
