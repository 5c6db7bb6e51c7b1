"""Mailboxes (SPEC section 4, supervisord/mailbox.h) end to end, with real
receivers that crash, are killed with SIGKILL at random, are stopped,
restarted by strategy and by reload, while real senders flood them.

The receiver (RECV_PY) is a small Python program run as the service: it
checks LISTEN_FDS / LISTEN_FDNAMES / LISTEN_PID, takes fd 3 as its mailbox
and appends one line per message to a log (a file, or stdout captured by
arbord) before it acknowledges the message:

    ack=plain   recv(), then log: exactly once for crashes it chooses itself
                (crash-every=N exits right after logging the N-th message)
                and for SIGTERM, which it handles between two messages
                (so under either ack, a stop loses and repeats nothing);
    ack=peek    recv(MSG_PEEK), log, then recv() to consume: at least once
                even under SIGKILL at any instruction. The only duplicate a
                kill can leave is the message it logged but did not consume,
                which must then be the very next line logged, by the next
                instance. Tests assert exactly that, and zero loss.
    delay=S     S seconds of "work" per message, so that arbord has a
                backlog to forward and a killed instance leaves some unread.

Messages are "SENDER:SEQ" (padded to a size when a test wants), so every
check is per sender: nothing lost, nothing invented, order kept, and
(under ack=plain) nothing twice.

Every wait is a poll with a deadline; every process started (arbord, the
receivers) is recorded by pid and killed at the end by the harness; forked
senders are waited for; sender and killer threads are bounded and stopped.
"""

import errno
import grp
import json
import os
import pwd
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest
import zlib

import control_client as cc
from harness import ArbordTest, pid_alive, proc_environ, wait_until

ARBORCTL = os.environ.get("ARBORCTL", "arborctl")
PY = sys.executable
SLEEPER = "/bin/sleep 1000"
OTHER_USER = f"arbmbt{os.getpid() % 100000}"

RECV_PY = r'''
import fcntl, os, select, signal, socket, sys, time, zlib
# SIGTERM only sets a flag, seen between two messages: the loop waits with
# poll() and reads with MSG_DONTWAIT, so fd 3's own flags are left alone.
# Installed first: once "hello" is logged, SIGTERM never kills.
stop = False
def on_term(sig, frame):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v
pid = os.getpid()
if opts.get("log", "-") == "-":
    out = 1
else:
    out = os.open(opts["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
def say(text):
    os.write(out, (text + "\n").encode())  # one write(2): flushed, whole
def record(data):
    tag = data[:80].split(b" ", 1)[0].decode("ascii", "replace") or "-"
    say("%d %s %d %08x" % (pid, tag, len(data), zlib.crc32(data)))
env = os.environ
flags = fcntl.fcntl(3, fcntl.F_GETFL)
s = socket.socket(fileno=3)
say("hello %d listen_pid=%s listen_fds=%s names=%s family=%d type=%d nonblock=%d uid=%d"
    % (pid, env.get("LISTEN_PID"), env.get("LISTEN_FDS"), env.get("LISTEN_FDNAMES"),
       s.family, s.type, 1 if flags & os.O_NONBLOCK else 0, os.getuid()))
if "set-nonblock" in opts:
    fcntl.fcntl(3, fcntl.F_SETFL, flags | os.O_NONBLOCK)
bufsize = int(opts.get("bufsize") or 1 << 17)
if "plain-blocking" in opts:
    # What the simplest receiver does: a blocking recv() on fd 3.
    try:
        record(s.recv(bufsize))
    except OSError as e:
        say("recv-error %d %s" % (pid, e.errno))
        sys.exit(1)
peek = opts.get("ack") == "peek"
every = int(opts.get("crash-every") or 0)
delay = float(opts.get("delay") or 0)  # work per message, in seconds
poller = select.poll()
poller.register(3, select.POLLIN)
n = 0
while not stop:
    if not poller.poll(50):
        continue
    if delay:
        time.sleep(delay)
    try:
        data = s.recv(bufsize, (socket.MSG_PEEK if peek else 0) | socket.MSG_DONTWAIT)
    except BlockingIOError:
        continue
    record(data)
    if peek:
        s.recv(bufsize, socket.MSG_DONTWAIT)
    n += 1
    if every and n % every == 0:
        os._exit(70)
sys.exit(0)
'''


def message(sender, seq, size=0):
    """SENDER:SEQ, padded to `size` bytes with a pattern of its own."""
    head = f"{sender}:{seq}".encode()
    if size <= len(head):
        return head
    pad = (head + b"-") * (size // (len(head) + 1) + 1)
    return head + b" " + pad[:size - len(head) - 1]


def kernel_qlen():
    with open("/proc/sys/net/unix/max_dgram_qlen") as f:
        return int(f.read())


def bound_inode(path):
    """The inode of the socket bound at `path`, from /proc/net/unix."""
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path:
                return int(parts[6])
    return None


class Rec:
    __slots__ = ("pid", "tag", "length", "crc")

    def __init__(self, pid, tag, length, crc):
        self.pid, self.tag, self.length, self.crc = pid, tag, length, crc

    @property
    def sender(self):
        return self.tag.rsplit(":", 1)[0]

    @property
    def seq(self):
        return int(self.tag.rsplit(":", 1)[1])

    def __repr__(self):
        return f"<{self.pid} {self.tag} {self.length}>"


REC_LINE = re.compile(r"^(\d+) (\S+) (\d+) ([0-9a-f]{8})$")


def parse_records(lines):
    recs, hellos = [], []
    for line in lines:
        if line.startswith("hello "):
            hellos.append(line)
            continue
        m = REC_LINE.match(line)
        if m:
            recs.append(Rec(int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)))
    return recs, hellos


class Sender(threading.Thread):
    """One sender: `count` messages to `path`, blocking (back-pressure waits),
    in order. `sent` holds the messages the kernel accepted, in order.
    `on_sent(seq)` runs after each (a test's hook: it may wait)."""

    def __init__(self, path, name, count, size=0, start_seq=0, on_sent=None):
        super().__init__(daemon=True)
        self.path, self.name, self.count, self.size = path, name, count, size
        self.start_seq = start_seq
        self.on_sent = on_sent
        self.sent = []
        self.error = None

    def run(self):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.settimeout(60)  # a blocked sender fails the test, never hangs it
            s.connect(self.path)
            for i in range(self.start_seq, self.start_seq + self.count):
                m = message(self.name, i, self.size)
                s.send(m)
                self.sent.append(m)
                if self.on_sent:
                    self.on_sent(i)
            s.close()
        except BaseException as e:  # reported by finish()
            self.error = e

    def finish(self, test, timeout=60):
        self.join(timeout)
        test.assertFalse(self.is_alive(), f"sender {self.name} still blocked after {timeout}s")
        test.assertIsNone(self.error, f"sender {self.name}: {self.error!r}")
        return self.sent


def send_as(uid, gid, path, data):
    """Send one datagram from a forked child running as uid/gid. Returns 0 or
    the errno the child got."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.settimeout(10)
            try:
                s.sendto(data, path)
                code = 0
            except OSError as e:
                code = e.errno or 254
        finally:
            try:
                os.write(w, str(code).encode())
            finally:
                os._exit(0)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            data = f.read()
    finally:
        os.waitpid(pid, 0)
    return int(data)


class MailboxTest(ArbordTest):
    def setUp(self):
        super().setUp()
        self.recv_py = os.path.join(self.tmp, "recv.py")
        with open(self.recv_py, "w") as f:
            f.write(RECV_PY)
        self.killed = []

    # ---- units and paths ----

    def receiver(self, name, log="-", **keys):
        """A receiver service; options for RECV_PY come as recv_opts."""
        opts = keys.pop("recv_opts", {})
        python = keys.pop("python", PY)
        args = [f"log={log}"] + [k if v is True else f"{k}={v}" for k, v in opts.items()]
        keys.setdefault("Mailbox", "yes")
        self.service(name, f"{python} {self.recv_py} {' '.join(args)}", **keys)

    def mailbox(self, name):
        return os.path.join(self.run, "mailbox", name)

    def logfile(self, name):
        return os.path.join(self.tmp, f"{name}.log")

    # ---- arborctl and status ----

    def ctl(self, *args, input=None, timeout=60):
        p = subprocess.run([ARBORCTL, "-r", self.run, *args], capture_output=True,
                           input=input, timeout=timeout,
                           stdin=None if input is not None else subprocess.DEVNULL)
        self.assertGreaterEqual(p.returncode, 0, f"arborctl {args} died of a signal")
        return p

    def ctl_ok(self, *args, **kw):
        p = self.ctl(*args, **kw)
        self.assertEqual(p.returncode, 0, f"arborctl {args}: {p.stdout!r} {p.stderr!r}")
        return p

    def unit_status(self, name):
        return cc.status_map(self.run, [name])[name]

    def mb_stats(self, name):
        f = self.unit_status(name)
        return {k[len("mailbox_"):]: f.int(k) for k in f.keys() if k.startswith("mailbox_")}

    def wait_queued(self, name, n, timeout=15):
        return wait_until(lambda: (s := self.mb_stats(name))["queued"] == n and s,
                          timeout, what=f"{name}: {n} queued (now {self.mb_stats(name)})")

    def reload(self):
        result, _, _ = cc.request(self.run, "reload")
        self.assertEqual((result.int("ok"), result.int("exit")), (1, 0), result)
        return result

    # ---- sending ----

    def send(self, name, data, block=True):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if block:
                s.settimeout(30)
            else:
                s.setblocking(False)
            s.sendto(data, self.mailbox(name))
        finally:
            s.close()

    def send_many(self, name, sender, seqs, size=0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.settimeout(30)
        s.connect(self.mailbox(name))
        sent = []
        for i in seqs:
            m = message(sender, i, size)
            s.send(m)
            sent.append(m)
        s.close()
        return sent

    def fill(self, name, cap, sender="a", start_seq=0):
        """Send non-blocking until EAGAIN while arbord holds `cap`
        messages (the mailbox is full for good, not just slow to read).
        Returns the messages accepted."""
        accepted = []
        seq = start_seq
        deadline = time.monotonic() + 15
        while True:
            self.assertLess(time.monotonic(), deadline, f"still accepting after {len(accepted)}")
            m = message(sender, seq)
            try:
                self.send(name, m, block=False)
                accepted.append(m)
                seq += 1
                continue
            except BlockingIOError:
                pass
            # EAGAIN: either arbord has not read the socket yet, or it is
            # full for good. Tell them apart by what arbord holds.
            if self.mb_stats(name)["queued"] < cap:
                continue
            # At capacity: arbord reads no more, so it stays full.
            try:
                self.send(name, m, block=False)
                accepted.append(m)
                seq += 1
            except BlockingIOError:
                return accepted

    # ---- what receivers logged ----

    def lines_of(self, name, log):
        """The receiver's lines: from its log file, or (log "-") from what
        arbord captured of its stdout, instance after instance in the
        order they were started."""
        if log != "-":
            try:
                with open(log) as f:
                    return f.read().splitlines()
            except FileNotFoundError:
                return []
        by_pid = {}
        pat = re.compile(rf"^{re.escape(name)}\[(\d+)\]: (.*)$")
        for line in self.log().splitlines():
            m = pat.match(line)
            if m:
                by_pid.setdefault(int(m.group(1)), []).append(m.group(2))
        out = []
        for pid in self.starting_pids(name):
            out += by_pid.pop(pid, [])
        for rest in by_pid.values():
            out += rest
        return out

    def starting_pids(self, name):
        return [int(m) for m in re.findall(rf"^arbord: {re.escape(name)}: starting pid (\d+)",
                                           self.log(), re.M)]

    def records(self, name, log):
        return parse_records(self.lines_of(name, log))

    def hello_of(self, name, log, pid):
        """The instance's hello line, once it has written it (and so has
        its SIGTERM handler in place)."""
        return wait_until(lambda: [h for h in self.records(name, log)[1]
                                   if h.startswith(f"hello {pid} ")],
                          what=f"the hello of {pid}")[0]

    def wait_received(self, name, log, sent, timeout=30):
        """Wait until every message in `sent` has been logged; the records."""
        want = {m.split(b" ", 1)[0].decode() for m in sent}

        def done():
            recs, _ = self.records(name, log)
            missing = want - {r.tag for r in recs}
            return recs if not missing else None
        try:
            return wait_until(done, timeout, interval=0.05, what=f"{len(want)} messages")
        except AssertionError:
            recs, _ = self.records(name, log)
            missing = sorted(want - {r.tag for r in recs})
            raise AssertionError(f"{len(missing)} of {len(want)} messages never arrived "
                                 f"(first: {missing[:10]}); stats {self.mb_stats(name)}")

    def check_delivery(self, recs, sent, exactly_once=True):
        """Every sent message logged whole; nothing unknown; per sender in
        order within each instance and over the whole log, across
        instances (however many senders). exactly_once: no duplicate.
        Otherwise a duplicate is allowed only as a killed instance's last
        line repeated as the next instance's first. Returns the number of
        duplicates."""
        expect = {}
        for m in sent:
            expect[m.split(b" ", 1)[0].decode()] = (len(m), f"{zlib.crc32(m):08x}")
        for r in recs:
            self.assertIn(r.tag, expect, f"a message nobody sent: {r}")
            self.assertEqual((r.length, r.crc), expect[r.tag], f"{r.tag} arrived damaged")
        missing = set(expect) - {r.tag for r in recs}
        self.assertFalse(missing, f"lost: {sorted(missing)[:20]} ({len(missing)} in all)")
        dups = 0
        seen = set()
        kept = []
        for i, r in enumerate(recs):
            if r.tag in seen:
                dups += 1
                self.assertFalse(exactly_once, f"{r.tag} received twice "
                                               f"(first by {[x.pid for x in recs if x.tag == r.tag]})")
                prev = recs[i - 1]
                self.assertTrue(prev.tag == r.tag and prev.pid != r.pid,
                                f"{r.tag} received again by {r.pid}, but not as the redelivery "
                                f"of what the previous instance logged last ({prev})")
                continue
            seen.add(r.tag)
            kept.append(r)
        # Per sender, within each instance.
        last = {}
        for r in kept:
            key = (r.pid, r.sender)
            self.assertGreater(r.seq, last.get(key, -1),
                               f"{r.sender} out of order within instance {r.pid}: "
                               f"{r.seq} after {last.get(key)}")
            last[key] = r.seq
        # Per sender, across instances.
        last = {}
        for r in kept:
            self.assertGreater(r.seq, last.get(r.sender, (-1, 0))[0],
                               f"{r.sender} out of order across instances: {r.seq} "
                               f"(pid {r.pid}) after {last.get(r.sender)}")
            last[r.sender] = (r.seq, r.pid)
        return dups

    # ---- chaos ----

    def start_killer(self, name, log, interval=(0.02, 0.12), seed=None):
        """Kill -9 name's current instance at random moments until stopped:
        a random time after it has logged its first message (so that every
        instance gets something done, however slowly the machine starts
        them). Returns (stop_event, thread); killed pids go to self.killed."""
        stop = threading.Event()
        rng = random.Random(seed)
        struck = set()

        def victim():
            pids = self.running_pids(name)
            if not pids or pids[-1] in struck or not pid_alive(pids[-1]):
                return None
            prefix = f"{pids[-1]} "
            if not any(l.startswith(prefix) for l in self.lines_of(name, log)):
                return None
            return pids[-1]

        def run():
            while not stop.is_set():
                pid = victim()
                if pid is None:
                    stop.wait(0.01)
                    continue
                if stop.wait(rng.uniform(*interval)):
                    return
                if b"ARBOR_UNIT" not in b"".join(proc_environ(pid).keys()):
                    continue  # gone, and the pid reused
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
                except ProcessLookupError:
                    pass
                struck.add(pid)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.addCleanup(t.join)
        self.addCleanup(stop.set)
        return stop, t


# ---------------------------------------------------------------------------

class Basics(MailboxTest):
    def test_socket_path_mode_owner_and_the_instance_environment(self):
        python = "/usr/bin/python3"  # nobody may not reach ours (a pyenv under /root)
        if not os.access(python, os.X_OK):
            self.skipTest(f"no {python} for the service's user to run")
        os.chmod(self.tmp, 0o755)  # nobody must read the receiver's script
        log = self.logfile("r")
        nobody = pwd.getpwnam("nobody")
        open(log, "w").close()
        os.chown(log, nobody.pw_uid, nobody.pw_gid)
        self.receiver("r", log, User="nobody", python=python)
        self.start()
        pid = self.wait_running("r")
        path = self.mailbox("r")
        st = os.lstat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode), oct(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, nobody.pw_uid, "the socket must belong to User=")
        # What the instance was given: LISTEN_* for itself, fd 3 a datagram socket.
        hello = wait_until(lambda: self.records("r", log)[1], what="the receiver's hello")[0]
        self.assertEqual(hello, f"hello {pid} listen_pid={pid} listen_fds=1 names=mailbox "
                                f"family={int(socket.AF_UNIX)} type={int(socket.SOCK_DGRAM)} "
                                f"nonblock=0 uid={nobody.pw_uid}")
        env = proc_environ(pid)
        self.assertEqual(env.get(b"LISTEN_FDS"), b"1")
        self.assertEqual(env.get(b"LISTEN_FDNAMES"), b"mailbox")
        self.assertEqual(env.get(b"LISTEN_PID"), str(pid).encode())
        # Nothing was waiting, so fd 3 is the mailbox socket itself (direct).
        self.assertEqual(self.mb_stats("r")["direct"], 1)
        self.assertEqual(os.readlink(f"/proc/{pid}/fd/3"), f"socket:[{bound_inode(path)}]")
        # And it works: root (and the owner) may send.
        sent = self.send_many("r", "a", range(5))
        self.check_delivery(self.wait_received("r", log, sent), sent)
        self.assertEqual(self.stop(), 0)

    def test_no_mailbox_without_mailbox_yes(self):
        self.service("plain", SLEEPER)
        self.receiver("r")
        self.start()
        pid = self.wait_running("plain")
        self.wait_running("r")
        self.assertFalse(os.path.exists(self.mailbox("plain")))
        self.assertNotIn(b"LISTEN_FDS", proc_environ(pid))
        self.assertNotIn("mailbox_queued", self.unit_status("plain"))
        p = self.ctl("mailbox", "plain")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"no mailbox", p.stderr + p.stdout)
        self.assertEqual(self.stop(), 0)

    def test_several_concurrent_senders_keep_their_order(self):
        log = self.logfile("r")
        self.receiver("r", log)
        self.start()
        self.wait_running("r")
        senders = [Sender(self.mailbox("r"), f"s{i}", 600) for i in range(6)]
        for s in senders:
            s.start()
        sent = [m for s in senders for m in s.finish(self)]
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent)
        self.assertEqual(len(recs), 6 * 600)
        # They really were concurrent: the senders interleave in the log.
        switches = sum(1 for a, b in zip(recs, recs[1:]) if a.sender != b.sender)
        self.assertGreater(switches, 6)
        self.assertEqual(self.stop(), 0)

    def test_64_kib_messages_arrive_whole_direct_and_forwarded(self):
        log = self.logfile("r")
        self.receiver("r", log)
        self.start()
        self.wait_running("r")
        big = 64 * 1024
        # Direct: the instance reads the socket itself.
        sent = self.send_many("r", "direct", range(20), size=big)
        self.wait_received("r", log, sent)
        # Kept by arbord while the receiver is stopped, then forwarded.
        self.ctl_ok("stop", "r")
        kept = self.send_many("r", "kept", range(20), size=big)
        self.wait_queued("r", 20)
        # arborctl send reads a whole 64 KiB message from stdin.
        via_ctl = message("ctl", 0, big)
        self.ctl_ok("send", "r", "-", input=via_ctl)
        self.wait_queued("r", 21)
        too_big = self.ctl("send", "r", "-", input=b"x" * (big + 1))
        self.assertEqual(too_big.returncode, 2, too_big)
        self.ctl_ok("start", "r")
        sent += kept + [via_ctl]
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent)
        self.assertTrue(all(r.length == big for r in recs))
        self.assertEqual(self.mb_stats("r")["forwarded"], 21)
        self.assertEqual(self.stop(), 0)

    # A datagram larger than SPEC's 64 KiB, which a sender may send after
    # raising its own SO_SNDBUF, is kept whole too.
    def test_a_datagram_over_256_kib_is_not_cut(self):
        size = 300 * 1024
        log = self.logfile("r")
        self.receiver("r", log, recv_opts={"bufsize": 1 << 20})
        self.start()
        self.wait_running("r")

        def send_big(sender):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 212992)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < size + 64:
                self.skipTest("this kernel does not let a sender send 300 KiB at once")
            s.settimeout(30)
            m = message(sender, 0, size)
            s.sendto(m, self.mailbox("r"))
            s.close()
            return [m]
        sent = send_big("direct")
        self.wait_received("r", log, sent)
        self.ctl_ok("stop", "r")
        kept = send_big("kept")
        self.wait_queued("r", 1)
        self.ctl_ok("start", "r")
        sent += kept
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent)
        self.assertEqual(self.stop(), 0)

    def test_empty_message_is_a_message(self):
        log = self.logfile("r")
        self.receiver("r", log)
        self.start()
        self.wait_running("r")
        self.ctl_ok("stop", "r")
        self.send("r", b"")
        self.send("r", b"after:0")
        self.wait_queued("r", 2)
        self.ctl_ok("start", "r")
        recs = wait_until(lambda: len(self.records("r", log)[0]) >= 2 and self.records("r", log)[0],
                          what="both messages")
        self.assertEqual([(r.tag, r.length) for r in recs], [("-", 0), ("after:0", 7)])
        self.assertEqual(self.stop(), 0)


class Crashes(MailboxTest):
    def tree(self, name, log, **opts):
        self.supervisor("root", [name], Intensity=1000000, Period="1s")
        self.receiver(name, log, recv_opts=opts)
        self.start()
        self.wait_running(name)

    def test_receiver_crashing_every_n_under_a_flood_gets_everything_once_in_order(self):
        # ack=plain: it logs, then exits; nothing it read is lost, and since
        # it crashes only between messages, nothing comes twice.
        log = self.logfile("r")
        self.tree("r", log, **{"crash-every": 37})
        s = Sender(self.mailbox("r"), "a", 3000)
        s.start()
        sent = s.finish(self)
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent, exactly_once=True)
        self.assertGreaterEqual(len(set(r.pid for r in recs)), 3000 // 37)
        st = self.mb_stats("r")
        self.assertEqual(st["queued"], 0)
        self.assertEqual(self.stop(), 0)

    def test_crash_every_n_plus_random_kill_9_logging_to_stdout_loses_nothing(self):
        # ack=peek, logging to stdout (arbord's log): SIGKILL anywhere may
        # repeat the one message logged but not consumed; nothing is lost.
        self.tree("r", "-", **{"crash-every": 100, "ack": "peek", "delay": 0.0003})
        stop, killer = self.start_killer("r", "-", interval=(0, 0.08), seed=4)
        s = Sender(self.mailbox("r"), "a", 3000)
        s.start()
        sent = s.finish(self)
        recs = self.wait_received("r", "-", sent)
        stop.set()
        killer.join()
        dups = self.check_delivery(recs, sent, exactly_once=False)
        self.assertLessEqual(dups, len(self.killed))
        self.assertGreater(len(self.killed), 0, "the killer never struck")
        self.assertTrue(self.log_lines(r"^arbord: r: failed \(exit status 70\)"),
                        "the receiver never crashed by itself")
        self.assertEqual(self.stop(), 0)

    def test_ten_thousand_messages_four_senders_crashes_and_random_kills(self):
        # Crashes every 150, kill -9 at random, and stop/start cycles
        # (arbord keeps what comes meanwhile and then forwards it, so the
        # forward path and reclaim are under fire too: a restart alone
        # would hand the next instance the socket itself).
        log = self.logfile("r")
        self.tree("r", log, **{"crash-every": 150, "ack": "peek", "delay": 0.0001})
        stop, killer = self.start_killer("r", log, interval=(0, 0.06), seed=10000)
        # The senders go in 20 rounds of 125 messages each; between two
        # rounds the receiver is stopped or started again, so every other
        # round is kept by arbord and forwarded to the next instance.
        done, go = threading.Barrier(5), threading.Barrier(5)
        self.addCleanup(go.abort)
        self.addCleanup(done.abort)

        def between_rounds(seq):
            if seq % 125 == 124:
                done.wait(timeout=60)
                go.wait(timeout=60)
        senders = [Sender(self.mailbox("r"), f"s{i}", 2500, on_sent=between_rounds)
                   for i in range(4)]
        for s in senders:
            s.start()
        restarts = 0
        for k in range(20):
            done.wait(timeout=60)
            if k % 2 == 0:
                # Not before the instances have worked through all so far.
                self.wait_received("r", log, [m for s in senders for m in s.sent])
                result, _, _ = cc.request(self.run, "stop", ["r"])
                self.assertEqual(result.int("exit"), 0, result)
            else:
                # A kill may land on the instance being started: the start
                # fails and the supervisor starts it again; either will do.
                cc.request(self.run, "start", ["r"])
                restarts += 1
            go.wait(timeout=60)
        sent = [m for s in senders for m in s.finish(self)]
        self.assertEqual(len(sent), 10000)
        recs = self.wait_received("r", log, sent, timeout=60)
        stop.set()
        killer.join()
        dups = self.check_delivery(recs, sent, exactly_once=False)
        self.assertLessEqual(dups, len(self.killed))
        instances = len(self.starting_pids("r"))
        self.assertGreater(instances, 20)
        self.assertGreater(len(self.killed), 3)
        self.assertTrue(self.log_lines(r"^arbord: r: failed \(exit status 70\)"),
                        "the receiver never crashed by itself")
        st = self.mb_stats("r")
        self.assertEqual(st["queued"], 0, st)
        self.assertGreater(st["forwarded"], 0, st)
        # Everything arbord took in, it passed on or still holds.
        self.assertEqual(st["kept"] + st["reclaimed"], st["forwarded"] + st["queued"], st)
        self.assertEqual(self.stop(), 0)

    def forwarding_instance(self, log, backlog, **opts):
        """r stopped, `backlog` messages kept, then started: the instance
        reads a socketpair arbord fills. Returns (pid, sent)."""
        self.supervisor("root", ["r"], Intensity=1000, Period="1s")
        self.receiver("r", log, recv_opts=opts)
        self.start()
        self.wait_running("r")
        self.ctl_ok("stop", "r")
        sent = self.send_many("r", "a", range(backlog))
        self.wait_queued("r", backlog)
        self.ctl_ok("start", "r")
        pid = self.wait_running("r", count=2)
        st = wait_until(lambda: (s := self.mb_stats("r"))["forwarded"] == backlog and s,
                        what="the backlog forwarded")
        self.assertEqual((st["direct"], st["queued"]), (0, 0), st)
        return pid, sent

    def test_what_a_killed_instance_left_unread_is_reclaimed_in_front(self):
        log = self.logfile("r")
        pid, sent = self.forwarding_instance(log, 600, ack="peek", delay=0.002)
        # Partway through: more messages arrive (behind the backlog), then
        # the instance is killed.
        wait_until(lambda: sum(r.pid == pid for r in self.records("r", log)[0]) >= 50,
                   what="the instance to get going")
        sent += self.send_many("r", "a", range(600, 700))
        # Sent is not yet forwarded: arbord moves the 100 into the
        # instance's socketpair as its loop gets to them. Killed before
        # that, the rest would be kept, not reclaimed, and the count below
        # would not hold.
        wait_until(lambda: self.mb_stats("r")["forwarded"] == 700,
                   what="the 100 new messages forwarded")
        os.kill(pid, signal.SIGKILL)
        self.killed.append(pid)
        new = self.wait_running("r", count=3)
        recs = self.wait_received("r", log, sent)
        dups = self.check_delivery(recs, sent, exactly_once=False)
        self.assertLessEqual(dups, 1)
        consumed = sum(r.pid == pid for r in recs) - dups
        st = self.mb_stats("r")
        self.assertGreater(st["reclaimed"], 0, st)
        self.assertEqual(st["reclaimed"], 700 - consumed, st)
        self.assertEqual((st["kept"], st["forwarded"], st["queued"]),
                         (700, 700 + st["reclaimed"], 0), st)
        self.assertEqual([r.seq for r in recs if r.pid == new][dups:],
                         list(range(consumed, 700)))
        self.assertEqual(self.stop(), 0)

    def test_what_a_stopped_instance_left_unread_waits_for_the_next(self):
        log = self.logfile("r")
        pid, sent = self.forwarding_instance(log, 600, delay=0.002)
        wait_until(lambda: sum(r.pid == pid for r in self.records("r", log)[0]) >= 50,
                   what="the instance to get going")
        self.ctl_ok("stop", "r")
        consumed = sum(r.pid == pid for r in self.records("r", log)[0])
        self.assertLess(consumed, 600)
        # What it left unread is held again, exactly, ahead of what comes now.
        self.wait_queued("r", 600 - consumed)
        sent += self.send_many("r", "a", range(600, 700))
        st = self.wait_queued("r", 700 - consumed)
        self.assertEqual(st["reclaimed"], 600 - consumed, st)
        self.ctl_ok("start", "r")
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent, exactly_once=True)
        self.assertEqual(self.stop(), 0)

    def test_rest_for_one_restart_of_a_sibling_loses_nothing(self):
        log = self.logfile("r")
        self.supervisor("root", ["sib", "r"], Strategy="rest-for-one",
                        Intensity=1000, Period="1s")
        self.service("sib", SLEEPER)
        self.receiver("r", log, recv_opts={"ack": "peek"})
        self.start()
        self.wait_running("sib")
        self.wait_running("r")
        kills = []

        def kill_sib(seq):
            # Every 600 messages, kill the sibling (once r is back from
            # the previous round) and go on sending at once, through r's
            # stop and restart.
            if seq % 600 != 599:
                return
            r = self.wait_running("r", count=len(kills) + 1)

            def busy():
                recs = self.records("r", log)[0]
                # It got something, or there was nothing left for it.
                return any(x.pid == r for x in recs) or len({x.tag for x in recs}) > seq
            wait_until(busy, what=f"r's instance {r} to receive something")
            pid = self.running_pids("sib")[-1]
            os.kill(pid, signal.SIGKILL)
            kills.append(pid)
        s = Sender(self.mailbox("r"), "a", 3000, on_sent=kill_sib)
        s.start()
        sent = s.finish(self)
        self.assertEqual(len(kills), 5)
        pids = [self.wait_running("r", count=i) for i in range(1, 7)]
        recs = self.wait_received("r", log, sent)
        # SIGTERM is handled between two messages: exactly once.
        self.check_delivery(recs, sent, exactly_once=True)
        self.assertEqual(self.starting_pids("r"), pids)
        self.assertGreaterEqual(len({r.pid for r in recs}), 2)
        self.assertEqual(self.stop(), 0)


class StopStart(MailboxTest):
    def test_messages_sent_during_stop_arrive_after_start_older_first(self):
        log = self.logfile("r")
        self.receiver("r", log)
        self.start()
        first = self.wait_running("r")
        sent = self.send_many("r", "a", range(0, 100))
        self.wait_received("r", log, sent)
        # A sender keeps going through the stop: halfway it waits for the
        # stop to be asked for, then sends the rest while it happens.
        stopping = threading.Event()
        s = Sender(self.mailbox("r"), "a", 2000, start_seq=100,
                   on_sent=lambda seq: seq == 1099 and stopping.wait(30))
        s.start()
        wait_until(lambda: len(s.sent) >= 1000, what="the sender halfway")
        stop = subprocess.Popen([ARBORCTL, "-r", self.run, "stop", "r"],
                                stdin=subprocess.DEVNULL)
        stopping.set()
        self.assertEqual(stop.wait(30), 0)
        self.assertFalse(pid_alive(first))
        sent += s.finish(self)
        # And some more once it is stopped.
        sent += self.send_many("r", "a", range(2100, 2200))
        # The first instance is gone: arbord holds exactly the rest.
        by_first = [r.seq for r in self.records("r", log)[0] if r.pid == first]
        held = len(sent) - len(by_first)
        self.assertGreaterEqual(held, 100)
        self.wait_queued("r", held)
        self.ctl_ok("start", "r")
        second = self.wait_running("r", count=2)
        sent += self.send_many("r", "a", range(2200, 2300))
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent, exactly_once=True)
        # What was kept during the stop went to the new instance, oldest
        # first, before anything sent after the start.
        by_second = [r.seq for r in recs if r.pid == second]
        self.assertEqual(by_first + by_second, list(range(2300)))
        self.assertEqual(self.mb_stats("r")["forwarded"], held + 100)
        self.assertEqual(self.stop(), 0)

    def test_queued_is_exactly_what_arbord_holds_and_totals_add_up(self):
        log = self.logfile("r")
        self.receiver("r", log)
        self.start()
        self.wait_running("r")
        st = self.mb_stats("r")
        self.assertEqual((st["queued"], st["direct"], st["capacity"]), (0, 1, 4096), st)
        self.ctl_ok("stop", "r")
        K = 137
        sent = self.send_many("r", "a", range(K))
        st = self.wait_queued("r", K)
        self.assertEqual((st["kept"], st["forwarded"], st["direct"]), (K, 0, 0), st)
        # It stays K: nothing more appears, nothing goes.
        for _ in range(3):
            self.assertEqual(self.mb_stats("r")["queued"], K)
        # arborctl mailbox and arborctl status say the same.
        out = self.ctl_ok("mailbox", "r").stdout.decode()
        self.assertEqual(out.splitlines()[0], f"r: {K} queued", out)
        doc = json.loads(self.ctl_ok("--json", "mailbox", "r").stdout)
        self.assertEqual((doc["unit"], doc["queued"]), ("r", K), doc)
        for key in ("kept", "forwarded", "reclaimed", "capacity"):
            if key in doc:  # arborctl mailbox --json may show every number
                self.assertEqual(doc[key], st[key], (key, doc))
        self.assertIn(f"mailbox {K}", self.ctl_ok("status", "r").stdout.decode())
        doc = json.loads(self.ctl_ok("--json", "status", "r").stdout)
        self.assertEqual([u["mailbox"]["queued"] for u in doc["units"] if u["name"] == "r"], [K])
        self.ctl_ok("start", "r")
        pid = self.wait_running("r", count=2)
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent)
        st = wait_until(lambda: (s := self.mb_stats("r"))["forwarded"] == K and s,
                        what="forwarded == K")
        self.assertEqual((st["queued"], st["kept"], st["forwarded"], st["reclaimed"],
                          st["direct"]), (0, K, K, 0, 0), st)
        # Forwarding: fd 3 is arbord's socketpair, not the socket at the path.
        fd3 = os.readlink(f"/proc/{pid}/fd/3")
        self.assertTrue(fd3.startswith("socket:["), fd3)
        self.assertNotEqual(fd3, f"socket:[{bound_inode(self.mailbox('r'))}]")
        # While it forwards, later messages still go through arbord, in order.
        more = self.send_many("r", "a", range(K, K + 50))
        recs = self.wait_received("r", log, sent + more)
        self.check_delivery(recs, sent + more)
        st = self.mb_stats("r")
        self.assertEqual(st["kept"], st["forwarded"])
        self.assertEqual(st["queued"], 0)
        self.assertEqual(self.stop(), 0)

    def test_capacity_gives_eagain_and_drops_nothing(self):
        cap = 20
        qlen = kernel_qlen()
        log = self.logfile("r")
        self.receiver("r", log, MailboxCapacity=cap)
        self.start()
        self.wait_running("r")
        self.ctl_ok("stop", "r")
        self.assertEqual(self.mb_stats("r")["capacity"], cap)
        accepted = self.fill("r", cap)
        seq = len(accepted)
        # capacity in arbord, the rest in the kernel's queue (max_dgram_qlen + 1).
        self.assertEqual(len(accepted), cap + qlen + 1, f"accepted {len(accepted)}")
        self.assertEqual(self.mb_stats("r")["queued"], cap)
        p = self.ctl("send", "--no-block", "r", "refused")
        self.assertEqual(p.returncode, 1, p)
        self.assertIn(b"full", p.stderr)
        # A blocking sender waits...
        late = Sender(self.mailbox("r"), "a", 5, start_seq=seq)
        late.start()
        late.join(0.3)
        self.assertTrue(late.is_alive(), "a blocking sender did not wait on a full mailbox")
        self.assertEqual(late.sent, [])
        # ... and gets through once the receiver runs.
        self.ctl_ok("start", "r")
        accepted += late.finish(self)
        recs = self.wait_received("r", log, accepted)
        self.check_delivery(recs, accepted, exactly_once=True)
        self.assertEqual([r.seq for r in recs], list(range(len(accepted))))
        self.assertEqual(self.stop(), 0)

    def test_a_paused_receiver_backs_senders_off_without_loss(self):
        # Running but not reading (SIGSTOP): arbord forwards what it holds
        # and keeps up to capacity; senders wait; nothing is lost.
        log = self.logfile("r")
        self.receiver("r", log, MailboxCapacity=50)
        self.start()
        pid = self.wait_running("r")
        self.ctl_ok("stop", "r")
        sent = self.send_many("r", "a", range(10))
        self.wait_queued("r", 10)
        self.ctl_ok("start", "r")
        pid = self.wait_running("r", count=2)
        sent += self.send_many("r", "a", range(10, 20))
        self.hello_of("r", log, pid)
        os.kill(pid, signal.SIGSTOP)
        try:
            # 4 KiB each: about 900 fill the socketpair's 4 MiB, then
            # arbord keeps 50, then the kernel queue fills and senders wait.
            s = Sender(self.mailbox("r"), "a", 2000, start_seq=20, size=4096)
            s.start()
            wait_until(lambda: self.mb_stats("r")["queued"] >= 50, what="arbord to fill up")
            s.join(0.2)
            self.assertTrue(s.is_alive())
        finally:
            os.kill(pid, signal.SIGCONT)
        sent += s.finish(self)
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent, exactly_once=True)
        self.assertEqual(self.stop(), 0)


class Reload(MailboxTest):
    def test_unchanged_unit_keeps_its_instance_and_its_messages(self):
        log = self.logfile("r")
        self.receiver("r", log)
        self.service("other", SLEEPER)
        self.start()
        pid = self.wait_running("r")
        ino = os.stat(self.mailbox("r")).st_ino
        # Messages waiting in the socket of a running but paused receiver.
        self.hello_of("r", log, pid)
        os.kill(pid, signal.SIGSTOP)
        try:
            sent = self.send_many("r", "a", range(8))
            self.service("other", "/bin/sleep 999")  # something else changes
            self.reload()
        finally:
            os.kill(pid, signal.SIGCONT)
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent)
        self.assertEqual({r.pid for r in recs}, {pid})
        self.assertEqual(self.running_pids("r"), [pid])
        self.assertEqual(os.stat(self.mailbox("r")).st_ino, ino)
        # And with messages held by arbord for a stopped receiver.
        self.ctl_ok("stop", "r")
        held = self.send_many("r", "a", range(8, 108))
        self.wait_queued("r", 100)
        self.reload()
        self.assertEqual(self.mb_stats("r")["queued"], 100)
        self.assertEqual(os.stat(self.mailbox("r")).st_ino, ino)
        self.ctl_ok("start", "r")
        recs = self.wait_received("r", log, sent + held)
        self.check_delivery(recs, sent + held)
        self.assertEqual(self.stop(), 0)

    def test_changed_unit_restarts_and_keeps_its_messages(self):
        log = self.logfile("r")
        self.receiver("r", log)
        self.start()
        pid = self.wait_running("r")
        ino = os.stat(self.mailbox("r")).st_ino
        self.hello_of("r", log, pid)
        os.kill(pid, signal.SIGSTOP)
        try:
            sent = self.send_many("r", "a", range(8))
            self.receiver("r", log, Environment="V=2")
            conn = cc.open_request(self.run, "reload")
            # arbord asks the old instance to stop; it will, once it runs.
            self.wait_log(r"^arbord: r: stopping \(SIGTERM")
        finally:
            os.kill(pid, signal.SIGCONT)
        with conn:
            result, _, _ = conn.read_reply()
        self.assertEqual(result.int("exit"), 0, result)
        new = self.wait_running("r", count=2)
        self.assertNotEqual(new, pid)
        sent += self.send_many("r", "a", range(8, 100))
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent)
        # The old instance handles SIGTERM before reading more than one.
        self.assertGreaterEqual(sum(1 for r in recs[:8] if r.pid == new), 7)
        self.assertEqual(os.stat(self.mailbox("r")).st_ino, ino)
        self.assertEqual(self.stop(), 0)

    def test_lower_capacity_by_reload_drops_nothing(self):
        log = self.logfile("r")
        self.receiver("r", log)
        self.start()
        self.wait_running("r")
        self.ctl_ok("stop", "r")
        sent = self.send_many("r", "a", range(100))
        self.wait_queued("r", 100)
        self.receiver("r", log, MailboxCapacity=20)
        self.reload()
        st = self.mb_stats("r")
        self.assertEqual((st["capacity"], st["queued"]), (20, 100), st)
        # Past capacity already: arbord takes no more; the kernel queue fills.
        sent += self.fill("r", 20, start_seq=100)
        self.assertEqual(len(sent), 100 + kernel_qlen() + 1)
        self.assertEqual(self.mb_stats("r")["queued"], 100)
        self.ctl_ok("start", "r")
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent)
        self.assertEqual(self.stop(), 0)

    def test_raised_capacity_by_reload_lets_waiting_senders_in(self):
        log = self.logfile("r")
        self.receiver("r", log, MailboxCapacity=20)
        self.start()
        self.wait_running("r")
        self.ctl_ok("stop", "r")
        sent = self.fill("r", 20)
        late = Sender(self.mailbox("r"), "a", 30, start_seq=len(sent))
        late.start()
        late.join(0.3)
        self.assertTrue(late.is_alive(), "a blocking sender did not wait on a full mailbox")
        self.receiver("r", log, MailboxCapacity=100)
        self.reload()
        sent += late.finish(self)
        st = self.wait_queued("r", len(sent))
        self.assertEqual(st["capacity"], 100)
        self.ctl_ok("start", "r")
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent)
        self.assertEqual(self.stop(), 0)

    def test_mailbox_no_drops_what_was_held_and_says_so(self):
        self.receiver("r")
        self.service("other", SLEEPER)
        self.start()
        self.wait_running("r")
        self.ctl_ok("stop", "r")
        self.send_many("r", "a", range(5))
        self.wait_queued("r", 5)
        self.service("r", SLEEPER)
        self.reload()
        self.assertFalse(os.path.lexists(self.mailbox("r")))
        self.wait_log(r"^arbord: r: mailbox removed with 5 messages unread")
        self.assertNotIn("mailbox_queued", self.unit_status("r"))
        self.assertEqual(self.stop(), 0)

    def test_removing_the_unit_removes_the_socket(self):
        self.receiver("r")
        self.receiver("other2")
        self.service("other", SLEEPER)
        self.start()
        self.wait_running("r")
        path = self.mailbox("r")
        self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
        os.unlink(os.path.join(self.units, "r.service"))
        self.reload()
        self.assertFalse(os.path.lexists(path))
        with self.assertRaises(FileNotFoundError):
            self.send("r", b"x", block=False)
        p = self.ctl("send", "r", "x")
        self.assertEqual(p.returncode, 3, p)
        # And arbord takes the others with it when it exits.
        self.assertTrue(os.path.exists(self.mailbox("other2")))
        self.assertEqual(self.stop(), 0)
        self.assertEqual(os.listdir(os.path.join(self.run, "mailbox")), [])

    def test_mailbox_yes_added_and_removed_by_reload(self):
        log = self.logfile("r")
        self.service("r", SLEEPER)
        self.service("other", SLEEPER)
        self.start()
        self.wait_running("r")
        self.assertFalse(os.path.exists(self.mailbox("r")))
        self.receiver("r", log)
        self.reload()
        new = self.wait_running("r", count=2)
        sent = self.send_many("r", "a", range(10))
        recs = self.wait_received("r", log, sent)
        self.check_delivery(recs, sent)
        self.assertEqual({r.pid for r in recs}, {new})
        self.service("r", SLEEPER)
        self.reload()
        self.assertFalse(os.path.lexists(self.mailbox("r")))
        self.assertEqual(self.stop(), 0)


class Permissions(MailboxTest):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root to create a user and send as it")
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                            "--shell", "/usr/sbin/nologin", OTHER_USER],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise unittest.SkipTest(f"useradd: {r.stderr.strip()}")
        pw = pwd.getpwnam(OTHER_USER)
        cls.uid, cls.gid = pw.pw_uid, pw.pw_gid

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["userdel", OTHER_USER], capture_output=True)
        try:
            grp.getgrnam(OTHER_USER)
            subprocess.run(["groupdel", OTHER_USER], capture_output=True)
        except KeyError:
            pass

    def setUp(self):
        super().setUp()
        # Let the other user reach RUNTIME/mailbox: only the socket's own
        # mode may decide.
        os.chmod(self.tmp, 0o711)

    def test_another_uid_is_refused_then_allowed_by_mode_0666(self):
        log = self.logfile("r")
        self.receiver("r", log)
        self.start()
        self.wait_running("r")
        path = self.mailbox("r")
        self.assertEqual(send_as(self.uid, self.gid, path, b"other:0"), errno.EACCES)
        ino = os.stat(path).st_ino
        self.receiver("r", log, MailboxMode="0666")
        self.reload()
        self.wait_running("r", count=2)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o666)
        self.assertEqual(os.stat(path).st_ino, ino)
        self.assertEqual(send_as(self.uid, self.gid, path, b"other:1"), 0)
        recs = self.wait_received("r", log, [b"other:1"])
        self.assertEqual([r.tag for r in recs], ["other:1"])
        self.assertEqual(self.stop(), 0)

    def test_another_uid_is_allowed_by_mailbox_group(self):
        log = self.logfile("r")
        self.receiver("r", log)
        self.start()
        self.wait_running("r")
        path = self.mailbox("r")
        self.assertEqual(send_as(self.uid, self.gid, path, b"other:0"), errno.EACCES)
        self.receiver("r", log, MailboxGroup=OTHER_USER, MailboxMode="0660")
        self.reload()
        self.wait_running("r", count=2)
        st = os.stat(path)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid), (0o660, self.gid))
        self.assertEqual(send_as(self.uid, self.gid, path, b"other:1"), 0)
        # Someone neither owner nor in the group is still refused.
        nobody = pwd.getpwnam("nobody")
        self.assertEqual(send_as(nobody.pw_uid, nobody.pw_gid, path, b"nobody:0"), errno.EACCES)
        recs = self.wait_received("r", log, [b"other:1"])
        self.assertEqual([r.tag for r in recs], ["other:1"])
        self.assertEqual(self.stop(), 0)


class Handover(MailboxTest):
    """fd 3 is blocking in every instance (mailbox.c opens the socket
    blocking because "an instance may be handed this very socket and
    expects a plain recv() to wait"), whatever an earlier instance did.

    fd 3 is the same open file description as arbord's own socket (direct)
    or as its kept socketpair end (forward), so O_NONBLOCK set by one
    instance would reach the next, whose plain blocking recv() would then
    fail with EAGAIN at once, again and again: a crash loop caused by an
    earlier, different program. (Found failing at 732e670; arbord clears
    O_NONBLOCK at every handover since e5e3e3e.)
    """

    def test_direct_fd_3_is_blocking_after_an_instance_made_it_non_blocking(self):
        log = self.logfile("r")
        self.receiver("r", log, recv_opts={"set-nonblock": True})
        self.start()
        first = self.wait_running("r")
        self.assertIn("nonblock=0", self.hello_of("r", log, first))
        # The next version does a plain blocking recv().
        self.receiver("r", log, recv_opts={"plain-blocking": True}, Environment="V=2")
        self.reload()
        second = self.wait_running("r", count=2)
        hello = self.hello_of("r", log, second)
        self.assertIn("nonblock=0", hello)
        sent = self.send_many("r", "a", range(1))
        recs = self.wait_received("r", log, sent)
        self.assertEqual([r.tag for r in recs], ["a:0"])
        self.assertEqual(self.stop(), 0)

    def test_forwarded_fd_3_is_blocking_after_an_instance_made_it_non_blocking(self):
        log = self.logfile("r")
        self.receiver("r", log, recv_opts={"set-nonblock": True})
        self.start()
        self.wait_running("r")
        sent = []
        for i in (2, 3):
            # Something held, so the next instance reads arbord's socketpair
            # (the same one each time).
            self.ctl_ok("stop", "r")
            sent += self.send_many("r", "a", range(i, i + 1))
            self.wait_queued("r", 1)
            self.ctl_ok("start", "r")
            pid = self.wait_running("r", count=i)
            self.assertEqual(self.mb_stats("r")["direct"], 0)
            self.wait_received("r", log, sent)
            self.assertIn("nonblock=0", self.hello_of("r", log, pid), f"instance {i}")
        self.assertEqual(self.stop(), 0)


if __name__ == "__main__":
    unittest.main()
