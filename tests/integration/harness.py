"""Integration-test harness: runs the real arbord on temporary unit and
runtime directories and watches what it does through its log and /proc.

Every wait is a poll with a deadline, never a bare sleep. Every process a
test starts is recorded by pid and killed in tearDown if it is still there:
arbord itself, and every service pid arbord logged.
"""

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

ARBORD = os.environ.get("ARBORD", "arbord")
NOTIFY_CLIENT = os.environ.get("NOTIFY_CLIENT", "notify_client")
DEFAULT_TIMEOUT = float(os.environ.get("ARBOR_TEST_TIMEOUT", "15"))

# Opt-in (tests/valgrind.sh): ARBOR_VALGRIND=1 runs arbord under valgrind's
# memcheck, and a test fails if valgrind reported an error or a definite or
# indirect leak when arbord exited. Only the main process is checked: a
# child between fork and exec is silent. ARBOR_VALGRIND_REPORT=FILE appends
# one line per arbord run (test, pid, errors, leaks) for the script's summary.
VALGRIND = os.environ.get("ARBOR_VALGRIND", "0") == "1"
VALGRIND_ERROR_EXIT = 97


def valgrind_summary(path):
    """(errors, definitely lost bytes, indirectly lost bytes) from a memcheck
    log, or None when the log has no summary (the process was killed)."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
    if not m:
        return None
    def lost(kind):
        k = re.search(rf"{kind} lost: ([\d,]+) bytes", text)
        return int(k.group(1).replace(",", "")) if k else 0
    return int(m.group(1).replace(",", "")), lost("definitely"), lost("indirectly")


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (state first),
    or None when pid is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split() or None
    except (OSError, IndexError):
        return None


def pid_alive(pid, started=None):
    """True if pid exists and is not a zombie (and, given `started` from
    start_time(), is still that process, not a later one with its pid)."""
    fields = proc_stat(pid)
    return (fields is not None and fields[0] != "Z" and
            (started is None or fields[19] == started))


def start_time(pid):
    """When pid started (clock ticks since boot), or None when it is gone."""
    fields = proc_stat(pid)
    return fields[19] if fields else None


PF_KTHREAD = 0x00200000


def exec_finished(pid):
    """False while pid is between the point where its vfork parent resumes
    (arbord has seen the exec succeed and may already report the service
    running) and the end of execve, when the kernel fills in the new
    program's argv and environment: until then /proc/PID/cmdline and
    environ read empty. Since Linux 5.18 a finished exec always has a
    non-empty cmdline (an empty argv gets ""), so empty means mid-exec,
    unless the task is a kernel thread, a zombie or gone."""
    fields = proc_stat(pid)
    if fields is None or fields[0] == "Z" or int(fields[6]) & PF_KTHREAD:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read(1) != b""
    except OSError:
        return True


def read_or_empty(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def proc_read(pid, name):
    """/proc/PID/NAME (cmdline or environ) of a process that has exec'd.
    An empty read may fall inside an execve, or the process may have
    exec'd since the file was opened: read until it is not empty, or it
    has been empty twice, each read followed by a check that found no exec
    under way (empty then is the process's own, as after env -i, or pid is
    gone)."""
    settled = 0
    deadline = time.monotonic() + DEFAULT_TIMEOUT
    while True:
        data = read_or_empty(f"/proc/{pid}/{name}")
        if data:
            return data
        if exec_finished(pid):
            settled += 1
            if settled == 2:
                return data
        else:
            settled = 0
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for pid {pid} to finish execve")
            time.sleep(0.001)


def proc_cmdline(pid):
    """The argv pid exec'd, as bytes with NULs (b"" if it is gone)."""
    return proc_read(pid, "cmdline")


def proc_environ(pid):
    return dict(e.split(b"=", 1) for e in proc_read(pid, "environ").split(b"\0") if b"=" in e)


def wait_until(predicate, timeout=DEFAULT_TIMEOUT, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class ArbordTest(unittest.TestCase):
    """Base class: self.units and self.run are fresh directories."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="arb-")
        self.units = os.path.join(self.tmp, "u")
        self.run = os.path.join(self.tmp, "r")
        os.mkdir(self.units)
        self.proc = None
        self.log_path = os.path.join(self.tmp, "arbord.log")
        self.extra_pids = []

    def tearDown(self):
        if VALGRIND and self.proc and self.proc.poll() is None:
            # A clean exit, so that memcheck does its leak check.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEFAULT_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "logfile", None):
            self.logfile.close()
        for pid in set(self.logged_pids() + self.extra_pids):
            if pid_alive(pid) and b"ARBOR_UNIT" in b"".join(proc_environ(pid).keys()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc:
            self.remove_cgroups(self.proc.pid)
        log = self.log()
        if self._outcome_failed() and os.environ.get("ARBOR_TEST_SHOW_LOG", "1") == "1":
            print(f"\n----- arbord log ({self.id()}) -----\n{log}-----")
        valgrind_problems = self.valgrind_report() if VALGRIND else ""
        shutil.rmtree(self.tmp, ignore_errors=True)
        if valgrind_problems:
            self.fail(f"valgrind memcheck found problems in arbord:\n{valgrind_problems}")
        # Under the sanitizer build a report fails the test that caused it.
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            self.assertNotIn(marker, log, f"sanitizer report in arbord's log:\n{log}")

    def _outcome_failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in result.failures + result.errors)

    @staticmethod
    def remove_cgroups(arbord_pid):
        """arbord removes its cgroups on a clean exit; after a SIGKILL we do."""
        try:
            with open("/proc/self/cgroup") as f:
                own = next(l[3:].strip() for l in f if l.startswith("0::"))
            with open("/proc/self/mountinfo") as f:
                mount = next(
                    l.split()[4] for l in f if " - cgroup2 " in l
                )
        except (OSError, StopIteration):
            return
        bases = glob.glob(os.path.join(mount + own, f"arbord-{arbord_pid}")) + \
            glob.glob(os.path.join(mount + own, f"arbord-{arbord_pid}.*"))
        for base in bases:
            for d in os.listdir(base):
                p = os.path.join(base, d)
                if os.path.isdir(p):
                    try:
                        with open(os.path.join(p, "cgroup.kill"), "w") as f:
                            f.write("1")
                    except OSError:
                        pass
                    def empty(path=os.path.join(p, "cgroup.procs")):
                        with open(path) as f:
                            return not f.read()
                    wait_until(empty, timeout=5, what="cgroup to empty")
                    os.rmdir(p)
            os.rmdir(base)

    def arbord_command(self, argv):
        """argv of arbord as given, or under valgrind with ARBOR_VALGRIND=1.
        Tests that start arbord their own way pass their argv through this."""
        if not VALGRIND:
            return argv
        return ["valgrind", "--tool=memcheck", f"--error-exitcode={VALGRIND_ERROR_EXIT}",
                "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                "--track-fds=no", "--child-silent-after-fork=yes",
                "--log-file=" + os.path.join(self.tmp, "valgrind.%p.log"), *argv]

    def valgrind_report(self):
        """Every memcheck log of this test: '' if clean, else the bad logs."""
        problems = []
        report = os.environ.get("ARBOR_VALGRIND_REPORT")
        for path in sorted(glob.glob(os.path.join(self.tmp, "valgrind.*.log"))):
            pid = path.rsplit(".", 2)[1]
            summary = valgrind_summary(path)
            if summary is None:
                line = f"{self.id()} pid {pid}: killed, no leak check"
            else:
                errors, definite, indirect = summary
                line = (f"{self.id()} pid {pid}: {errors} errors, {definite} bytes definitely "
                        f"and {indirect} bytes indirectly lost")
                if errors or definite or indirect:
                    with open(path, errors="replace") as f:
                        problems.append(f"----- {path} -----\n{f.read()}")
            if report:
                with open(report, "a") as f:
                    f.write(line + "\n")
        return "\n".join(problems)

    # ---- units ----

    def write_unit(self, filename, text):
        with open(os.path.join(self.units, filename), "w") as f:
            f.write(text)

    def service(self, name, exec_start, **keys):
        body = f"[Service]\nExecStart={exec_start}\n"
        for key, value in keys.items():
            body += f"{key}={value}\n"
        self.write_unit(f"{name}.service", body)

    def supervisor(self, name, children, **keys):
        body = f"[Supervisor]\nChildren={' '.join(children)}\n"
        for key, value in keys.items():
            body += f"{key}={value}\n"
        self.write_unit(f"{name}.supervisor", body)

    # ---- running arbord ----

    def start(self, *args, env=None):
        self.logfile = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            self.arbord_command([ARBORD, "-u", self.units, "-r", self.run, *args]),
            stdout=self.logfile, stderr=subprocess.STDOUT, env=full_env,
        )
        return self.proc

    def check(self, *args):
        """arbord --check; returns (status, stdout, stderr)."""
        r = subprocess.run([ARBORD, "--check", "-u", self.units, *args],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout, r.stderr

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, pattern):
        return [l for l in self.log().splitlines() if re.search(pattern, l)]

    def wait_log(self, pattern, count=1, timeout=DEFAULT_TIMEOUT):
        """Wait until `pattern` (a regex) matches `count` log lines; return them."""
        def found():
            lines = self.log_lines(pattern)
            return lines if len(lines) >= count else None
        try:
            return wait_until(found, timeout, what=f"{count}x /{pattern}/ in the log")
        except AssertionError:
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(
                    f"arbord exited ({self.proc.returncode}) before /{pattern}/ appeared")
            raise

    def logged_pids(self):
        return [int(m) for m in re.findall(r"starting pid (\d+)", self.log())]

    def pid_of(self, name, timeout=DEFAULT_TIMEOUT):
        """The pid of `name`'s current instance, once it is running."""
        line = self.wait_log(rf"^arbord: {re.escape(name)}: running \(pid \d+\)", timeout=timeout)[-1]
        return int(re.search(r"pid (\d+)", line).group(1))

    def running_pids(self, name):
        return [int(re.search(r"pid (\d+)", l).group(1))
                for l in self.log_lines(rf"^arbord: {re.escape(name)}: running \(pid \d+\)")]

    def wait_running(self, name, count=1, timeout=DEFAULT_TIMEOUT):
        """Wait for the count-th 'running' of name; return that pid."""
        lines = self.wait_log(rf"^arbord: {re.escape(name)}: running \(pid \d+\)", count, timeout)
        return int(re.search(r"pid (\d+)", lines[count - 1]).group(1))

    def wait_exit(self, timeout=DEFAULT_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"arbord did not exit within {timeout}s")

    def stop(self, sig=signal.SIGTERM, timeout=DEFAULT_TIMEOUT):
        self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def kill_service(self, name, sig=signal.SIGKILL):
        pid = self.pid_of(name)
        os.kill(pid, sig)
        return pid

    def order_of(self, pattern):
        """Names in the order their log lines match `pattern` (with a group)."""
        return [re.search(pattern, l).group(1) for l in self.log().splitlines()
                if re.search(pattern, l)]
