"""The drop-in for the Python gateway: its UI's exact frames and timers (legacyui.py)
against one node and through nginx while a node dies, v1 and legacy clients side by
side, every legacy error path and hostile frame, its environment variables, CORS,
origin refusal and unknown subprotocols."""
import json
import os
import re
import signal
import subprocess
import threading
import time

import jwt
import pytest
import yaml

from gwtest import (T, WSGW_BIN, Gateway, UpgradeRefused, WsClient, WsClosed, free_port,
                    wait_for)
from legacyui import CHANNELS, LegacyUI
from lbtest import LB_NODE_ENV, Nginx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USER = {"DEFAULT_ROLE": "user"}
ALLOWED = ["market:tick:AAPL", "engine:signal:AAPL", "indicators:rsi"]
DENIED = "engine:decision:AAPL"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
SCALE = 0.05  # the UI's 20 s ping becomes 1 s, its 60 s watchdog 3 s, backoff 0.1 .. 1.5 s


class Publisher:
    """Publishes a counter on every channel the UI subscribes to, until stopped."""

    def __init__(self, redis, channels=ALLOWED + [DENIED], period=0.02):
        self.redis, self.channels, self.period = redis, channels, period
        self.n = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        r = self.redis.client()
        while not self.stopping:
            self.n += 1
            r.publish_many((c, json.dumps({"n": self.n})) for c in self.channels)
            time.sleep(self.period)

    def stop(self):
        self.stopping = True
        self.thread.join()


def legacy(c, frame):
    c.send(frame)
    return c.recv()


def check_reply(m, typ, request_id):
    assert m["type"] == typ, m
    assert m["requestId"] == request_id, m
    assert ISO.match(m["timestamp"]), m


# --- the UI, against one node -----------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_legacy_ui_against_one_node(gateway_factory, redis, mode):
    g = gateway_factory(env=dict(USER, CLIENT_PROTOCOL=mode))
    g.wait_ready()
    pub = Publisher(redis)
    ui = LegacyUI("ws://127.0.0.1:%d/ws" % g.port, scale=SCALE).start()
    try:
        wait_for(lambda: all(ui.data.get(c) for c in ALLOWED) and ui.pongs >= 3, 10,
                 "data on every allowed channel and pongs")
    finally:
        ui.stop()
        pub.stop()
    assert ui.refused == ["Access denied to channel: engine:decision:*"]
    assert DENIED not in ui.data and not ui.toasts, (ui.data.keys(), ui.toasts)
    assert ui.reconnects == 0 and ui.connected[0]["role"] == "user"
    assert ui.subscribed[0]["channels"] == [c for c in CHANNELS if "decision" not in c]
    # per connection and per channel, nothing lost: counters are consecutive
    for c in ALLOWED:
        got = [d["n"] for d in ui.data[c]]
        assert got == list(range(got[0], got[0] + len(got))), c


def test_greeting_and_seq_per_dialect(gateway_factory):
    g = gateway_factory(env=dict(USER, CLIENT_PROTOCOL="legacy"))
    g.wait_ready()
    c = g.ws()
    hello = c.recv()
    assert hello["type"] == "connected" and hello["seq"] == 1 and hello["role"] == "user"
    assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                    hello["clientId"]) and ISO.match(hello["timestamp"])
    m = legacy(c, {"action": "ping"})
    check_reply(m, "pong", None)
    assert m["seq"] == 2
    # under CLIENT_PROTOCOL=legacy a v1 frame is not understood: it has no action
    m = legacy(c, {"type": "ping", "id": "p"})
    assert m["type"] == "error" and m["error"] == "Missing action" and m["seq"] == 3

    auto = gateway_factory(env=USER)
    auto.wait_ready()
    c = auto.ws()
    assert c.recv()["type"] == "welcome"  # auto greets in v1 until the client speaks
    c.send({"action": "ping", "requestId": 1})
    hello, pong = c.recv(), c.recv()
    assert hello["type"] == "connected" and hello["seq"] == 2
    check_reply(pong, "pong", 1)
    assert pong["seq"] == 3
    assert auto.stats()["connections"]["legacy"] == 1

    v1 = gateway_factory(env=dict(USER, CLIENT_PROTOCOL="v1"))
    v1.wait_ready()
    c = v1.ws()
    assert c.recv()["type"] == "welcome"
    m = legacy(c, {"action": "ping", "requestId": "x"})
    assert m["type"] == "error" and m["code"] == "bad_request" and "type" in m["message"]


def test_pong_watchdog_reconnects_from_a_frozen_node(gateway_factory, redis):
    g = gateway_factory(env=USER)
    g.wait_ready()
    ui = LegacyUI("ws://127.0.0.1:%d/ws" % g.port, scale=SCALE).start()
    try:
        wait_for(lambda: ui.pongs >= 1, 5, "a pong")
        g.proc.send_signal(signal.SIGSTOP)
        time.sleep(T(4))  # past the 3 s watchdog: the UI gave up on this connection
        assert 4000 in ui.closes, ui.closes
        g.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: len(ui.connected) >= 2 and len(ui.subscribed) >= 2, 10,
                 "reconnect and resubscribe after the node thawed")
        pub = Publisher(redis, period=0.05)
        try:
            wait_for(lambda: ui.count("market:tick") > 0, 5, "data after the reconnect")
        finally:
            pub.stop()
    finally:
        ui.stop()
        g.proc.send_signal(signal.SIGCONT)


# --- the UI, through the balancer while a node dies ------------------------------------

def test_legacy_ui_failover_through_nginx(redis):
    nodes = [Gateway(redis.url, env=dict(USER, NODE_ID="legacy-%d" % i, **LB_NODE_ENV))
             for i in range(2)]
    lb, pub, uis = None, None, []
    try:
        for g in nodes:
            g.wait_ready()
        lb = Nginx([g.port for g in nodes])
        pub = Publisher(redis)
        uis = [LegacyUI("ws://127.0.0.1:%d/ws" % lb.port, scale=SCALE).start() for _ in range(6)]
        failover(nodes, uis)
    finally:
        for ui in uis:
            ui.stop()
        if pub:
            pub.stop()
        if lb:
            lb.close()
        nodes[0].proc.kill()
        nodes[0].proc.wait()
    moved = [ui for ui in uis if 1006 in ui.closes]
    assert moved and all(len(ui.subscribed) == 2 for ui in moved)  # resubscribed once
    for ui in uis:
        assert not ui.toasts and not ui.gave_up, ui.toasts
        assert ui.refused and all(r.startswith("Access denied") for r in ui.refused)
        assert DENIED not in ui.data
    nodes[1].close()


def failover(nodes, uis):
    """The UIs spread over both nodes; node 0 dies mid-stream; they all end up on node 1,
    receiving data and pongs again."""
    wait_for(lambda: all(ui.count() > 0 for ui in uis), 10, "data at every UI")
    on = [g.stats()["connections"]["legacy"] for g in nodes]
    assert sum(on) == 6 and min(on) > 0, on  # both nodes serve legacy UIs
    nodes[0].proc.kill()  # dies mid-stream: no close frame, the UIs see 1006
    nodes[0].proc.wait()
    wait_for(lambda: nodes[1].stats()["connections"]["legacy"] == 6, 15,
             "every UI reconnected through nginx to the surviving node")
    before = [ui.count() for ui in uis]
    wait_for(lambda: all(ui.count() > b + 20 for ui, b in zip(uis, before)), 10,
             "data after the failover")
    pongs = [ui.pongs for ui in uis]
    wait_for(lambda: all(ui.pongs > p for ui, p in zip(uis, pongs)), 5, "pongs after it")


# --- v1 and legacy side by side -----------------------------------------------------

def test_v1_and_legacy_on_the_same_node(gw, redis):
    v1 = gw.ws()
    assert v1.recv()["type"] == "welcome"
    v1.subscribe(["market:tick:*", "raw"])
    lg = gw.ws()
    assert lg.recv()["type"] == "welcome"
    lg.send({"action": "subscribe", "channels": ["market:tick:*", "raw"], "requestId": "s"})
    assert lg.recv()["type"] == "connected"
    sub = lg.recv()
    check_reply(sub, "subscribed", "s")
    assert sub["channels"] == ["market:tick:*", "raw"] and sub["errors"] == []
    r = redis.client()
    assert r.numsub("raw") == 1  # one Redis subscription for both dialects
    for i in range(200):
        r.command("PUBLISH", "market:tick:AAPL", json.dumps({"i": i}))
    r.command("PUBLISH", "raw", "not json")
    seq_v1, seq_lg = 2, 3
    for i in range(200):
        a, b = v1.recv(), lg.recv()
        seq_v1, seq_lg = seq_v1 + 1, seq_lg + 1
        assert a == {"type": "message", "channel": "market:tick:AAPL", "pattern": "market:tick:*",
                     "data": {"i": i}, "seq": seq_v1}
        assert ISO.match(b.pop("timestamp"))
        assert b == {"type": "data", "channel": "market:tick:AAPL", "pattern": "market:tick:*",
                     "data": {"i": i}, "seq": seq_lg}
    a, b = v1.recv(), lg.recv()
    assert a["data"] == "not json" and "pattern" not in a
    assert b["data"] == {"raw": "not json"} and b["pattern"] is None
    st = gw.stats()
    assert st["connections"]["legacy"] == 1 and st["connections"]["current"] == 2
    lg.close()
    wait_for(lambda: gw.stats()["connections"]["legacy"] == 0, 5, "the legacy count to drop")


# --- legacy errors and hostile frames -------------------------------------------------

def test_partial_success_and_limits(gateway_factory, redis):
    g = gateway_factory(env=dict(USER, MAX_CHANNELS_PER_CLIENT="4",
                                 MAX_WILDCARD_SUBSCRIPTIONS="1", CLIENT_PROTOCOL="legacy"))
    g.wait_ready()
    c = g.ws()
    c.recv()
    m = legacy(c, {"action": "subscribe", "requestId": "a", "channels": [
        "market:tick:*", "indicators:*", "engine:decision:x", "market:tick:A", "bad\u0001",
        "market:tick:B", "market:tick:C", "market:tick:D"]})
    check_reply(m, "subscribed", "a")
    assert m["channels"] == ["market:tick:*", "market:tick:A", "market:tick:B", "market:tick:C"]
    assert m["errors"] == ["Max wildcard subscriptions exceeded (1)",
                           "Access denied to channel: engine:decision:x",
                           "Invalid channel: bad\u0001", "Max channels exceeded (4)"]
    assert redis.client().numsub("market:tick:A") == 1
    m = legacy(c, {"action": "subscribe", "channels": ["market:tick:A"]})  # already held
    assert m["channels"] == ["market:tick:A"] and m["errors"] == [] and m["requestId"] is None
    m = legacy(c, {"action": "unsubscribe", "channels": ["market:tick:A", "never", "market:tick:A"],
                   "requestId": "u"})
    check_reply(m, "unsubscribed", "u")
    assert m["channels"] == ["market:tick:A"]  # only what was actually removed
    m = legacy(c, {"action": "subscribe", "channels": [], "requestId": 5})
    assert m["channels"] == [] and m["errors"] == [] and m["requestId"] == 5
    # a refused pattern still took its wildcard slot: one request cannot make the node
    # check more patterns against the ACL than MAX_WILDCARD_SUBSCRIPTIONS
    c2 = g.ws()
    c2.recv()
    m = legacy(c2, {"action": "subscribe", "channels": ["x%d*" % i for i in range(6)]})
    assert m["errors"] == ["Access denied to channel: x0*"] + [
        "Max wildcard subscriptions exceeded (1)"] * 5, m["errors"]
    errors = g.stats()["errors"]
    assert errors["acl_denied"] == 2 and errors["limit_channels"] == 1
    assert errors["limit_wildcards"] == 6 and errors["invalid_channel"] == 1


HOSTILE = [
    ("{nope", "Invalid JSON", None),
    ("[1,2]", "Invalid JSON", None),
    ('"text"', "Invalid JSON", None),
    ({"action": "bogus", "requestId": "x"}, "Unknown action: bogus", "x"),
    ({"action": "b" * 5000, "requestId": "x"}, "Unknown action: " + "b" * 64, "x"),
    ({"action": 7, "requestId": "x"}, "Invalid action: must be a string", "x"),
    ({"requestId": "x"}, "Missing action", "x"),
    ({"action": "subscribe", "requestId": "x"}, "Invalid channels: expected an array of strings",
     "x"),
    ({"action": "subscribe", "channels": "market:tick:*", "requestId": "x"},
     "Invalid channels: expected an array of strings", "x"),
    ({"action": "subscribe", "channels": [1, {"a": 1}]},
     "Invalid channels: expected an array of strings", None),
    ({"action": "subscribe", "channels": ["c%d" % i for i in range(10000)], "requestId": "big"},
     "Too many channels in one request (10000, at most 100)", "big"),
    ({"action": "ping", "requestId": "r" * 100000}, "Invalid requestId: is longer than 128 bytes",
     None),
    ({"action": "ping", "requestId": {"nested": 1}},
     "Invalid requestId: must be a string, a number or a boolean", None),
    ({"action": "ping", "requestId": [1]},
     "Invalid requestId: must be a string, a number or a boolean", None),
    ('{"action":"ping","action":"subscribe"}', "Invalid JSON", None),
]


def test_every_legacy_error_path(gateway_factory):
    g = gateway_factory(env=dict(USER, CLIENT_PROTOCOL="legacy", MAX_FRAME_BYTES="200000"))
    g.wait_ready()
    c = g.ws()
    seq = c.recv()["seq"]
    for frame, error, rid in HOSTILE:
        m = legacy(c, frame)
        seq += 1
        check_reply(m, "error", rid)
        assert m["error"] == error and m["seq"] == seq, (str(frame)[:80], m)
    for rid in (1733022000000, 0.5, True, "sub-1"):  # any scalar is echoed as it came
        m = legacy(c, {"action": "ping", "requestId": rid})
        check_reply(m, "pong", rid)
    c.send_frame(2, b"\x00\x01")  # binary
    m = c.recv()
    assert m["type"] == "error" and "binary" in m["error"]
    m = legacy(c, {"action": "ping", "requestId": "still-usable"})
    check_reply(m, "pong", "still-usable")


def test_legacy_rate_limit_and_too_large(gateway_factory):
    g = gateway_factory(env=dict(USER, CLIENT_PROTOCOL="legacy", CLIENT_RATE_LIMIT="1",
                                 CLIENT_RATE_BURST="2", CLIENT_RATE_MAX_STRIKES="50"))
    g.wait_ready()
    c = g.ws()
    c.recv()
    for _ in range(3):
        c.send({"action": "ping"})
    replies = [c.recv() for _ in range(3)]
    assert [m["type"] for m in replies] == ["pong", "pong", "error"]
    assert replies[2]["error"] == "Rate limit exceeded" and replies[2]["code"] == "rate_limited"
    big = g.ws()
    big.recv()
    big.send({"action": "ping", "requestId": "x" * 70000})
    m = big.recv()
    assert m["type"] == "error" and m["error"] == "Message too large"
    assert big.expect_close() == 1009


# --- authentication ----------------------------------------------------------------

SECRET = "legacy-secret-0123456789abcdefghijk"
KEY = "legacy-gateway-api-key"


def test_legacy_auth(gateway_factory):
    g = gateway_factory(env=dict(USER, REQUIRE_AUTH="True", GATEWAY_API_KEY=KEY,
                                 JWT_SECRET=SECRET, CLIENT_PROTOCOL="legacy"))
    g.wait_ready()
    # the legacy deployment's key, as its UI passes it: ?token=, granting admin
    c = g.ws(path="/ws?token=" + KEY)
    assert c.recv()["role"] == "admin"
    assert legacy(c, {"action": "subscribe", "channels": ["engine:decision:*"]})["errors"] == []
    # a JWT in the same parameter
    t = jwt.encode({"exp": int(time.time()) + 60, "role": "user"}, SECRET, algorithm="HS256")
    assert g.ws(path="/ws?token=" + t).recv()["role"] == "user"
    # no credential, or one we do not know: close 1008, nothing else (not the legacy hole
    # where any token was let in)
    forged = jwt.encode({"exp": int(time.time()) + 60, "role": "admin"}, SECRET + "x",
                        algorithm="HS256")
    for path in ("/ws", "/ws?token=anything-at-all", "/ws?token=" + forged):
        c = g.ws(path=path)
        with pytest.raises(WsClosed) as closed:
            c.recv()
        assert (closed.value.code, closed.value.reason) == (1008, "Authentication failed"), path
    fails = g.stats()["auth"]["failures"]
    assert fails["missing"] == 1 and fails["unknown_key"] == 1 and fails["bad_signature"] == 1

    auto = gateway_factory(env=dict(USER, REQUIRE_AUTH="TRUE", GATEWAY_API_KEY=KEY))
    auto.wait_ready()
    c = auto.ws()  # auto: v1 would send an auth frame; a legacy frame means it never will
    c.send({"action": "subscribe", "channels": ["market:tick:*"]})
    with pytest.raises(WsClosed) as closed:
        c.recv()
    assert closed.value.code == 1008


def test_unneeded_credential_is_not_fatal(gateway_factory):
    g = gateway_factory(env=dict(USER, JWT_SECRET=SECRET))  # REQUIRE_AUTH=false
    g.wait_ready()
    c = g.ws(path="/ws?token=some-session-token-of-another-system")
    w = c.recv()
    assert w["type"] == "welcome" and w["role"] == "user" and w["auth_error"] == "malformed"
    c.send({"action": "subscribe", "channels": ["market:tick:*"], "requestId": "s"})
    assert c.recv()["type"] == "connected"
    assert c.recv()["channels"] == ["market:tick:*"]
    assert g.stats()["auth"]["failures"]["malformed"] == 1


# --- the legacy deployment's environment ----------------------------------------------

LEGACY_ENV = {"REDIS_WS_GATEWAY_HOST": "127.0.0.1", "REQUIRE_AUTH": "False",
              "DEFAULT_ROLE": "user", "MAX_CHANNELS_PER_CLIENT": "50",
              "MAX_WILDCARD_SUBSCRIPTIONS": "5", "MAX_MESSAGES_PER_SECOND": "100"}


def test_legacy_environment_names(gateway_factory, redis):
    env = dict(LEGACY_ENV, REDIS_URL=None, BIND_ADDRESS=None, REDIS_HOST="127.0.0.1",
               REDIS_PORT=str(redis.port), GATEWAY_API_KEY=KEY)
    g = gateway_factory(env=env)
    g.wait_ready()
    status, h = g.health()
    assert status == 200 and h["redis_connected"] is True
    log = g.logtext()
    warnings = [line for line in log.splitlines() if "settings_ignored" in line]
    assert len(warnings) == 1 and "MAX_MESSAGES_PER_SECOND" in warnings[0], log
    assert "bind=127.0.0.1" in log
    c = g.ws(path="/ws?token=" + KEY)
    assert c.recv()["role"] == "admin"


def test_legacy_environment_conflicts_exit_2(redis):
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BIND_ADDRESS")}
    cases = [({"REDIS_URL": redis.url, "REDIS_HOST": "elsewhere"}, ("REDIS_HOST", "REDIS_URL")),
             ({"REDIS_URL": redis.url, "REDIS_PORT": "1"}, ("REDIS_PORT", "REDIS_URL")),
             ({"BIND_ADDRESS": "127.0.0.1", "REDIS_WS_GATEWAY_HOST": "0.0.0.0"},
              ("BIND_ADDRESS", "REDIS_WS_GATEWAY_HOST")),
             ({"REDIS_PORT": "http"}, ("REDIS_PORT",)),
             ({"REDIS_URL": "http://x"}, ("REDIS_URL",)),
             ({"ALLOWED_ORIGINS": "ui.example.com"}, ("ALLOWED_ORIGINS",))]
    for extra, names in cases:
        p = subprocess.run([WSGW_BIN], env=dict(base, **extra), capture_output=True, text=True,
                           timeout=10)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, (extra, p.stderr)
        for n in names:
            assert n in lines[0], (extra, lines)
    # agreeing is fine: both forms name the same Redis
    agree = dict(base, REDIS_URL=redis.url, REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis.port),
                 REDIS_WS_GATEWAY_PORT=str(free_port()), BIND_ADDRESS="127.0.0.1")
    p = subprocess.Popen([WSGW_BIN], env=agree, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(T(0.5))
        assert p.poll() is None, p.stderr.read()
    finally:
        p.terminate()
        p.wait()


def test_help_and_docs_show_the_aliases():
    out = subprocess.run([WSGW_BIN, "--help"], capture_output=True, text=True).stdout
    assert "BIND_ADDRESS, alias REDIS_WS_GATEWAY_HOST" in out
    for name in ("REDIS_HOST", "REDIS_PORT", "CLIENT_PROTOCOL", "CORS_ALLOW_ORIGINS",
                 "ALLOWED_ORIGINS", "MAX_MESSAGES_PER_SECOND"):
        assert name in out
    with open(os.path.join(ROOT, "docs", "CONFIG.md")) as f:
        assert "`BIND_ADDRESS` (alias `REDIS_WS_GATEWAY_HOST`)" in f.read()


def test_compose_legacy_service_runs_as_is(redis):
    """The compose file's legacy service uses only the Python gateway's variable names;
    the node started with exactly that environment (Redis pointed at the test's) works."""
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        svc = yaml.safe_load(f)["services"]["wsgw-legacy"]
    env = {k: str(v) for k, v in svc["environment"].items()}
    legacy_names = {"REDIS_HOST", "REDIS_PORT", "REDIS_WS_GATEWAY_HOST", "REDIS_WS_GATEWAY_PORT",
                    "REQUIRE_AUTH", "GATEWAY_API_KEY", "DEFAULT_ROLE", "MAX_CHANNELS_PER_CLIENT",
                    "MAX_WILDCARD_SUBSCRIPTIONS", "MAX_MESSAGES_PER_SECOND"}
    assert set(env) <= legacy_names, set(env) - legacy_names
    port = free_port()
    env.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis.port), REDIS_WS_GATEWAY_HOST="127.0.0.1",
               REDIS_WS_GATEWAY_PORT=str(port), PATH=os.environ["PATH"])
    env = {k: v for k, v in env.items() if "${" not in v}  # secrets come from the env file
    p = subprocess.Popen([WSGW_BIN], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def healthy():
            try:
                return WsClient(port).recv()["type"] == "welcome"
            except OSError:
                return False
        wait_for(healthy, 10, "the legacy service's node")
        ui = LegacyUI("ws://127.0.0.1:%d/ws" % port, scale=SCALE).start()
        wait_for(lambda: ui.subscribed, 5, "the UI's subscription")
        redis.client().command("PUBLISH", "market:tick:X", '{"p":1}')
        wait_for(lambda: ui.count("market:tick:X"), 5, "data")
        ui.stop()
    finally:
        p.terminate()
        assert p.wait(timeout=10) == 0


# --- HTTP: health checks, CORS, origins, subprotocols -----------------------------------

def test_health_and_stats_keep_the_legacy_fields(gw, redis):
    c = gw.ws()
    c.recv()
    c.subscribe(["a", "b", "p:*"])
    status, h = gw.health()
    assert status == 200 and h["status"] == "ok"
    assert h["service"] == "redis-ws-gateway" and h["redis_connected"] is True
    assert h["clients_connected"] == 1 and ISO.match(h["timestamp"])
    s = gw.stats()
    assert (s["clients_connected"], s["total_subscriptions"], s["channels_subscribed"],
            s["patterns_subscribed"], s["redis_connected"]) == (1, 3, 2, 1, True)
    assert ISO.match(s["timestamp"])
    redis.kill()
    wait_for(lambda: gw.health()[0] == 503, 5, "503 while Redis is down")
    assert gw.health()[1]["redis_connected"] is False


def http_raw(port, request):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=T(5)) as s:
        s.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n")[0].decode()
    lines = head.split("\r\n")
    return int(lines[0].split()[1]), {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip()
                                       for l in lines[1:] if ":" in l}


def test_cors(gateway_factory):
    g = gateway_factory()
    g.wait_ready()
    status, h = http_raw(g.port, "GET /health HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n")
    assert status == 200 and h["access-control-allow-origin"] == "*"
    status, h = http_raw(g.port, "OPTIONS /stats HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
                                 "Access-Control-Request-Method: GET\r\n"
                                 "Access-Control-Request-Headers: authorization\r\n\r\n")
    assert status == 204 and h["access-control-allow-origin"] == "*"
    assert "content-length" not in h  # RFC 9110: a 204 has none
    assert "GET" in h["access-control-allow-methods"]
    assert "authorization" in h["access-control-allow-headers"].lower()

    listed = gateway_factory(env={"CORS_ALLOW_ORIGINS": "https://a.example, https://b.example/"})
    listed.wait_ready()
    for origin, allowed in (("https://b.example", True), ("https://evil.example", False)):
        status, h = http_raw(listed.port, "GET /stats HTTP/1.1\r\nHost: x\r\nOrigin: %s\r\n\r\n"
                             % origin)
        assert status == 200 and h.get("access-control-allow-origin") == (origin if allowed
                                                                           else None)
        assert h["vary"] == "Origin"
    off = gateway_factory(env={"CORS_ALLOW_ORIGINS": ""})
    off.wait_ready()
    status, h = http_raw(off.port, "GET /health HTTP/1.1\r\nHost: x\r\nOrigin: https://a\r\n\r\n")
    assert status == 200 and "access-control-allow-origin" not in h


def test_allowed_origins(gateway_factory):
    g = gateway_factory(env={"ALLOWED_ORIGINS": "https://ui.example.com"})
    g.wait_ready()
    with pytest.raises(UpgradeRefused) as refused:
        g.ws(headers={"Origin": "https://evil.example.com"})
    assert refused.value.status == 403
    assert "HTTP/1.1 403" in str(refused.value)  # a status line browsers accept
    assert g.ws(headers={"Origin": "https://UI.example.com"}).recv()["type"] == "welcome"
    assert g.ws().recv()["type"] == "welcome"  # no Origin: not a browser
    assert g.stats()["refused"]["origin"] == 1
    anyone = gateway_factory()
    anyone.wait_ready()
    assert anyone.ws(headers={"Origin": "https://evil.example.com"}).recv()["type"] == "welcome"


def test_unknown_subprotocol_gets_a_readable_answer(gw):
    for offered in ("graphql-ws", "a, b", "x" * 300):
        with pytest.raises(UpgradeRefused) as refused:
            gw.ws(headers={"Sec-WebSocket-Protocol": offered})
        assert refused.value.status == 400, offered
        assert "HTTP/1.1 400" in str(refused.value) and "application/json" in str(refused.value)
    c = gw.ws(headers={"Sec-WebSocket-Protocol": "v2, wsgw"})
    assert c.recv()["type"] == "welcome"
    assert gw.stats()["refused"]["subprotocol"] == 3
