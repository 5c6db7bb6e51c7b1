"""SPEC section 7 end to end: Listen= sockets, the fd store and
`arborctl upgrade`, with real services (SVC_PY, below) and real clients.

SVC_PY is run as the service. It reads LISTEN_FDS / LISTEN_FDNAMES /
LISTEN_PID, writes one JSON line about itself to a report file when it
starts (its pid, its version argument, the names of the fds it got, and
what its stored memfd held), then, by its options:

    store        keep a memfd in arbord's fd store under FDNAME=state: the
                 first instance creates it holding "1"; every later one
                 reads the number, adds one and writes it back.
    serve        accept on every "listen" fd and answer each connection
                 with its version, then close it.
    mailbox=F    append each mailbox message to file F (one per line).
    ready=never  never send READY=1 (a notify service that hangs).
    exit=N       exit N at once after the report (a new version that dies).

SIGTERM only sets a flag, seen between two messages or connections, so an
instance asked to stop finishes what it has taken and leaves the rest in
the shared sockets for the next one.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

from harness import ArbordTest, pid_alive, wait_until

ARBORCTL = os.environ.get("ARBORCTL", "arborctl")

SVC_PY = r'''
import array, json, os, select, signal, socket, sys
stop = False
def on_term(sig, frame):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)

report, version, opts = sys.argv[1], sys.argv[2], sys.argv[3:]
opt = dict(o.split("=", 1) if "=" in o else (o, "1") for o in opts)
n = int(os.environ.get("LISTEN_FDS", "0")) if os.environ.get("LISTEN_PID") == str(os.getpid()) else 0
names = os.environ.get("LISTEN_FDNAMES", "").split(":") if n else []
fds = {}
for i, name in enumerate(names):
    fds.setdefault(name, []).append(3 + i)

notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def sd(text, pass_fds=()):
    if pass_fds:
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", pass_fds))]
        notify.sendmsg([text.encode()], rights, 0, os.environ["NOTIFY_SOCKET"])
    else:
        notify.sendto(text.encode(), os.environ["NOTIFY_SOCKET"])

stored = None
if "store" in opt:
    if "state" in fds:
        fd = fds["state"][0]
        stored = int(os.pread(fd, 64, 0).decode() or "0")
        os.pwrite(fd, str(stored + 1).encode(), 0)
    else:
        fd = os.memfd_create("state")
        os.pwrite(fd, b"1", 0)
        sd("FDSTORE=1\nFDNAME=state", [fd])
        os.close(fd)
    if "extra" in opt:
        extra = os.memfd_create("extra")
        sd("FDSTORE=1\nFDNAME=" + opt["extra"], [extra, extra])
    if "remove" in opt:
        sd("FDSTOREREMOVE=1\nFDNAME=" + opt["remove"])

with open(report, "a") as f:
    f.write(json.dumps({"pid": os.getpid(), "version": version, "names": names,
                        "stored": stored}) + "\n")
if "exit" in opt:
    sys.exit(int(opt["exit"]))
if opt.get("ready") != "never":
    sd("READY=1")

listeners = [socket.socket(fileno=fd) for fd in fds.get("listen", [])] if "serve" in opt else []
mailbox = socket.socket(fileno=fds["mailbox"][0]) if "mailbox" in opt else None
out = open(opt["mailbox"], "a") if mailbox else None
while not stop:
    watched = listeners + ([mailbox] if mailbox else [])
    try:
        ready, _, _ = select.select(watched, [], [], 0.05)
    except InterruptedError:
        continue
    for s in ready:
        if s is mailbox:
            try:
                msg = mailbox.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            out.write(msg.decode() + "\n")
            out.flush()
        else:
            try:
                conn, _ = s.accept()
            except BlockingIOError:
                continue
            conn.sendall(version.encode())
            conn.close()
'''


# Stores COUNT memfds holding "0".."COUNT-1" as f0..fCOUNT-1, one message
# each; the next instance reports the names and contents it got and every
# fd it has.
MANY_FDS_PY = r'''
import array, json, os, signal, socket, sys
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))[:-1]  # less listdir's own
report, count = sys.argv[1], int(sys.argv[2])
names = os.environ.get("LISTEN_FDNAMES", "").split(":")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def sd(text, passed=()):
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", passed))] if passed else []
    notify.sendmsg([text.encode()], rights, 0, os.environ["NOTIFY_SOCKET"])
if names == ["mailbox"]:  # the first instance
    for i in range(count):
        fd = os.memfd_create(f"f{i}")
        os.write(fd, str(i).encode())
        sd(f"FDSTORE=1\nFDNAME=f{i}", [fd])
        os.close(fd)
    sd("READY=1")
    open(report + ".1", "w").close()
else:
    contents = [os.pread(3 + i, 64, 0).decode() for i in range(1, len(names))]
    with open(report + ".tmp", "w") as f:
        json.dump({"names": names, "contents": contents, "fds": fds}, f)
    sd("READY=1")
    os.rename(report + ".tmp", report + ".2")
while True:
    signal.pause()
'''


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class UpgradeTest(ArbordTest):
    def setUp(self):
        super().setUp()
        self.svc_py = os.path.join(self.tmp, "svc.py")
        with open(self.svc_py, "w") as f:
            f.write(SVC_PY)
        self.report = os.path.join(self.tmp, "report")

    def exec_start(self, version, *opts):
        return " ".join([sys.executable, self.svc_py, self.report, version, *opts])

    def reports(self):
        try:
            with open(self.report) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def wait_reports(self, count):
        return wait_until(lambda: (lambda r: r if len(r) >= count else None)(self.reports()),
                          what=f"{count} service reports")

    def ctl(self, *args, timeout=60):
        return subprocess.run([ARBORCTL, "-r", self.run, *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def ctl_json_status(self, name):
        r = self.ctl("--json", "status", name)
        units = [u for u in json.loads(r.stdout)["units"] if u["name"] == name]
        self.assertEqual(len(units), 1, r)
        return units[0]


class ListenSockets(UpgradeTest):
    def test_fd_order_and_names_mailbox_listen_then_stored(self):
        path = os.path.join(self.tmp, "web.sock")
        port = free_port()
        self.service("web", self.exec_start("v1", "store"), Type="notify", Mailbox="yes",
                     Listen=path, FileDescriptorStoreMax=4)
        with open(os.path.join(self.units, "web.service"), "a") as f:
            f.write(f"Listen=127.0.0.1:{port}\n")
        self.start()
        first = self.pid_of("web")
        self.assertEqual(self.reports()[0]["names"], ["mailbox", "listen", "listen"])
        os.kill(first, 9)
        self.wait_running("web", 2)
        self.assertEqual(self.wait_reports(2)[1]["names"], ["mailbox", "listen", "listen", "state"])

    def test_unix_socket_is_bound_by_arbord_and_served_by_the_service(self):
        path = os.path.join(self.tmp, "web.sock")
        self.service("web", self.exec_start("v1", "serve"), Type="notify", Listen=path)
        self.start()
        self.pid_of("web")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o666)
        c = socket.socket(socket.AF_UNIX)
        c.connect(path)
        self.assertEqual(c.recv(16), b"v1")

    def test_connections_made_while_the_service_is_down_wait_in_the_backlog(self):
        port = free_port()
        self.service("web", self.exec_start("v1", "serve"), Type="notify",
                     Listen=f"127.0.0.1:{port}")
        self.start()
        self.pid_of("web")
        self.assertEqual(self.ctl("stop", "web").returncode, 0)
        # Nobody serves: the kernel still completes the handshake.
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.assertEqual(self.ctl("start", "web").returncode, 0)
        c.settimeout(10)
        self.assertEqual(c.recv(16), b"v1")

    def test_a_tcp_client_in_a_loop_is_never_refused_across_kills_and_upgrades(self):
        port = free_port()
        self.supervisor("root", ["web"], Intensity=100)
        self.service("web", self.exec_start("v1", "serve"), Type="notify",
                     Listen=f"127.0.0.1:{port}")
        self.start()
        self.pid_of("web")
        stop = threading.Event()
        result = {"ok": 0, "errors": []}

        def client():
            while not stop.is_set():
                try:
                    c = socket.create_connection(("127.0.0.1", port), timeout=10)
                    c.settimeout(10)
                    if c.recv(16) in (b"v1", b"v2", b"v3"):
                        result["ok"] += 1
                    c.close()
                except OSError as e:
                    result["errors"].append(repr(e))
        t = threading.Thread(target=client)
        t.start()
        try:
            for i in range(3):
                pid = self.pid_of("web")
                os.kill(pid, 9)
                wait_until(lambda: len(self.running_pids("web")) >= i + 2, what="a restart")
            self.service("web", self.exec_start("v2", "serve"), Type="notify",
                         Listen=f"127.0.0.1:{port}")
            r = self.ctl("upgrade", "web")
            self.assertEqual(r.returncode, 0, r)
            before = result["ok"]
            wait_until(lambda: result["ok"] > before + 5, what="more connections served")
        finally:
            stop.set()
            t.join(30)
        self.assertEqual(result["errors"], [])
        self.assertGreater(result["ok"], 10)

    def test_a_listen_address_that_cannot_be_bound_fails_the_start(self):
        self.supervisor("root", ["web"], Intensity=0)
        self.service("web", self.exec_start("v1"), Type="notify",
                     Listen="/nonexistent-dir/x.sock")
        self.start()
        self.wait_log(r"web: Listen=/nonexistent-dir/x.sock: bind: No such file or directory")
        self.wait_log(r"web: failed to start")


class FdStore(UpgradeTest):
    def test_a_memfd_comes_back_after_kill_9_with_its_contents(self):
        self.service("keeper", self.exec_start("v1", "store"), Type="notify",
                     FileDescriptorStoreMax=2)
        self.start()
        for i in range(3):
            pid = self.wait_running("keeper", i + 1)
            wait_until(lambda: len(self.reports()) > i, what="the report")
            os.kill(pid, 9)
        self.wait_running("keeper", 4)
        stored = [r["stored"] for r in self.wait_reports(4)]
        self.assertEqual(stored, [None, 1, 2, 3])

    def test_many_stored_fds_come_back_in_order_and_nothing_else(self):
        # arbord hands a child its fds through 32 low "slots" when they fit
        # (0-2, the passed fds and the status pipe) and through its whole
        # fd table when not: with the mailbox, 27 and 28 stored fds are on
        # either side.
        script = os.path.join(self.tmp, "many.py")
        with open(script, "w") as f:
            f.write(MANY_FDS_PY)
        counts = (27, 28, 60)
        self.supervisor("root", [f"many{n}" for n in counts])
        for n in counts:
            self.service(f"many{n}", f"{sys.executable} {script} {self.tmp}/many{n} {n}",
                         Type="notify", Mailbox="yes", FileDescriptorStoreMax=n)
        self.start()
        for n in counts:
            with self.subTest(count=n):
                report = f"{self.tmp}/many{n}"
                pid = self.pid_of(f"many{n}")
                wait_until(lambda: os.path.exists(report + ".1"), what="the first report")
                os.kill(pid, 9)
                wait_until(lambda: os.path.exists(report + ".2"), what="the second report")
                with open(report + ".2") as f:
                    got = json.load(f)
                self.assertEqual(got["names"], ["mailbox"] + [f"f{i}" for i in range(n)])
                self.assertEqual(got["contents"], [str(i) for i in range(n)])
                self.assertEqual(got["fds"], list(range(3 + 1 + n)))

    def test_fds_past_the_maximum_are_refused(self):
        self.service("keeper", self.exec_start("v1", "store", "extra=more"), Type="notify",
                     FileDescriptorStoreMax=2)
        self.start()
        self.pid_of("keeper")
        self.wait_log(r"keeper: fd store: 1 of 2 fds named more refused "
                      r"\(FileDescriptorStoreMax=2, 2 stored\)")
        self.assertEqual(self.ctl("restart", "keeper").returncode, 0)
        self.assertEqual(self.wait_reports(2)[1]["names"], ["state", "more"])

    def test_without_a_store_fds_are_closed_with_a_warning(self):
        self.service("keeper", self.exec_start("v1", "store"), Type="notify")
        self.start()
        self.pid_of("keeper")
        self.wait_log(r"keeper: 1 fds closed: FileDescriptorStoreMax=0")
        self.assertEqual(self.ctl("restart", "keeper").returncode, 0)
        self.assertEqual(self.wait_reports(2)[1]["names"], [])

    def test_fdstoreremove_drops_the_named_fds(self):
        self.service("keeper", self.exec_start("v1", "store", "remove=state"), Type="notify",
                     FileDescriptorStoreMax=4)
        self.start()
        self.pid_of("keeper")
        self.assertEqual(self.ctl("restart", "keeper").returncode, 0)
        self.assertEqual(self.wait_reports(2)[1]["names"], [])

    def test_stop_drops_the_store_and_restart_keeps_it(self):
        self.service("keeper", self.exec_start("v1", "store"), Type="notify",
                     FileDescriptorStoreMax=1)
        self.start()
        self.pid_of("keeper")
        self.assertEqual(self.ctl("restart", "keeper").returncode, 0)
        self.assertEqual(self.wait_reports(2)[1]["stored"], 1)
        self.assertEqual(self.ctl("stop", "keeper").returncode, 0)
        self.wait_log(r"keeper: stopped by the operator: 1 stored fds dropped")
        self.assertEqual(self.ctl("start", "keeper").returncode, 0)
        self.assertEqual(self.wait_reports(3)[2]["stored"], None)

    def test_a_store_survives_an_upgrade(self):
        self.service("keeper", self.exec_start("v1", "store"), Type="notify",
                     FileDescriptorStoreMax=1)
        self.start()
        self.pid_of("keeper")
        self.service("keeper", self.exec_start("v2", "store"), Type="notify",
                     FileDescriptorStoreMax=1)
        r = self.ctl("upgrade", "keeper")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(self.reports()[1], {**self.reports()[1], "version": "v2", "stored": 1})


class Upgrade(UpgradeTest):
    def test_upgrade_replaces_the_instance_once_and_is_not_a_restart(self):
        self.service("app", self.exec_start("v1"), Type="notify")
        self.start()
        old = self.pid_of("app")
        self.service("app", self.exec_start("v2"), Type="notify")
        r = self.ctl("upgrade", "app")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn(f"replaced pid {old}", r.stdout + r.stderr)
        new = self.reports()[1]["pid"]
        self.assertEqual(self.reports()[1]["version"], "v2")
        self.assertFalse(pid_alive(old), "the old instance has exited when upgrade returns")
        self.assertTrue(pid_alive(new))
        unit = self.ctl_json_status("app")
        self.assertEqual((unit["pid"], unit["state"], unit["restarts"]), (new, "running", 0))
        # The new instance is the service now: its exit is a crash, restarted.
        os.kill(new, 9)
        self.wait_running("app", 2)
        self.assertEqual(self.ctl_json_status("app")["restarts"], 1)
        self.assertEqual(self.reports()[-1]["version"], "v2")

    def test_a_new_instance_that_is_never_ready_is_stopped_and_the_old_one_stays(self):
        self.service("app", self.exec_start("v1"), Type="notify")
        self.start()
        old = self.pid_of("app")
        self.service("app", self.exec_start("v2", "ready=never"), Type="notify",
                     StartTimeout="1s")
        r = self.ctl("upgrade", "app")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("not ready within StartTimeout", r.stderr)
        new = self.reports()[1]["pid"]
        wait_until(lambda: not pid_alive(new), what="the failed instance to be gone")
        self.assertTrue(pid_alive(old))
        unit = self.ctl_json_status("app")
        self.assertEqual((unit["pid"], unit["state"]), (old, "running"))
        # The old unit is back: a crash restarts v1.
        os.kill(old, 9)
        self.wait_running("app", 2)
        self.assertEqual(self.wait_reports(3)[2]["version"], "v1")

    def test_a_new_instance_that_dies_fails_the_upgrade(self):
        self.service("app", self.exec_start("v1"), Type="notify")
        self.start()
        old = self.pid_of("app")
        self.service("app", self.exec_start("v2", "exit=3"), Type="notify")
        r = self.ctl("upgrade", "app")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("exited (exit status 3) before it was ready", r.stderr)
        self.assertTrue(pid_alive(old))
        self.assertEqual(self.ctl_json_status("app")["restarts"], 0)

    def test_a_missing_binary_fails_the_upgrade(self):
        self.service("app", self.exec_start("v1"), Type="exec")
        self.start()
        old = self.pid_of("app")
        self.service("app", "/nonexistent/v2", Type="exec")
        r = self.ctl("upgrade", "app")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("cannot start /nonexistent/v2", r.stderr)
        self.assertTrue(pid_alive(old))

    def test_a_bad_unit_file_changes_nothing(self):
        self.service("app", self.exec_start("v1"), Type="notify")
        self.start()
        old = self.pid_of("app")
        self.service("app", self.exec_start("v2"), Type="bogus")
        r = self.ctl("upgrade", "app")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("app.service:", r.stderr)
        self.assertEqual(self.ctl_json_status("app")["pid"], old)
        self.assertEqual(len(self.reports()), 1)

    def test_upgrade_of_a_stopped_service_or_a_supervisor_fails(self):
        self.supervisor("root", ["app"])
        self.service("app", self.exec_start("v1"), Type="notify")
        self.start()
        self.pid_of("app")
        r = self.ctl("upgrade", "root")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("only services", r.stderr)
        self.assertEqual(self.ctl("stop", "app").returncode, 0)
        r = self.ctl("upgrade", "app")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("not running", r.stderr)

    def test_the_old_instance_dying_during_the_upgrade_fails_it(self):
        self.service("app", self.exec_start("v1"), Type="notify")
        self.start()
        old = self.pid_of("app")
        self.service("app", self.exec_start("v2", "ready=never"), Type="notify",
                     StartTimeout="30s")
        p = subprocess.Popen([ARBORCTL, "-r", self.run, "upgrade", "app"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: len(self.reports()) >= 2, what="the new instance")
            os.kill(old, 9)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("left the running state during the upgrade", err)
        # Restarted by the strategy, with the old unit (the upgrade failed).
        self.wait_running("app", 2)
        self.assertEqual(self.wait_reports(3)[2]["version"], "v1")

    def test_upgrade_under_a_mailbox_flood_loses_nothing(self):
        received = os.path.join(self.tmp, "received")
        self.service("sink", self.exec_start("v1", f"mailbox={received}"), Type="notify",
                     Mailbox="yes", MailboxCapacity=100000)
        self.start()
        old = self.pid_of("sink")
        path = os.path.join(self.run, "mailbox", "sink")
        total = 6000
        sent = []

        def sender():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            for i in range(total):
                s.sendto(f"m{i}".encode(), path)  # blocks when full: never lost
                sent.append(i)
                if i % 50 == 0:
                    time.sleep(0.002)
        t = threading.Thread(target=sender)
        t.start()
        try:
            wait_until(lambda: len(sent) > total // 4, what="the flood to be under way")
            self.service("sink", self.exec_start("v2", f"mailbox={received}"), Type="notify",
                         Mailbox="yes", MailboxCapacity=100000)
            r = self.ctl("upgrade", "sink")
            self.assertEqual(r.returncode, 0, r)
            self.assertLess(len(sent), total, "the upgrade happened during the flood")
        finally:
            t.join(60)

        def lines():
            with open(received) as f:
                return f.read().split()
        wait_until(lambda: len(lines()) >= total, what="every message to arrive")
        got = lines()
        self.assertEqual(sorted(got, key=lambda m: int(m[1:])), [f"m{i}" for i in range(total)])
        new = self.reports()[1]["pid"]
        self.assertEqual(self.running_pids("sink"), [old])
        self.assertFalse(pid_alive(old))
        self.assertEqual(self.ctl_json_status("sink")["pid"], new)


if __name__ == "__main__":
    unittest.main()
