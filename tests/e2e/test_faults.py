"""Redis faults, slow consumers, keepalive and shutdown."""
import json
import os
import socket
import subprocess
import time

from gwtest import WSGW_BIN, wait_for


def fresh(gw, **kw):
    c = gw.ws(**kw)
    assert c.recv()["type"] == "welcome"
    return c


def test_redis_restart_resubscribes_and_resyncs(gw, redis):
    a = fresh(gw)
    idle = fresh(gw)  # no subscriptions: no resync for it
    a.subscribe(["market:tick:AAPL", "engine:signal:*"])
    redis.kill()
    wait_for(lambda: gw.health()[0] == 503, 5, "health to report Redis down")
    status, h = gw.health()
    assert h["redis"] == "down" and h["reason"]
    # Clients stay connected while Redis is away.
    a.send({"type": "ping", "id": "during"})
    assert a.recv()["id"] == "during"

    redis.restart()
    m = a.recv(timeout=10)
    assert m == {"type": "resync", "reason": "redis_reconnected", "seq": m["seq"]}
    r = redis.client()
    assert r.numsub("market:tick:AAPL") == 1 and r.numpat() == 1
    r.command("PUBLISH", "market:tick:AAPL", "1")
    r.command("PUBLISH", "engine:signal:x", "2")
    got = [a.recv(), a.recv()]
    assert [g["data"] for g in got] == [1, 2]
    assert [g["seq"] for g in got] == [m["seq"] + 1, m["seq"] + 2]
    idle.send({"type": "ping", "id": "i"})
    assert idle.recv() == {"type": "pong", "id": "i", "seq": 2}
    assert gw.health()[0] == 200
    s = gw.stats()
    assert s["redis"]["reconnects"] == 1 and s["messages"]["resyncs_sent"] == 1


def test_subscribe_while_redis_down_acks_when_back(gw, redis):
    c = fresh(gw)
    redis.kill()
    wait_for(lambda: gw.health()[0] == 503, 5, "Redis down")
    c.send({"type": "subscribe", "channels": ["late"], "id": "L"})
    redis.restart()
    ack = c.recv_type("subscribed", timeout=10)
    assert ack["id"] == "L"
    assert redis.client().command("PUBLISH", "late", "x") == 1
    assert c.recv_type("message")["data"] == "x"


def test_a_refused_subscription_does_not_make_a_reconnect_loop(gateway_factory, redis):
    """A restricted Redis ACL user may not subscribe to a client's channel: Redis refuses
    the command and the link is lost each time it is re-sent. The node retries with a
    growing backoff (it started over at every link_up before: ~50 reconnects in 6 s).
    The refused channel itself stays unconfirmed (the client has no `subscribed`)."""
    redis.client().command("ACL", "SETUSER", "gw", "on", ">pw", "~*", "+@all",
                           "resetchannels", "&__wsgw:*", "&market:*")
    g = gateway_factory(redis_url="redis://gw:pw@127.0.0.1:%d" % redis.port,
                        env={"REDIS_BACKOFF_MAX_MS": "5000"})
    g.wait_ready()
    c = fresh(g)
    c.send({"type": "subscribe", "channels": ["engine:signal:x"], "id": "denied"})
    time.sleep(6)
    reconnects = g.stats()["redis"]["reconnects"]
    assert 1 <= reconnects <= 8, reconnects


def test_gateway_starts_without_redis(gateway_factory, redis):
    port = redis.port
    redis.kill()
    gw = gateway_factory(redis_url="redis://127.0.0.1:%d" % port)
    assert gw.health()[0] == 503
    c = fresh(gw)
    c.send({"type": "subscribe", "channels": ["boot"], "id": "b"})
    redis.start(port)
    assert c.recv_type("subscribed", timeout=10)["id"] == "b"
    gw.wait_ready()


def test_frozen_redis_detected_by_ping(gateway_factory, redis):
    gw = gateway_factory(env={"REDIS_PING_INTERVAL_MS": "100"})
    gw.wait_ready()
    os.kill(redis.proc.pid, 19)  # SIGSTOP: the socket stays open, nothing answers
    try:
        wait_for(lambda: gw.health()[0] == 503, 5, "a frozen Redis to be detected")
    finally:
        os.kill(redis.proc.pid, 18)  # SIGCONT
    gw.wait_ready()


def paced_publish(redis, fast, channels, n, size):
    """Publishes n messages round-robin over channels, 8 at a time, waiting until the
    fast client got each batch, so only the slow client falls behind."""
    r = redis.client()
    pad = "x" * size
    last = {}
    for start in range(0, n, 8):
        batch = [(channels[i % len(channels)], json.dumps({"i": i, "pad": pad}))
                 for i in range(start, min(n, start + 8))]
        r.publish_many(batch)
        for ch, payload in batch:
            m = fast.recv()
            assert m["type"] == "message" and m["data"]["i"] == json.loads(payload)["i"]
            last[ch] = m["data"]["i"]
    return last


def drain(c, timeout=2):
    got = []
    try:
        while True:
            got.append(c.recv(timeout=timeout))
    except (socket.timeout, TimeoutError):
        pass
    return got


SLOW_ENV = {"SLOW_CLIENT_QUEUE_BYTES": "16384"}


def test_slow_consumer_drop(gateway_factory, redis):
    gw = gateway_factory(env=dict(SLOW_ENV, SLOW_CLIENT_POLICY="drop"))
    gw.wait_ready()
    fast, slow = fresh(gw), fresh(gw, rcvbuf=4096)
    fast.subscribe(["t:a"])
    slow.subscribe(["t:a"])
    paced_publish(redis, fast, ["t:a"], 3000, 1000)
    got = [m for m in drain(slow) if m["type"] == "message"]
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(seqs)
    assert len(got) < 3000, "the slow client cannot have received everything"
    assert got[-1]["data"]["i"] == 2999, "the newest message is never the one dropped"
    # The gap is visible: seq numbers skip exactly where messages were dropped.
    ids = [m["data"]["i"] for m in got]
    for (s1, i1), (s2, i2) in zip(zip(seqs, ids), zip(seqs[1:], ids[1:])):
        assert s2 - s1 == i2 - i1
    s = gw.stats()["slow_consumers"]
    assert s["dropped_by_policy"]["drop"] == 3000 - len(got)
    assert gw.stats()["connections"]["current"] == 2


def test_slow_consumer_close(gateway_factory, redis):
    gw = gateway_factory(env=dict(SLOW_ENV, SLOW_CLIENT_POLICY="close"))
    gw.wait_ready()
    fast, slow = fresh(gw), fresh(gw, rcvbuf=4096)
    fast.subscribe(["t:a"])
    slow.subscribe(["t:a"])
    paced_publish(redis, fast, ["t:a"], 3000, 1000)
    code = slow.expect_close(timeout=5)
    assert code == 1013
    wait_for(lambda: gw.stats()["slow_consumers"]["closed"] == 1, 5, "slow close counted")
    wait_for(lambda: gw.stats()["connections"]["current"] == 1, 3, "the slow client gone")


def test_slow_consumer_conflate(gateway_factory, redis):
    gw = gateway_factory(env=dict(SLOW_ENV, SLOW_CLIENT_POLICY="conflate"))
    gw.wait_ready()
    fast, slow = fresh(gw), fresh(gw, rcvbuf=4096)
    chans = ["market:tick:S%d" % i for i in range(5)]
    fast.subscribe(["market:tick:*"])
    slow.subscribe(["market:tick:*"])
    last = paced_publish(redis, fast, chans, 3000, 1000)
    got = [m for m in drain(slow) if m["type"] == "message"]
    assert len(got) < 3000
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(seqs)
    # The latest tick of every symbol arrives.
    final = {}
    for m in got:
        final[m["channel"]] = m["data"]["i"]
    assert final == last
    s = gw.stats()["slow_consumers"]
    assert s["dropped_by_policy"]["conflate"] > 0
    assert s["dropped"] == 3000 - len(got)


def test_keepalive_ping_and_dead_peer(gateway_factory):
    gw = gateway_factory(env={"KEEPALIVE_INTERVAL_S": "1", "KEEPALIVE_TIMEOUT_S": "1"})
    gw.wait_ready()
    live = fresh(gw)
    dead = fresh(gw)
    # The live client answers pings (recv() does) and must survive; the dead one never reads.
    t0 = time.time()
    while time.time() - t0 < 4:
        live.send({"type": "ping", "id": "k"})
        try:
            live.recv(timeout=1)
        except (socket.timeout, TimeoutError):
            pass
        time.sleep(0.2)
    # A ping frame was sent to the dead client.
    raw = dead.sock.recv(65536)
    assert b"\x89" in raw
    wait_for(lambda: gw.stats()["connections"]["current"] == 1, 8, "the dead peer to be dropped")
    live.send({"type": "ping", "id": "still"})
    assert live.recv_type("pong")["id"] in ("k", "still")


def test_sigterm_flushes_and_closes_1001(gateway_factory, redis):
    gw = gateway_factory()
    gw.wait_ready()
    clients = [fresh(gw) for _ in range(5)]
    for c in clients:
        c.subscribe(["bye"])
    redis.client().publish_many(("bye", str(i)) for i in range(100))
    wait_for(lambda: gw.stats()["messages"]["from_redis"] >= 100, 5, "messages to arrive")
    t0 = time.time()
    gw.proc.send_signal(15)
    for c in clients:
        got = []
        try:
            while True:
                got.append(c.recv()["data"])
        except Exception as e:  # noqa: BLE001 - the close frame ends the stream
            assert getattr(e, "code", None) == 1001, e
        assert got == list(range(100))
    assert gw.proc.wait(timeout=10) == 0
    assert time.time() - t0 < 5


def test_sigterm_with_stuck_client_is_bounded(gateway_factory, redis):
    gw = gateway_factory(env={"SHUTDOWN_TIMEOUT_MS": "500"})
    gw.wait_ready()
    stuck = fresh(gw, rcvbuf=4096)
    stuck.subscribe(["s"])
    r = redis.client()
    r.publish_many(("s", "y" * 4000) for _ in range(400))
    t0 = time.time()
    assert gw.terminate() == 0
    assert time.time() - t0 < 5


def test_bad_config_exits_2():
    for env, name in [({"REDIS_WS_GATEWAY_PORT": "99999"}, "REDIS_WS_GATEWAY_PORT"),
                      ({"SLOW_CLIENT_POLICY": "explode"}, "SLOW_CLIENT_POLICY"),
                      ({"REQUIRE_AUTH": "maybe"}, "REQUIRE_AUTH"),
                      ({"MAX_CHANNELS_PER_CLIENT": "0"}, "MAX_CHANNELS_PER_CLIENT")]:
        p = subprocess.run([WSGW_BIN], env=dict(os.environ, **env), capture_output=True,
                           text=True, timeout=10)
        assert p.returncode == 2, (env, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0], p.stderr
    p = subprocess.run([WSGW_BIN, "--no-such-flag"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "--no-such-flag" in p.stderr


def test_bad_redis_url_exits_nonzero():
    p = subprocess.run([WSGW_BIN, "--redis-url", "http://x"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode != 0 and "REDIS_URL" in p.stderr


def test_secret_never_printed():
    p = subprocess.run([WSGW_BIN, "--redis-url", "redis://:hunter2@h:0"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and "hunter2" not in p.stderr + p.stdout


def test_help_lists_every_setting_and_docs_in_sync():
    p = subprocess.run([WSGW_BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0
    for env in ("REDIS_WS_GATEWAY_PORT", "REDIS_URL", "REQUIRE_AUTH", "GATEWAY_API_KEY",
                "DEFAULT_ROLE", "MAX_CHANNELS_PER_CLIENT", "MAX_WILDCARD_SUBSCRIPTIONS",
                "NODE_ID", "BIND_ADDRESS", "SLOW_CLIENT_QUEUE_BYTES", "SLOW_CLIENT_POLICY"):
        assert env in p.stdout
    doc = subprocess.run([WSGW_BIN, "--config-doc"], capture_output=True, text=True,
                         timeout=10).stdout
    control = os.environ.get("WSGW_CONTROL_BIN", os.path.join(os.path.dirname(WSGW_BIN),
                                                              "wsgw-control"))
    doc += subprocess.run([control, "--config-doc"], capture_output=True, text=True,
                          timeout=10).stdout
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "docs", "CONFIG.md")) as f:
        text = f.read()
    for section in doc.split("## ")[1:]:
        assert "## " + section in text, "docs/CONFIG.md is stale: regenerate it with --config-doc"
