"""Every bound is a bound, tested by attack: what an untrusted peer can make a node hold
or compute is counted against a documented limit (docs/SECURITY.md), and every close is
a clean close the client can read. One test per hole that was found."""
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
