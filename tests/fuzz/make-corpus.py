#!/usr/bin/env python3
"""Write the seed corpus of every fuzz target into tests/fuzz/corpus/.

    tests/fuzz/make-corpus.py

The seeds are real inputs: the unit directories of units/ and tests/data
(each written as one input in fuzz_unit.c's "== NAME" format), and valid
control frames, notify messages and mailbox datagrams, plus a few broken
ones near each rule's edge. The files are checked in; run this again after
changing it (it replaces corpus/*/ whole). Frames use this host's byte
order, as the protocol does (little-endian on the machines arbor runs on).
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    path = os.path.join(CORPUS, target, name)
    with open(path, "wb") as f:
        f.write(data)


# ---- unit ------------------------------------------------------------------

def unit_dir_input(path):
    """A directory as fuzz_unit.c's input: "== NAME" then the bytes."""
    out = b""
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            data += b"\n"
        out += b"== " + name.encode() + b"\n" + data
    return out


ENV = "/proc/self/fd/200/"  # fuzz_unit.c: the unit directory, as an absolute path

UNIT_SEEDS = {
    # Every key of [Service] and [Supervisor], with valid values.
    "all-keys": f"""== root.supervisor
[Unit]
Description=every key
[Supervisor]
Strategy=rest-for-one
Intensity=3
Period=1min 30s
Children=svc
Children=sub
Restart=permanent
AutoShutdown=any-significant
== sub.supervisor
[Supervisor]
Strategy=one-for-all
Restart=transient
AutoShutdown=all-significant
Significant=no
Children=leaf
== leaf.service
[Service]
ExecStart=true
Restart=temporary
Significant=yes
== svc.service
[Unit]
Description=  spaces around  
[Service]
ExecStart=/bin/echo 'single quoted' "double \\"quoted\\" $HOME" back\\ slash ''
Type=notify
Restart=transient
KillSignal=SIGRTMIN+3
Shutdown=1.5s
StartTimeout=infinity
WatchdogSec=250ms
Mailbox=yes
MailboxCapacity=16
MailboxMode=0660
MailboxGroup=0
User=0
Group=root
WorkingDirectory=/tmp
Environment=A=1 "B=two words" C='x y'
Environment=A=replaced
EnvironmentFile={ENV}env
EnvironmentFile=-{ENV}missing
UMask=0027
StandardOutput=inherit
StandardError=null
Listen=/run/svc.sock
Listen=127.0.0.1:8080
Listen=[::1]:8080
FileDescriptorStoreMax=4
== env
# comment
; also a comment
PLAIN=value
export EXPORTED=yes
QUOTED="a \\"b\\" c"
SINGLE='it is'
  INDENTED=1   
EMPTY=
""",
    # Durations, signals and quoting in every form the parsers accept.
    "values": """== a.service
[Service]
ExecStart=/bin/sh -c 'exec "$0" "$@"' sleep 10
Shutdown=brutal-kill
StartTimeout=0
WatchdogSec=2min
KillSignal=9
== b.service
[Service]
ExecStart=b
Shutdown=1h 2min 3s 4ms 5us
StartTimeout=.5
KillSignal=RTMAX-1
== c.service
[Service]
ExecStart=c
Shutdown=2 days
KillSignal=HUP
""",
    # Every kind of bad line and value, each reported.
    "errors": f"""== a.service
Description=before any section
[Unit
[Bogus]
[Service] trailing
[Supervisor]
[Service]
  indented=1
junk line
=novalue
ExecStart=
ExecStart=rel/path
ExecStart=
Type=forking
Restart=sometimes
KillSignal=SIGNOPE
Shutdown=5 sec x
StartTimeout=-1
WatchdogSec=1e3
Mailbox=maybe
MailboxCapacity=0
MailboxMode=0999
MailboxGroup=no-such-group-here
User=no-such-user-here
WorkingDirectory=relative
Environment=1BAD=x "unterminated
EnvironmentFile=relative
UMask=8
StandardOutput=file
Listen=999.1.1.1:80
Listen=[::1]:0
FileDescriptorStoreMax=70000
execstart=/bin/true
Strategy=one-for-one
== b.supervisor
[Supervisor]
Children=b missing root b
Intensity=-1
Period=0
Strategy=all
AutoShutdown=sometimes
== c.service
[Service]
ExecStart='unterminated
Environment=A=1 B
EnvironmentFile={ENV}bad-env
== bad-env
not an assignment
""",
    # A cycle, a unit listed twice, and a significant child under "never".
    "tree-errors": """== root.supervisor
[Supervisor]
Children=x x
== x.supervisor
[Supervisor]
Children=z
== p.supervisor
[Supervisor]
Children=q
== q.supervisor
[Supervisor]
Children=p z
== y.supervisor
[Supervisor]
Children=y
== z.service
[Service]
ExecStart=z
Restart=transient
Significant=yes
== lonely.service
[Service]
ExecStart=lonely
""",
    # Text oddities: CRLF, a BOM, tabs, inline comments, long lines.
    "text": "== a.service\n\xef\xbb\xbf[Unit]\r\nDescription=" + "y" * 250 + " ; inline comment\r\n"
            "[Service]\r\nExecStart=/bin/true\t\r\n;comment\r\n#comment\r\n"
            + "Environment=LONG=" + "x" * 300 + "\n",
    "long-line": "== a.service\n[Service]\nExecStart=/bin/true\nEnvironment=L="
                 + "z" * 66000 + "\n",
    "nul-and-binary": b"== a.service\n[Service]\nExecStart=/bin/true\x00\nEnvironment=A=\x01\x1b[31m\n"
                      + bytes(range(256)) + b"\n",
    "too-many-errors": "== a.service\n" + "junk\n" * 60,
    # Directory entries that are not plain files: fuzz_unit.c's "/", "->", "!".
    "entries": f"""== root.supervisor
[Supervisor]
Children=svc linked
== svc.service
[Service]
ExecStart=svc
EnvironmentFile={ENV}env-link
EnvironmentFile=-{ENV}env-dir
== linked.service -> svc.service
== dangling.service -> nowhere.service
== loop.service -> loop.service
== up.service -> ..
== svc.service.d/
== env-link -> env
== env-dir/
== env
A=1
== open.service !0666
[Service]
ExecStart=open
== group.supervisor !0664
[Supervisor]
== closed.service !0
[Service]
ExecStart=closed
""",
    # Rarer values, each valid, so that the tree prints them.
    "rare-values": """== mbox.service
[Service]
ExecStart=mbox
Mailbox=yes
MailboxGroup=root
Listen=/run/a.sock
Listen=0.0.0.0:1
== root.supervisor
[Supervisor]
Period=1h
Children=ms inf mbox
== ms.supervisor
[Supervisor]
Period=1500ms
== inf.service
[Service]
ExecStart=inf
Shutdown=infinity
User=0
""",
    "rare-errors": """== a.service
[Service]
ExecStart=''
User=4000000
== b.service
[Service]
ExecStart="" arg
User=4000001
Group=4000002
""",
    # A cycle too long to spell out whole in its message.
    "long-cycle": "".join(
        "== c%02d%s.supervisor\n[Supervisor]\nChildren=c%02d%s\n" % (i, "x" * 40, (i + 1) % 12, "x" * 40)
        for i in range(12)),
    "names": """== 9lives.service
[Service]
ExecStart=x
== bad@name.service
== .hidden.service
== root.service
[Service]
ExecStart=x
== dup.service
== dup.supervisor
== dir.service.d
""",
}


def make_unit():
    dirs = [os.path.join(ROOT, "units", d) for d in sorted(os.listdir(os.path.join(ROOT, "units")))]
    data = os.path.join(ROOT, "tests", "data", "units")
    dirs += [os.path.join(data, d) for d in sorted(os.listdir(data))]
    for d in dirs:
        if os.path.isdir(d):
            write("unit", "dir-" + os.path.basename(d), unit_dir_input(d))
    for name, text in UNIT_SEEDS.items():
        write("unit", name, text.encode("latin-1") if isinstance(text, str) else text)


# ---- values ----------------------------------------------------------------

VALUES = [
    "5s", "500ms", "2min", "1h", "30", "0", "1.5min", ".5s", "1min 30s", "1h30m", "100us",
    "1 day", "2days 3hours", "36500d", "36501d", "18446744073709551615", "5 ", "5sx", "+5", "1min 30",
    "/usr/bin/postgres -D /var/lib/pg", "sh -c 'echo \"hi\"; exit 3'", "a\\ b 'c d' \"e\\\"f\" ''",
    "'unterminated", "\"unterminated", "trailing\\", "\"\\$HOME \\` \\x\"", "\ttabs\tand  spaces ",
    "SIGTERM", "TERM", "15", "64", "65", "SIGRTMIN", "RTMIN+3", "RTMAX-2", "SIGRTMAX", "RTMIN-1",
    "yes", "no", "TRUE", "off", "1", "0", "y",
    "4096", "1000000", "1000001", "007", "",
    "db", "web-1.x_y", "9lives", "_bad", "bad@name", "a" * 64, "a" * 65,
    "KEY=value", "export KEY=value", "  KEY = value", "KEY=\"quoted \\\" value\"  ", "KEY='single'",
    "# comment", "; comment", "1BAD=x", "=x", "KEY", "K_2=\"", "KEY=\"a\\\\b\"",
]


def make_values():
    for i, v in enumerate(VALUES):
        write("values", "v%02d" % i, v)


# ---- control ---------------------------------------------------------------

HELLO, REQUEST, UNIT, LOG, RESULT = 1, 2, 3, 4, 5


def field(key, value):
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        value = value.encode()
    return struct.pack("<H", len(key)) + key.encode() + struct.pack("<I", len(value)) + value


def frame(ftype, *fields, reserved=0):
    payload = b"".join(field(k, v) for k, v in fields)
    return struct.pack("<IHH", len(payload), ftype, reserved) + payload


def make_control():
    seeds = {
        "client-hello": frame(HELLO, ("version", 1)),
        "server-hello": frame(HELLO, ("version", 1), ("pid", 1234)),
        "status-all": frame(HELLO, ("version", 1)) + frame(REQUEST, ("command", "status")),
        "start": frame(REQUEST, ("command", "start"), ("unit", "db"), ("unit", "web"),
                       ("no_block", 1)),
        "kill": frame(REQUEST, ("command", "kill"), ("unit", "db"), ("signal", 9)),
        "logs": frame(REQUEST, ("command", "logs"), ("unit", "db"), ("lines", 10), ("follow", 1)),
        "wait": frame(REQUEST, ("command", "wait"), ("unit", "db"), ("timeout_ms", 5000)),
        "reload": frame(REQUEST, ("command", "reload")),
        "status-reply": frame(HELLO, ("version", 1), ("pid", 1))
        + frame(UNIT, ("name", "root"), ("kind", "supervisor"), ("depth", 0),
                ("state", "running"), ("restarts", 0), ("uptime_ms", 12345),
                ("strategy", "one-for-one"), ("held", 0))
        + frame(UNIT, ("name", "db"), ("kind", "service"), ("parent", "root"), ("depth", 1),
                ("state", "running"), ("pid", 42), ("restarts", 2), ("uptime_ms", 99),
                ("exit_code", 3), ("status", "accepting connections"),
                ("description", "Postgres"), ("type", "notify"), ("restart", "permanent"),
                ("held", 0), ("mailbox_queued", 1), ("mailbox_socket_bytes", 10),
                ("mailbox_kept", 0), ("mailbox_forwarded", 5), ("mailbox_reclaimed", 0),
                ("mailbox_direct", 1), ("mailbox_capacity", 4096))
        + frame(UNIT, ("name", "web"), ("kind", "service"), ("exit_signal", 9))
        + frame(RESULT, ("ok", 1), ("exit", 0)),
        "logs-reply": frame(LOG, ("unit", "db"), ("pid", 42), ("time_ms", 1700000000000),
                            ("line", "db: ready"))
        + frame(LOG, ("unit", "db"), ("pid", 42), ("time_ms", 1), ("line", "bin\x00ary\x1b")),
        "result-errors": frame(RESULT, ("ok", 0), ("exit", 3), ("error", "no unit named x"),
                               ("error", "second"), ("message", "db: started")),
        "result-refusal": frame(RESULT, ("ok", 0), ("exit", 1),
                                ("error", "protocol version 2 not supported")),
        "result-odd": frame(HELLO, ("version", 1)) + frame(RESULT, ("ok", 1), ("exit", 200))
        + frame(RESULT, ("ok", "x")),
        "hello-twice": frame(HELLO, ("version", 1), ("version", 2), ("pid", "x"))
        + frame(HELLO, ("version", 1)),
        "hello-unit": frame(UNIT, ("name", "x")) + frame(HELLO, ("version", 1)),
        "numbers": frame(REQUEST, ("signal", "-1"), ("lines", "9223372036854775807"),
                         ("timeout_ms", "9223372036854775808"), ("no_block", " 1"),
                         ("follow", "")),
        "truncated-header": frame(HELLO, ("version", 1))[:5],
        "truncated-payload": frame(REQUEST, ("command", "status"))[:-3],
        "bad-field": struct.pack("<IHH", 5, REQUEST, 0) + b"\x09\x00abc",
        "bad-type": struct.pack("<IHH", 0, 9, 0),
        "bad-reserved": frame(HELLO, ("version", 1), reserved=1),
        "too-long": struct.pack("<IHH", 128 * 1024 + 1, REQUEST, 0) + b"x" * 16,
        "empty-frames": frame(HELLO) + frame(RESULT) + frame(UNIT) + frame(LOG),
        "nul-key": frame(REQUEST, ("com\x00mand", "status")),
        # Longer than arborctl's first read (64 KiB): its buffer must grow.
        "big-log": frame(HELLO, ("version", 1), ("pid", 7))
        + frame(LOG, ("unit", "db"), ("line", "L" * 100000)) + frame(RESULT, ("ok", 1)),
    }
    for name, data in seeds.items():
        write("control", name, data)


# ---- notify ----------------------------------------------------------------

def make_notify():
    seeds = {
        "ready": "READY=1",
        "ready-status": "READY=1\nSTATUS=accepting connections\n",
        "status": "STATUS=warming up: 50%",
        "mainpid": "MAINPID=4242\nREADY=1",
        "watchdog": "WATCHDOG=1",
        "watchdog-trigger": "WATCHDOG=trigger",
        "watchdog-usec": "WATCHDOG_USEC=5000000",
        "extend": "EXTEND_TIMEOUT_USEC=10000000",
        "reloading": "RELOADING=1\nMONOTONIC_USEC=123456789",
        "stopping": "STOPPING=1\nSTATUS=bye",
        "errno": "ERRNO=2\nSTATUS=failed",
        "fdstore": "FDSTORE=1\nFDNAME=listener",
        "fdstore-remove": "FDSTOREREMOVE=1\nFDNAME=listener",
        "fdname-bad": "FDSTORE=1\nFDNAME=bad:name",
        "last-wins": "READY=1\nSTOPPING=1\nRELOADING=1\nREADY=1",
        "first-wins": "STATUS=one\nSTATUS=two\nMAINPID=1\nMAINPID=2\nERRNO=1\nERRNO=2",
        "bad-numbers": "MAINPID=-1\nMAINPID=4194304\nERRNO=4096\nWATCHDOG_USEC=abc\n"
                       "EXTEND_TIMEOUT_USEC=99999999999999999999",
        "crlf": "READY=1\r\nSTATUS=crlf\r\n",
        "trailing-nul": "READY=1\x00",
        "inner-nul": "READY=1\x00STATUS=x",
        "empty": "",
        "no-equals": "READY\nSTATUS\n=\n",
        "too-long": "STATUS=" + "x" * 4096,
        "max-size": "STATUS=" + "x" * (4096 - 7),
    }
    for name, data in seeds.items():
        write("notify", name, data)


# ---- envelope --------------------------------------------------------------

def envelope_input(flags, buf_len, name, message):
    name = name.encode() if isinstance(name, str) else name
    message = message.encode() if isinstance(message, str) else message
    return bytes([flags]) + struct.pack("<H", buf_len) + bytes([len(name)]) + name + message


def envelope(name, version=1):
    name = name.encode() if isinstance(name, str) else name
    return b"\x00ARB" + bytes([version, len(name)]) + name


def make_envelope():
    seeds = {
        "plain": envelope_input(0, 4096, "", "41"),
        "from-ticker": envelope_input(1, 4096, "ticker", "42"),
        "peek": envelope_input(3, 4096, "ping", "hello"),
        "truncated": envelope_input(1, 3, "sender", "a longer message"),
        "zero-buffer": envelope_input(0, 0, "", "dropped"),
        "raw-envelope": envelope_input(0, 100, "", envelope("spoof") + b"body"),
        "raw-version-2": envelope_input(0, 100, "", envelope("x", version=2) + b"body"),
        "raw-bad-name": envelope_input(0, 100, "", envelope("-x") + b"body"),
        "raw-short": envelope_input(0, 100, "", envelope("abcdef")[:9]),
        "raw-zero-name": envelope_input(0, 100, "", b"\x00ARB\x01\x00body"),
        "name-64": envelope_input(1, 200, "n" * 64, "max name"),
        "name-65": envelope_input(1, 200, "n" * 65, "too long a name"),
        "name-bad": envelope_input(1, 200, "bad name", "x"),
        "empty-message": envelope_input(1, 10, "a", ""),
        "max-message": envelope_input(1, 65535, "a", b"m" * (65536 - 7)),
        "over-max-message": envelope_input(1, 65535, "a", b"m" * (65536 - 6)),
        "bare-envelope": envelope("db") + b"payload",
        "reply-to-self": envelope_input(1, 100, "box", "answer me"),
        "raw-reply-to-self": envelope_input(0, 100, "", envelope("box") + b"raw"),
    }
    for name, data in seeds.items():
        write("envelope", name, data)


def main():
    for target, make in [("unit", make_unit), ("values", make_values), ("control", make_control),
                         ("notify", make_notify), ("envelope", make_envelope)]:
        path = os.path.join(CORPUS, target)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        make()
        print("%-9s %3d seeds" % (target, len(os.listdir(path))))


if __name__ == "__main__":
    main()
