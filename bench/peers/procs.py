"""Process bookkeeping and /proc readings for bench/side_by_side.py.

The driver makes itself a child subreaper, so every process any supervisor
under test leaves behind (s6-supervise and runsv children of a dead scanner,
services that called setsid()) is re-parented to it and can be found by
walking parent links down from the driver's own pid. sweep() kills exactly
those, one pid at a time, and reaps them: nothing else on the machine is
ever touched.
"""
import ctypes
import glob
import os
import signal
import subprocess
import time

PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


def become_subreaper():
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def table():
    """{pid: (ppid, comm, state)} of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        close = data.rindex(b")")
        comm = data[data.index(b"(") + 1:close].decode(errors="replace")
        fields = data[close + 2:].split()
        out[int(name)] = (int(fields[1]), comm, fields[0].decode())
    return out


def descendants(root, procs=None):
    """Living descendants of root, parents before children."""
    procs = procs if procs is not None else table()
    children = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    order, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        for child in sorted(children.get(pid, ())):
            if procs[child][2] != "Z":
                order.append(child)
            queue.append(child)
    return order


def count_comm(root, names, procs=None):
    procs = procs if procs is not None else table()
    return sum(1 for pid in descendants(root, procs) if procs[pid][1] in names)


class Tracker:
    """Every process the driver starts goes through popen(): its own session
    and process group (recorded), so that the group can be killed whole."""

    def __init__(self):
        self.procs = []

    def popen(self, cmd, **kw):
        p = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def _reap(self, procs):
        mine = {p.pid: p for p in self.procs}
        me = os.getpid()
        for pid, (ppid, _, state) in procs.items():
            if ppid == me and state == "Z":
                if pid in mine:
                    mine[pid].poll()
                else:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass

    def sweep(self, timeout=120.0):
        """SIGKILL every process group started here, then every descendant
        of the driver, by pid, until none is left; reap them all."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + timeout
        me = os.getpid()
        arbords = set()
        while True:
            procs = table()
            self._reap(procs)
            left = descendants(me, procs)
            if not left:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(left)} processes survived the sweep: {left[:10]}")
            for pid in left:
                if procs[pid][1] == "arbord":
                    arbords.add(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        # An arbord killed here (one a helper script left behind) could not
        # remove its cgroups.
        for pid in arbords:
            remove_arbord_cgroups(pid)
        for p in self.procs:
            p.poll()
        self.procs = [p for p in self.procs if p.returncode is None]


# ---- readings ----

def cpu_ns(pid):
    """CPU time of a process in ns: the scheduler's exact sum when
    /proc/PID/sched has it, else utime+stime in clock ticks."""
    try:
        with open(f"/proc/{pid}/sched") as f:
            for line in f:
                if line.startswith("se.sum_exec_runtime"):
                    return int(float(line.split(":")[1]) * 1e6)
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def ctxt(pid):
    """(voluntary, involuntary) context switches of a process."""
    vol = invol = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    vol = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    invol = int(line.split()[1])
    except OSError:
        return None
    return vol, invol


def snapshot(pids):
    """{pid: (cpu_ns, voluntary, involuntary)} for the pids still there."""
    out = {}
    for pid in pids:
        c, x = cpu_ns(pid), ctxt(pid)
        if c is not None and x is not None:
            out[pid] = (c, x[0], x[1])
    return out


def delta(before, after):
    """(cpu_ns, voluntary, involuntary) summed over pids present in both."""
    cpu = vol = invol = 0
    for pid, (c, v, i) in after.items():
        if pid in before:
            cpu += c - before[pid][0]
            vol += v - before[pid][1]
            invol += i - before[pid][2]
    return cpu, vol, invol


def memory(pids):
    """(RSS, PSS, page tables, anonymous PSS) in KiB summed over pids, from
    smaps_rollup and status."""
    rss = pss = pte = anon = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Pss_Anon:"):
                        anon += int(line.split()[1])
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmPTE:"):
                        pte += int(line.split()[1])
        except OSError:
            pass
    return rss, pss, pte, anon


def remove_arbord_cgroups(pid):
    """Remove what an arbord killed without its shutdown left in cgroup2
    (arbord-PID and its per-service children), after killing anything in
    them by pid."""
    own = "/"
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    own = line[3:].strip()
    except OSError:
        pass
    mounts = []
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                mounts.append(parts[1])
    for mount in mounts:
        for base in glob.glob(os.path.join(mount + own, f"arbord-{pid}*")):
            for _ in range(50):
                for procs_file in glob.glob(os.path.join(base, "**", "cgroup.procs"),
                                            recursive=True):
                    try:
                        with open(procs_file) as f:
                            for p in f.read().split():
                                try:
                                    os.kill(int(p), signal.SIGKILL)
                                except ProcessLookupError:
                                    pass
                    except OSError:
                        pass
                for d in sorted(glob.glob(os.path.join(base, "*/")), reverse=True):
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass
                try:
                    os.rmdir(base)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def arbord_cgroup_in_use(pid):
    """True when arbord PID made its cgroup (the default where cgroup2 is
    writable)."""
    own = "/"
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                own = line[3:].strip()
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                if glob.glob(os.path.join(parts[1] + own, f"arbord-{pid}*")):
                    return True
    return False
