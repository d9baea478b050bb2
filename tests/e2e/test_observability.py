"""GET /metrics (Prometheus text) and the dashboard page's static files."""
import re

from gwtest import wait_for

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? '
                  r'(-?[0-9.e+]+|\+Inf)$')


def parse(text):
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = LINE.match(line)
        assert m, "not Prometheus text: %r" % line
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(4))
    return samples


def test_metrics_format_and_movement(gw, redis):
    status, body = gw.http("/metrics")
    assert status == 200
    s = parse(body.decode())
    for name in ("wsgw_connections", "wsgw_messages_in_total", "wsgw_frames_out_total",
                 'wsgw_dropped_total{policy="drop"}', 'wsgw_errors_total{code="bad_request"}',
                 'wsgw_auth_total{result="ok"}', "wsgw_acl_denied_total",
                 "wsgw_rate_limited_total", "wsgw_redis_reconnects_total",
                 "wsgw_config_version", 'wsgw_subscriptions{level="redis",kind="exact"}',
                 'wsgw_delivery_lag_microseconds_bucket{le="+Inf"}'):
        assert name in s, name
    c = gw.ws()
    c.recv()
    c.subscribe(["market:tick:AAPL"])
    for i in range(20):
        redis.client().command("PUBLISH", "market:tick:AAPL", str(i))
    for _ in range(20):
        c.recv()
    wait_for(lambda: parse(gw.http("/metrics")[1].decode())[
        "wsgw_delivery_lag_microseconds_count"] >= 20, 5, "lag samples")
    s = parse(gw.http("/metrics")[1].decode())
    assert s["wsgw_messages_in_total"] >= 20 and s["wsgw_frames_out_total"] >= 22
    assert s["wsgw_connections"] == 1
    buckets = sorted((float(k.split('"')[1]) if "Inf" not in k else float("inf"), v)
                     for k, v in s.items() if k.startswith("wsgw_delivery_lag_microseconds_bucket"))
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == s["wsgw_delivery_lag_microseconds_count"]
    # no label carries a channel name
    assert "market:tick" not in gw.http("/metrics")[1].decode()


def test_dashboard_assets(gw):
    import urllib.request
    for path, ctype, needle in (("/", "text/html", b"dashboard.js"),
                                ("/dashboard", "text/html", b"<canvas"),
                                ("/dashboard.js", "text/javascript", b"WebSocket"),
                                ("/dashboard.css", "text/css", b"body")):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (gw.port, path), timeout=5) as r:
            assert r.status == 200 and r.headers["content-type"].startswith(ctype), path
            assert needle in r.read(), path


def test_json_logs_one_object_per_line_no_secrets(gateway_factory):
    import json as j
    key = "log-test-api-key-0123456789"
    g = gateway_factory(env={"LOG_FORMAT": "json", "LOG_LEVEL": "debug",
                             "GATEWAY_API_KEY": key, "REQUIRE_AUTH": "true"})
    g.wait_ready()
    ok = g.ws(headers={"X-API-Key": key})
    assert ok.recv()["type"] == "welcome"
    bad = g.ws(path="/ws?api_key=" + key + "-wrong")
    assert bad.recv()["code"] == "auth_failed"
    ok.close()
    wait_for(lambda: "client_closed" in g.logtext(), 5, "the close to be logged")
    lines = [line for line in g.logtext().splitlines() if line.strip()]
    assert len(lines) >= 4
    for line in lines:
        obj = j.loads(line)  # every line is one JSON object
        assert {"ts", "level", "sub", "event"} <= obj.keys()
    assert key not in g.logtext()
