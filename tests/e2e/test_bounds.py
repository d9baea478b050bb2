"""Every bound is a bound, tested by attack: what an untrusted peer can make a node hold
or compute is counted against a documented limit (docs/SECURITY.md), and every close is
a clean close the client can read. One test per hole that was found."""
import os
import socket
import threading
import time

import pytest

from gwtest import T, UpgradeRefused, WsClient, WsClosed, wait_for

ANON = {"DEFAULT_ROLE": "admin"}


def fresh(gw, **kw):
    c = gw.ws(**kw)
    assert c.recv()["type"] == "welcome"
    return c


# --- 1. the queue bound counts every byte, replies included ------------------------------

def test_replies_to_a_client_that_never_reads_are_bounded(gateway_factory):
    """Replies are never dropped, so a client that sends requests and never reads the
    answers used to grow the node's memory without limit. Now the queue bound counts
    them, and a connection over it is closed (1013)."""
    g = gateway_factory(env=dict(ANON, SLOW_CLIENT_QUEUE_BYTES="65536"))
    g.wait_ready()
    c = fresh(g, rcvbuf=4096)
    names = ["n%03d:" % i + "x" * 240 for i in range(40)]  # ~10 KB of reply per request
    sent = 0
    try:
        while sent < 2000 and g.stats()["slow_consumers"]["closed"] == 0:
            for _ in range(20):
                c.send({"type": "subscribe", "channels": names})
                c.send({"type": "unsubscribe", "channels": names})
                sent += 2
    except OSError:
        pass  # the node hung up on us: that is the bound at work
    wait_for(lambda: g.stats()["slow_consumers"]["closed"] == 1, 10, "the 1013 close")
    # and the connection really goes, within the close timeout, although we never read
    wait_for(lambda: g.stats()["connections"]["current"] == 0, 8, "the connection dropped")


def test_unsubscribe_reply_names_only_what_was_held(gw):
    c = fresh(gw)
    c.subscribe(["held"])
    c.send({"type": "unsubscribe", "channels": ["held"] + ["n%d" % i for i in range(99)],
            "id": "u"})
    m = c.recv()
    assert m["type"] == "unsubscribed" and m["channels"] == ["held"]


# --- 7. a close the server starts is a clean close -----------------------------------------

def keep_sending(c, frame, stop):
    try:
        while not stop.is_set():
            c.send(frame)
    except OSError:
        pass


def close_exchange(c, stop, sender, timeout=10):
    """Reads up to the server's close frame while the sender thread keeps sending, then
    stops it, answers the close, and returns the code once the server has ended the TCP
    connection in order. Hanging up on unread data (what the node used to do) makes the
    kernel send a reset instead: the answer or the read then fails, and this test too."""
    c.sock.settimeout(T(timeout))
    try:
        while True:
            b0, payload = c.recv_frame(timeout)
            if b0 & 0x0F == 8:
                break
        stop.set()
        sender.join()
        c.send_frame(8, payload[:2])
        assert c.sock.recv(4096) == b"", "the server sent more after its close frame"
    except (ConnectionResetError, BrokenPipeError) as e:
        pytest.fail("the connection was reset instead of closed: %s" % e)
    return int.from_bytes(payload[:2], "big")


def test_rate_limit_close_reaches_a_client_that_keeps_sending(gateway_factory):
    g = gateway_factory(env={"CLIENT_RATE_LIMIT": "5", "CLIENT_RATE_BURST": "5",
                             "CLIENT_RATE_MAX_STRIKES": "3"})
    g.wait_ready()
    c = fresh(g)
    stop = threading.Event()
    t = threading.Thread(target=keep_sending, args=(c, {"type": "ping"}, stop), daemon=True)
    t.start()
    assert close_exchange(c, stop, t) == 4429


def test_too_large_close_reaches_a_client_still_sending(gateway_factory):
    g = gateway_factory(env={"MAX_FRAME_BYTES": "1024"})
    g.wait_ready()
    c = fresh(g)
    # one 2 MB message: the node refuses it after 1 KB and reads the rest away
    stop = threading.Event()
    sender = threading.Thread(target=lambda: c.send("x" * (2 << 20)), daemon=True)
    sender.start()
    assert close_exchange(c, stop, sender) == 1009


def test_auth_close_reaches_a_client_that_keeps_sending(gateway_factory):
    g = gateway_factory(env={"REQUIRE_AUTH": "true", "CLIENT_RATE_LIMIT": "100000",
                             "CLIENT_RATE_BURST": "100000"})
    g.wait_ready()
    c = g.ws()
    stop = threading.Event()
    # anything but an auth frame first: auth_required and 4401, while it keeps sending
    t = threading.Thread(target=keep_sending, args=(c, {"type": "ping"}, stop), daemon=True)
    t.start()
    assert close_exchange(c, stop, t) == 4401


# --- 8. refusals a WebSocket client can read ----------------------------------------------

def refusal(g, **kw):
    with pytest.raises(UpgradeRefused) as r:
        g.ws(**kw)
    head = str(r.value)
    assert "HTTP/1.1 %d" % r.value.status in head, head  # not HTTP/1.0: browsers reject it
    return r.value.status, head.lower()


def test_connection_limits_answer_http_1_1_with_retry_after(gateway_factory):
    g = gateway_factory(env={"MAX_CONNECTIONS": "1"})
    g.wait_ready()
    c = fresh(g)
    status, head = refusal(g)
    assert status == 503 and "retry-after:" in head
    c.close()
    wait_for(lambda: g.stats()["connections"]["current"] == 0, 5, "the slot freed")
    fresh(g)

    p = gateway_factory(env={"MAX_CONNECTIONS_PER_IP": "1"})
    p.wait_ready()
    first = fresh(p)
    status, head = refusal(p)
    assert status == 429 and "retry-after:" in head
    status, head = refusal(p, path="/nope")
    assert status == 404
    first.close()


# --- 2. sockets before the upgrade -------------------------------------------------------

def idle_sockets(port, n, source="127.0.0.2"):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        if i % 2:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # half a request, never finished
        socks.append(s)
    return socks


def timed(fn):
    t0 = time.time()
    fn()
    return time.time() - t0


def test_idle_sockets_from_one_address_do_not_stall_the_node(gateway_factory):
    g = gateway_factory(env={"HANDSHAKE_TIMEOUT_S": "2"})
    g.wait_ready()
    socks = idle_sockets(g.port, 300)
    try:
        wait_for(lambda: g.stats()["refused"]["handshakes_per_ip"] == 300 - 32, 5,
                 "all but MAX_HANDSHAKES_PER_IP refused")
        # the readiness probe and new clients from elsewhere are served at once
        assert timed(lambda: g.health()) < T(0.5)
        assert timed(lambda: fresh(g)) < T(0.5)
        # and what was kept is closed once it has had HANDSHAKE_TIMEOUT_S
        wait_for(lambda: g.stats()["sockets"]["open"] <= 2, 6, "the idle sockets closed")
        assert sum(1 for s in socks if s.recv(4096, socket.MSG_PEEK)[:12] == b"HTTP/1.1 429") \
            == 300 - 32  # the refused were told why before the close
    finally:
        for s in socks:
            s.close()


# --- 20. out of descriptors ----------------------------------------------------------------

def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_descriptor_limit_refuses_instead_of_spinning(gateway_factory):
    g = gateway_factory(env=dict(ANON, MAX_HANDSHAKES_PER_IP="1000"), nofile=160)
    g.wait_ready()
    st = g.stats()
    assert st["sockets"]["limit"] == 160 - 64 and st["connections"]["limit"] == 160 - 64 - 16
    assert "max_connections_lowered" in g.logtext()
    held, refused = [], 0
    for i in range(200):
        try:
            held.append(g.ws())
        except UpgradeRefused as e:
            assert e.status == 503 and "HTTP/1.1 503" in str(e)
            refused += 1
        except OSError:
            refused += 1  # refused at accept: the socket budget is spent
    assert len(held) == 160 - 64 - 16 and refused == 200 - len(held)
    # /health still answers: sockets are kept for HTTP when WebSockets are at their limit
    assert g.health()[0] == 200
    # a flood of connection attempts costs a bounded effort: no accept spin, no log flood
    c0, log0 = cpu_seconds(g.proc.pid), len(g.logtext())
    t0 = time.time()
    while time.time() - t0 < 2:
        try:
            socket.create_connection(("127.0.0.1", g.port), timeout=1).close()
        except OSError:
            pass
    assert cpu_seconds(g.proc.pid) - c0 < 1.0
    assert len(g.logtext()) - log0 < 20000
    for c in held:
        c.close()
    wait_for(lambda: g.stats()["connections"]["current"] == 0, 5, "connections closed")
    fresh(g)  # and it recovers


# --- 23. `close` closes: a non-reading client is gone within the close timeout -------------

def test_close_policy_drops_a_client_that_never_reads(gateway_factory, redis):
    g = gateway_factory(env={"SLOW_CLIENT_POLICY": "close", "SLOW_CLIENT_QUEUE_BYTES": "65536",
                             "KEEPALIVE_INTERVAL_S": "60"})
    g.wait_ready()
    slow = fresh(g, rcvbuf=4096)
    slow.subscribe(["flood"])
    r = redis.client()
    t0 = time.time()
    while g.stats()["slow_consumers"]["closed"] == 0 and time.time() - t0 < T(10):
        r.publish_many(("flood", "y" * 2000) for _ in range(200))
    assert g.stats()["slow_consumers"]["closed"] == 1
    # not kept until keepalive (60 s here) reaps it: the close send timeout ends it
    wait_for(lambda: g.stats()["connections"]["current"] == 0, 8, "the slow client dropped")
