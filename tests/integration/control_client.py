"""A small client for arbord's control protocol (supervisord/proto/control.h),
for the integration tests while arborctl does not exist yet, and for the
robustness tests, which need to send what no well-behaved client would.

Wire format (host byte order):
    frame    u32 length | u16 type | u16 reserved (0) | payload
    payload  fields back to back: u16 klen | key | u32 vlen | value
A conversation: HELLO version=1, the server's HELLO, one REQUEST, then UNIT
or LOG frames and a RESULT (for logs follow=1: LOG frames until we close).

High level:
    request(run_dir, command, units=(), **options)
        -> (result, unit_frames, log_frames), each a Fields
    request_as(uid, gid, run_dir, command, ...)   the same from another uid
Lower level: Connection (connect, send_frame, send_raw, recv_frame, hello,
send_request, read_reply), encode_fields/decode_fields, frame().
"""

import json
import os
import socket
import struct
import time

HELLO, REQUEST, UNIT, LOG, RESULT = 1, 2, 3, 4, 5
FRAME_NAMES = {HELLO: "HELLO", REQUEST: "REQUEST", UNIT: "UNIT", LOG: "LOG", RESULT: "RESULT"}
VERSION = 1
HEADER = struct.Struct("=IHH")
FIELD_KEY = struct.Struct("=H")
FIELD_VALUE = struct.Struct("=I")
REPLY_MAX = 16 * 1024 * 1024
DEFAULT_TIMEOUT = float(os.environ.get("ARBOR_TEST_TIMEOUT", "15"))


def socket_path(run_dir):
    return os.path.join(run_dir, "control.sock")


# ---- encoding ----

def _bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"1" if value else b"0"
    return str(value).encode()


def encode_field(key, value):
    key, value = _bytes(key), _bytes(value)
    return FIELD_KEY.pack(len(key)) + key + FIELD_VALUE.pack(len(value)) + value


def encode_fields(pairs):
    """pairs: an iterable of (key, value); values may be str, int or bytes."""
    return b"".join(encode_field(k, v) for k, v in pairs)


def frame(ftype, payload=b"", reserved=0, length=None):
    """A whole frame; `payload` is bytes or an iterable of (key, value).
    `length` overrides the announced length (for lying to the server)."""
    if not isinstance(payload, (bytes, bytearray)):
        payload = encode_fields(payload)
    return HEADER.pack(len(payload) if length is None else length, ftype, reserved) + payload


def request_pairs(command, units=(), **options):
    pairs = [("command", command)]
    pairs += [("unit", u) for u in units]
    pairs += [(k, v) for k, v in options.items() if v is not None]
    return pairs


# ---- decoding ----

class Fields:
    """The fields of one frame. f["key"] is the first value (str), f.all(key)
    every value, f.int(key) a number; `key in f` works; f.type is the frame
    type; f.pairs the raw (key, bytes) list."""

    def __init__(self, ftype, pairs):
        self.type = ftype
        self.pairs = pairs

    def all(self, key):
        return [v.decode("utf-8", "replace") for k, v in self.pairs if k == key]

    def raw(self, key):
        for k, v in self.pairs:
            if k == key:
                return v
        raise KeyError(key)

    def __getitem__(self, key):
        return self.raw(key).decode("utf-8", "replace")

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def int(self, key, default=None):
        value = self.get(key)
        return default if value is None else int(value)

    def __contains__(self, key):
        return any(k == key for k, _ in self.pairs)

    def keys(self):
        return [k for k, _ in self.pairs]

    def as_dict(self):
        d = {}
        for k, v in self.pairs:
            d.setdefault(k, []).append(v.decode("utf-8", "replace"))
        return {k: (v[0] if len(v) == 1 else v) for k, v in d.items()}

    def to_json(self):
        return {"type": self.type,
                "pairs": [[k, v.decode("latin-1")] for k, v in self.pairs]}

    @classmethod
    def from_json(cls, obj):
        return cls(obj["type"], [(k, v.encode("latin-1")) for k, v in obj["pairs"]])

    def __repr__(self):
        return f"<{FRAME_NAMES.get(self.type, self.type)} {self.as_dict()}>"


class ProtocolError(Exception):
    pass


def decode_fields(payload):
    pairs = []
    at = 0
    while at < len(payload):
        if at + 2 > len(payload):
            raise ProtocolError("truncated key length")
        (klen,) = FIELD_KEY.unpack_from(payload, at)
        at += 2
        if at + klen + 4 > len(payload):
            raise ProtocolError("key or value length past the end")
        key = payload[at:at + klen].decode("ascii")
        at += klen
        (vlen,) = FIELD_VALUE.unpack_from(payload, at)
        at += 4
        if at + vlen > len(payload):
            raise ProtocolError("value past the end")
        pairs.append((key, bytes(payload[at:at + vlen])))
        at += vlen
    return pairs


# ---- a connection ----

class Connection:
    def __init__(self, run_dir, timeout=DEFAULT_TIMEOUT, connect=True):
        self.path = socket_path(run_dir)
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.eof = False
        if connect:
            self.sock.connect(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def fileno(self):
        return self.sock.fileno()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, ftype, payload=b"", **kw):
        self.send_raw(frame(ftype, payload, **kw))

    def _fill(self, deadline):
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise socket.timeout("timed out waiting for a frame")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def recv_frame(self, timeout=None):
        """The next frame as Fields, or None when the server closed first.
        Raises socket.timeout after `timeout` (default: the connection's)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if len(self.buf) >= HEADER.size:
                length, ftype, reserved = HEADER.unpack_from(self.buf, 0)
                if length > REPLY_MAX:
                    raise ProtocolError(f"server frame of {length} bytes")
                if reserved != 0:
                    raise ProtocolError(f"reserved field {reserved}")
                if len(self.buf) >= HEADER.size + length:
                    payload = bytes(self.buf[HEADER.size:HEADER.size + length])
                    del self.buf[:HEADER.size + length]
                    return Fields(ftype, decode_fields(payload))
            if self.eof or not self._fill(deadline):
                if self.buf:
                    raise ProtocolError(f"{len(self.buf)} bytes of a truncated frame at EOF")
                return None

    def wait_closed(self, timeout=None):
        """Read (and return) frames until the server closes; raises
        socket.timeout if it does not close in time."""
        frames = []
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(timeout=max(0.0, deadline - time.monotonic()) or 0.001)
            if f is None:
                return frames
            frames.append(f)

    def hello(self, version=VERSION):
        self.send_frame(HELLO, [("version", version)])
        reply = self.recv_frame()
        if reply is None:
            raise ProtocolError("closed instead of HELLO")
        return reply

    def send_request(self, command, units=(), **options):
        self.send_frame(REQUEST, request_pairs(command, units, **options))

    def read_reply(self, timeout=None):
        """UNIT and LOG frames until RESULT: (result, units, logs). result is
        None when the server closed without one."""
        units, logs = [], []
        while True:
            f = self.recv_frame(timeout)
            if f is None:
                return None, units, logs
            if f.type == UNIT:
                units.append(f)
            elif f.type == LOG:
                logs.append(f)
            elif f.type == RESULT:
                return f, units, logs
            else:
                raise ProtocolError(f"unexpected frame {f!r}")


def connect(run_dir, timeout=DEFAULT_TIMEOUT):
    return Connection(run_dir, timeout)


def open_request(run_dir, command, units=(), timeout=DEFAULT_TIMEOUT, **options):
    """Connect, HELLO, send the REQUEST; return the Connection (for follow=1,
    or to read the reply later)."""
    c = Connection(run_dir, timeout)
    try:
        h = c.hello()
        if h.type != HELLO:
            raise ProtocolError(f"expected HELLO, got {h!r}")
        c.send_request(command, units, **options)
    except BaseException:
        c.close()
        raise
    return c


def request(run_dir, command, units=(), timeout=DEFAULT_TIMEOUT, **options):
    """One whole conversation: (result, unit_frames, log_frames)."""
    with open_request(run_dir, command, units, timeout, **options) as c:
        result, units_, logs = c.read_reply()
        if result is None:
            raise ProtocolError(f"{command}: the server closed without a RESULT")
        return result, units_, logs


def status(run_dir, units=(), **options):
    """status as a list of UNIT Fields (asserting the request worked)."""
    result, frames, _ = request(run_dir, "status", units, **options)
    if result.int("exit") != 0:
        raise ProtocolError(f"status failed: {result!r}")
    return frames


def status_map(run_dir, units=()):
    return {f["name"]: f for f in status(run_dir, units)}


def request_as(uid, gid, run_dir, command, units=(), timeout=DEFAULT_TIMEOUT, **options):
    """request() from a child process running as uid/gid (we must be root).
    Returns the same triple, or raises the child's error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
                result, units_, logs = request(run_dir, command, units, timeout, **options)
                out = {"result": result.to_json(), "units": [u.to_json() for u in units_],
                       "logs": [l.to_json() for l in logs]}
            except BaseException as e:  # reported to the parent
                out = {"error": f"{type(e).__name__}: {e}"}
            with os.fdopen(w, "wb") as f:
                f.write(json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    out = json.loads(data)
    if "error" in out:
        raise ProtocolError(f"as uid {uid}: {out['error']}")
    return (Fields.from_json(out["result"]), [Fields.from_json(u) for u in out["units"]],
            [Fields.from_json(l) for l in out["logs"]])


# ---- arbord's own resources ----

def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def control_connections(pid, run_dir):
    """How many accepted control-socket connections `pid` (arbord) holds:
    its sockets that /proc/net/unix shows bound to control.sock, not
    listening."""
    path = socket_path(run_dir)
    accepted = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path and int(parts[3], 16) & 0x10000 == 0:
                accepted.add(parts[6])
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in accepted:
            count += 1
    return count


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
