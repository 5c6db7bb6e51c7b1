"""How services are spawned (issue point 6): process group and session,
credentials, working directory, environment, umask, signal state, file
descriptors, exec failures, and output capture (StandardOutput=).

What a service got is read back from its /proc entries, not taken from
what arbord says it did; failures are judged by the log and exit status.
"""

import fcntl
import grp
import os
import pwd
import signal
import stat
import subprocess
import termios
import threading
import unittest

from harness import ARBORD, NOTIFY_CLIENT, ArbordTest, pid_alive, proc_environ, wait_until

SLEEPER = "/bin/sleep 1000"

TEST_USER = "arbspawn-u"
TEST_GROUPS = ("arbspawn-g1", "arbspawn-g2")


def proc_stat(pid):
    """Fields after the command name: [state, ppid, pgrp, session, ...]."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def open_fds(pid):
    return sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))


def fd_target(pid, fd):
    return os.readlink(f"/proc/{pid}/fd/{fd}")


def sigbit(sig):
    return 1 << (int(sig) - 1)


def run_quiet(*argv):
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class SpawnTest(ArbordTest):
    def start_custom(self, *args, env=None, preexec_fn=None, pass_fds=(), stdout_path=None):
        """Like harness.start(), with more control over how arbord begins:
        a preexec_fn, inherited fds, stdout apart from the log (stderr)."""
        self.logfile = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.update(env or {})
        out = self.logfile
        if stdout_path:
            self.stdout_file = open(stdout_path, "wb")
            self.addCleanup(self.stdout_file.close)
            out = self.stdout_file
        self.proc = subprocess.Popen(
            [ARBORD, "-u", self.units, "-r", self.run, *args],
            stdout=out, stderr=self.logfile, env=full_env, pass_fds=pass_fds,
            preexec_fn=preexec_fn, restore_signals=False,
        )
        return self.proc

    def wait_exec(self, pid, program):
        """Wait until pid has exec'd `program` (argv[0] basename)."""
        def done():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv0 = f.read().split(b"\0")[0]
            except OSError:
                return False
            return os.path.basename(argv0) == program.encode()
        wait_until(done, what=f"pid {pid} to run {program}")


# ---- process group, session, credentials, directory, umask ----------------


class ProcessSetup(SpawnTest):
    def test_each_service_has_its_own_process_group_and_session(self):
        self.service("a", SLEEPER)
        self.service("b", "/bin/sh -c '/bin/sleep 1000 & wait'")
        self.start()
        a = self.wait_running("a")
        b = self.wait_running("b")
        arbord_sid = int(proc_stat(self.proc.pid)[3])
        for pid in (a, b):
            st = proc_stat(pid)
            self.assertEqual(int(st[2]), pid, f"pgid of {pid}")
            self.assertEqual(int(st[3]), pid, f"sid of {pid}")
            self.assertNotEqual(int(st[3]), arbord_sid)
            self.assertEqual(int(st[1]), self.proc.pid, "a service is arbord's child")
        # b's own child stays in b's group and session.
        def child_of_b():
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        if int(proc_stat(int(entry))[1]) == b:
                            return int(entry)
                    except (OSError, IndexError):
                        pass
            return None
        child = wait_until(child_of_b, what="b's child")
        self.assertEqual(int(proc_stat(child)[2]), b)
        self.assertEqual(int(proc_stat(child)[3]), b)
        self.assertEqual(self.stop(), 0)

    def test_working_directory(self):
        work = os.path.join(self.tmp, "work dir")
        os.mkdir(work)
        self.service("w", SLEEPER, WorkingDirectory=work)
        self.service("plain", SLEEPER)
        self.start()
        self.assertEqual(os.readlink(f"/proc/{self.wait_running('w')}/cwd"), work)
        self.assertEqual(self.stop(), 0)

    def test_umask(self):
        self.service("m27", SLEEPER, UMask="0027")
        self.service("m0", SLEEPER, UMask="0")
        self.service("m77", SLEEPER, UMask="077")
        self.start()
        self.assertEqual(proc_status(self.wait_running("m27"))["Umask"], "0027")
        self.assertEqual(proc_status(self.wait_running("m0"))["Umask"], "0000")
        self.assertEqual(proc_status(self.wait_running("m77"))["Umask"], "0077")
        self.assertEqual(self.stop(), 0)

    def test_umask_applies_to_files_the_service_creates(self):
        out = os.path.join(self.tmp, "made")
        self.service("mk", f"/bin/sh -c 'touch {out}; mkdir {out}.d; exec sleep 1000'",
                     UMask="0027")
        self.start()
        pid = self.wait_running("mk")
        self.wait_exec(pid, "sleep")
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o640)
        self.assertEqual(stat.S_IMODE(os.stat(out + ".d").st_mode), 0o750)
        self.assertEqual(self.stop(), 0)


@unittest.skipUnless(os.geteuid() == 0, "User= and Group= need root")
class Credentials(SpawnTest):
    @classmethod
    def setUpClass(cls):
        cls.tearDownClass()  # leftovers of an interrupted run
        for g in TEST_GROUPS:
            subprocess.run(["groupadd", g], check=True)
        subprocess.run(["useradd", "-M", "-N", "-g", "nogroup", "-G", ",".join(TEST_GROUPS),
                        "-d", "/nonexistent", "-s", "/usr/sbin/nologin", TEST_USER],
                       check=True)

    @classmethod
    def tearDownClass(cls):
        run_quiet("userdel", TEST_USER)
        for g in TEST_GROUPS:
            run_quiet("groupdel", g)

    def ids(self, pid):
        st = proc_status(pid)
        uids = [int(x) for x in st["Uid"].split()]
        gids = [int(x) for x in st["Gid"].split()]
        groups = sorted(int(x) for x in st["Groups"].split())
        return uids, gids, groups

    def test_user_nobody(self):
        nobody = pwd.getpwnam("nobody")
        self.service("n", SLEEPER, User="nobody")
        self.start()
        pid = self.wait_running("n")
        uids, gids, groups = self.ids(pid)
        self.assertEqual(uids, [nobody.pw_uid] * 4)
        self.assertEqual(gids, [nobody.pw_gid] * 4)
        self.assertEqual(groups, sorted(set(os.getgrouplist("nobody", nobody.pw_gid))))
        self.assertNotIn(0, groups, "root's groups leaked into the service")
        env = proc_environ(pid)
        self.assertEqual(env.get(b"USER"), b"nobody")
        self.assertEqual(env.get(b"LOGNAME"), b"nobody")
        self.assertEqual(env.get(b"HOME"), nobody.pw_dir.encode())
        self.assertEqual(self.stop(), 0)

    def test_user_and_group(self):
        nobody = pwd.getpwnam("nobody")
        nogroup = grp.getgrnam("nogroup")
        self.service("ng", SLEEPER, User="nobody", Group="nogroup")
        self.start()
        uids, gids, groups = self.ids(self.wait_running("ng"))
        self.assertEqual(uids, [nobody.pw_uid] * 4)
        self.assertEqual(gids, [nogroup.gr_gid] * 4)
        self.assertNotIn(0, groups)
        self.assertEqual(self.stop(), 0)

    def test_group_alone_changes_only_the_group(self):
        nogroup = grp.getgrnam("nogroup")
        self.service("g", SLEEPER, Group="nogroup")
        self.start()
        uids, gids, groups = self.ids(self.wait_running("g"))
        self.assertEqual(uids, [0] * 4)
        self.assertEqual(gids, [nogroup.gr_gid] * 4)
        self.assertNotIn(0, groups, "root's supplementary groups kept with Group=")
        self.assertEqual(self.stop(), 0)

    def test_user_gets_its_supplementary_groups(self):
        user = pwd.getpwnam(TEST_USER)
        extra = {grp.getgrnam(g).gr_gid for g in TEST_GROUPS}
        self.service("u", SLEEPER, User=TEST_USER)
        self.start()
        uids, gids, groups = self.ids(self.wait_running("u"))
        self.assertEqual(uids, [user.pw_uid] * 4)
        self.assertEqual(gids, [user.pw_gid] * 4)
        self.assertEqual(set(groups), extra | {user.pw_gid})
        self.assertEqual(self.stop(), 0)

    def test_group_overrides_the_users_primary_group(self):
        user = pwd.getpwnam(TEST_USER)
        g2 = grp.getgrnam(TEST_GROUPS[1]).gr_gid
        self.service("ug", SLEEPER, User=TEST_USER, Group=TEST_GROUPS[1])
        self.start()
        uids, gids, groups = self.ids(self.wait_running("ug"))
        self.assertEqual(uids, [user.pw_uid] * 4)
        self.assertEqual(gids, [g2] * 4)
        self.assertTrue({grp.getgrnam(g).gr_gid for g in TEST_GROUPS} <= set(groups))
        self.assertNotIn(0, groups)
        self.assertEqual(self.stop(), 0)

    def test_numeric_user_and_group(self):
        self.service("num", SLEEPER, User="65534", Group="65534")
        self.start()
        uids, gids, _ = self.ids(self.wait_running("num"))
        self.assertEqual(uids, [65534] * 4)
        self.assertEqual(gids, [65534] * 4)
        self.assertEqual(self.stop(), 0)


# ---- environment ----------------------------------------------------------


class Environment(SpawnTest):
    def env_of(self, name):
        return proc_environ(self.wait_running(name))

    def test_notify_socket_and_arbor_unit_are_set_and_managers_vars_not_leaked(self):
        self.service("e", SLEEPER)
        self.service("n", f"{NOTIFY_CLIENT} READY=1", Type="notify")
        self.start(env={
            "NOTIFY_SOCKET": "/tmp/x", "LISTEN_FDS": "3", "LISTEN_PID": "1",
            "LISTEN_FDNAMES": "stolen", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1",
            "ARB_PASSED_THROUGH": "yes",
        })
        envs = {name: self.env_of(name) for name in ("e", "n")}
        own = proc_environ(self.proc.pid)
        self.assertEqual(own.get(b"NOTIFY_SOCKET"), b"/tmp/x")  # the precondition
        self.assertEqual(own.get(b"LISTEN_FDS"), b"3")
        for name, env in envs.items():
            self.assertEqual(env.get(b"ARBOR_UNIT"), name.encode())
            sock = env.get(b"NOTIFY_SOCKET", b"").decode()
            self.assertNotEqual(sock, "/tmp/x")
            self.assertEqual(os.path.realpath(sock),
                             os.path.realpath(os.path.join(self.run, "notify", name)))
            self.assertTrue(stat.S_ISSOCK(os.stat(sock).st_mode))
            for var in (b"LISTEN_FDS", b"LISTEN_PID", b"LISTEN_FDNAMES",
                        b"WATCHDOG_USEC", b"WATCHDOG_PID"):
                self.assertNotIn(var, env, f"{var.decode()} leaked into {name}")
            self.assertEqual(env.get(b"ARB_PASSED_THROUGH"), b"yes")
            self.assertIn(b"PATH", env)
        self.assertEqual(self.stop(), 0)

    def test_environment_with_quoting(self):
        self.write_unit("q.service", "\n".join([
            "[Service]",
            f"ExecStart={SLEEPER}",
            "Environment=\"A=hello world\" B='single quoted $X' C=plain",
            "Environment=D=\"x\\\"y\" E=a\\ b F=a=b G=x;y",
            "Environment=C=override EMPTY=",
            "Environment=FROM_ARBORD=unit",
            "",
        ]))
        self.start(env={"FROM_ARBORD": "arbord", "UNTOUCHED": "kept"})
        env = self.env_of("q")
        self.assertEqual(env.get(b"A"), b"hello world")
        self.assertEqual(env.get(b"B"), b"single quoted $X")
        self.assertEqual(env.get(b"C"), b"override")
        self.assertEqual(env.get(b"D"), b'x"y')
        self.assertEqual(env.get(b"E"), b"a b")
        self.assertEqual(env.get(b"F"), b"a=b")
        self.assertEqual(env.get(b"G"), b"x;y")
        self.assertEqual(env.get(b"EMPTY"), b"")
        self.assertEqual(env.get(b"FROM_ARBORD"), b"unit")
        self.assertEqual(env.get(b"UNTOUCHED"), b"kept")
        self.assertEqual(self.stop(), 0)

    def test_empty_environment_line_resets_the_list(self):
        self.write_unit("r.service", "\n".join([
            "[Service]", f"ExecStart={SLEEPER}",
            "Environment=GONE=1", "Environment=", "Environment=KEPT=1", ""]))
        self.start()
        env = self.env_of("r")
        self.assertNotIn(b"GONE", env)
        self.assertEqual(env.get(b"KEPT"), b"1")
        self.assertEqual(self.stop(), 0)

    def test_environment_file(self):
        one = os.path.join(self.tmp, "one.env")
        two = os.path.join(self.tmp, "two.env")
        with open(one, "w") as f:
            f.write("# a comment\n"
                    "; another comment\n"
                    "\n"
                    "PLAIN=value\n"
                    "export EXPORTED=yes\n"
                    'DQ="double \\"quoted\\" value"\n'
                    "SQ='single $NOT expanded'\n"
                    "TRAIL=value   \n"
                    "OVERRIDE=from-one\n")
        with open(two, "w") as f:
            f.write("OVERRIDE=from-two")  # no final newline
        self.write_unit("ef.service", "\n".join([
            "[Service]", f"ExecStart={SLEEPER}",
            f"EnvironmentFile={one}",
            f"EnvironmentFile=-{self.tmp}/missing-but-optional.env",
            f"EnvironmentFile={two}", ""]))
        self.start()
        env = self.env_of("ef")
        self.assertEqual(env.get(b"PLAIN"), b"value")
        self.assertEqual(env.get(b"EXPORTED"), b"yes")
        self.assertEqual(env.get(b"DQ"), b'double "quoted" value')
        self.assertEqual(env.get(b"SQ"), b"single $NOT expanded")
        self.assertEqual(env.get(b"TRAIL"), b"value")
        self.assertEqual(env.get(b"OVERRIDE"), b"from-two")
        self.assertFalse(self.log_lines(r"missing-but-optional"))
        self.assertEqual(self.stop(), 0)

    def test_environment_file_is_read_at_each_start(self):
        path = os.path.join(self.tmp, "live.env")
        with open(path, "w") as f:
            f.write("GEN=1\n")
        self.service("live", SLEEPER, EnvironmentFile=path)
        self.start()
        first = self.wait_running("live")
        self.assertEqual(proc_environ(first).get(b"GEN"), b"1")
        with open(path, "w") as f:
            f.write("GEN=2\n")
        os.kill(first, signal.SIGKILL)
        second = self.wait_running("live", count=2)
        self.assertEqual(proc_environ(second).get(b"GEN"), b"2")
        self.assertEqual(self.stop(), 0)

    # As in systemd.exec(5): "Settings from these files override settings
    # made with Environment=".
    def test_environment_file_overrides_environment_as_in_systemd(self):
        path = os.path.join(self.tmp, "both.env")
        with open(path, "w") as f:
            f.write("BOTH=from-file\n")
        self.service("both", SLEEPER, Environment="BOTH=from-environment",
                     EnvironmentFile=path)
        self.start()
        env = self.env_of("both")
        self.stop()
        self.assertEqual(env.get(b"BOTH"), b"from-file")

    def test_missing_required_environment_file_is_a_failed_start(self):
        missing = os.path.join(self.tmp, "no-such.env")
        self.supervisor("root", ["ok", "needs"], Intensity=0)
        self.service("ok", SLEEPER)
        self.service("needs", SLEEPER, EnvironmentFile=missing)
        self.start()
        self.assertEqual(self.wait_exit(), 1)
        lines = self.log_lines(r"^arbord: needs: cannot start")
        self.assertEqual(len(lines), 1, self.log())
        self.assertIn(missing, lines[0])
        self.assertIn("No such file or directory", lines[0])
        self.assertTrue(self.log_lines(r"^arbord: needs: failed to start"))
        self.assertFalse(self.log_lines(r"^arbord: needs: (starting pid|running)"))
        self.assertTrue(self.log_lines(r"^arbord: root: more than 0 restarts"))

    def test_malformed_environment_file_is_a_failed_start(self):
        bad = os.path.join(self.tmp, "bad.env")
        with open(bad, "w") as f:
            f.write("GOOD=1\nthis line is not an assignment\n")
        self.supervisor("root", ["needs"], Intensity=0)
        self.service("needs", SLEEPER, EnvironmentFile=bad)
        self.start()
        self.assertEqual(self.wait_exit(), 1)
        lines = self.log_lines(r"^arbord: needs: cannot start")
        self.assertEqual(len(lines), 1, self.log())
        self.assertIn(f"{bad}:2", lines[0])


# ---- signal state and file descriptors -------------------------------------

BLOCKED = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM,
           signal.SIGCHLD, signal.SIGRTMIN + 2)
IGNORED = (signal.SIGINT, signal.SIGPIPE, signal.SIGQUIT, signal.SIGUSR2, signal.SIGTSTP,
           signal.SIGTTIN, signal.SIGTTOU, signal.SIGXFSZ)


def dirty_signal_state():
    """preexec_fn: arbord begins with signals blocked and ignored."""
    signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED)
    for sig in IGNORED:
        signal.signal(sig, signal.SIG_IGN)


class SignalsAndFds(SpawnTest):
    def test_children_get_empty_mask_and_default_dispositions(self):
        self.service("s", SLEEPER)
        self.service("sh", "/bin/sh -c 'exec sleep 1000'")
        self.service("n", f"{NOTIFY_CLIENT} READY=1", Type="notify")
        self.start_custom(preexec_fn=dirty_signal_state)
        pids = [self.wait_running(n) for n in ("s", "sh", "n")]
        # The precondition: arbord really inherited ignored signals (those it
        # does not handle itself are still ignored in it).
        arbord_ign = int(proc_status(self.proc.pid)["SigIgn"], 16)
        for sig in (signal.SIGXFSZ, signal.SIGTSTP):
            self.assertTrue(arbord_ign & sigbit(sig), f"arbord does not ignore {sig!r}")
        self.wait_exec(pids[1], "sleep")
        for pid in pids:
            st = proc_status(pid)
            self.assertEqual(int(st["SigBlk"], 16), 0, f"SigBlk of {pid}: {st['SigBlk']}")
            self.assertEqual(int(st["SigIgn"], 16), 0, f"SigIgn of {pid}: {st['SigIgn']}")
            self.assertEqual(int(st["SigPnd"], 16), 0)
        self.assertEqual(self.stop(), 0)

    def test_sigpipe_is_default_in_services(self):
        self.service("p", "/bin/sh -c '(yes; echo \"yes=$?\" >&2) | head -n 1 >/dev/null'",
                     Restart="temporary")
        self.start_custom(preexec_fn=dirty_signal_state)
        # 141 = 128 + SIGPIPE: yes was killed by the signal, not told EPIPE.
        self.wait_log(r"^p\[\d+\]: yes=141$")
        self.assertEqual(self.stop(), 0)

    def test_no_fds_but_0_1_2_and_stdin_is_dev_null(self):
        stray = os.open(os.path.join(self.tmp, "stray"), os.O_CREAT | os.O_RDWR)
        self.addCleanup(os.close, stray)
        os.set_inheritable(stray, True)
        self.service("a", SLEEPER)
        self.service("b", SLEEPER, StandardOutput="null", StandardError="null")
        self.service("c", "/bin/sh -c 'exec sleep 1000'", StandardOutput="inherit")
        self.service("n", f"{NOTIFY_CLIENT} READY=1", Type="notify")
        self.start_custom(pass_fds=(stray,))
        pids = {n: self.wait_running(n) for n in "abcn"}
        self.assertIn(str(stray), os.listdir(f"/proc/{self.proc.pid}/fd"))  # precondition
        self.wait_exec(pids["c"], "sleep")
        for name, pid in pids.items():
            self.assertEqual(open_fds(pid), [0, 1, 2],
                             f"{name} has fds {[(fd, fd_target(pid, fd)) for fd in open_fds(pid)]}")
            self.assertEqual(fd_target(pid, 0), "/dev/null")
        # StandardOutput=log: one pipe for both streams; null: /dev/null.
        self.assertTrue(fd_target(pids["a"], 1).startswith("pipe:"))
        self.assertEqual(fd_target(pids["a"], 1), fd_target(pids["a"], 2))
        self.assertEqual(fd_target(pids["b"], 1), "/dev/null")
        self.assertEqual(fd_target(pids["b"], 2), "/dev/null")
        self.assertEqual(fd_target(pids["c"], 1), fd_target(self.proc.pid, 1))
        self.assertEqual(self.stop(), 0)


# ---- exec failures -----------------------------------------------------------


class ExecFailures(SpawnTest):
    def fail_to_start(self, exec_start, text, intensity=2, **keys):
        """`bad` cannot start: each attempt is a failed start logged with
        `text`, each retry counts, and past Intensity the root gives up."""
        self.supervisor("root", ["ok", "bad"], Intensity=intensity, Period="1min")
        self.service("ok", SLEEPER)
        self.service("bad", exec_start, **keys)
        self.start()
        ok = self.wait_running("ok")
        self.assertEqual(self.wait_exit(), 1)
        errors = self.log_lines(r"^arbord: bad: cannot start")
        self.assertEqual(len(errors), intensity + 1, self.log())
        for line in errors:
            self.assertIn(text, line)
        self.assertEqual(len(self.log_lines(r"^arbord: bad: failed to start")), intensity + 1)
        self.assertFalse(self.log_lines(r"^arbord: bad: running"))
        self.assertTrue(self.log_lines(rf"^arbord: root: more than {intensity} restarts"))
        self.assertFalse(pid_alive(ok))
        return errors

    def test_missing_program(self):
        errors = self.fail_to_start("/nonexistent/prog --flag", "No such file or directory")
        self.assertIn("/nonexistent/prog", errors[0])

    def test_missing_program_with_intensity_0_gives_up_at_once(self):
        self.fail_to_start("/nonexistent/prog", "No such file or directory", intensity=0)

    def test_exec_failure_of_a_notify_service_is_a_failed_start(self):
        self.fail_to_start("/nonexistent/prog", "No such file or directory", intensity=1,
                           Type="notify")

    def test_exec_failure_of_a_simple_service_is_logged_and_counted(self):
        # Type=simple is ready once forked, so this is a running service
        # that failed (127), not a failed start; it still counts.
        self.supervisor("root", ["ok", "bad"], Intensity=1, Period="1min")
        self.service("ok", SLEEPER)
        self.service("bad", "/nonexistent/prog", Type="simple")
        self.start()
        self.assertEqual(self.wait_exit(), 1)
        errors = self.log_lines(r"^arbord: bad: cannot start")
        self.assertEqual(len(errors), 2, self.log())
        self.assertIn("No such file or directory", errors[0])
        self.assertEqual(len(self.log_lines(r"^arbord: bad: failed \(exit status 127\)")), 2)
        self.assertTrue(self.log_lines(r"^arbord: root: more than 1 restarts"))

    def test_file_that_is_not_executable(self):
        path = os.path.join(self.tmp, "not-exec")
        with open(path, "w") as f:
            f.write("#!/bin/sh\nexec sleep 1000\n")
        os.chmod(path, 0o644)
        self.fail_to_start(path, "Permission denied")

    def test_directory_as_program(self):
        self.fail_to_start(self.tmp, "Permission denied", intensity=1)

    def test_script_with_a_missing_interpreter(self):
        path = os.path.join(self.tmp, "bad-interp")
        with open(path, "w") as f:
            f.write("#!/nonexistent/interpreter\n")
        os.chmod(path, 0o755)
        self.fail_to_start(path, "No such file or directory", intensity=1)

    def test_working_directory_that_does_not_exist(self):
        errors = self.fail_to_start(SLEEPER, "No such file or directory",
                                    WorkingDirectory=f"{self.tmp}/no-such-dir")
        self.assertIn("WorkingDirectory", errors[0])

    def test_bare_name_not_in_path(self):
        errors = self.fail_to_start("no-such-program-arbtest --x", "not found in PATH")
        self.assertIn("no-such-program-arbtest", errors[0])

    def test_bare_name_is_looked_up_in_the_units_path(self):
        bindir = os.path.join(self.tmp, "bin")
        os.mkdir(bindir)
        prog = os.path.join(bindir, "arbtest-prog")
        with open(prog, "w") as f:
            f.write("#!/bin/sh\nexec sleep 1000\n")
        os.chmod(prog, 0o755)
        self.service("found", "arbtest-prog", Environment=f"PATH={bindir}:/usr/bin:/bin")
        self.start()
        pid = self.wait_running("found")
        self.wait_exec(pid, "sleep")
        self.assertEqual(self.stop(), 0)

    def test_failed_start_then_fixed_program_recovers(self):
        # Failed starts count, but below Intensity the restarts go on, and
        # once the program is there the service runs.
        path = os.path.join(self.tmp, "appears")
        self.supervisor("root", ["late"], Intensity=1000, Period="1min")
        self.service("late", path)
        self.start()
        self.wait_log(r"^arbord: late: failed to start", count=3)
        with open(path + ".tmp", "w") as f:
            f.write("#!/bin/sh\nexec sleep 1000\n")
        os.chmod(path + ".tmp", 0o755)
        os.rename(path + ".tmp", path)
        self.wait_running("late")
        self.assertIsNone(self.proc.poll())
        self.assertEqual(self.stop(), 0)


# ---- output ------------------------------------------------------------------


class Output(SpawnTest):
    def test_stdout_and_stderr_are_logged_line_by_line_with_a_prefix(self):
        self.service("o", "/bin/sh -c 'echo out-1; echo err-1 >&2; echo \"two  spaces\"; "
                          "printf \"no-newline-at-exit\"'", Restart="temporary")
        self.start()
        self.wait_log(r"^arbord: o: exited \(exit status 0\)")
        pid = self.logged_pids()[0]
        self.wait_log(r"no-newline-at-exit")
        lines = self.log_lines(rf"^o\[")
        self.assertEqual(lines, [f"o[{pid}]: out-1", f"o[{pid}]: err-1",
                                 f"o[{pid}]: two  spaces", f"o[{pid}]: no-newline-at-exit"])
        self.assertEqual(self.stop(), 0)

    def test_each_instance_has_its_own_pid_prefix(self):
        self.service("r", "/bin/sh -c 'echo hello-$$; exec sleep 1000'")
        self.start()
        first = self.wait_running("r")
        self.wait_log(rf"^r\[{first}\]: hello-{first}$")
        os.kill(first, signal.SIGKILL)
        second = self.wait_running("r", count=2)
        self.wait_log(rf"^r\[{second}\]: hello-{second}$")
        self.assertEqual(self.stop(), 0)

    # A line that arrives in one read is logged in OUTPUT_LINE_MAX parts
    # whose concatenation is the whole line.
    def test_a_10000_byte_line_is_logged_in_parts_not_lost(self):
        self.service("long", "/usr/bin/python3 -c 'import os; "
                             "os.write(1, b\"x\" * 10000 + b\"\\n\"); "
                             "os.write(1, b\"after\\n\")'",
                     Restart="temporary")
        self.service("other", SLEEPER)
        self.start()
        self.wait_log(r"^long\[\d+\]: after$")
        self.wait_running("other")
        parts = [l.split(": ", 1)[1] for l in self.log_lines(r"^long\[\d+\]: x")]
        self.assertEqual(self.stop(), 0)
        self.assertTrue(all(set(p) == {"x"} for p in parts))
        self.assertEqual(sum(len(p) for p in parts), 10000,
                         f"parts of {[len(p) for p in parts]} bytes")
        self.assertGreater(len(parts), 1)

    def test_a_long_line_written_slowly_is_logged_in_parts(self):
        # A line that grows across many reads is kept and cut in parts.
        script = os.path.join(self.tmp, "slow.py")
        with open(script, "w") as f:
            f.write("import os, time\n"
                    "for i in range(20):\n"
                    "    os.write(1, b'y' * 500)\n"
                    "    time.sleep(0.02)\n"
                    "os.write(1, b'\\nafter\\n')\n")
        self.service("slow", f"/usr/bin/python3 {script}", Restart="temporary")
        self.start()
        self.wait_log(r"^slow\[\d+\]: after$")
        parts = [l.split(": ", 1)[1] for l in self.log_lines(r"^slow\[\d+\]: y")]
        self.assertEqual(sum(len(p) for p in parts), 10000)
        self.assertTrue(all(set(p) == {"y"} for p in parts))
        self.assertEqual(self.stop(), 0)

    def test_standard_output_null_discards_stdout_only(self):
        self.service("q", "/bin/sh -c 'echo hidden-out; echo shown-err >&2'",
                     StandardOutput="null", Restart="temporary")
        self.start()
        self.wait_log(r"^q\[\d+\]: shown-err$")
        self.wait_log(r"^arbord: q: exited \(exit status 0\)")
        self.assertEqual(self.stop(), 0)
        self.assertFalse(self.log_lines("hidden-out"))

    def test_standard_output_and_error_null_discard_everything(self):
        self.service("z", "/bin/sh -c 'echo hidden-out; echo hidden-err >&2; exec sleep 1000'",
                     StandardOutput="null", StandardError="null")
        self.start()
        pid = self.wait_running("z")
        self.wait_exec(pid, "sleep")
        self.assertEqual(self.stop(), 0)
        self.assertFalse(self.log_lines("hidden"))

    def test_standard_error_log_with_output_inherit(self):
        stdout_path = os.path.join(self.tmp, "arbord.stdout")
        self.service("i", "/bin/sh -c 'echo to-stdout; echo to-stderr >&2; exec sleep 1000'",
                     StandardOutput="inherit")
        self.service("j", "/bin/sh -c 'echo j-out; echo j-err >&2; exec sleep 1000'",
                     StandardOutput="inherit", StandardError="inherit")
        self.start_custom(stdout_path=stdout_path)
        pid_i = self.wait_running("i")
        pid_j = self.wait_running("j")
        self.wait_log(rf"^i\[{pid_i}\]: to-stderr$")
        self.wait_log(r"^j-err$")  # arbord's stderr, unprefixed
        def stdout_has_both():
            with open(stdout_path, "rb") as f:
                data = f.read()
            return b"j-out\n" in data and b"to-stdout\n" in data
        wait_until(stdout_has_both, what="inherited stdout lines in arbord's stdout")
        self.assertEqual(self.stop(), 0)
        with open(stdout_path, "rb") as f:
            out = f.read().decode().splitlines()
        self.assertIn("to-stdout", out)  # unprefixed
        self.assertIn("j-out", out)
        self.assertFalse(self.log_lines(r"to-stdout|j-out"))
        self.assertFalse(self.log_lines(r"^j\[\d+\]:"))

    # ---- floods: arbord logs to a pipe that a thread drains, keeping all
    # but the flood in the log file (which would otherwise grow by many
    # megabytes a second); the thread can be paused, like a stalled reader.

    def start_flooded(self):
        self.supervisor("root", ["flood", "victim"], Intensity=100)
        self.service("flood", "/usr/bin/yes flood-output-line")
        self.service("victim", SLEEPER)
        self.logfile = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen([ARBORD, "-u", self.units, "-r", self.run],
                                     stdout=self.logfile, stderr=subprocess.PIPE, env=full_env)
        self.flood = {"lines": 0}
        self.reading = threading.Event()
        self.reading.set()
        logfile, flood, reading = self.logfile, self.flood, self.reading
        fd = self.proc.stderr.fileno()

        def drain():
            rest = b""
            while True:
                reading.wait()
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                keep = [l for l in lines if not l.startswith(b"flood[")]
                flood["lines"] += len(lines) - len(keep)
                if keep:
                    logfile.write(b"\n".join(keep) + b"\n")
                    logfile.flush()
            if rest and not rest.startswith(b"flood["):
                logfile.write(rest + b"\n")
                logfile.flush()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        # Cleanups run after tearDown has killed arbord (EOF): join, then close.
        self.addCleanup(self.proc.stderr.close)
        self.addCleanup(reader.join, 10)
        self.addCleanup(reading.set)

    def unit_pid(self, unit, not_pid=None):
        """The live child of arbord whose ARBOR_UNIT is `unit` (from /proc,
        not from the log, which a flood may overrun)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == not_pid:
                continue
            pid = int(entry)
            try:
                if int(proc_stat(pid)[1]) != self.proc.pid:
                    continue
            except (OSError, IndexError):
                continue
            if proc_environ(pid).get(b"ARBOR_UNIT") == unit.encode() and pid_alive(pid):
                found.append(pid)
        return found[0] if len(found) == 1 else None

    def test_a_service_flooding_output_does_not_stop_supervision(self):
        self.start_flooded()
        flood_pid = wait_until(lambda: self.unit_pid("flood"), what="the flood service")
        victim = wait_until(lambda: self.unit_pid("victim"), what="the victim service")
        wait_until(lambda: self.flood["lines"] > 300000, what="the flood to be logged")
        for _ in range(3):
            os.kill(victim, signal.SIGKILL)
            victim = wait_until(lambda: self.unit_pid("victim", not_pid=victim), timeout=5,
                                what="the victim to be restarted during the flood")
        before = self.flood["lines"]
        wait_until(lambda: self.flood["lines"] > before + 10000, what="the flood to go on")
        self.assertEqual(self.unit_pid("flood"), flood_pid)
        self.assertEqual(self.stop(), 0)

    # arbord's own lines (state changes, errors) must survive a flood while
    # stderr is slow: captured output may use only part of the log buffer.
    def test_arbords_own_messages_survive_a_flood_when_stderr_is_slow(self):
        self.start_flooded()
        wait_until(lambda: self.unit_pid("flood"), what="the flood service")
        victim = wait_until(lambda: self.unit_pid("victim"), what="the victim service")
        # Stall the reader until the pipe is full and arbord has read well
        # over its 256 KiB buffer's worth of flood since: the buffer is full.
        self.reading.clear()
        fd = self.proc.stderr.fileno()
        def queued():
            return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4), "little")
        wait_until(lambda: queued() >= 60000, what="arbord's stderr pipe to fill")

        def rchar():
            with open(f"/proc/{self.proc.pid}/io") as f:
                return int(next(l for l in f if l.startswith("rchar:")).split()[1])
        mark = rchar()
        wait_until(lambda: rchar() > mark + (1 << 20), what="arbord to read 1 MiB more flood")
        os.kill(victim, signal.SIGKILL)
        new = wait_until(lambda: self.unit_pid("victim", not_pid=victim), timeout=5,
                         what="the victim to be restarted")
        self.reading.set()
        # The new process is visible before arbord has seen its exec succeed,
        # so wait for the line rather than stopping at once (a stop first
        # would rightly leave the restart never "running").
        wait_until(lambda: self.log_lines(rf"^arbord: victim: running \(pid {new}\)"),
                   what="arbord's own line about the restart (dropped?)")
        self.assertEqual(self.stop(), 0)

if __name__ == "__main__":
    unittest.main()
