"""Subscribe, unsubscribe, refcounted Redis subscriptions, envelopes and ordering."""
import json

from gwtest import wait_for


def welcome(c):
    w = c.recv()
    assert w["type"] == "welcome" and w["seq"] == 1
    return w


def test_welcome_frame(gw):
    c = gw.ws()
    w = welcome(c)
    assert w["role"] == "admin"  # the fixture's DEFAULT_ROLE
    assert w["node"].endswith(":%d" % gw.port)
    assert w["session"]


def test_exact_subscribe_and_message(gw, redis):
    c = gw.ws()
    welcome(c)
    ack = c.subscribe(["market:tick:AAPL"], id="c1")
    assert ack == {"type": "subscribed", "id": "c1", "channels": ["market:tick:AAPL"], "seq": 2}
    assert redis.client().command("PUBLISH", "market:tick:AAPL", '{"p":1}') == 1
    assert c.recv() == {"type": "message", "channel": "market:tick:AAPL", "data": {"p": 1},
                        "seq": 3}


def test_pattern_subscribe_carries_pattern(gw, redis):
    c = gw.ws()
    welcome(c)
    c.subscribe(["engine:signal:*"], id=7)
    redis.client().command("PUBLISH", "engine:signal:momentum", '[1,2,3]')
    m = c.recv()
    assert m == {"type": "message", "channel": "engine:signal:momentum",
                 "pattern": "engine:signal:*", "data": [1, 2, 3], "seq": 3}


def test_exact_and_pattern_both_deliver(gw, redis):
    c = gw.ws()
    welcome(c)
    c.subscribe(["indicators:rsi", "indicators:*"])
    redis.client().command("PUBLISH", "indicators:rsi", "1")
    got = [c.recv(), c.recv()]
    assert sorted("pattern" in m for m in got) == [False, True]
    assert [m["seq"] for m in got] == [3, 4]


def test_payloads_json_and_not(gw, redis):
    c = gw.ws()
    welcome(c)
    c.subscribe(["p"])
    r = redis.client()
    cases = [
        (b'{"a":[1,{"b":null}],"c":"\\u00e9"}', {"a": [1, {"b": None}], "c": "\u00e9"}),
        (b"42", 42),
        (b" true ", True),
        (b'"quoted"', "quoted"),
        (b"plain text", "plain text"),
        (b"{not json", "{not json"),
        (b"", ""),
        (b"line\nbreak\t\"q\"", "line\nbreak\t\"q\""),
        (b"\xff\xfebinary\x00", "\ufffd\ufffdbinary\x00"),
        ("caf\u00e9 \U0001F600".encode(), "caf\u00e9 \U0001F600"),
        (b'{"a":1}garbage', '{"a":1}garbage'),
        (b"[" * 200 + b"]" * 200, "[" * 200 + "]" * 200),  # deeper than the limit
        (b"01", "01"),
    ]
    for payload, _ in cases:
        r.command("PUBLISH", "p", payload)
    for _, expected in cases:
        m = c.recv()
        assert m["data"] == expected, (m, expected)


def test_refcounted_redis_subscriptions(gateway_factory, redis):
    gw = gateway_factory()
    gw.wait_ready()
    r = redis.client()
    a, b = gw.ws(), gw.ws()
    welcome(a)
    welcome(b)
    a.subscribe(["market:tick:MSFT", "market:tick:*"])
    b.subscribe(["market:tick:MSFT", "market:tick:*"])
    # One connection for the whole node. Its own sentinel is an exact channel
    # (__wsgw:node:<id>): it is not a pattern every PUBLISH on this Redis is matched with.
    assert r.numsub("market:tick:MSFT") == 1
    assert r.numpat() == 1
    st = gw.stats()["subscriptions"]
    assert st["client"] == {"exact": 2, "pattern": 2}
    assert st["redis"] == {"exact": 1, "pattern": 1, "patterns_held": 1, "patterns_limit": 64}

    a.send({"type": "unsubscribe", "channels": ["market:tick:MSFT", "market:tick:*"], "id": "u"})
    ack = a.recv()
    assert ack["type"] == "unsubscribed" and ack["id"] == "u"
    assert r.numsub("market:tick:MSFT") == 1 and r.numpat() == 1

    b.close()  # the last subscriber leaves by disconnecting
    wait_for(lambda: r.numsub("market:tick:MSFT") == 0 and r.numpat() == 0, 5,
             "Redis unsubscribe after the last client left")
    wait_for(lambda: gw.stats()["subscriptions"]["redis"] == {
        "exact": 0, "pattern": 0, "patterns_held": 0, "patterns_limit": 64}, 5,
        "stats to show no Redis subscriptions")


def test_unsubscribed_client_gets_nothing(gw, redis):
    a, b = gw.ws(), gw.ws()
    welcome(a)
    welcome(b)
    a.subscribe(["x"])
    b.subscribe(["x"])
    b.send({"type": "unsubscribe", "channels": ["x"]})
    b.recv_type("unsubscribed")
    redis.client().command("PUBLISH", "x", "1")
    assert a.recv()["data"] == 1
    b.send({"type": "ping", "id": "after"})
    assert b.recv() == {"type": "pong", "id": "after", "seq": 4}


def test_resubscribe_same_channel_quickly(gw, redis):
    # SUBSCRIBE/UNSUBSCRIBE/SUBSCRIBE in flight together must not lose the subscription.
    c = gw.ws()
    welcome(c)
    for i in range(20):
        c.send({"type": "subscribe", "channels": ["flip"]})
        c.send({"type": "unsubscribe", "channels": ["flip"]})
    c.send({"type": "subscribe", "channels": ["flip"], "id": "last"})
    m = c.recv_type("subscribed")
    while m.get("id") != "last":
        m = c.recv_type("subscribed")
    assert redis.client().command("PUBLISH", "flip", "1") == 1
    assert c.recv_type("message")["channel"] == "flip"
    assert redis.client().numsub("flip") == 1


def test_ten_thousand_messages_contiguous(gw, redis):
    c = gw.ws()
    welcome(c)
    c.subscribe(["market:tick:*"])
    r = redis.client()
    n = 10000
    for start in range(0, n, 500):  # paced so the default 1 MiB queue never overflows
        r.publish_many(("market:tick:S%d" % (i % 10), json.dumps({"i": i}))
                       for i in range(start, start + 500))
        for i in range(start, start + 500):
            m = c.recv()
            assert m["type"] == "message"
            assert m["seq"] == i + 3, "gap or reorder at %d" % i
            assert m["data"]["i"] == i
    s = gw.stats()
    assert s["slow_consumers"]["dropped"] == 0
    assert s["messages"]["from_redis"] >= n


def test_ping_pong_and_seq(gw):
    c = gw.ws()
    welcome(c)
    for i in range(5):
        c.send({"type": "ping", "id": "p%d" % i})
        assert c.recv() == {"type": "pong", "id": "p%d" % i, "seq": 2 + i}
    c.send({"type": "ping"})
    assert c.recv() == {"type": "pong", "seq": 7}


def test_stats_counts_connections(gw):
    before = gw.stats()["connections"]["total"]
    cs = [gw.ws() for _ in range(3)]
    for c in cs:
        welcome(c)
    s = gw.stats()["connections"]
    assert s["current"] == 3 and s["total"] == before + 3
    for c in cs:
        c.close()
    wait_for(lambda: gw.stats()["connections"]["current"] == 0, 5, "connections to close")
