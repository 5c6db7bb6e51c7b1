"""arborctl(8) end to end: the command an operator types and a script runs,
against a real arbord with real services.

What arborctl prints and how it exits is held to SPEC section 6 and to
man/arborctl.8: exit statuses (0 done, 1 failed or refused, 2 usage, 3 no
such unit, 4 cannot reach arbord), the human status tree, and with --json
exactly one JSON document (parsed by Python's json module and by jq) with
the documented members. What arborctl claims is checked against the
processes themselves (/proc, arbord's log, what a service says it got).

The protocol itself is tested by test_control.py and test_reload.py; here
arborctl is also run against a fake server that misbehaves, to show it
never dies of a signal whatever it is sent.
"""

import fcntl
import json
import os
import pty
import pwd
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unittest

from harness import ArbordTest, pid_alive, wait_until

ARBORCTL = os.environ.get("ARBORCTL", "arborctl")
PY = sys.executable
SLEEPER = "/bin/sleep 1000"
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
COMPLETION = os.path.join(REPO, "completion", "arborctl.bash")

# One line with everything that needs escaping: quotes, backslashes, a tab,
# control bytes, a NUL, invalid UTF-8, and valid UTF-8 that must survive.
ESC_LINE = (b'q"uo\\te\tx\x01y\x1bz\x00n\xff\xfeE \xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac end')

# A service for these tests. Arguments (KEY or KEY=VALUE), in any order:
#   trap-usr1        print "got-usr1 PID" on SIGUSR1
#   slow-stop=SECS   on SIGTERM print "term-received", sleep, exit 0
#   esc              print ESC_LINE (raw bytes)
#   lines=N          print line-1 .. line-N
#   exit=CODE        then exit with CODE
#   status=HEX       (Type=notify) send STATUS=<bytes>, then READY=1
#   ready-after=PATH (Type=notify) send READY=1 once PATH exists
# then "up PID", then wait for signals forever.
SVC_PY = r'''
import os, signal, socket, sys, time
ESC_LINE = %r
opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v
out = sys.stdout.buffer
def say(b):
    if isinstance(b, str):
        b = b.encode()
    out.write(b + b"\n")
    out.flush()
def notify(msg):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(msg, addr)
    s.close()
if "trap-usr1" in opts:
    signal.signal(signal.SIGUSR1, lambda s, f: say("got-usr1 %%d" %% os.getpid()))
if "slow-stop" in opts:
    delay = float(opts["slow-stop"])
    def on_term(s, f):
        say("term-received")
        time.sleep(delay)
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
if "esc" in opts:
    say(ESC_LINE)
for i in range(int(opts.get("lines") or 0)):
    say("line-%%d" %% (i + 1))
if "exit" in opts:
    sys.exit(int(opts["exit"]))
if "status" in opts:
    notify(b"STATUS=" + bytes.fromhex(opts["status"]))
if "ready-after" in opts:
    while not os.path.exists(opts["ready-after"]):
        time.sleep(0.02)
if "status" in opts or "ready-after" in opts:
    notify(b"READY=1")
say("up %%d" %% os.getpid())
while True:
    signal.pause()
''' % (ESC_LINE,)

RESULT_KEYS = {"ok", "exit", "errors", "message"}
UNIT_KEYS = {"name", "kind", "parent", "depth", "state", "held", "pid", "restarts",
             "uptime_ms", "last_exit", "status", "description", "type", "restart",
             "strategy", "mailbox"}
STATES = {"stopped", "starting", "running", "stopping", "exited", "failed"}
TREE_PREFIX = re.compile(r"^((?:\u2502  |   )*)(\u251c\u2500 |\u2514\u2500 )?(\S+)\s")


class Run:
    """What one arborctl run did."""

    def __init__(self, args, rc, out, err, elapsed):
        self.args, self.rc, self.raw, self.raw_err, self.elapsed = args, rc, out, err, elapsed
        self.out = out.decode("utf-8", "replace")
        self.err = err.decode("utf-8", "replace")

    def __repr__(self):
        return (f"arborctl {' '.join(self.args)} -> {self.rc}\n"
                f"stdout: {self.out!r}\nstderr: {self.err!r}")


def parse_one_json(test, raw, what=""):
    """stdout must be exactly one JSON document on one line, which both
    Python's json module (strict: no raw control characters in strings) and
    jq accept, and agree on."""
    test.assertTrue(raw.endswith(b"\n"), f"{what}: no final newline: {raw[-200:]!r}")
    test.assertEqual(raw.count(b"\n"), 1, f"{what}: not one line: {raw[:500]!r}")
    doc = json.loads(raw.decode("utf-8"))
    jq = subprocess.run(["jq", "-c", "."], input=raw, capture_output=True, timeout=30)
    test.assertEqual(jq.returncode, 0, f"{what}: jq rejects {raw[:500]!r}: {jq.stderr!r}")
    test.assertEqual(json.loads(jq.stdout), doc, f"{what}: jq reads it differently")
    return doc


def check_result_members(test, doc, rc, what="", need_errors=True):
    test.assertLessEqual(RESULT_KEYS, set(doc), f"{what}: {doc}")
    test.assertIsInstance(doc["ok"], bool)
    test.assertIsInstance(doc["exit"], int)
    test.assertIsInstance(doc["errors"], list)
    for e in doc["errors"]:
        test.assertIsInstance(e, str)
    test.assertTrue(doc["message"] is None or isinstance(doc["message"], str))
    test.assertEqual(doc["exit"], rc, f"{what}: exit member != exit status: {doc}")
    test.assertEqual(doc["ok"], rc == 0, f"{what}: {doc}")
    if rc != 0 and need_errors:
        test.assertTrue(doc["errors"], f"{what}: failed without errors: {doc}")
    else:
        test.assertEqual(doc["errors"], [], f"{what}: {doc}")


class LineReader:
    """Lines from a pipe, with deadlines (no blocking readline)."""

    def __init__(self, pipe):
        self.fd = pipe.fileno()
        self.buf = b""
        self.eof = False

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.fd], [], [], left)
        if not r:
            return False
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
        self.buf += chunk
        return True

    def readline(self, timeout=15):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof or not self._fill(deadline):
                raise AssertionError(f"no line within {timeout}s (have {self.buf!r})")
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def read_until(self, pattern, timeout=15):
        """Lines up to and including the first that matches (bytes regex)."""
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            line = self.readline(max(0.01, deadline - time.monotonic()))
            lines.append(line)
            if re.search(pattern, line):
                return lines

    def rest(self, timeout=15):
        deadline = time.monotonic() + timeout
        while not self.eof:
            if not self._fill(deadline):
                raise AssertionError("the stream did not end")
        data, self.buf = self.buf, b""
        return data


class CtlTest(ArbordTest):
    """ArbordTest plus arborctl."""

    user = None  # (uid, gid) to run arborctl as, set by Access

    def setUp(self):
        super().setUp()
        self.svc = os.path.join(self.tmp, "svc.py")
        with open(self.svc, "w") as f:
            f.write(SVC_PY)
        self.ctl_procs = []

    def tearDown(self):
        for p in self.ctl_procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
        super().tearDown()

    # ---- units ----

    def py(self, name, *args, **keys):
        self.service(name, f"{PY} {self.svc} {' '.join(args)}".strip(), **keys)

    def flag(self, name):
        return os.path.join(self.tmp, f"flag-{name}")

    def touch(self, path):
        open(path, "w").close()

    # ---- running arborctl ----

    def env(self, extra=None, runtime_env=False):
        env = dict(os.environ)
        for k in ("ARBOR_RUNTIME", "NO_COLOR"):
            env.pop(k, None)
        if runtime_env:
            env["ARBOR_RUNTIME"] = self.run
        if extra:
            env.update(extra)
        return env

    def cmd(self, args, runtime=True, user=None):
        cmd = [ARBORCTL]
        if runtime is True:
            cmd += ["-r", self.run]
        elif runtime:
            cmd += ["-r", runtime]
        cmd += list(args)
        user = user or self.user
        if user:
            cmd = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups"] + cmd
        return cmd

    def ctl(self, *args, runtime=True, env=None, runtime_env=False, user=None, input=None,
            timeout=60):
        """Run arborctl to the end; it must exit, never die of a signal."""
        start = time.monotonic()
        p = subprocess.run(self.cmd(args, runtime, user), capture_output=True, input=input,
                           timeout=timeout, env=self.env(env, runtime_env),
                           stdin=None if input is not None else subprocess.DEVNULL)
        r = Run(args, p.returncode, p.stdout, p.stderr, time.monotonic() - start)
        self.assertGreaterEqual(r.rc, 0, f"arborctl died of signal {-r.rc}: {r}")
        self.assertNotIn("Sanitizer", r.err, r)
        return r

    def ctl_ok(self, *args, **kw):
        r = self.ctl(*args, **kw)
        self.assertEqual(r.rc, 0, r)
        return r

    def ctl_json(self, *args, **kw):
        """arborctl --json ...: (exit status, the document), result members checked."""
        r = self.ctl("--json", *args, **kw)
        doc = parse_one_json(self, r.raw, f"arborctl --json {' '.join(args)}")
        check_result_members(self, doc, r.rc, " ".join(args))
        return r.rc, doc

    def popen(self, *args, env=None, **kw):
        p = subprocess.Popen(self.cmd(args, kw.pop("runtime", True)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             env=self.env(env), **kw)
        self.ctl_procs.append(p)
        return p

    def ctl_pty(self, *args, env=None, cols=200, timeout=30):
        """Run arborctl with stdout on a terminal; returns (status, output)."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
        base = {"TERM": "xterm-256color"}
        base.update(env or {})
        p = subprocess.Popen(self.cmd(args), stdout=slave, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=self.env(base))
        self.ctl_procs.append(p)
        os.close(slave)
        data = b""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "arborctl on a pty did not finish")
                r, _, _ = select.select([master], [], [], left)
                if not r:
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the slave side is closed
                    break
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(master)
        rc = p.wait(timeout=timeout)
        self.assertGreaterEqual(rc, 0)
        return rc, data.replace(b"\r\n", b"\n")

    # ---- what arbord says ----

    def statuses(self, *names):
        """status --json, as {name: unit}."""
        rc, doc = self.ctl_json("status", *names)
        self.assertEqual(rc, 0, doc)
        return {u["name"]: u for u in doc["units"]}

    def unit(self, name):
        return self.statuses(name)[name]

    def wait_up(self, name, count=1):
        """The count-th instance of a py() service, once it has said "up"
        (its signal handlers are in place by then)."""
        pid = self.wait_running(name, count)
        self.wait_log(rf"^{re.escape(name)}\[{pid}\]: up {pid}$")
        return pid

    def wait_state(self, name, state, timeout=15):
        return wait_until(lambda: self.unit(name)["state"] == state and self.unit(name),
                          timeout, interval=0.05, what=f"{name} to be {state}")

    def check_unit_object(self, u):
        self.assertLessEqual(UNIT_KEYS, set(u), u)
        self.assertIsInstance(u["name"], str)
        self.assertIn(u["kind"], ("service", "supervisor"))
        self.assertIn(u["state"], STATES)
        self.assertIsInstance(u["held"], bool)
        self.assertIsInstance(u["restarts"], int)
        self.assertGreaterEqual(u["restarts"], 0)
        if u["kind"] == "supervisor":
            self.assertIsNone(u["pid"], u)
            self.assertIsNone(u["type"], u)
            self.assertIn(u["strategy"], ("one-for-one", "one-for-all", "rest-for-one"))
        else:
            self.assertIn(u["type"], ("simple", "exec", "notify", "oneshot"))
            self.assertIsNone(u["strategy"], u)
        if u["pid"] is not None:
            self.assertIsInstance(u["pid"], int)
            self.assertTrue(pid_alive(u["pid"]), f"{u['name']}: pid {u['pid']} is not alive")
        if u["state"] == "running":
            self.assertIsInstance(u["uptime_ms"], int)
            self.assertGreaterEqual(u["uptime_ms"], 0)
        else:
            self.assertIsNone(u["uptime_ms"], u)
        if u["state"] in ("stopped", "exited", "failed"):
            self.assertIsNone(u["pid"], u)
        le = u["last_exit"]
        if le is not None:
            self.assertTrue(("code" in le) != ("signal" in le), u)
            if "code" in le:
                self.assertIsInstance(le["code"], int)
            else:
                self.assertIsInstance(le["signal"], int)
                self.assertIn("signal_name", le)
        self.assertIsNone(u["mailbox"], u)  # no unit here has a mailbox

    def start_arbord(self):
        self.start()
        # The socket file exists from bind(), a moment before listen(): wait
        # until a connection is accepted, not until the file is there.
        path = os.path.join(self.run, "control.sock")

        def listening():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(path)
                    return True
                except OSError:
                    return False
        wait_until(listening, what="the control socket to listen")

    def wait_ready(self, *names):
        for n in names:
            r = self.ctl("wait", "--timeout", "15s", n)
            self.assertEqual(r.rc, 0, r)

    def standard_tree(self):
        """root: web, grp (db, c.d_e-f), x-y_z.w -- all running."""
        self.supervisor("root", ["web", "grp", "x-y_z.w"], Intensity=50, Period="10s")
        self.supervisor("grp", ["db", "c.d_e-f"], Intensity=50, Period="10s")
        self.py("web", "trap-usr1")
        self.py("db", "trap-usr1")
        self.py("c.d_e-f", "trap-usr1")
        self.py("x-y_z.w")
        self.start_arbord()
        self.wait_ready("root")
        return {n: self.wait_up(n) for n in ("web", "db", "c.d_e-f", "x-y_z.w")}


# ---------------------------------------------------------------------------


class Status(CtlTest):
    def test_status_draws_the_tree_in_start_order(self):
        pids = self.standard_tree()
        r = self.ctl_ok("status")
        lines = r.out.splitlines()
        expected = [("", "", "root"), ("", "\u251c\u2500 ", "web"), ("", "\u251c\u2500 ", "grp"),
                    ("\u2502  ", "\u251c\u2500 ", "db"), ("\u2502  ", "\u2514\u2500 ", "c.d_e-f"),
                    ("", "\u2514\u2500 ", "x-y_z.w")]
        self.assertEqual(len(lines), len(expected), r)
        for line, (indent, branch, name) in zip(lines, expected):
            m = TREE_PREFIX.match(line)
            self.assertIsNotNone(m, line)
            self.assertEqual((m.group(1), m.group(2) or "", m.group(3)), (indent, branch, name),
                             f"line {line!r}\n{r.out}")
        by_name = {TREE_PREFIX.match(l).group(3): l for l in lines}
        for name, pid in pids.items():
            self.assertRegex(by_name[name], rf"\bservice\s+running\s+pid {pid}\s+up \d+s\s+restarts 0")
        for name in ("root", "grp"):
            self.assertRegex(by_name[name], r"\bsupervisor\s+running\s+up \d+s\s+restarts 0")
            self.assertNotIn("pid", by_name[name])
        # Not a terminal: plain text, no colour.
        self.assertNotIn(b"\x1b", r.raw)
        self.assertEqual(r.err, "")

    def test_status_shows_restarts_last_exit_and_operator_stop(self):
        pids = self.standard_tree()
        os.kill(pids["db"], signal.SIGKILL)
        new_db = self.wait_running("db", count=2)
        self.ctl_ok("stop", "web")
        lines = {TREE_PREFIX.match(l).group(3): l for l in self.ctl_ok("status").out.splitlines()}
        self.assertRegex(lines["db"], rf"running\s+pid {new_db}\s+up \d+s\s+restarts 1\s+last exit SIGKILL")
        self.assertRegex(lines["web"], r"stopped \(by operator\)\s+restarts 0\s+last exit SIGTERM")
        self.assertNotIn("pid", lines["web"])
        # Columns are aligned over the whole table: "restarts" starts at
        # the same column on every line.
        cols = {line.index("restarts") for line in lines.values()}
        self.assertEqual(len(cols), 1, "\n".join(lines.values()))

    def test_status_of_named_units_draws_their_subtrees(self):
        self.standard_tree()
        r = self.ctl_ok("status", "grp")
        names = [TREE_PREFIX.match(l) for l in r.out.splitlines()]
        self.assertEqual([(m.group(1), m.group(2) or "", m.group(3)) for m in names],
                         [("", "", "grp"), ("", "\u251c\u2500 ", "db"),
                          ("", "\u2514\u2500 ", "c.d_e-f")], r)
        r = self.ctl_ok("status", "x-y_z.w", "db")
        self.assertEqual([TREE_PREFIX.match(l).groups() for l in r.out.splitlines()],
                         [("", None, "x-y_z.w"), ("", None, "db")], r)
        units = self.statuses("grp")
        self.assertEqual(list(units), ["grp", "db", "c.d_e-f"])
        self.assertEqual(units["grp"]["parent"], "root")
        self.assertEqual(units["grp"]["depth"], 1)
        self.assertEqual(units["db"]["depth"], 2)

    def test_status_of_an_unknown_unit_exits_3(self):
        self.standard_tree()
        r = self.ctl("status", "nope")
        self.assertEqual(r.rc, 3, r)
        self.assertIn("nope", r.err)
        self.assertEqual(r.out, "")
        r = self.ctl("status", "web", "nope")
        self.assertEqual(r.rc, 3, r)
        rc, doc = self.ctl_json("status", "nope")
        self.assertEqual(rc, 3)
        self.assertEqual(doc["units"], [])
        self.assertTrue(any("nope" in e for e in doc["errors"]), doc)

    def test_status_json_has_the_documented_members(self):
        self.supervisor("root", ["web", "grp", "bad", "ex"], Strategy="rest-for-one",
                        Intensity=50)
        self.write_unit("grp.supervisor", "[Unit]\nDescription=the \"group\" \\ of\tthings\n"
                        "[Supervisor]\nChildren=db\nStrategy=one-for-all\nRestart=transient\n")
        self.py("web", f"status={b'serving 42'.hex()}", Type="notify")
        self.py("db", Type="simple", Restart="transient")
        self.service("bad", "/nonexistent/arborctl-test", Restart="temporary")
        self.py("ex", "exit=3", Restart="temporary")
        self.start_arbord()
        self.wait_running("web")
        self.wait_running("db")
        self.wait_log(r"^arbord: ex: .*exit status 3")
        os.kill(self.pid_of("db"), signal.SIGKILL)
        self.wait_running("db", count=2)
        rc, doc = self.ctl_json("status")
        self.assertEqual(rc, 0, doc)
        self.assertIsNone(doc["message"])
        units = {u["name"]: u for u in doc["units"]}
        self.assertEqual([u["name"] for u in doc["units"]], ["root", "web", "grp", "db", "bad", "ex"])
        for u in doc["units"]:
            self.check_unit_object(u)
        root, web, grp_, db, bad, ex = (units[n] for n in ("root", "web", "grp", "db", "bad", "ex"))
        self.assertIsNone(root["parent"])
        self.assertEqual(root["depth"], 0)
        self.assertIsNone(root["restart"])
        self.assertEqual(root["strategy"], "rest-for-one")
        self.assertEqual(grp_["parent"], "root")
        self.assertEqual(grp_["strategy"], "one-for-all")
        self.assertEqual(grp_["restart"], "transient")
        self.assertEqual(grp_["description"], "the \"group\" \\ of\tthings")
        self.assertEqual(db["parent"], "grp")
        self.assertEqual(db["depth"], 2)
        self.assertEqual(web["type"], "notify")
        self.assertEqual(web["status"], "serving 42")
        self.assertEqual(web["pid"], self.pid_of("web"))
        self.assertEqual(web["state"], "running")
        self.assertIsNone(web["last_exit"])
        self.assertEqual(web["restarts"], 0)
        self.assertEqual(db["type"], "simple")
        self.assertEqual(db["restart"], "transient")
        self.assertEqual(db["pid"], self.wait_running("db", count=2))
        self.assertEqual(db["restarts"], 1)
        self.assertEqual(db["last_exit"], {"signal": 9, "signal_name": "SIGKILL"})
        self.assertEqual(bad["state"], "failed")
        self.assertIsNone(bad["pid"])
        self.assertIsNone(bad["uptime_ms"])
        self.assertEqual(bad["last_exit"], {"code": 127})
        self.assertIn(ex["state"], ("failed", "exited"))
        self.assertEqual(ex["last_exit"], {"code": 3})
        self.assertEqual(ex["restart"], "temporary")
        # The man page's jq example: the pids of the running services.
        jq = subprocess.run(["jq", "-r", '.units[] | select(.pid) | "\\(.name) \\(.pid)"'],
                            input=self.ctl("--json", "status").raw, capture_output=True)
        self.assertEqual(jq.stdout.decode().split("\n"),
                         [f"web {web['pid']}", f"db {db['pid']}", ""])

    def test_status_text_from_a_service_is_escaped_for_people(self):
        hostile = b"serving \x1b[31mred\x1b[0m \x07 \xff 42 \xc3\xa9"
        self.supervisor("root", ["web"])
        self.py("web", f"status={hostile.hex()}", Type="notify")
        self.start_arbord()
        self.wait_running("web")
        r = self.ctl_ok("status")
        self.assertNotIn(b"\x1b", r.raw)
        self.assertNotIn(b"\x07", r.raw)
        self.assertIn(b"serving \\x1b[31mred\\x1b[0m \\x07 \\xff 42 \xc3\xa9", r.raw)
        self.assertEqual(self.unit("web")["status"], hostile.decode("utf-8", "replace"))

    def test_status_text_is_shortened_only_on_a_terminal(self):
        long_text = b"status " + b"x" * 300 + b" end"
        self.supervisor("root", ["web"])
        self.py("web", f"status={long_text.hex()}", Type="notify")
        self.start_arbord()
        self.wait_running("web")
        r = self.ctl_ok("status")
        self.assertIn(long_text + b"\n", r.raw)
        rc, out = self.ctl_pty("status", env={"NO_COLOR": "1"}, cols=80)
        self.assertEqual(rc, 0, out)
        line = [l for l in out.decode().splitlines() if "web" in l][0]
        self.assertTrue(line.endswith("..."), line)
        self.assertLessEqual(len(line), 80, line)
        self.assertIn("status xxx", line)

    def test_colour_on_a_terminal_unless_no_color(self):
        self.standard_tree()
        self.ctl_ok("stop", "x-y_z.w")
        rc, out = self.ctl_pty("status")
        self.assertEqual(rc, 0, out)
        self.assertIn(b"\x1b[32mrunning\x1b[0m", out)   # running: green
        self.assertIn(b"\x1b[1mroot\x1b[0m", out)       # supervisors: bold
        self.assertIn(b"\x1b[1mgrp\x1b[0m", out)
        self.assertNotIn(b"\x1b[1mweb", out)
        for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
            rc, plain = self.ctl_pty("status", env=env)
            self.assertEqual(rc, 0, plain)
            self.assertNotIn(b"\x1b", plain, env)
            self.assertIn("\u251c\u2500 web".encode(), plain)
        # NO_COLOR set but empty does not count.
        rc, out = self.ctl_pty("status", env={"NO_COLOR": ""})
        self.assertIn(b"\x1b[32m", out)

    def test_runtime_from_the_environment_and_option_forms(self):
        pids = self.standard_tree()
        # $ARBOR_RUNTIME, with no -r.
        r = self.ctl("status", runtime=False, runtime_env=True)
        self.assertEqual(r.rc, 0, r)
        self.assertIn(f"pid {pids['web']}", r.out)
        rc, doc = self.ctl_json("status", "web", runtime=False, runtime_env=True)
        self.assertEqual(doc["units"][0]["pid"], pids["web"])
        # -r wins over $ARBOR_RUNTIME.
        r = self.ctl("status", env={"ARBOR_RUNTIME": os.path.join(self.tmp, "elsewhere")})
        self.assertEqual(r.rc, 0, r)
        # A relative -r, from the directory above it.
        p = subprocess.run([ARBORCTL, "-r", os.path.basename(self.run), "status", "web"],
                           cwd=os.path.dirname(self.run), capture_output=True, env=self.env())
        self.assertEqual(p.returncode, 0, p)
        # --runtime=DIR, and global options after the command.
        self.assertEqual(self.ctl("--runtime=" + self.run, "status", runtime=False).rc, 0)
        r = self.ctl("status", "web", "--json", "-r", self.run, runtime=False)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(parse_one_json(self, r.raw)["units"][0]["name"], "web")

    def test_implicit_root_adopts_units_in_name_order(self):
        for name in ("zeta", "alpha", "mid.x"):
            self.py(name)
        self.start_arbord()
        self.wait_ready("zeta")
        lines = [TREE_PREFIX.match(l).groups() for l in self.ctl_ok("status").out.splitlines()]
        self.assertEqual(lines, [("", None, "root"), ("", "\u251c\u2500 ", "alpha"),
                                 ("", "\u251c\u2500 ", "mid.x"), ("", "\u2514\u2500 ", "zeta")])
        units = self.statuses()
        self.assertIsNone(units["root"]["parent"])
        self.assertEqual(units["root"]["strategy"], "one-for-one")

    def test_many_names_in_one_request(self):
        self.supervisor("root", ["a"])
        self.py("a")
        self.start_arbord()
        self.wait_ready("a")
        # A thousand names arbord does not know: 3, for the first.
        r = self.ctl("status", "a", *(f"n{i}" for i in range(1000)))
        self.assertEqual(r.rc, 3, r)
        self.assertIn("n0", r.err)
        # The same name a thousand times is fine.
        rc, doc = self.ctl_json("status", *["a"] * 1000)
        self.assertEqual(rc, 0)
        self.assertEqual({u["name"] for u in doc["units"]}, {"a"})
        # More than one request frame can hold: a usage error, not a hang.
        r = self.ctl("stop", *(f"n{i:060d}" for i in range(3000)))
        self.assertEqual(r.rc, 2, r)
        self.assertIn("too many units", r.err)
        self.assertEqual(self.unit("a")["state"], "running")

    def test_a_long_name_pushes_only_its_own_row(self):
        long_name = "L" * 64
        self.supervisor("root", ["a", long_name, "b"])
        for n in ("a", long_name, "b"):
            self.py(n)
        self.start_arbord()
        self.wait_ready("b")
        lines = {TREE_PREFIX.match(l).group(3): l for l in self.ctl_ok("status").out.splitlines()}
        self.assertEqual(lines["a"].index("restarts"), lines["b"].index("restarts"))
        self.assertEqual(lines["a"].index("restarts"), lines["root"].index("restarts"))
        self.assertRegex(lines[long_name], rf"^\u251c\u2500 {long_name}  service  running  pid \d+")

    def test_output_that_cannot_be_written_is_an_error_not_a_signal(self):
        self.standard_tree()
        base = f'"$ARBORCTL_BIN" -r "{self.run}"'
        for redirect, why in ((">/dev/full", "No space left"), (">&-", "Bad file descriptor")):
            for cmd in ("status", "--json status", "logs web"):
                p = subprocess.run(["bash", "-c", f"{base} {cmd} {redirect}"], capture_output=True,
                                   env=dict(self.env(), ARBORCTL_BIN=ARBORCTL), timeout=30)
                self.assertEqual(p.returncode, 1, (cmd, redirect, p))
                self.assertIn(f"arborctl: cannot write the output: {why}", p.stderr.decode())
        # A reader that goes away (| head -c0): never a SIGPIPE death.
        for _ in range(5):
            p = subprocess.Popen(self.cmd(["status"]), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=self.env())
            p.stdout.close()
            self.assertIn(p.wait(timeout=30), (0, 1))
            p.stderr.close()
        # "--" ends the options.
        self.ctl_ok("stop", "--", "web")
        self.assertEqual(self.ctl("status", "--", "--json").rc, 2)

    def test_help_and_version(self):
        for args in (("-h",), ("--help",), ("help",), ("help", "stop"), ("stop", "--help")):
            r = self.ctl(*args, runtime=False)
            self.assertEqual(r.rc, 0, r)
            self.assertIn("Usage: arborctl", r.out)
        r = self.ctl("-V", runtime=False)
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"^arborctl \S+\n$")
        r = self.ctl("help", "frobnicate", runtime=False)
        self.assertEqual(r.rc, 2, r)


class Changes(CtlTest):
    def test_stop_start_restart_exit_0_and_do_it(self):
        pids = self.standard_tree()
        r = self.ctl_ok("stop", "web")
        self.assertFalse(pid_alive(pids["web"]), "stop returned before web was gone")
        self.assertIn("web", r.out)
        u = self.unit("web")
        self.assertEqual((u["state"], u["held"], u["pid"]), ("stopped", True, None))

        r = self.ctl_ok("start", "web")
        m = re.fullmatch(r"web: running \(pid (\d+)\)\n", r.out)
        self.assertIsNotNone(m, r)
        new = int(m.group(1))
        self.assertTrue(pid_alive(new))
        self.assertEqual(new, self.wait_running("web", count=2))
        u = self.unit("web")
        self.assertEqual((u["state"], u["held"], u["pid"]), ("running", False, new))

        # Starting what runs already is done at once, and changes nothing.
        r = self.ctl_ok("start", "web")
        self.assertEqual(r.out, f"web: running (pid {new})\n")
        self.assertEqual(self.unit("web")["pid"], new)

        r = self.ctl_ok("restart", "web", "db")
        newer = int(re.search(r"web: running \(pid (\d+)\)", r.out).group(1))
        new_db = int(re.search(r"db: running \(pid (\d+)\)", r.out).group(1))
        self.assertNotEqual(newer, new)
        self.assertFalse(pid_alive(new))
        self.assertFalse(pid_alive(pids["db"]))
        self.assertTrue(pid_alive(newer) and pid_alive(new_db))
        units = self.statuses()
        self.assertEqual(units["web"]["pid"], newer)
        self.assertEqual(units["db"]["pid"], new_db)
        # The others were not touched.
        self.assertEqual(units["c.d_e-f"]["pid"], pids["c.d_e-f"])
        self.assertEqual(units["x-y_z.w"]["pid"], pids["x-y_z.w"])

        for verb in ("stop", "start", "restart"):
            rc, doc = self.ctl_json(verb, "x-y_z.w")
            self.assertEqual(rc, 0, doc)
            if verb != "stop":
                self.assertRegex(doc["message"], r"^x-y_z\.w: running \(pid \d+\)$")

    def test_a_start_that_fails_exits_1_and_says_why(self):
        self.supervisor("root", ["web", "bad", "early"], Intensity=50)
        self.py("web")
        self.service("bad", "/nonexistent/arborctl-test", Restart="temporary")
        # A notify service that dies before it is ready.
        self.py("early", "exit=4", Type="notify", Restart="temporary")
        self.start_arbord()
        web = self.wait_running("web")
        self.wait_log(r"^arbord: early: .*exit status 4")
        for verb in ("start", "restart"):
            r = self.ctl(verb, "bad")
            self.assertEqual(r.rc, 1, r)
            self.assertRegex(r.err, r"(?m)^arborctl: bad: failed.*\S", r)
            r = self.ctl(verb, "early")
            self.assertEqual(r.rc, 1, r)
            self.assertRegex(r.err, r"(?m)^arborctl: early: failed \(exit status 4\)", r)
        # One good and one bad: 1, the good one started and said so.
        self.ctl_ok("stop", "web")
        r = self.ctl("start", "web", "bad")
        self.assertEqual(r.rc, 1, r)
        self.assertRegex(r.out, r"web: running \(pid \d+\)")
        self.assertRegex(r.err, r"arborctl: bad: failed")
        rc, doc = self.ctl_json("start", "bad")
        self.assertEqual(rc, 1)
        self.assertTrue(doc["errors"] and doc["errors"][0].startswith("bad: failed"), doc)
        self.assertNotEqual(self.unit("web")["pid"], web)

    def test_an_unknown_unit_exits_3_and_changes_nothing(self):
        pids = self.standard_tree()
        cases = [("start", "nope"), ("stop", "nope"), ("restart", "nope"),
                 ("stop", "web", "nope"), ("restart", "nope", "db"), ("kill", "nope"),
                 ("kill", "-s", "KILL", "web", "nope"), ("logs", "nope"),
                 ("logs", "-f", "nope"), ("wait", "nope"), ("stop", "--no-block", "nope")]
        for args in cases:
            r = self.ctl(*args)
            self.assertEqual(r.rc, 3, r)
            self.assertRegex(r.err, r"arborctl: .*nope", r)
            rc, doc = self.ctl_json(*args)
            self.assertEqual(rc, 3, doc)
        units = self.statuses()
        for name, pid in pids.items():
            self.assertEqual(units[name]["pid"], pid, name)
            self.assertEqual(units[name]["state"], "running")
            self.assertTrue(pid_alive(pid))
        self.assertEqual(len(self.log_lines(r"starting pid")), len(pids))
        self.assertEqual(self.log_lines(r"stopping"), [])

    def test_usage_errors_exit_2_and_change_nothing(self):
        pids = self.standard_tree()
        cases = [(), ("frobnicate",), ("start",), ("stop",), ("restart",), ("kill",),
                 ("logs",), ("wait",), ("start", "--bogus", "web"), ("stop", "-x", "web"),
                 ("restart", "--no-block=1", "web"), ("kill", "-s", "NOSUCH", "web"),
                 ("kill", "-s", "0", "web"), ("kill", "-s", "65", "web"), ("kill", "-s"),
                 ("logs", "-n", "abc", "web"), ("logs", "-n", "-1", "web"),
                 ("logs", "web", "db"), ("logs", "--no-block", "web"),
                 ("wait", "--timeout", "soon", "web"), ("wait", "web", "db"),
                 ("reload", "web"), ("shutdown", "now"), ("status", "bad name!"),
                 ("stop", "../web"), ("status", "-z"), ("--frob", "status"),
                 ("logs", "-n", "1000001", "web"), ("status", "a" * 65), ("-r",)]
        for args in cases:
            r = self.ctl(*args)
            self.assertEqual(r.rc, 2, r)
            self.assertRegex(r.err, r"^arborctl: .+\n", r)
            self.assertIn("Usage: arborctl", r.err, r)
            self.assertEqual(r.out, "", r)
            rc, doc = self.ctl_json(*args)
            self.assertEqual(rc, 2, doc)
        units = self.statuses()
        for name, pid in pids.items():
            self.assertEqual(units[name]["pid"], pid, name)
        self.assertEqual(self.log_lines(r"stopping"), [])
        self.assertEqual(self.log_lines(r"control: (stop|start|restart|kill|reload|shutdown)"), [])

    def test_no_block_returns_at_once(self):
        self.supervisor("root", ["slow", "n"], Intensity=50)
        self.py("slow", "slow-stop=4", Shutdown="20s")
        self.touch(self.flag("n"))
        self.py("n", f"ready-after={self.flag('n')}", Type="notify")
        self.start_arbord()
        slow = self.wait_up("slow")
        self.wait_up("n")

        # stop --no-block: 0 and "queued" while the service is still
        # busy stopping (it takes 4 s over its SIGTERM).
        r = self.ctl("stop", "--no-block", "slow")
        self.assertEqual((r.rc, r.out), (0, "queued\n"), r)
        self.assertLess(r.elapsed, 3)
        self.assertTrue(pid_alive(slow), "--no-block waited for the stop")
        self.wait_log(r"^slow\[\d+\]: term-received")
        self.assertEqual(self.unit("slow")["state"], "stopping")
        wait_until(lambda: not pid_alive(slow), 15, what="slow to stop")
        self.wait_state("slow", "stopped")

        # A blocking stop returns only once the process is gone.
        self.ctl_ok("start", "slow")
        slow = self.wait_up("slow", count=2)
        r = self.ctl_ok("stop", "slow")
        self.assertGreater(r.elapsed, 3)
        self.assertFalse(pid_alive(slow))

        # start --no-block on a service that will not be ready for a while.
        self.ctl_ok("stop", "n")
        os.unlink(self.flag("n"))
        rc, doc = self.ctl_json("start", "--no-block", "n")
        self.assertEqual((rc, doc["message"]), (0, "queued"), doc)
        self.assertEqual(self.unit("n")["state"], "starting")
        # ... while a blocking start waits for readiness.
        p = self.popen("restart", "n")
        with self.assertRaises(subprocess.TimeoutExpired):
            p.wait(timeout=0.5)
        self.touch(self.flag("n"))
        self.assertEqual(p.wait(timeout=15), 0, p.stderr.read())
        self.assertRegex(p.stdout.read().decode(), r"^n: running \(pid \d+\)\n$")
        self.assertEqual(self.unit("n")["state"], "running")
        r = self.ctl("restart", "--no-block", "n")
        self.assertEqual((r.rc, r.out), (0, "queued\n"), r)
        self.wait_ready("n")

    def test_oneshot_start_wait_and_status(self):
        self.supervisor("root", ["setup", "once_bad", "tr", "web"], Intensity=50)
        self.py("setup", "lines=1", "exit=0", Type="oneshot")
        self.py("once_bad", "exit=2", Type="oneshot", Restart="temporary")
        self.py("tr", "exit=0", Restart="transient")
        self.py("web")
        self.start_arbord()
        self.wait_up("web")
        self.wait_log(r"^arbord: tr: exited")
        units = self.statuses()
        self.assertEqual((units["setup"]["state"], units["setup"]["last_exit"], units["setup"]["pid"]),
                         ("exited", {"code": 0}, None))
        self.assertEqual(units["setup"]["type"], "oneshot")
        self.assertEqual((units["once_bad"]["state"], units["once_bad"]["last_exit"]),
                         ("failed", {"code": 2}))
        self.assertEqual(units["tr"]["state"], "exited")
        lines = {TREE_PREFIX.match(l).group(3): l for l in self.ctl_ok("status").out.splitlines()}
        self.assertRegex(lines["setup"], r"service\s+exited\s+restarts 0\s+last exit 0$")
        self.assertRegex(lines["once_bad"], r"service\s+failed\s+restarts 0\s+last exit 2$")
        # A oneshot is ready when it has exited 0 (SPEC 2): wait says 0.
        self.assertEqual(self.ctl("wait", "setup").rc, 0)
        # A plain service that ended by itself is not ready: 1 at once.
        r = self.ctl("wait", "tr")
        self.assertEqual(r.rc, 1, r)
        # start runs a finished oneshot again, and waits for it to exit 0.
        runs = len(self.log_lines(r"^setup\[\d+\]: line-1"))
        self.ctl_ok("start", "setup")
        self.assertEqual(len(self.log_lines(r"^setup\[\d+\]: line-1")), runs + 1)
        self.ctl_ok("restart", "setup")
        self.assertEqual(len(self.log_lines(r"^setup\[\d+\]: line-1")), runs + 2)
        r = self.ctl("start", "once_bad")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("once_bad: failed (exit status 2)", r.err)
        # logs keeps each instance's pid.
        pids = [int(m) for m in re.findall(r"^setup\[(\d+)\]: line-1$",
                                            self.ctl_ok("logs", "setup").out, re.M)]
        self.assertEqual(len(set(pids)), runs + 2)

    def test_kill_sends_the_signal_by_name_or_number(self):
        pids = self.standard_tree()
        for i, spec in enumerate(("USR1", "SIGUSR1", "10", "usr1", "SigUsr1"), start=1):
            r = self.ctl("kill", "-s", spec, "web")
            self.assertEqual(r.rc, 0, r)
            self.assertEqual(r.out, "signal 10 sent to 1 service\n", r)
            self.wait_log(rf"^web\[{pids['web']}\]: got-usr1 {pids['web']}$", count=i)
        r = self.ctl("kill", "--signal=USR1", "web")
        self.assertEqual(r.rc, 0, r)
        self.wait_log(rf"^web\[{pids['web']}\]: got-usr1", count=6)
        rc, doc = self.ctl_json("kill", "-s", "USR1", "web")
        self.assertEqual((rc, doc["message"]), (0, "signal 10 sent to 1 service"))
        self.wait_log(rf"^web\[{pids['web']}\]: got-usr1", count=7)
        # A supervisor stands for every service under it.
        r = self.ctl_ok("kill", "-s", "USR1", "grp")
        self.assertIn("2 services", r.out)
        self.wait_log(rf"^db\[{pids['db']}\]: got-usr1")
        self.wait_log(rf"^c\.d_e-f\[{pids['c.d_e-f']}\]: got-usr1")
        # Nothing else happened: the same processes, nothing restarted.
        self.assertEqual({n: u["pid"] for n, u in self.statuses().items() if u["pid"]}, pids)
        # Real-time signals by name: arborctl and arbord agree on RTMIN.
        self.ctl_ok("kill", "-s", "RTMIN+2", "x-y_z.w")
        self.wait_running("x-y_z.w", count=2)
        le = self.unit("x-y_z.w")["last_exit"]
        self.assertEqual(le, {"signal": signal.SIGRTMIN + 2, "signal_name": "SIGRTMIN+2"})
        pids["x-y_z.w"] = self.wait_up("x-y_z.w", count=2)
        # The default is SIGTERM; the permanent service comes back.
        self.ctl_ok("kill", "x-y_z.w")
        self.wait_running("x-y_z.w", count=3)
        self.assertFalse(pid_alive(pids["x-y_z.w"]))
        self.assertEqual(self.unit("x-y_z.w")["last_exit"]["signal_name"], "SIGTERM")

    def test_kill_of_something_not_running_exits_1(self):
        self.standard_tree()
        self.ctl_ok("stop", "web")
        r = self.ctl("kill", "-s", "USR1", "web")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("not running", r.err)
        self.ctl_ok("stop", "grp")
        r = self.ctl("kill", "grp")
        self.assertEqual(r.rc, 1, r)
        rc, doc = self.ctl_json("kill", "web")
        self.assertEqual(rc, 1)
        self.assertEqual(self.unit("web")["state"], "stopped")


class Logs(CtlTest):
    def lines_tree(self):
        self.supervisor("root", ["s", "grp"])
        self.supervisor("grp", ["t"])
        self.py("s", "lines=20", "trap-usr1")
        self.py("t", "esc")
        self.start_arbord()
        pid = self.wait_running("s")
        self.wait_log(rf"^s\[{pid}\]: up {pid}")
        return pid

    def test_logs_n_shows_exactly_the_last_n_lines(self):
        pid = self.lines_tree()
        up = f"up {pid}"
        r = self.ctl_ok("logs", "-n", "5", "s")
        self.assertEqual(r.out.splitlines(),
                         [f"s[{pid}]: line-{i}" for i in range(17, 21)] + [f"s[{pid}]: {up}"])
        r = self.ctl_ok("logs", "s")  # default: 10
        self.assertEqual(r.out.splitlines(),
                         [f"s[{pid}]: line-{i}" for i in range(12, 21)] + [f"s[{pid}]: {up}"])
        r = self.ctl_ok("logs", "--lines=1", "s")
        self.assertEqual(r.out, f"s[{pid}]: {up}\n")
        r = self.ctl_ok("logs", "-n", "0", "s")
        self.assertEqual(r.out, "")
        r = self.ctl_ok("logs", "-n", "1000", "s")
        self.assertEqual(len(r.out.splitlines()), 21)
        self.assertEqual(r.out.splitlines()[0], f"s[{pid}]: line-1")
        rc, doc = self.ctl_json("logs", "-n", "3", "s")
        self.assertEqual(rc, 0)
        self.assertEqual(doc["unit"], "s")
        self.assertEqual([l["line"] for l in doc["lines"]], ["line-19", "line-20", up])
        now_ms = time.time() * 1000
        for l in doc["lines"]:
            self.assertEqual((l["unit"], l["pid"]), ("s", pid))
            self.assertIsInstance(l["time_ms"], int)
            self.assertLess(abs(l["time_ms"] - now_ms), 120000)
        # A supervisor has no output of its own.
        r = self.ctl("logs", "grp")
        self.assertEqual(r.rc, 1, r)
        rc, doc = self.ctl_json("logs", "grp")
        self.assertEqual((rc, doc["lines"]), (1, []))

    def test_logs_keep_every_byte_and_json_escapes_it(self):
        self.lines_tree()
        tpid = self.wait_running("t")
        self.wait_log(rf"^t\[{tpid}\]: up")
        # Not a terminal: the line as the service wrote it, byte for byte.
        r = self.ctl_ok("logs", "-n", "2", "t")
        self.assertEqual(r.raw, b"t[%d]: %s\nt[%d]: up %d\n" % (tpid, ESC_LINE, tpid, tpid))
        # JSON: valid, and the valid parts round-trip exactly; each invalid
        # byte is one U+FFFD.
        r = self.ctl_ok("--json", "logs", "-n", "2", "t")
        self.assertNotIn(b"\x00", r.raw)
        self.assertNotIn(b"\x1b", r.raw)
        self.assertNotIn(b"\xff", r.raw)
        doc = parse_one_json(self, r.raw)
        self.assertEqual(doc["lines"][0]["line"], ESC_LINE.decode("utf-8", "replace"))
        self.assertEqual(doc["lines"][0]["line"],
                         'q"uo\\te\tx\x01y\x1bz\x00n\ufffd\ufffdE \u00e9 \u65e5\u672c end')
        self.assertIn(b'\\"', r.raw)
        self.assertIn(b"\\u0000", r.raw)
        self.assertIn("\u00e9 \u65e5\u672c".encode(), r.raw)  # kept as UTF-8
        # jq reads the same string.
        jq = subprocess.run(["jq", "-j", ".lines[0].line"], input=r.raw, capture_output=True)
        self.assertEqual(jq.returncode, 0)
        self.assertEqual(jq.stdout, ESC_LINE.decode("utf-8", "replace").encode())
        # On a terminal: control characters and bad bytes escaped, tab kept.
        rc, out = self.ctl_pty("logs", "-n", "2", "t")
        self.assertEqual(rc, 0, out)
        self.assertIn(b'q"uo\\te\tx\\x01y\\x1bz\\x00n\\xff\\xfeE \xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac end',
                      out)
        self.assertNotIn(b"\x1b", out)

    def test_logs_follow_streams_and_ends_0_on_sigint(self):
        pid = self.lines_tree()
        p = self.popen("logs", "-f", "-n", "2", "s")
        lines = LineReader(p.stdout)
        self.assertEqual(lines.readline(), b"s[%d]: line-20" % pid)
        self.assertEqual(lines.readline(), b"s[%d]: up %d" % (pid, pid))
        for i in range(3):
            self.ctl_ok("kill", "-s", "USR1", "s")
            self.assertEqual(lines.readline(), b"s[%d]: got-usr1 %d" % (pid, pid))
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(timeout=15), 0, p.stderr.read())
        self.assertEqual(lines.rest(), b"")
        self.assertEqual(p.stderr.read(), b"")

    def test_logs_follow_goes_on_across_restarts(self):
        pid = self.lines_tree()
        p = self.popen("logs", "-f", "-n", "1", "s")
        lines = LineReader(p.stdout)
        self.assertEqual(lines.readline(), b"s[%d]: up %d" % (pid, pid))
        os.kill(pid, signal.SIGKILL)
        new = self.wait_running("s", count=2)
        got = lines.read_until(rb"up %d$" % new)
        self.assertEqual(got[-1], b"s[%d]: up %d" % (new, new))
        self.assertEqual(got[0], b"s[%d]: line-1" % new)
        p.send_signal(signal.SIGHUP)
        self.assertEqual(p.wait(timeout=15), 0)

    def test_logs_follow_ends_0_when_its_reader_goes_away(self):
        pid = self.lines_tree()
        p = self.popen("logs", "-f", "-n", "1", "s")
        self.assertEqual(LineReader(p.stdout).readline(), b"s[%d]: up %d" % (pid, pid))
        p.stdout.close()  # as "| head -1" does
        self.ctl_ok("kill", "-s", "USR1", "s")
        self.wait_log(rf"^s\[{pid}\]: got-usr1")
        # The next line it writes finds nobody: it ends, cleanly.
        self.ctl_ok("kill", "-s", "USR1", "s")
        self.assertEqual(p.wait(timeout=15), 0, p.stderr.read())

    def test_logs_follow_json_lines(self):
        pid = self.lines_tree()
        p = self.popen("--json", "logs", "-f", "-n", "1", "s")
        lines = LineReader(p.stdout)
        first = json.loads(lines.readline())
        self.assertEqual(first["line"], f"up {pid}")
        self.ctl_ok("kill", "-s", "USR1", "s")
        rec = json.loads(lines.readline())
        self.assertEqual((rec["unit"], rec["pid"], rec["line"]), ("s", pid, f"got-usr1 {pid}"))
        self.assertNotIn("ok", rec)
        self.assertIsInstance(rec["time_ms"], int)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=15), 0)
        self.assertEqual(lines.rest(), b"")  # a clean end has no result line

    def test_logs_follow_ends_0_when_arbord_exits(self):
        self.lines_tree()
        p = self.popen("logs", "-f", "s")
        LineReader(p.stdout).read_until(rb"up \d+")
        self.ctl_ok("shutdown")
        self.assertEqual(p.wait(timeout=15), 0, p.stderr.read())
        self.assertEqual(self.wait_exit(), 0)

    def test_logs_follow_ends_1_when_the_unit_is_removed(self):
        self.lines_tree()
        tpid = self.wait_running("t")
        self.wait_log(rf"^t\[{tpid}\]: up")
        p = self.popen("--json", "logs", "-f", "-n", "1", "t")
        q = self.popen("logs", "-f", "-n", "1", "t")
        # Once the recent line is out, each is following.
        p_lines, q_lines = LineReader(p.stdout), LineReader(q.stdout)
        self.assertEqual(json.loads(p_lines.readline())["line"], f"up {tpid}")
        self.assertEqual(q_lines.readline(), b"t[%d]: up %d" % (tpid, tpid))
        self.supervisor("root", ["s"])
        os.unlink(os.path.join(self.units, "t.service"))
        os.unlink(os.path.join(self.units, "grp.supervisor"))
        r = self.ctl_ok("reload")
        self.assertIn("2 removed", r.out)
        self.assertEqual(p.wait(timeout=15), 1)
        last = parse_one_json(self, p_lines.rest(), "logs -f --json after removal")
        check_result_members(self, last, 1)
        self.assertIn("removed", " ".join(last["errors"]))
        self.assertEqual(q.wait(timeout=15), 1)
        self.assertEqual(q_lines.rest(), b"")
        self.assertRegex(q.stderr.read().decode(), r"^arborctl: .*removed")


class Wait(CtlTest):
    def test_wait(self):
        self.supervisor("root", ["web", "bad", "n", "stuck"], Intensity=50)
        self.py("web")
        self.service("bad", "/nonexistent/arborctl-test", Restart="temporary")
        self.py("n", f"ready-after={self.flag('n')}", Type="notify")
        self.py("stuck", f"ready-after={self.flag('stuck')}", Type="notify", StartTimeout="60s")
        self.touch(self.flag("n"))
        self.touch(self.flag("stuck"))
        self.start_arbord()
        web = self.wait_running("web")
        self.wait_running("n")
        self.wait_running("stuck")

        r = self.ctl("wait", "web")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, f"web: running (pid {web})\n")
        rc, doc = self.ctl_json("wait", "--timeout", "5s", "web")
        self.assertEqual(rc, 0)
        self.assertEqual(doc["message"], f"web: running (pid {web})")

        # A failed unit: 1 at once.
        r = self.ctl("wait", "bad")
        self.assertEqual(r.rc, 1, r)
        self.assertLess(r.elapsed, 5)
        self.assertRegex(r.err, r"arborctl: bad: failed")

        # A unit stopped by the operator: 1 at once.
        self.ctl_ok("stop", "web")
        r = self.ctl("wait", "web")
        self.assertEqual(r.rc, 1, r)
        self.assertLess(r.elapsed, 5)
        rc, doc = self.ctl_json("wait", "web")
        self.assertEqual(rc, 1)

        # A wait that blocks until the unit becomes ready.
        self.ctl_ok("stop", "n")
        os.unlink(self.flag("n"))
        self.ctl_ok("start", "--no-block", "n")
        p = self.popen("wait", "n")
        with self.assertRaises(subprocess.TimeoutExpired):
            p.wait(timeout=0.5)
        self.touch(self.flag("n"))
        self.assertEqual(p.wait(timeout=15), 0, p.stderr.read())
        self.assertRegex(p.stdout.read().decode(), r"^n: running \(pid \d+\)\n$")

        for timeout in ("infinity", "1min 30s", "2min", "1h"):
            self.assertEqual(self.ctl("wait", "--timeout", timeout, "n").rc, 0, timeout)

        # A unit stuck starting: 1 after the timeout, not before.
        self.ctl_ok("stop", "stuck")
        os.unlink(self.flag("stuck"))
        self.ctl_ok("start", "--no-block", "stuck")
        self.wait_state("stuck", "starting")
        for timeout, secs in (("500ms", 0.5), ("1", 1.0), ("1s", 1.0)):
            r = self.ctl("wait", "--timeout", timeout, "stuck")
            self.assertEqual(r.rc, 1, r)
            self.assertGreaterEqual(r.elapsed, secs - 0.05, r)
            self.assertLess(r.elapsed, secs + 4, r)
            self.assertIn("timed out", r.err)
        rc, doc = self.ctl_json("wait", "--timeout=500ms", "stuck")
        self.assertEqual(rc, 1)
        self.assertEqual(self.unit("stuck")["state"], "starting")
        # Interrupted, a wait dies of the signal (a shell says 130), and
        # what arbord was doing goes on.
        p = self.popen("wait", "stuck")
        with self.assertRaises(subprocess.TimeoutExpired):
            p.wait(timeout=0.5)
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(timeout=15), -signal.SIGINT)
        # The timeout gave up waiting; it did nothing to the unit.
        self.assertEqual(self.unit("stuck")["state"], "starting")
        self.touch(self.flag("stuck"))
        self.wait_ready("stuck")


class Reload(CtlTest):
    def tree(self):
        self.supervisor("root", ["a", "b"])
        self.py("a")
        self.py("b")
        self.start_arbord()
        return {n: self.wait_running(n) for n in "ab"}

    def test_reload_applies_what_changed(self):
        pids = self.tree()
        r = self.ctl_ok("reload")
        self.assertRegex(r.out, r"^reloaded: 0 added, 0 removed, 0 changed\n$")
        self.supervisor("root", ["a", "b", "c"])
        self.py("c")
        rc, doc = self.ctl_json("reload")
        self.assertEqual(rc, 0, doc)
        self.assertIn("1 added", doc["message"])
        # reload returns once the change is under way; c then starts.
        self.wait_ready("c")
        units = self.statuses()
        self.assertEqual(units["c"]["state"], "running")
        self.assertEqual(units["a"]["pid"], pids["a"])
        self.assertEqual(units["b"]["pid"], pids["b"])

    def test_a_broken_unit_exits_1_with_file_and_line_and_changes_nothing(self):
        pids = self.tree()
        before = self.statuses()
        # A new unit, a changed one, and a broken one, in one reload.
        self.supervisor("root", ["a", "b", "c"])
        self.py("b", "lines=1")
        self.write_unit("c.service", f"[Service]\nExecStart={SLEEPER}\nRestartt=no\n")
        r = self.ctl("reload")
        self.assertEqual(r.rc, 1, r)
        path = os.path.join(self.units, "c.service")
        self.assertRegex(r.err, rf"(?m)^arborctl: {re.escape(path)}:3: \S.*Restartt", r)
        self.assertEqual(r.out, "")
        rc, doc = self.ctl_json("reload")
        self.assertEqual(rc, 1)
        self.assertTrue(any(re.match(rf"{re.escape(path)}:3: ", e) for e in doc["errors"]), doc)
        after = self.statuses()
        self.assertEqual(list(after), list(before))
        for n in "ab":
            self.assertEqual(after[n]["pid"], pids[n])
            self.assertTrue(pid_alive(pids[n]))
        self.assertEqual(len(self.log_lines(r"starting pid")), 2)
        # Fixed, it goes through.
        self.py("c")
        self.ctl_ok("reload")
        self.wait_ready("b", "c")
        units = self.statuses()
        self.assertEqual(units["c"]["state"], "running")
        self.assertNotEqual(units["b"]["pid"], pids["b"])  # b's file changed
        self.assertEqual(units["a"]["pid"], pids["a"])


class Shutdown(CtlTest):
    def test_shutdown_exits_0_and_arbord_exits_0(self):
        self.supervisor("root", ["a", "b"])
        self.py("a")
        self.py("b", "slow-stop=0.5")
        self.start_arbord()
        pids = [self.wait_running(n) for n in "ab"]
        r = self.ctl("shutdown")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("stopped", r.out)
        for pid in pids:
            self.assertFalse(pid_alive(pid), "shutdown returned before the tree stopped")
        self.assertEqual(self.wait_exit(), 0)
        # Afterwards: nothing to reach.
        r = self.ctl("status")
        self.assertEqual(r.rc, 4, r)

    def test_shutdown_json(self):
        self.supervisor("root", ["a"])
        self.py("a")
        self.start_arbord()
        self.wait_running("a")
        rc, doc = self.ctl_json("shutdown")
        self.assertEqual(rc, 0, doc)
        self.assertEqual(self.wait_exit(), 0)


class Unreachable(CtlTest):
    COMMANDS = [("status",), ("status", "a"), ("start", "a"), ("stop", "a"), ("restart", "a"),
                ("stop", "--no-block", "a"), ("kill", "-s", "USR1", "a"), ("reload",),
                ("logs", "a"), ("logs", "-f", "a"), ("wait", "a"), ("shutdown",)]

    def check_all(self, hint):
        for args in self.COMMANDS:
            r = self.ctl(*args, timeout=30)
            self.assertEqual(r.rc, 4, r)
            self.assertIn(os.path.join(self.run, "control.sock"), r.err, r)
            self.assertRegex(r.err, rf"arborctl: hint: .*{hint}", r)
            self.assertLess(r.elapsed, 5, r)
            rc, doc = self.ctl_json(*args)
            self.assertEqual(rc, 4, doc)
            self.assertIn("control.sock", doc["errors"][0])
        r = self.ctl("status", runtime=False, runtime_env=True)
        self.assertEqual(r.rc, 4, r)
        self.assertIn(self.run, r.err)

    def test_runtime_dir_missing(self):
        self.check_all("does not exist")

    def test_no_socket(self):
        os.mkdir(self.run)
        self.check_all("is arbord running")

    def test_nobody_listens(self):
        os.mkdir(self.run)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(os.path.join(self.run, "control.sock"))
        s.close()
        self.check_all("nothing listens")

    def test_after_arbord_is_killed(self):
        self.supervisor("root", ["a"])
        self.py("a")
        self.start_arbord()
        self.wait_running("a")
        self.proc.kill()
        self.proc.wait()
        r = self.ctl("status")
        self.assertEqual(r.rc, 4, r)
        self.assertIn("arborctl: hint:", r.err)


class Operator(CtlTest):
    def test_stop_keeps_a_permanent_service_stopped(self):
        for strategy in ("one-for-one", "one-for-all", "rest-for-one"):
            with self.subTest(strategy=strategy):
                if self.proc:
                    self.ctl_ok("shutdown")
                    self.assertEqual(self.wait_exit(), 0)
                    self.logfile.close()
                self.supervisor("root", ["a", "b", "c"], Strategy=strategy, Intensity=50)
                for n in "abc":
                    self.py(n)
                self.start_arbord()
                pids = {n: self.wait_running(n) for n in "abc"}
                self.ctl_ok("stop", "c")
                self.assertFalse(pid_alive(pids["c"]))
                # A sibling crashes and its restart cycle runs (for
                # one-for-all and rest-for-one this is a group restart that
                # includes c's place).
                self.ctl_ok("kill", "-s", "KILL", "a")
                self.wait_running("a", count=2)
                self.wait_ready("root")
                units = self.statuses()
                c = units["c"]
                self.assertEqual((c["state"], c["held"], c["pid"]), ("stopped", True, None),
                                 strategy)
                self.assertEqual(c["restarts"], 0)
                self.assertEqual(len(self.log_lines(r"^arbord: c: starting pid")), 1, strategy)
                self.assertEqual(units["a"]["restarts"], 1)
                # A second cycle: still stopped.
                b_runs = len(self.running_pids("b"))
                os.kill(units["b"]["pid"], signal.SIGKILL)
                self.wait_running("b", count=b_runs + 1)
                self.wait_ready("root")
                c = self.unit("c")
                self.assertEqual((c["state"], c["held"]), ("stopped", True), strategy)
                self.assertEqual(len(self.log_lines(r"^arbord: c: starting pid")), 1, strategy)
                self.assertEqual(self.ctl("wait", "c").rc, 1)
                # start brings it back.
                r = self.ctl_ok("start", "c")
                pid = int(re.search(r"pid (\d+)", r.out).group(1))
                self.assertTrue(pid_alive(pid))
                c = self.unit("c")
                self.assertEqual((c["state"], c["held"], c["pid"]), ("running", False, pid))
                # ... and a crash of it is a crash again: restarted.
                c_runs = len(self.running_pids("c"))
                os.kill(pid, signal.SIGKILL)
                self.wait_running("c", count=c_runs + 1)

    def test_stop_and_start_a_supervisor_act_on_its_subtree(self):
        pids = self.standard_tree()
        self.ctl_ok("stop", "grp")
        for n in ("db", "c.d_e-f"):
            self.assertFalse(pid_alive(pids[n]), n)
        units = self.statuses()
        self.assertEqual((units["grp"]["state"], units["grp"]["held"]), ("stopped", True))
        for n in ("db", "c.d_e-f"):
            self.assertEqual(units[n]["state"], "stopped")
            self.assertIsNone(units[n]["pid"])
        for n in ("web", "x-y_z.w"):
            self.assertEqual(units[n]["pid"], pids[n])
        self.assertEqual(units["root"]["state"], "running")
        # Stays stopped through a sibling's crash.
        os.kill(pids["web"], signal.SIGKILL)
        self.wait_running("web", count=2)
        self.assertEqual(self.unit("grp")["state"], "stopped")
        self.assertEqual(len(self.log_lines(r"^arbord: db: starting pid")), 1)

        r = self.ctl_ok("start", "grp")
        self.assertIn("grp: running", r.out)
        units = self.statuses()
        self.assertEqual((units["grp"]["state"], units["grp"]["held"]), ("running", False))
        for n in ("db", "c.d_e-f"):
            self.assertEqual(units[n]["state"], "running")
            self.assertNotEqual(units[n]["pid"], pids[n])
            self.assertTrue(pid_alive(units[n]["pid"]))

        before = self.statuses()
        r = self.ctl_ok("restart", "grp")
        after = self.statuses()
        for n in ("db", "c.d_e-f"):
            self.assertNotEqual(after[n]["pid"], before[n]["pid"])
            self.assertFalse(pid_alive(before[n]["pid"]))
        self.assertEqual(after["x-y_z.w"]["pid"], before["x-y_z.w"]["pid"])

    def test_operator_actions_do_not_count_as_restarts_crashes_do(self):
        self.standard_tree()
        self.ctl_ok("restart", "web")
        self.ctl_ok("stop", "web")
        self.ctl_ok("start", "web")
        self.ctl_ok("restart", "grp")
        self.ctl_ok("stop", "grp")
        self.ctl_ok("start", "grp")
        self.ctl_ok("restart", "db", "web")
        units = self.statuses()
        for name, u in units.items():
            self.assertEqual(u["restarts"], 0, f"{name}: {u}")
        # Crashes do count.
        running = len(self.running_pids("web"))
        os.kill(units["web"]["pid"], signal.SIGKILL)
        self.wait_running("web", count=running + 1)
        self.ctl_ok("kill", "-s", "SIGKILL", "web")
        self.wait_running("web", count=running + 2)
        units = self.statuses()
        self.assertEqual(units["web"]["restarts"], 2)
        self.assertEqual(units["web"]["last_exit"], {"signal": 9, "signal_name": "SIGKILL"})
        self.assertEqual(units["db"]["restarts"], 0)
        self.assertEqual(units["root"]["restarts"], 0)
        lines = {TREE_PREFIX.match(l).group(3): l for l in self.ctl_ok("status").out.splitlines()}
        self.assertRegex(lines["web"], r"restarts 2\s+last exit SIGKILL")
        # An operator restart after that does not add to it.
        self.ctl_ok("restart", "web")
        self.assertEqual(self.unit("web")["restarts"], 2)


class StartWhileBusy(CtlTest):
    """An operator starts a unit while it is still stopping (after another
    operator's stop, or a stop --no-block) or still starting: the start
    must be done once the unit has settled, and arborctl must say so."""

    def stopping(self):
        self.supervisor("root", ["slow", "other"])
        self.py("slow", "slow-stop=2", Shutdown="20s")
        self.py("other")
        self.start_arbord()
        pid = self.wait_up("slow")
        self.wait_up("other")
        self.ctl_ok("stop", "--no-block", "slow")
        self.wait_log(rf"^slow\[{pid}\]: term-received")
        self.assertEqual(self.unit("slow")["state"], "stopping")
        return pid

    def wait_for(self, p, timeout=8):
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            name = p.args[-1]
            self.fail(f"arborctl {' '.join(p.args[3:])} still waiting after {timeout}s; "
                      f"{name} is {self.unit(name)}")

    def test_restart_during_a_stop_starts_it_again(self):
        old = self.stopping()
        p = self.popen("restart", "slow")
        self.assertEqual(self.wait_for(p), 0, p.stderr.read())
        u = self.unit("slow")
        self.assertEqual((u["state"], u["held"]), ("running", False))
        self.assertNotEqual(u["pid"], old)

    # A blocking `start` of a unit that is still stopping starts it once the
    # stop is done, and answers then.
    def test_blocking_start_during_a_stop_starts_it_afterwards(self):
        self.stopping()
        p = self.popen("start", "slow")
        self.assertEqual(self.wait_for(p), 0, p.stderr.read())
        self.assertRegex(p.stdout.read().decode(), r"^slow: running \(pid \d+\)\n$")
        u = self.unit("slow")
        self.assertEqual((u["state"], u["held"]), ("running", False))

    # The same with --no-block: the start is not lost.
    def test_no_block_start_during_a_stop_is_not_lost(self):
        old = self.stopping()
        r = self.ctl("start", "--no-block", "slow")
        self.assertEqual((r.rc, r.out), (0, "queued\n"), r)
        wait_until(lambda: not pid_alive(old), 15, what="the old instance to end")
        self.wait_state("slow", "running", timeout=8)
        self.assertFalse(self.unit("slow")["held"])

    # A blocking `start` of a unit already starting answers once it is ready.
    def test_blocking_start_while_starting_returns_once_ready(self):
        self.supervisor("root", ["n"])
        self.touch(self.flag("n"))
        self.py("n", f"ready-after={self.flag('n')}", Type="notify")
        self.start_arbord()
        self.wait_up("n")
        self.ctl_ok("stop", "n")
        os.unlink(self.flag("n"))
        self.ctl_ok("start", "--no-block", "n")
        self.assertEqual(self.unit("n")["state"], "starting")
        p = self.popen("start", "n")
        with self.assertRaises(subprocess.TimeoutExpired):
            p.wait(timeout=0.5)
        self.touch(self.flag("n"))
        self.wait_state("n", "running")
        self.assertEqual(self.wait_for(p, timeout=5), 0, p.stderr.read())
        self.assertRegex(p.stdout.read().decode(), r"^n: running \(pid \d+\)\n$")


class JsonErrorsOnStderr(CtlTest):
    # With --json, errors go to standard error as well (arborctl(8)).
    def test_json_errors_also_go_to_stderr(self):
        self.standard_tree()
        self.ctl_ok("stop", "web")
        for args, status in ((("status", "nope"), 3), (("kill", "web"), 1),
                             (("wait", "web"), 1), (("stop", "nope"), 3)):
            r = self.ctl("--json", *args)
            self.assertEqual(r.rc, status, r)
            doc = parse_one_json(self, r.raw)
            self.assertTrue(doc["errors"])
            self.assertRegex(r.err, r"(?m)^arborctl: " + re.escape(doc["errors"][0]), r)


class EveryCommandJson(CtlTest):
    def test_every_command_prints_one_document(self):
        self.standard_tree()
        cases = [
            (("status",), 0), (("status", "web", "grp"), 0), (("status", "nope"), 3),
            (("start", "web"), 0), (("stop", "web"), 0), (("kill", "web"), 1),
            (("start", "--no-block", "web"), 0), (("wait", "web"), 0), (("restart", "web"), 0),
            (("kill", "-s", "USR1", "web"), 0), (("reload",), 0), (("logs", "web"), 0),
            (("logs", "-n", "2", "web"), 0), (("logs", "grp"), 1), (("wait", "nope"), 3),
            (("stop",), 2), (("frob",), 2), (("mailbox", "web"), 1), (("send", "web", "hi"), 3),
            (("stop", "--no-block", "x-y_z.w"), 0),
        ]
        for args, status in cases:
            with self.subTest(args=args):
                rc, doc = self.ctl_json(*args)
                self.assertEqual(rc, status, doc)
                if args[0] == "status":
                    self.assertIsInstance(doc["units"], list)
                    for u in doc["units"]:
                        self.check_unit_object(u)
                if args[0] == "logs":
                    self.assertEqual(doc["unit"], args[-1])
                    self.assertIsInstance(doc["lines"], list)
                if args[0] == "mailbox":
                    self.assertEqual((doc["unit"], doc["queued"]), ("web", None))
        rc, doc = self.ctl_json("shutdown")
        self.assertEqual(rc, 0)
        self.assertEqual(self.wait_exit(), 0)
        rc, doc = self.ctl_json("status")
        self.assertEqual((rc, doc["units"]), (4, []))


@unittest.skipUnless(os.geteuid() == 0, "needs root: runs arborctl as another user")
@unittest.skipUnless(shutil.which("setpriv") and shutil.which("useradd"), "needs setpriv, useradd")
class Access(CtlTest):
    USER = "arbortest-ctl"

    @classmethod
    def setUpClass(cls):
        cls.created = False
        try:
            pwd.getpwnam(cls.USER)
        except KeyError:
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", cls.USER], check=True,
                           capture_output=True)
            cls.created = True
        pw = pwd.getpwnam(cls.USER)
        cls.uid, cls.gid = pw.pw_uid, pw.pw_gid

    @classmethod
    def tearDownClass(cls):
        if cls.created:
            subprocess.run(["userdel", cls.USER], capture_output=True)

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)
        os.chmod(self.svc, 0o644)
        me = (self.uid, self.gid)
        probe = subprocess.run(self.cmd(["-V"], runtime=False, user=me), capture_output=True)
        if probe.returncode != 0:
            self.skipTest(f"{self.USER} cannot run {ARBORCTL}: {probe.stderr!r}")

    def test_others_may_read_but_not_change(self):
        me = (self.uid, self.gid)
        pids = self.standard_tree()
        r = self.ctl("status", user=me)
        self.assertEqual(r.rc, 0, r)
        self.assertIn(f"pid {pids['web']}", r.out)
        r = self.ctl("status", user=me, runtime=False, runtime_env=True)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ctl("--json", "status", user=me).rc, 0)
        r = self.ctl("logs", "-n", "1", "web", user=me)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, f"web[{pids['web']}]: up {pids['web']}\n")
        r = self.ctl("wait", "web", user=me)
        self.assertEqual(r.rc, 0, r)
        for args in (("start", "web"), ("stop", "web"), ("restart", "web"), ("stop", "grp"),
                     ("kill", "web"), ("kill", "-s", "USR1", "web"), ("reload",),
                     ("shutdown",), ("stop", "--no-block", "web")):
            r = self.ctl(*args, user=me)
            self.assertEqual(r.rc, 1, r)
            self.assertRegex(r.err, r"(?i)^arborctl: permission denied", r)
            rc, doc = self.ctl_json(*args, user=me)
            self.assertEqual(rc, 1, doc)
            self.assertIn("permission denied", doc["errors"][0])
        self.assertIsNone(self.proc.poll(), "arbord obeyed an unprivileged shutdown")
        units = self.statuses()
        for name, pid in pids.items():
            self.assertEqual(units[name]["pid"], pid)
            self.assertTrue(pid_alive(pid))
        self.assertEqual(self.log_lines(r"got-usr1|stopping"), [])
        # Unknown units are still unknown to others (3), and usage is usage (2).
        self.assertEqual(self.ctl("status", "nope", user=me).rc, 3)
        self.assertEqual(self.ctl("stop", user=me).rc, 2)

    def test_a_socket_others_cannot_reach_exits_4(self):
        me = (self.uid, self.gid)
        self.standard_tree()
        os.chmod(self.tmp, 0o700)
        r = self.ctl("status", user=me)
        self.assertEqual(r.rc, 4, r)
        self.assertIn("Permission denied", r.err)
        self.assertIn("hint: no permission", r.err)

    def test_no_runtime_directory_for_a_user_without_xdg(self):
        me = (self.uid, self.gid)
        env = {"XDG_RUNTIME_DIR": ""}
        r = self.ctl("status", runtime=False, env=env, user=me)
        self.assertEqual(r.rc, 4, r)
        self.assertIn("no runtime directory", r.err)
        rc, doc = self.ctl_json("status", runtime=False, env=env, user=me)
        self.assertEqual(rc, 4)


class Completion(CtlTest):
    def complete(self, *words, env=None):
        """COMPREPLY for the command line `words` (the last being completed)."""
        script = ('source "$COMPLETION"; COMP_WORDS=("$ARBORCTL_BIN" "$@"); '
                  'COMP_CWORD=$#; _arborctl; printf "%s\\n" "${COMPREPLY[@]}"')
        full = self.env(env)
        full.update(COMPLETION=COMPLETION, ARBORCTL_BIN=ARBORCTL)
        p = subprocess.run(["bash", "-c", script, "bash", *words], capture_output=True,
                           env=full, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [l for l in p.stdout.decode().split("\n") if l]

    def test_commands_and_options(self):
        self.assertEqual(sorted(self.complete("st")), ["start", "status", "stop"])
        self.assertIn("shutdown", self.complete(""))
        self.assertIn("--json", self.complete("--"))
        self.assertEqual(self.complete("stop", "--no"), ["--no-block"])
        self.assertEqual(sorted(self.complete("kill", "-s", "USR")), ["USR1", "USR2"])
        self.assertEqual(self.complete("logs", "--fo"), ["--follow"])

    def test_unit_names_from_the_running_arbord(self):
        self.standard_tree()
        services = ["web", "db", "c.d_e-f", "x-y_z.w"]
        env = {"ARBOR_RUNTIME": self.run}
        self.assertEqual(sorted(self.complete("logs", "", env=env)), sorted(services))
        self.assertEqual(sorted(self.complete("status", "", env=env)),
                         sorted(services + ["root", "grp"]))
        self.assertEqual(self.complete("stop", "c.", env=env), ["c.d_e-f"])
        self.assertEqual(self.complete("wait", "x-", env=env), ["x-y_z.w"])
        # -r on the command line is used too.
        self.assertEqual(sorted(self.complete("-r", self.run, "restart", "", env={})),
                         sorted(services + ["root", "grp"]))
        # logs takes one name only.
        self.assertEqual(self.complete("logs", "web", "", env=env), [])
        # No arbord: nothing offered, and no error.
        self.assertEqual(self.complete("logs", "", env={"ARBOR_RUNTIME": self.tmp + "/none"}), [])


# ---- a fake arbord -----------------------------------------------------------

HELLO, REQUEST, UNIT, LOG, RESULT = 1, 2, 3, 4, 5


def fields(*pairs):
    out = b""
    for k, v in pairs:
        k = k.encode() if isinstance(k, str) else k
        v = str(v).encode() if isinstance(v, int) else (v.encode() if isinstance(v, str) else v)
        out += struct.pack("=H", len(k)) + k + struct.pack("=I", len(v)) + v
    return out


def frame(ftype, *pairs, reserved=0):
    payload = fields(*pairs)
    return struct.pack("=IHH", len(payload), ftype, reserved) + payload


def raw_frame(ftype, payload, length=None):
    return struct.pack("=IHH", len(payload) if length is None else length, ftype, 0) + payload


SERVER_HELLO = frame(HELLO, ("version", 1), ("pid", 4242))


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def recv_frame(conn):
    length, ftype, _ = struct.unpack("=IHH", recv_exact(conn, 8))
    return ftype, recv_exact(conn, length)


class FakeArbord:
    """A Unix socket at RUNTIME/control.sock; each connection is handed to
    `script(conn)`."""

    def __init__(self, runtime, script):
        os.makedirs(runtime, exist_ok=True)
        self.script = script
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(os.path.join(runtime, "control.sock"))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.stopping = False
        self.conns = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(30)
            self.conns.append(conn)
            try:
                self.script(conn)
            except (OSError, ConnectionError):
                pass
            finally:
                try:
                    conn.close()
                except OSError:
                    pass

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def greet(conn):
    recv_frame(conn)  # the client's HELLO
    conn.sendall(SERVER_HELLO)
    return recv_frame(conn)  # its REQUEST


def after_request(data, close=True, chunk=None):
    """A script: greet, then send `data` (optionally in pieces), then close."""
    def script(conn):
        greet(conn)
        if chunk:
            for i in range(0, len(data), chunk):
                conn.sendall(data[i:i + chunk])
        else:
            conn.sendall(data)
        if not close:
            time.sleep(1)
    return script


def before_hello(data):
    def script(conn):
        recv_frame(conn)
        conn.sendall(data)
    return script


class Robustness(unittest.TestCase):
    """arborctl against a server that misbehaves: a message and 1 or 4,
    never a signal, never a hang, and with --json still one document."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="arb-fake-")
        self.run_dir = os.path.join(self.tmp, "r")
        self.fake = None

    def tearDown(self):
        if self.fake:
            self.fake.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def serve(self, script):
        if self.fake:
            self.fake.close()
            os.unlink(os.path.join(self.run_dir, "control.sock"))
        self.fake = FakeArbord(self.run_dir, script)

    def ctl(self, *args, timeout=30):
        env = dict(os.environ)
        env.pop("ARBOR_RUNTIME", None)
        p = subprocess.run([ARBORCTL, "-r", self.run_dir, *args], capture_output=True,
                           timeout=timeout, env=env, stdin=subprocess.DEVNULL)
        self.assertGreaterEqual(p.returncode, 0,
                                f"arborctl {args} died of signal {-p.returncode}: {p.stderr!r}")
        self.assertNotIn(b"Sanitizer", p.stderr)
        return p

    def broken(self, script, commands=(("status",), ("stop", "a"), ("logs", "a")),
               statuses=(1, 4), message=None, need_errors=True):
        self.serve(script)
        for args in commands:
            p = self.ctl(*args)
            self.assertIn(p.returncode, statuses, f"{args}: {p}")
            self.assertRegex(p.stderr.decode("utf-8", "replace"), r"^arborctl: \S", f"{args}: {p}")
            if message:
                self.assertRegex(p.stderr.decode(), message, f"{args}: {p}")
            p = self.ctl("--json", *args)
            self.assertIn(p.returncode, statuses, f"{args}: {p}")
            doc = parse_one_json(self, p.stdout, f"--json {args}")
            check_result_members(self, doc, p.returncode, str(args), need_errors)

    def test_closes_at_once(self):
        self.broken(lambda conn: None)

    def test_garbage_instead_of_hello(self):
        self.broken(before_hello(b"\xde\xad\xbe\xef" * 64))
        self.broken(before_hello(b"HTTP/1.1 400 Bad Request\r\n\r\n"))

    def test_hello_of_another_version(self):
        self.broken(before_hello(frame(HELLO, ("version", 2), ("pid", 1))))
        self.broken(before_hello(frame(HELLO, ("pid", 1))))
        self.broken(before_hello(frame(HELLO, ("version", "one"))))

    def test_refusal_at_hello_is_reported(self):
        self.broken(before_hello(frame(RESULT, ("ok", 0), ("exit", 1),
                                       ("error", "protocol version mismatch"))),
                    message="version mismatch")

    def test_closes_after_hello(self):
        self.broken(after_request(b""), message="without an answer")

    def test_truncated_frame(self):
        whole = frame(RESULT, ("ok", 1), ("exit", 0), ("message", "fine"))
        self.broken(after_request(whole[:5]))
        self.broken(after_request(whole[:12]))
        self.broken(after_request(whole[:-1]))
        self.broken(after_request(raw_frame(RESULT, b"x" * 10, length=100)))

    def test_huge_length(self):
        self.broken(after_request(raw_frame(RESULT, b"", length=0xFFFFFFFF)))
        self.broken(after_request(raw_frame(UNIT, b"abc", length=16 * 1024 * 1024 + 1)))
        # The largest a reply may be, announced, then a close.
        self.broken(after_request(raw_frame(UNIT, b"abc", length=16 * 1024 * 1024)))

    def test_bad_headers(self):
        ok = fields(("ok", 1), ("exit", 0))
        self.broken(after_request(raw_frame(0, ok)))
        self.broken(after_request(raw_frame(77, ok)))
        self.broken(after_request(frame(RESULT, ("ok", 1), reserved=1)))
        self.broken(after_request(frame(HELLO, ("version", 1))))
        self.broken(after_request(frame(REQUEST, ("command", "status"))))

    def test_malformed_fields(self):
        self.broken(after_request(raw_frame(RESULT, b"\x02\x00ok\xff\xff\xff\x7f1")))
        self.broken(after_request(raw_frame(RESULT, b"\xff\xff")))
        self.broken(after_request(raw_frame(RESULT, b"\x05\x00ok")))
        self.broken(after_request(frame(RESULT, ("exit", 0))))  # no ok
        self.broken(after_request(frame(RESULT, ("ok", "yes"), ("exit", 0))))
        self.broken(after_request(frame(UNIT, ("name", "a"), ("pid", "12ab")) +
                                  frame(RESULT, ("ok", 1), ("exit", 0))),
                    commands=(("status",),))
        self.broken(after_request(frame(UNIT, ("kind", "service")) +
                                  frame(RESULT, ("ok", 1), ("exit", 0))),
                    commands=(("status",),))
        self.broken(after_request(frame(LOG, ("unit", "a"), ("pid", "x"), ("line", "l")) +
                                  frame(RESULT, ("ok", 1), ("exit", 0))),
                    commands=(("logs", "a"), ("logs", "-f", "a")))

    def test_results_that_contradict_themselves_fail(self):
        for pairs in ((("ok", 0), ("exit", 0)), (("ok", 0), ("exit", 200)), (("ok", 0),)):
            # (A RESULT with ok=0 and no error= leaves "errors" empty: the
            # server said nothing, and arborctl does not invent a reason.)
            self.broken(after_request(frame(RESULT, *pairs)), statuses=(1,), need_errors=False)

    def test_no_answer_to_hello(self):
        def silent(conn):
            recv_frame(conn)
            time.sleep(13)
        self.serve(silent)
        start = time.monotonic()
        p = self.ctl("status", timeout=40)
        self.assertEqual(p.returncode, 4, p)
        self.assertGreater(time.monotonic() - start, 9)
        self.assertIn(b"no answer", p.stderr)

    def test_a_valid_answer_in_pieces_is_understood(self):
        units = (frame(UNIT, ("name", "root"), ("kind", "supervisor"), ("depth", 0),
                       ("state", "running"), ("restarts", 0), ("uptime_ms", 5000),
                       ("strategy", "one-for-one"), ("held", 0)) +
                 frame(UNIT, ("name", "a"), ("kind", "service"), ("parent", "root"),
                       ("depth", 1), ("state", "running"), ("pid", 77), ("restarts", 3),
                       ("uptime_ms", 65000), ("exit_signal", 11), ("type", "exec"),
                       ("restart", "permanent"), ("held", 0), ("future_field", "x")) +
                 frame(RESULT, ("ok", 1), ("exit", 0)))
        self.serve(after_request(units, chunk=1))
        p = self.ctl("status")
        self.assertEqual(p.returncode, 0, p)
        lines = p.stdout.decode().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertRegex(lines[1], r"^\u2514\u2500 a\s+service\s+running\s+pid 77\s+up 1m05s\s+"
                                   r"restarts 3\s+last exit SIGSEGV$")
        p = self.ctl("--json", "status")
        doc = parse_one_json(self, p.stdout)
        self.assertEqual(doc["units"][1]["last_exit"], {"signal": 11, "signal_name": "SIGSEGV"})
        self.assertEqual(doc["units"][1]["pid"], 77)
        self.assertIsNone(doc["units"][0]["parent"])

    def test_untrusted_text_from_the_server_is_escaped(self):
        evil = b"\x1b]0;owned\x07 \x1b[2J\xff\xe2\x80\xae\xc2\x9b done"
        answer = (frame(UNIT, ("name", b"a\x1bb"), ("kind", "service"), ("state", "running"),
                        ("status", evil)) +
                  frame(RESULT, ("ok", 1), ("exit", 0), ("message", evil)))
        self.serve(after_request(answer))
        p = self.ctl("status")
        self.assertEqual(p.returncode, 0, p)
        self.assertNotIn(b"\x1b", p.stdout)
        self.assertNotIn(b"\x07", p.stdout)
        self.assertNotIn(b"\xe2\x80\xae", p.stdout)
        self.assertIn(b"a\\x1bb", p.stdout)
        self.assertIn(b"\\x1b]0;owned\\x07 \\x1b[2J\\xff\\xe2\\x80\\xae\\xc2\\x9b done", p.stdout)
        p = self.ctl("--json", "status")
        doc = parse_one_json(self, p.stdout)
        self.assertEqual(doc["units"][0]["name"], "a\x1bb")
        self.assertEqual(doc["message"], evil.decode("utf-8", "replace"))
        # Errors too, on stderr.
        self.serve(after_request(frame(RESULT, ("ok", 0), ("exit", 1), ("error", evil))))
        p = self.ctl("stop", "a")
        self.assertEqual(p.returncode, 1)
        self.assertNotIn(b"\x1b", p.stderr)
        self.assertIn(b"\\x1b]0;owned", p.stderr)

    def test_follow_ends_cleanly_when_the_server_closes(self):
        lines = frame(LOG, ("unit", "a"), ("pid", 5), ("time_ms", 1), ("line", "one")) + \
            frame(LOG, ("unit", "a"), ("pid", 5), ("time_ms", 2), ("line", "two"))
        self.serve(after_request(lines))
        p = self.ctl("logs", "-f", "a")
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(p.stdout, b"a[5]: one\na[5]: two\n")
        # An error RESULT in the middle of a stream ends it with 1.
        self.serve(after_request(lines + frame(RESULT, ("ok", 0), ("exit", 1),
                                               ("error", "the unit was removed by a reload"))))
        p = self.ctl("--json", "logs", "-f", "a")
        self.assertEqual(p.returncode, 1, p)
        out = p.stdout.decode().splitlines()
        self.assertEqual([json.loads(l)["line"] for l in out[:2]], ["one", "two"])
        last = json.loads(out[2])
        check_result_members(self, last, 1)

    def test_a_runtime_path_longer_than_a_socket_address(self):
        long_dir = os.path.join(self.tmp, "d" * 100, "e" * 100)
        os.makedirs(long_dir)
        short = os.path.join(self.tmp, "s")
        os.symlink(long_dir, short)
        # Bound through the short name; arborctl is given the long one.
        self.run_dir = short
        self.serve(after_request(frame(RESULT, ("ok", 1), ("exit", 0), ("message", "far"))))
        self.run_dir = long_dir
        p = self.ctl("reload")
        self.assertEqual((p.returncode, p.stdout), (0, b"far\n"), p)
        self.run_dir = short

    def test_many_clients_at_once(self):
        """A burst of arborctl against one fake: each answered, none stuck."""
        self.serve(after_request(frame(RESULT, ("ok", 1), ("exit", 0), ("message", "hi"))))
        procs = [subprocess.Popen([ARBORCTL, "-r", self.run_dir, "reload"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(20)]
        for p in procs:
            out, err = p.communicate(timeout=30)
            self.assertEqual((p.returncode, out), (0, b"hi\n"), err)


if __name__ == "__main__":
    unittest.main()
