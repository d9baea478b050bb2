"""Fixtures for end-to-end tests: a real redis-server and real wsgw processes on free
loopback ports, a raw-socket WebSocket client (so tests control every byte: fragments,
binary frames, not reading at all) and a minimal RESP client.

Environment: WSGW_BIN (path to wsgw), GW_TEST_TIMEOUT_MULT (slow machines, sanitizers),
GW_TEST_CATLOG=1 (dump process logs on teardown).
"""
import base64
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WSGW_BIN = os.environ.get("WSGW_BIN", os.path.join(ROOT, "build", "bin", "wsgw"))
MULT = float(os.environ.get("GW_TEST_TIMEOUT_MULT") or "1")


def T(seconds):
    return seconds * MULT


def free_port():
    # Below the ephemeral range would be nicer, but the kernel's pick of a bound-then-
    # closed port is free right now, and callers retry on a failed start.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    deadline = time.time() + T(timeout)
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class Redis:
    """A private redis-server on a free port."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="gwtest-redis-")
        self.port = None
        self.proc = None
        self.start()

    def start(self, port=None):
        for _ in range(5):
            self.port = port or free_port()
            self.log = open(os.path.join(self.dir, "redis.log"), "ab")
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", self.dir],
                stdout=self.log, stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: self._ping(), 5, "redis-server")
                return
            except AssertionError:
                self.proc.kill()
                self.proc.wait()
                if port:
                    raise
        raise RuntimeError("redis-server did not start")

    def _ping(self):
        if self.proc.poll() is not None:
            raise AssertionError("redis-server exited")
        try:
            return RespClient(self.port).command("PING") == "PONG"
        except OSError:
            return False

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def client(self):
        return RespClient(self.port)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.kill()
        self.start(self.port)

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RespClient:
    """Just enough RESP2 for tests: commands and pipelined PUBLISH."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=T(5))
        self.buf = b""

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("redis closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("redis closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._exact(n + 2)[:-2]
            return data
        if t == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError("bad RESP %r" % line)

    def command(self, *args):
        self.sock.sendall(self.encode(*args))
        return self.reply()

    def publish_many(self, items):
        """items: iterable of (channel, payload); returns total receivers."""
        items = list(items)
        self.sock.sendall(b"".join(self.encode("PUBLISH", c, p) for c, p in items))
        return sum(self.reply() for _ in items)

    def numsub(self, channel):
        r = self.command("PUBSUB", "NUMSUB", channel)
        return int(r[1])

    def numpat(self):
        return int(self.command("PUBSUB", "NUMPAT"))

    def close(self):
        self.sock.close()


class Daemon:
    """A program of ours started on free ports, its log in a temp dir; ready when the log
    says event=listening. A start that fails (a port taken meanwhile) is retried."""

    name = "daemon"
    logname = "daemon.log"

    def launch(self, cmd, pick_ports, fixed=False):
        """pick_ports() chooses ports and sets them in self.env; cmd is run with self.env."""
        for _ in range(5):
            pick_ports()
            self.logpath = os.path.join(self.dir, self.logname)
            self.log_offset = len(self.logtext())
            self.log = open(self.logpath, "ab")
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log,
                                         stderr=subprocess.STDOUT,
                                         preexec_fn=getattr(self, "preexec", None))
            try:
                wait_for(self._listening, 10, self.name + " to listen")
                return
            except AssertionError:
                if self.proc.poll() is None:
                    self.proc.kill()
                self.proc.wait()
                if fixed:
                    break
        raise RuntimeError(self.name + " did not start:\n" + self.logtext())

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s" % (self.name, self.proc.returncode))
        text = self.logtext()[self.log_offset:]
        return "event=listening" in text or '"event":"listening"' in text  # text or JSON logs

    def logtext(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except (OSError, AttributeError):
            return ""


class Gateway(Daemon):
    """A wsgw process. Extra settings are passed as environment variables; a None value
    removes one (e.g. REDIS_URL, to configure Redis the legacy way)."""

    name = "wsgw"
    logname = "wsgw.log"

    def __init__(self, redis_url, env=None, args=None, nofile=None):
        self.dir = tempfile.mkdtemp(prefix="gwtest-wsgw-")
        if nofile:  # a descriptor limit for the process (soft and hard)
            self.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.env = dict(os.environ)
        # Tests of routing and robustness run as admin without rate limits; the security
        # tests set these themselves.
        self.env.update({"REDIS_URL": redis_url, "BIND_ADDRESS": "127.0.0.1",
                         "LOG_LEVEL": "info", "REDIS_BACKOFF_MIN_MS": "50",
                         "REDIS_BACKOFF_MAX_MS": "500", "REDIS_PING_INTERVAL_MS": "200",
                         "DEFAULT_ROLE": "admin", "CLIENT_RATE_LIMIT": "100000",
                         "CLIENT_RATE_BURST": "100000"})
        self.env.update(env or {})
        for k in [k for k, v in self.env.items() if v is None]:
            del self.env[k]
        self.args = args or []
        self.proc = None
        self.start()

    def start(self):
        def pick():
            self.port = free_port()
            self.env["REDIS_WS_GATEWAY_PORT"] = str(self.port)
        self.launch([WSGW_BIN] + self.args, pick)

    def http(self, path, headers=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=T(5)) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stats(self):
        status, body = self.http("/stats")
        assert status == 200
        return json.loads(body)

    def health(self):
        status, body = self.http("/health")
        return status, json.loads(body)

    def ws(self, path="/ws", **kw):
        return WsClient(self.port, path, **kw)

    def wait_ready(self):
        wait_for(lambda: self.health()[0] == 200, 10, "gateway health 200")

    def terminate(self, timeout=10):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=T(timeout))

    def close(self):
        rc = None
        if self.proc.poll() is None:
            try:
                rc = self.terminate()
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("wsgw did not stop on SIGTERM\n" + self.logtext())
        else:
            rc = self.proc.returncode
        text = self.logtext()
        if os.environ.get("GW_TEST_CATLOG"):
            print(text)
        shutil.rmtree(self.dir, ignore_errors=True)
        # A sanitizer report or a crash must fail the test that caused it.
        assert rc == 0, "wsgw exited with %s\n%s" % (rc, text[-4000:])
        assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text, text[-4000:]


class UpgradeRefused(ConnectionError):
    def __init__(self, status, head):
        super().__init__("upgrade refused with HTTP %s: %r" % (status, head))
        self.status = status


class WsClosed(Exception):
    def __init__(self, code, reason):
        super().__init__("closed %s %s" % (code, reason))
        self.code = code
        self.reason = reason


class WsClient:
    """A WebSocket client on a raw socket (RFC 6455, client frames masked)."""

    def __init__(self, port, path="/ws", headers=None, rcvbuf=None, connect=True, source=None,
                 timeout=5):
        self.port = port
        self.timeout = timeout  # for the handshake
        self.path = path
        self.headers = headers or {}
        self.rcvbuf = rcvbuf
        self.source = source  # a local address to connect from (127.0.0.x: another client)
        self.buf = b""
        self.sock = None
        if connect:
            self.connect()

    def connect(self):
        s = socket.socket()
        if self.rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        s.settimeout(T(self.timeout))
        if self.source:
            s.bind((self.source, 0))
        s.connect(("127.0.0.1", self.port))
        self.sock = s
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % self.path, "Host: 127.0.0.1:%d" % self.port,
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        lines += ["%s: %s" % kv for kv in self.headers.items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake: %r" % self.buf)
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ")[1])
        if self.status != 101:
            raise UpgradeRefused(self.status, head)

    def send_frame(self, opcode, payload, fin=True):
        if isinstance(payload, str):
            payload = payload.encode()
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, obj):
        self.send_frame(1, obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv_frame(self, timeout=5):
        self.sock.settimeout(T(timeout))
        b0, b1 = self._exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exact(8))[0]
        assert not (b1 & 0x80), "server frames must not be masked"
        return b0, self._exact(n)

    def recv(self, timeout=5):
        """Next text frame as JSON; answers pings; raises WsClosed on a close frame."""
        while True:
            b0, payload = self.recv_frame(timeout)
            op = b0 & 0x0F
            if op == 1:
                assert b0 & 0x80, "server text frames are not fragmented"
                return json.loads(payload)
            if op == 9:
                self.send_frame(10, payload)
                continue
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                try:  # answer it, as browsers do: the server then hangs up at once
                    self.send_frame(8, payload[:2])
                except OSError:
                    pass
                raise WsClosed(code, payload[2:].decode(errors="replace"))
            raise AssertionError("unexpected opcode %d" % op)

    def recv_type(self, typ, timeout=5):
        """Skips frames until one of the given type (returns it)."""
        while True:
            m = self.recv(timeout)
            if m.get("type") == typ:
                return m

    def expect_close(self, timeout=5):
        try:
            while True:
                self.recv(timeout)
        except WsClosed as e:
            return e.code
        except ConnectionError:
            return None

    def subscribe(self, channels, id=None):
        msg = {"type": "subscribe", "channels": channels}
        if id is not None:
            msg["id"] = id
        self.send(msg)
        return self.recv_type("subscribed")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
