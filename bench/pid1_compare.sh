#!/bin/sh
# pid1_compare.sh: tini, dumb-init and arbord side by side as PID 1 of a
# fresh PID namespace (`unshare --pid --fork --mount-proc INIT ...`), on the
# same scenarios; prints a Markdown table (docs/pid1.md has one, with the
# command that made it).
#
#   bench/pid1_compare.sh            # builds arbord in a temporary directory
#   ARBORD=/path/to/arbord bench/pid1_compare.sh
#
# Needs root (for unshare --pid) and installs the Debian packages tini and
# dumb-init if they are missing. Every process it starts is ended by pid:
# SIGKILL to the namespace's PID 1 takes the whole namespace with it.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "pid1_compare.sh: needs root (unshare --pid)" >&2
    exit 1
fi
missing=""
for p in tini dumb-init python3 util-linux; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    # shellcheck disable=SC2086 # one word per package
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
fi

if [ -z "${ARBORD:-}" ]; then
    build=${TMPDIR:-/tmp}/arbor-pid1-bench-build
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j2 --target arbord >/dev/null
    ARBORD=$build/arbord
fi
export ARBORD

versions=$(dpkg-query -W -f '${Package} ${Version}; ' tini dumb-init)
echo "<!-- ${versions}$("$ARBORD" --version); Linux $(uname -r); $(unshare --version) -->"

exec python3 - <<'EOF'
import ctypes, os, select, shutil, signal, struct, subprocess, sys, tempfile, threading, time

ARBORD = os.environ["ARBORD"]
PY = sys.executable
INITS = ["tini", "dumb-init", "arbord"]
N_ORPHANS = 200

# ---- the children (Python, written to a temporary directory) ----

CHILD = r'''
import os, signal, sys, time
mode, d = sys.argv[1], sys.argv[2]
def say(name, text=""):
    with open(f"{d}/{name}.tmp", "w") as f:
        f.write(text)
    os.rename(f"{d}/{name}.tmp", f"{d}/{name}")
def on_term(signum, frame):
    say("got-term", "TERM")
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
if mode == "orphans":
    n = int(sys.argv[3])
    fd = os.open(f"{d}/orphans", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            if os.fork() == 0:
                deadline = time.monotonic() + 10
                while os.getppid() != 1 and time.monotonic() < deadline:
                    time.sleep(0.001)
                os.write(fd, b"1")
                os._exit(0)
            os._exit(0)
        os.waitpid(pid, 0)
elif mode == "exit":
    say("ready", str(os.getpid()))
    while not os.path.exists(f"{d}/go"):
        time.sleep(0.005)
    sys.exit(int(sys.argv[3]))
elif mode == "background":
    # A grandchild left running in the background (same group, as `cmd &`
    # in a script); it holds WITNESS open and notes a SIGTERM.
    if os.fork() == 0:
        fd = os.open(sys.argv[3], os.O_WRONLY | os.O_APPEND)
        def grandchild_term(signum, frame):
            say("grandchild-term", "TERM")
            os._exit(0)
        signal.signal(signal.SIGTERM, grandchild_term)
        say("grandchild", str(os.getpid()))
        while True:
            signal.pause()
    while not os.path.exists(f"{d}/grandchild"):
        time.sleep(0.005)
    say("ready", str(os.getpid()))
    while not os.path.exists(f"{d}/go"):
        time.sleep(0.005)
    sys.exit(0)
say("ready", str(os.getpid()))
while True:
    signal.pause()
'''

# ---- /proc ----

def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()

def nspids(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(p) for p in line.split()[1:]]
    except OSError:
        pass
    return []

def pid_ns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None

def children(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out

def wait_until(pred, timeout, interval=0.005):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


class CloseWatch:
    """inotify IN_CLOSE_WRITE: which witness file was closed first."""
    def __init__(self, paths):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(0o2000000)
        self.names = {}
        for path, name in paths.items():
            open(path, "a").close()
            self.names[libc.inotify_add_watch(self.fd, path.encode(), 0x8)] = name
        self.seen = []

    def read(self, count, timeout):
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            if not select.select([self.fd], [], [], max(0, deadline - time.monotonic()))[0]:
                break
            data = os.read(self.fd, 65536)
            while data:
                wd, _m, _c, size = struct.unpack_from("iIII", data)
                self.seen.append(self.names.get(wd))
                data = data[16 + size:]
        os.close(self.fd)
        return self.seen


class Run:
    """One init as PID 1 of a new PID namespace, with one main child."""

    def __init__(self, init, mode, *args, arbord_units=None, hold=None):
        self.dir = tempfile.mkdtemp(prefix=f"pid1-{init}-")
        self.init = init
        script = os.path.join(self.dir, "child.py")
        with open(script, "w") as f:
            f.write(CHILD)
        child = [PY, script, mode, self.dir, *map(str, args)]
        if hold:
            # PID 1 holds `hold` open (fd 9) until it exits; its child must not.
            child = ["/bin/sh", "-c", 'exec 9>&- && exec "$@"', "sh", *child]
        if init == "tini":
            cmd, exe = ["tini", "--", *child], shutil.which("tini")
        elif init == "dumb-init":
            cmd, exe = ["dumb-init", *child], shutil.which("dumb-init")
        else:
            units = os.path.join(self.dir, "units")
            os.mkdir(units)
            quoted = (c if " " not in c else f"'{c}'" for c in child)
            main = "[Service]\nExecStart=" + " ".join(quoted) + "\n"
            root = None
            if arbord_units == "significant":
                # What tini and dumb-init do for their one child: its end is
                # the end (and its status arbord's).
                main += "Restart=temporary\nSignificant=yes\n"
                root = "[Supervisor]\nChildren=main\nAutoShutdown=any-significant\n"
            with open(os.path.join(units, "main.service"), "w") as f:
                f.write(main)
            if root:
                with open(os.path.join(units, "root.supervisor"), "w") as f:
                    f.write(root)
            cmd = [ARBORD, "-u", units, "-r", os.path.join(self.dir, "run")]
            exe = os.path.realpath(ARBORD)
        wrapper = ["/bin/sh", "-c", 'exec 9>>"$0" && exec "$@"', hold] if hold else []
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", *wrapper, *cmd],
            stdout=self.log, stderr=subprocess.STDOUT)
        exe = os.path.realpath(exe)

        def pid1():
            for c in children(self.unshare.pid):
                try:
                    if os.readlink(f"/proc/{c}/exe") == exe:
                        return c
                except OSError:
                    pass
            return None
        self.pid1 = wait_until(pid1, 10)
        if not self.pid1:
            raise SystemExit(f"{init} did not start:\n{read(self.log.name)}")
        self.ns = pid_ns(self.pid1)

    def host_pid(self, nspid):
        for e in os.listdir("/proc"):
            if e.isdigit() and nspids(int(e))[-1:] == [nspid] and len(nspids(int(e))) == 2 \
                    and pid_ns(int(e)) == self.ns:
                return int(e)
        return None

    def child(self, name="ready", timeout=10):
        """Host pid of the child that wrote `name`, once it has."""
        text = wait_until(lambda: read(os.path.join(self.dir, name)), timeout)
        return self.host_pid(int(text)) if text else None

    def ns_processes(self):
        return [int(e) for e in os.listdir("/proc")
                if e.isdigit() and len(nspids(int(e))) == 2 and pid_ns(int(e)) == self.ns]

    def zombies(self):
        out = 0
        for p in self.ns_processes():
            try:
                out += stat(p)[0] == "Z"
            except (OSError, IndexError):
                pass
        return out

    def exited(self, timeout):
        try:
            return self.unshare.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def file(self, name):
        return os.path.exists(os.path.join(self.dir, name))

    def go(self):
        open(os.path.join(self.dir, "go"), "w").close()

    def end(self):
        # arbord is stopped cleanly (it removes its cgroup); the others, and
        # arbord if that fails, by SIGKILL to PID 1: the kernel then kills
        # the whole namespace.
        if self.init == "arbord" and self.unshare.poll() is None:
            os.kill(self.pid1, signal.SIGTERM)
            self.exited(10)
        if self.unshare.poll() is None:
            try:
                os.kill(self.pid1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.unshare.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.unshare.kill()
                self.unshare.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def status(code):
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return str(code)

# ---- the scenarios: each returns one cell ----

def orphans(init):
    r = Run(init, "orphans", N_ORPHANS)
    try:
        path = os.path.join(r.dir, "orphans")
        done = wait_until(lambda: os.path.exists(path) and os.path.getsize(path) >= N_ORPHANS, 30)
        if not done:
            return "orphans never all made"
        time.sleep(2)  # the scenario: what is left after 2 s
        return f"{r.zombies()} zombies"
    finally:
        r.end()

def term(init):
    r = Run(init, "sleep")
    try:
        if not r.child():
            return "child never ready"
        began = time.monotonic()
        os.kill(r.pid1, signal.SIGTERM)
        code = r.exited(10)
        took = (time.monotonic() - began) * 1000
        fwd = "yes" if r.file("got-term") else "no"
        return f"forwarded: {fwd}; exit {status(code)} after {took:.0f} ms"
    finally:
        r.end()

def exit3(init):
    r = Run(init, "exit", 3, arbord_units="significant")
    try:
        if not r.child():
            return "child never ready"
        r.go()
        return status(r.exited(10))
    finally:
        r.end()

def sigkill(init):
    r = Run(init, "sleep", arbord_units="significant")
    try:
        child = r.child()
        if not child:
            return "child never ready"
        os.kill(child, signal.SIGKILL)
        return status(r.exited(10))
    finally:
        r.end()

def crash(init):
    r = Run(init, "sleep")
    try:
        first = r.child()
        if not first:
            return "child never ready"
        os.remove(os.path.join(r.dir, "ready"))
        began = time.monotonic()
        os.kill(first, signal.SIGSEGV)
        again = wait_until(lambda: r.unshare.poll() is not None or r.file("ready"), 5)
        if r.unshare.poll() is not None:
            return f"no: PID 1 exits {status(r.unshare.returncode)}"
        if again:
            return f"yes, after {(time.monotonic() - began) * 1000:.0f} ms"
        return "no; PID 1 goes on without it"
    finally:
        r.end()

class SignalTrace:
    """ptrace(PTRACE_SEIZE) a process: the signals it is sent, and its end.
    Each signal is passed on at once (PTRACE_CONT with it)."""
    def __init__(self, pid):
        self.pid, self.signals, self.end, self.ok = pid, [], None, None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def run(self):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self.ok = libc.ptrace(0x4206, self.pid, None, None) == 0  # PTRACE_SEIZE
        self.ready.set()
        while self.ok:
            try:
                _, st = os.waitpid(self.pid, 0x40000000)  # __WALL
            except ChildProcessError:
                return
            if os.WIFSTOPPED(st):
                sig = os.WSTOPSIG(st)
                self.signals.append(signal.Signals(sig).name)
                libc.ptrace(7, self.pid, None, ctypes.c_void_p(sig))  # PTRACE_CONT
            else:
                self.end = (f"killed by {signal.Signals(os.WTERMSIG(st)).name}"
                            if os.WIFSIGNALED(st) else f"exit {os.WEXITSTATUS(st)}")
                return

def background(init):
    witness_dir = tempfile.mkdtemp(prefix="pid1-witness-")
    grandchild_file = os.path.join(witness_dir, "grandchild")
    pid1_file = os.path.join(witness_dir, "pid1")
    watch = CloseWatch({grandchild_file: "grandchild", pid1_file: "pid1"})
    r = Run(init, "background", grandchild_file, arbord_units="significant", hold=pid1_file)
    try:
        if not r.child():
            return "child never ready"
        trace = SignalTrace(r.child("grandchild"))
        began = time.monotonic()
        r.go()
        code = r.exited(3)
        took = (time.monotonic() - began) * 1000
        if code is None:
            return "waits for it (PID 1 still there after 3 s)"
        first = watch.read(2, 5)[:1]
        trace.thread.join(5)
        if not trace.ok:
            got = "?"
        else:
            got = " + ".join(trace.signals) + " delivered" if trace.signals else "no signal delivered"
            got += f", {trace.end or '?'}"
        if first == ["grandchild"]:
            return f"PID 1 ends it, then exits ({got}); {took:.0f} ms, exit {status(code)}"
        return (f"PID 1 exits at once, the kernel ends it ({got}); "
                f"{took:.0f} ms, exit {status(code)}")
    finally:
        r.end()
        shutil.rmtree(witness_dir, ignore_errors=True)

def tstp(init):
    r = Run(init, "sleep")
    try:
        child = r.child()
        if not child:
            return "child never ready"
        os.kill(r.pid1, signal.SIGTSTP)
        time.sleep(1)  # the scenario: what state things are in a second later
        states = {"T": "stopped", "t": "stopped"}
        p1 = states.get(stat(r.pid1)[0], "running")
        ch = states.get(stat(child)[0], "running")
        return f"PID 1 {p1}, child {ch}"
    finally:
        r.end()

ROWS = [
    (f"(a) {N_ORPHANS} orphans re-parented to PID 1: zombies after 2 s", orphans),
    ("(b) SIGTERM to PID 1, child handles TERM: forwarded? exit after", term),
    ("(c) child exits 3: PID 1's exit status", exit3),
    ("(c) child killed by SIGKILL: PID 1's exit status", sigkill),
    ("(d) child crashes (SIGSEGV): restarted?", crash),
    ("(e) background grandchild still running when the main child exits 0", background),
    ("(f) SIGTSTP to PID 1, a second later", tstp),
]

print()
print("| scenario | " + " | ".join(INITS) + " |")
print("|---|" + "---|" * len(INITS))
for title, scenario in ROWS:
    print(f"| {title} | " + " | ".join(scenario(i) for i in INITS) + " |", flush=True)
EOF
