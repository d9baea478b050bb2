#!/usr/bin/python3
"""The legacy React UI's WebSocket logic, frame for frame and timer for timer, as the
users' UI runs it against the Python gateway (see issue "Drop-in for the gateway we
replace" and docs/MIGRATION.md):

- on open it subscribes to everything it holds:
  {"action":"subscribe","channels":[...],"requestId":"sub-<ms>"};
- every PING_INTERVAL (20 s) it sends {"action":"ping","requestId":"ping-<ms>"};
- a watchdog reconnects when no pong came for PONG_TIMEOUT (60 s);
- on any close other than 1000 it reconnects with backoff 2, 4, 8 ... 30 s, giving up
  after 10 attempts; after a reconnect it subscribes again to everything it held.

It records what the UI would show: data per channel, the refused channels ("errors" of
subscribed), error toasts, pongs, reconnects. Tests scale the timers with `scale`
(0.05 makes the 20 s ping 1 s); the logic is unchanged.

Standalone, against a node or the balancer:
    legacyui.py --url ws://127.0.0.1:8889/ws --seconds 10 [--token T] [--scale 1]
prints a JSON summary and exits 0 when data arrived and no error toast was shown.
"""
import argparse
import base64
import json
import os
import select
import socket
import struct
import threading
import time
import urllib.parse

CHANNELS = ["market:tick:*", "engine:signal:*", "engine:decision:*", "indicators:*"]
PING_INTERVAL = 20.0
PONG_TIMEOUT = 60.0
BACKOFF = [2, 4, 8, 16, 30]
MAX_ATTEMPTS = 10


class Closed(Exception):
    def __init__(self, code):
        super().__init__("closed %s" % code)
        self.code = code


class Socket:
    """A minimal RFC 6455 client: handshake, masked text frames out, frames in."""

    def __init__(self, host, port, path, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\nOrigin: http://legacy-ui.local\r\n\r\n"
                           % (path, host, port, key)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0] + b" ":
            raise ConnectionError("upgrade refused: %r" % head.split(b"\r\n")[0])
        self.sock.setblocking(False)

    def send(self, obj, opcode=1):
        payload = json.dumps(obj).encode() if opcode == 1 else obj
        n = len(payload)
        head = bytes([0x80 | opcode])
        head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
        mask = os.urandom(4)
        self.sock.settimeout(5)  # a peer that stopped reading must not hang the UI
        try:
            self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        finally:
            self.sock.setblocking(False)

    def frames(self, timeout):
        """Text frames received within timeout; answers pings; raises Closed."""
        r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if r:
            try:
                chunk = self.sock.recv(1 << 20)
            except BlockingIOError:
                chunk = b"-"
            if not chunk:
                raise Closed(1006)
            if chunk != b"-":
                self.buf += chunk
        out = []
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, off = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
            if len(self.buf) < off + n:
                break
            payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
            op = b0 & 0x0F
            if op == 1:
                out.append(json.loads(payload))
            elif op == 9:
                self.send(payload, opcode=10)
            elif op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close()
                raise Closed(code)
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class LegacyUI:
    def __init__(self, url, channels=None, scale=1.0, token=None):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port or 80
        self.path = (u.path or "/ws") + ("?token=" + urllib.parse.quote(token) if token else "")
        self.held = list(channels or CHANNELS)
        self.scale = scale
        self.lock = threading.Lock()
        self.data = {}           # channel -> list of data payloads
        self.refused = []        # "errors" lines of subscribed replies
        self.toasts = []         # error frames: the UI shows a toast for each
        self.subscribed = []     # subscribed replies
        self.connected = []      # connected frames (one per connection)
        self.pongs = 0
        self.pings = 0
        self.reconnects = 0
        self.closes = []         # close codes seen
        self.gave_up = False
        self.stopping = False
        self.sock = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=10)
        if self.sock:
            self.sock.close()

    def count(self, channel_prefix=""):
        with self.lock:
            return sum(len(v) for k, v in self.data.items() if k.startswith(channel_prefix))

    def _ms(self):
        return int(time.time() * 1000)

    def _run(self):
        attempt = 0
        while not self.stopping:
            try:
                self.sock = Socket(self.host, self.port, self.path, timeout=5)
            except OSError:
                self.sock = None
            if self.sock:
                attempt = 0
                code = self._session()
                self.sock.close()
                self.sock = None
                with self.lock:
                    self.closes.append(code)
                if self.stopping or code == 1000:
                    return
            if attempt >= MAX_ATTEMPTS:
                self.gave_up = True
                return
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)] * self.scale
            attempt += 1
            with self.lock:
                self.reconnects += 1
            end = time.time() + delay
            while time.time() < end and not self.stopping:
                time.sleep(0.01)

    def _session(self):
        """One connection: returns its close code (the watchdog's reconnect is 4000)."""
        try:
            return self._converse()
        except Closed as e:
            return e.code
        except OSError:
            return 1006

    def _converse(self):
        ping_every, pong_timeout = PING_INTERVAL * self.scale, PONG_TIMEOUT * self.scale
        self.sock.send({"action": "subscribe", "channels": self.held,
                        "requestId": "sub-%d" % self._ms()})
        last_pong = next_ping = time.time()
        next_ping += ping_every
        while not self.stopping:
            now = time.time()
            if now - last_pong > pong_timeout:
                return 4000  # the UI closes and reconnects: the server stopped answering
            if now >= next_ping:
                self.sock.send({"action": "ping", "requestId": "ping-%d" % self._ms()})
                self.pings += 1
                next_ping = now + ping_every
            for m in self.sock.frames(min(next_ping - now, 0.05)):
                last_pong = self._handle(m, last_pong)
        return 1000

    def _handle(self, m, last_pong):
        t = m.get("type")
        with self.lock:
            if t == "connected":
                self.connected.append(m)
            elif t == "subscribed":
                self.subscribed.append(m)
                self.refused.extend(m.get("errors", []))
            elif t == "data":
                self.data.setdefault(m["channel"], []).append(m["data"])
            elif t == "pong":
                self.pongs += 1
                return time.time()
            elif t == "error":
                self.toasts.append(m)
        return last_pong


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="ws://127.0.0.1:8889/ws")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--scale", type=float, default=1.0, help="timer scale (0.05: 1 s pings)")
    ap.add_argument("--token")
    a = ap.parse_args()
    ui = LegacyUI(a.url, scale=a.scale, token=a.token).start()
    time.sleep(a.seconds)
    ui.stop()
    summary = {"data": {k: len(v) for k, v in ui.data.items()}, "refused": ui.refused,
               "toasts": [t.get("error") for t in ui.toasts], "pongs": ui.pongs,
               "reconnects": ui.reconnects, "closes": ui.closes,
               "role": ui.connected[-1]["role"] if ui.connected else None}
    print(json.dumps(summary, indent=1))
    return 0 if summary["data"] and not summary["toasts"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
