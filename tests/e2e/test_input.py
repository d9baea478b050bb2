"""Hostile and malformed client input: an error frame with a code, and the connection
stays usable; oversized messages close with 1009."""
import json

import pytest

from gwtest import WsClient


def fresh(gw):
    c = gw.ws()
    assert c.recv()["type"] == "welcome"
    return c


def still_usable(c):
    c.send({"type": "ping", "id": "alive"})
    m = c.recv()
    assert m["type"] == "pong" and m["id"] == "alive"


BAD = [
    ("not json", "bad_request", None),
    ("{\"type\":\"subscribe\",", "bad_request", None),
    ("[1,2]", "bad_request", None),
    ("\"str\"", "bad_request", None),
    ("{}", "bad_request", None),
    ({"type": 5}, "bad_request", None),
    ({"type": "fly"}, "unknown_type", None),
    ({"type": "fly", "id": "q1"}, "unknown_type", "q1"),
    ({"type": "subscribe"}, "bad_request", None),
    ({"type": "subscribe", "channels": "a"}, "bad_request", None),
    ({"type": "subscribe", "channels": []}, "bad_request", None),
    ({"type": "subscribe", "channels": [1]}, "bad_request", None),
    ({"type": "subscribe", "channels": ["a" * 257], "id": 9}, "invalid_channel", 9),
    ({"type": "subscribe", "channels": [""]}, "invalid_channel", None),
    ({"type": "subscribe", "channels": ["a\nb"]}, "invalid_channel", None),
    ({"type": "subscribe", "channels": ["a\x7fb"]}, "invalid_channel", None),
    ({"type": "subscribe", "channels": ["market:[abc"]}, "invalid_channel", None),
    ({"type": "subscribe", "channels": ["p*\\"]}, "invalid_channel", None),
    ({"type": "subscribe", "channels": ["*a*b*c*d*e*f*g*h?"]}, "invalid_channel", None),
    ({"type": "unsubscribe", "channels": ["ok", "x" * 300]}, "invalid_channel", None),
    ({"type": "subscribe", "channels": ["c%d" % i for i in range(101)]}, "bad_request", None),
    ({"type": "ping", "id": {"nested": 1}}, "bad_request", None),
    ({"type": "ping", "id": "x" * 200}, "bad_request", None),
    ('{"type":"ping","type":"ping"}', "bad_request", None),
    ('{"type":"subscribe","channels":["a\\u0000b"]}', "bad_request", None),
]


@pytest.mark.parametrize("frame,code,echo_id", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_frame_gets_error(gw, frame, code, echo_id):
    c = fresh(gw)
    c.send(frame if isinstance(frame, str) else json.dumps(frame))
    e = c.recv()
    assert e["type"] == "error" and e["code"] == code, e
    assert e["seq"] == 2 and e["message"]
    if echo_id is not None:
        assert e["id"] == echo_id
    still_usable(c)


def test_invalid_channel_is_named(gw):
    c = fresh(gw)
    c.send({"type": "subscribe", "channels": ["ok", "bad\tname"], "id": "s"})
    e = c.recv()
    assert e["code"] == "invalid_channel" and e["channel"] == "bad\tname" and e["id"] == "s"
    # Atomic: the valid channel of the rejected request was not subscribed either.
    assert gw.stats()["subscriptions"]["client"]["exact"] == 0


def test_binary_frame_rejected(gw):
    c = fresh(gw)
    c.send_frame(2, b"\x00\x01\x02")
    e = c.recv()
    assert e["type"] == "error" and e["code"] == "bad_request"
    still_usable(c)


def test_errors_counted_in_stats(gw):
    c = fresh(gw)
    c.send("nope")
    c.recv()
    c.send({"type": "what"})
    c.recv()
    errs = gw.stats()["errors"]
    assert errs["bad_request"] >= 1 and errs["unknown_type"] >= 1


def test_fragmented_message_reassembled(gw):
    c = fresh(gw)
    text = json.dumps({"type": "ping", "id": "frag", "pad": "x" * 5000})
    parts = [text[i:i + 700] for i in range(0, len(text), 700)]
    c.send_frame(1, parts[0], fin=False)
    for p in parts[1:-1]:
        c.send_frame(0, p, fin=False)
    c.send_frame(0, parts[-1], fin=True)
    assert c.recv() == {"type": "pong", "id": "frag", "seq": 2}


def test_large_single_frame_under_limit(gw):
    c = fresh(gw)
    c.send(json.dumps({"type": "ping", "id": "big", "pad": "y" * 60000}))
    assert c.recv()["id"] == "big"


def test_oversized_message_closes_1009(gw):
    c = fresh(gw)
    c.send(json.dumps({"type": "ping", "pad": "z" * 70000}))
    e = c.recv()
    assert e["type"] == "error" and e["code"] == "too_large" and e["seq"] == 2
    assert c.expect_close() == 1009
    assert gw.stats()["closes_too_big"] == 1


def test_oversized_fragments_close_1009(gw):
    c = fresh(gw)
    c.send_frame(1, "{" + " " * 40000, fin=False)
    c.send_frame(0, " " * 40000, fin=False)
    assert c.expect_close() == 1009


def test_channel_limits(gateway_factory):
    gw = gateway_factory(env={"MAX_CHANNELS_PER_CLIENT": "3", "MAX_WILDCARD_SUBSCRIPTIONS": "1"})
    gw.wait_ready()
    c = fresh(gw)
    c.subscribe(["a", "b"])
    c.send({"type": "subscribe", "channels": ["c", "d"], "id": "over"})
    e = c.recv()
    assert e["code"] == "limit_channels" and e["id"] == "over"
    c.subscribe(["a", "b", "p:*"])  # already-held channels do not count twice
    c.send({"type": "subscribe", "channels": ["q:*"]})
    # 3 held: channel limit is checked first
    assert c.recv()["code"] == "limit_channels"
    c.send({"type": "unsubscribe", "channels": ["a"]})
    c.recv_type("unsubscribed")
    c.send({"type": "subscribe", "channels": ["q:*"]})
    assert c.recv()["code"] == "limit_wildcards"
    still_usable(c)


def test_wrong_path_is_not_upgraded(gw):
    try:
        WsClient(gw.port, "/other")
        raise AssertionError("upgrade on /other must be refused")
    except (ConnectionError, OSError):
        pass
    still_usable(fresh(gw))


def test_http_endpoints(gw):
    status, body = gw.http("/nope")
    assert status == 404 and json.loads(body)["error"] == "not_found"
    status, h = gw.health()
    assert status == 200 and h["status"] == "ok" and h["redis"] == "up"
    assert h["connections"] == 0 and "uptime_s" in h and h["node"]
    s = gw.stats()
    for key in ("connections", "subscriptions", "messages", "slow_consumers", "errors", "redis"):
        assert key in s


def test_garbage_on_the_socket(gw):
    import socket
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.sendall(b"\x16\x03\x01\x02\x00garbage that is not http\r\n\r\n" * 10)
    s.settimeout(5)
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    still_usable(fresh(gw))
