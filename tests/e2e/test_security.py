"""Authentication, roles and guardrails against hostile clients: every auth path, a
table of hostile tokens, ACL bypass attempts with patterns, the channels claim, each
limit, expiry and in-band refresh, STATS_TOKEN. Tokens are made with PyJWT (Debian's
python3-jwt); the hostile ones by hand."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gwtest import WSGW_BIN, UpgradeRefused, WsClosed, wait_for

SECRET = "e2e-secret-0123456789-abcdefghijklmnop"
API_KEY = "e2e-api-key-do-not-log-me"
USER_ENV = {"DEFAULT_ROLE": "user", "CLIENT_RATE_LIMIT": "1000", "CLIENT_RATE_BURST": "1000"}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims=None, key=SECRET, alg="HS256", **extra):
    c = {"exp": int(time.time()) + 600, "role": "user"}
    c.update(claims or {})
    c.update(extra)
    return jwt.encode(c, key, algorithm=alg)


@pytest.fixture(scope="module")
def keys():
    d = tempfile.mkdtemp(prefix="gwtest-keys-")
    rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ek = ec.generate_private_key(ec.SECP256R1())
    out = {"dir": d}
    for name, k in (("rsa", rk), ("ec", ek)):
        pub = k.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        path = os.path.join(d, name + ".pem")
        with open(path, "wb") as f:
            f.write(pub)
        out[name] = k
        out[name + "_pub"] = pub
        out[name + "_path"] = path
    return out


def first(c):
    return c.recv()


def expect_auth_failed(c):
    m = c.recv()
    assert m["type"] == "error" and m["code"] == "auth_failed", m
    assert c.expect_close() == 4401
    return m


@pytest.fixture
def secure_gw(gateway_factory):
    g = gateway_factory(env=dict(USER_ENV, REQUIRE_AUTH="true", JWT_SECRET=SECRET,
                                 GATEWAY_API_KEY=API_KEY, AUTH_TIMEOUT_MS="700"))
    g.wait_ready()
    return g


# --- authentication paths -------------------------------------------------------------

def test_anonymous_gets_default_role(gateway_factory):
    g = gateway_factory(env=USER_ENV)
    g.wait_ready()
    c = g.ws()
    w = first(c)
    assert w["type"] == "welcome" and w["role"] == "user" and w["seq"] == 1


@pytest.mark.parametrize("how", ["bearer", "x-api-key", "query-token", "query-api-key"])
def test_upgrade_credentials(secure_gw, how):
    t = token({"role": "admin"})
    kw = {"bearer": dict(headers={"Authorization": "Bearer " + t}),
          "x-api-key": dict(headers={"X-API-Key": API_KEY}),
          "query-token": dict(path="/ws?token=" + t),
          "query-api-key": dict(path="/ws?api_key=" + API_KEY)}[how]
    c = secure_gw.ws(**kw)
    w = first(c)
    assert w["type"] == "welcome" and w["seq"] == 1
    assert w["role"] == "admin"  # from the JWT's claim, or GATEWAY_API_KEY_ROLE's default


@pytest.mark.parametrize("field", ["token", "api_key"])
def test_auth_frame(secure_gw, field):
    c = secure_gw.ws()
    c.send({"type": "auth", field: token({"role": "admin"}) if field == "token" else API_KEY})
    w = first(c)
    assert w["type"] == "welcome" and w["seq"] == 1
    assert w["role"] == "admin"
    c.subscribe(["engine:decision:x"])  # admin reads everything


def test_refused_refresh_keeps_the_connection(secure_gw):
    c = secure_gw.ws(headers={"Authorization": "Bearer " + token()})
    assert first(c)["type"] == "welcome"
    for bad in ("not-a-jwt", API_KEY + "x", token(key=SECRET + "x"), token(role="admin")):
        c.send({"type": "auth", "token": bad, "id": "r"})
        m = c.recv()
        assert m["type"] == "error" and m["code"] == "auth_failed" and m["id"] == "r", (bad, m)
    c.send({"type": "ping", "id": "still"})
    assert c.recv() == {"type": "pong", "id": "still", "seq": 6}


def test_auth_timeout_closes_4401(secure_gw):
    c = secure_gw.ws()
    t0 = time.time()
    assert c.expect_close(timeout=5) == 4401
    assert 0.5 < time.time() - t0 < 3
    assert secure_gw.stats()["auth"]["failures"]["timeout"] == 1


def test_only_auth_before_authentication(secure_gw):
    c = secure_gw.ws()
    c.send({"type": "subscribe", "channels": ["market:tick:AAPL"]})
    m = c.recv()
    assert m["type"] == "error" and m["code"] == "auth_required"
    assert c.expect_close() == 4401


def test_failed_auth_frame(secure_gw):
    c = secure_gw.ws()
    c.send({"type": "auth", "api_key": "wrong"})
    expect_auth_failed(c)


def test_credentials_never_logged(secure_gw):
    t = token({"role": "admin"})
    c = secure_gw.ws(headers={"Authorization": "Bearer " + t})
    first(c)
    bad = secure_gw.ws(path="/ws?api_key=" + API_KEY + "x")
    expect_auth_failed(bad)
    log = secure_gw.logtext()
    assert "auth_failed" in log
    assert API_KEY not in log and t not in log and SECRET not in log


# --- hostile tokens -------------------------------------------------------------------

def forge(header, claims, sig=b""):
    return "%s.%s.%s" % (b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()),
                         b64(sig))


def hostile_tokens(keys):
    now = int(time.time())
    good = {"exp": now + 600, "role": "user"}
    valid = token(good)
    h, p, s = valid.split(".")
    admin_payload = b64(json.dumps({"exp": now + 600, "role": "admin"}).encode())
    rsa_pub = keys["rsa_pub"]
    confused_header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    confused_body = b64(json.dumps(good).encode())
    confused_sig = hmac.new(rsa_pub, ("%s.%s" % (confused_header, confused_body)).encode(),
                            hashlib.sha256).digest()
    return [
        ("alg none", forge({"alg": "none", "typ": "JWT"}, good), "malformed"),
        ("alg none with signature", forge({"alg": "none"}, good, b"x"), "alg_not_allowed"),
        ("alg NONE", forge({"alg": "NONE"}, good, b"x"), "alg_not_allowed"),
        ("HS256 signed with the RSA public key",
         "%s.%s.%s" % (confused_header, confused_body, b64(confused_sig)), "alg_not_allowed"),
        ("RS256 from a stranger's key", jwt.encode(good, rsa.generate_private_key(
            public_exponent=65537, key_size=2048), algorithm="RS256"), "bad_signature"),
        ("expired", token(exp=now - 3600), "expired"),
        ("not yet valid", token(nbf=now + 3600), "not_yet_valid"),
        ("issued in the future", token(iat=now + 3600), "not_yet_valid"),
        ("no exp", jwt.encode({"role": "user"}, SECRET, algorithm="HS256"), "missing_exp"),
        ("tampered payload", "%s.%s.%s" % (h, admin_payload, s), "bad_signature"),
        ("unknown role", token(role="superuser"), "unknown_role"),
        ("garbage", "garbage", "malformed"),
        ("three dots", "a.b.c", "malformed"),
        ("huge", "a" * 9000, None),
    ]


def test_hostile_token_table(gateway_factory, keys):
    # iss/aud are checked on a node that requires them; the rest on an RS256-only node,
    # where HS256 must not be accepted at all.
    g = gateway_factory(env=dict(USER_ENV, REQUIRE_AUTH="true", JWT_SECRET=SECRET))
    g.wait_ready()
    rs_only = gateway_factory(env=dict(USER_ENV, REQUIRE_AUTH="true",
                                       JWT_PUBLIC_KEY_FILE=keys["rsa_path"]))
    rs_only.wait_ready()
    for name, tok, reason in hostile_tokens(keys):
        node = rs_only if "RSA public key" in name or "RS256" in name else g
        for via in ("frame", "header"):
            if via == "frame":
                c = node.ws()
                c.send({"type": "auth", "token": tok})
            else:
                try:
                    c = node.ws(headers={"Authorization": "Bearer " + tok})
                except UpgradeRefused as e:  # an oversized header is refused by HTTP
                    assert name == "huge" and e.status in (400, 403, 413, 431), e
                    continue
            m = c.recv()
            assert m["type"] == "error" and m["code"] in ("auth_failed", "bad_request"), (name, m)
            if reason and m["code"] == "auth_failed":
                assert reason in m["message"], (name, via, m)
            code = c.expect_close()
            assert code == 4401, (name, via, code)
    fails = g.stats()["auth"]["failures"]
    assert fails["expired"] >= 2 and fails["bad_signature"] >= 2 and fails["unknown_role"] >= 2
    assert rs_only.stats()["auth"]["failures"]["alg_not_allowed"] >= 2


def test_issuer_and_audience_checked(gateway_factory):
    env = dict(USER_ENV, JWT_SECRET=SECRET, JWT_ISSUER="idp", JWT_AUDIENCE="ui")
    g = gateway_factory(env=dict(env, REQUIRE_AUTH="true"))
    g.wait_ready()
    optional = gateway_factory(env=env)  # REQUIRE_AUTH=false: refused, not closed
    optional.wait_ready()
    for claims, reason in [({"iss": "evil", "aud": "ui"}, "bad_issuer"),
                           ({"aud": "ui"}, "bad_issuer"),
                           ({"iss": "idp", "aud": "other"}, "bad_audience"),
                           ({"iss": "idp", "aud": ["x", "y"]}, "bad_audience"),
                           ({"iss": "idp"}, "bad_audience")]:
        c = g.ws(headers={"Authorization": "Bearer " + token(claims)})
        assert reason in expect_auth_failed(c)["message"], claims
        w = first(optional.ws(headers={"Authorization": "Bearer " + token(claims)}))
        assert w["type"] == "welcome" and w["auth_error"] == reason and w["role"] == "user"
    ok = g.ws(headers={"Authorization": "Bearer " + token({"iss": "idp", "aud": ["x", "ui"]})})
    w = first(ok)
    assert w["type"] == "welcome" and "auth_error" not in w


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_asymmetric_tokens(gateway_factory, keys, alg):
    name = "rsa" if alg == "RS256" else "ec"
    g = gateway_factory(env=dict(USER_ENV, REQUIRE_AUTH="true",
                                 JWT_PUBLIC_KEY_FILE=keys[name + "_path"]))
    g.wait_ready()
    t = jwt.encode({"exp": int(time.time()) + 60, "role": "admin"}, keys[name], algorithm=alg)
    c = g.ws(path="/ws?token=" + t)
    assert first(c)["role"] == "admin"
    hs = g.ws()
    hs.send({"type": "auth", "token": token()})  # HS256 is not accepted by this node
    assert "alg_not_allowed" in expect_auth_failed(hs)["message"]


# --- ACLs -----------------------------------------------------------------------------

BYPASS = ["*", "m*", "market:*", "[a-z]*", "engine:*", "engine:decision:*", "*:decision:*",
          "e?gine:decision:x", "[e]ngine:decision:*", "engine:[d]*", "*decision*", "?*",
          "indicators", "market:tic?", "market:tick*", "market:tick:*:\\*x[", "engine:decision:x"]
ALLOWED = ["market:tick:AAPL", "market:tick:*", "market:tick:A*", "market:tick", "engine:signal",
           "engine:signal:*", "engine:signal:mo?", "indicators:*", "indicators:rsi:[0-9]*"]


def test_acl_bypass_attempts_are_denied(gateway_factory, redis):
    g = gateway_factory(env=dict(USER_ENV, MAX_CHANNELS_PER_CLIENT="50",
                                 MAX_WILDCARD_SUBSCRIPTIONS="50"))
    g.wait_ready()
    c = g.ws()
    first(c)
    for i, ch in enumerate(BYPASS):
        if ch.endswith("["):
            continue
        c.send({"type": "subscribe", "channels": [ch], "id": i})
        m = c.recv()
        assert m["type"] == "error" and m["code"] == "acl_denied" and m["channel"] == ch, (ch, m)
    for ch in ALLOWED:
        c.subscribe([ch])
    # Nothing of engine:decision reaches a user, whatever they subscribed.
    r = redis.client()
    r.command("PUBLISH", "engine:decision:buy", "secret")
    r.command("PUBLISH", "market:tick:AAPL", "1")
    got = []
    try:
        while True:
            got.append(c.recv(timeout=0.5))
    except (TimeoutError, OSError):
        pass
    assert got and {m["channel"] for m in got} == {"market:tick:AAPL"}, got
    assert g.stats()["acl"]["denied"] == len([b for b in BYPASS if not b.endswith("[")])


def test_roles_file_with_deny_and_limits(gateway_factory, tmp_path):
    roles = {"roles": [
        {"name": "trader", "allow": ["market:*", "engine:*"], "deny": ["engine:decision:*"],
         "max_channels": 3, "max_wildcards": 1},
        {"name": "ops", "allow": ["*"]}]}
    path = tmp_path / "roles.json"
    path.write_text(json.dumps(roles))
    g = gateway_factory(env=dict(USER_ENV, ROLES_FILE=str(path), DEFAULT_ROLE="trader"))
    g.wait_ready()
    c = g.ws()
    assert first(c)["role"] == "trader"
    for ch in ["engine:*", "e*", "engine:d*", "engine:[^s]*"]:  # all could reach decisions
        c.send({"type": "subscribe", "channels": [ch]})
        assert c.recv()["code"] == "acl_denied", ch
    c.subscribe(["engine:signal:*"])
    c.send({"type": "subscribe", "channels": ["market:*"]})
    assert c.recv()["code"] == "limit_wildcards"  # role override: 1 pattern
    c.subscribe(["market:a", "market:b"])
    c.send({"type": "subscribe", "channels": ["market:c"]})
    assert c.recv()["code"] == "limit_channels"  # role override: 3 channels


def test_bad_roles_config_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    for content, needle in [('{"roles":[{"name":"x","allow":["[bad"]}]}', "roles[0].allow[0]"),
                            ('{"roles":[{"name":"x","alow":["a"]}]}', "unknown field"),
                            ("not json", "invalid JSON")]:
        bad.write_text(content)
        p = subprocess.run([WSGW_BIN], env=dict(os.environ, ROLES_FILE=str(bad), DEFAULT_ROLE="x"),
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and "ROLES_FILE" in p.stderr and needle in p.stderr, p.stderr
    p = subprocess.run([WSGW_BIN], env=dict(os.environ, DEFAULT_ROLE="nobody"),
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "DEFAULT_ROLE" in p.stderr
    p = subprocess.run([WSGW_BIN], env=dict(os.environ, JWT_SECRET="short"),
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "JWT_SECRET" in p.stderr and "short" not in p.stderr


def test_channels_claim_narrows(gateway_factory, redis):
    g = gateway_factory(env=dict(USER_ENV, JWT_SECRET=SECRET))
    g.wait_ready()
    t = token({"role": "admin", "channels": ["market:tick:AAPL", "indicators:rsi:*"]})
    c = g.ws(headers={"Authorization": "Bearer " + t})
    assert first(c)["role"] == "admin"
    c.subscribe(["market:tick:AAPL", "indicators:rsi:*", "indicators:rsi:1m"])
    for ch in ["market:tick:MSFT", "market:tick:*", "indicators:*", "engine:decision:x"]:
        c.send({"type": "subscribe", "channels": [ch]})
        assert c.recv()["code"] == "acl_denied", ch
    # never widens: a user token with a claim outside the user role gets nothing more
    u = g.ws(headers={"Authorization": "Bearer " + token({"role": "user",
                                                            "channels": ["engine:decision:*"]})})
    first(u)
    u.send({"type": "subscribe", "channels": ["engine:decision:x"]})
    assert u.recv()["code"] == "acl_denied"


# --- guardrails -----------------------------------------------------------------------

def test_rate_limit_then_close_4429(gateway_factory):
    g = gateway_factory(env=dict(USER_ENV, CLIENT_RATE_LIMIT="5", CLIENT_RATE_BURST="5",
                                 CLIENT_RATE_MAX_STRIKES="5"))
    g.wait_ready()
    c = g.ws()
    first(c)
    for i in range(30):
        try:
            c.send({"type": "ping", "id": i})
        except OSError:
            break
    kinds = []
    with pytest.raises(WsClosed) as closed:
        while True:
            kinds.append(c.recv()["type"])
    assert closed.value.code == 4429
    assert kinds.count("pong") >= 5 and kinds.count("error") >= 1
    s = g.stats()["rate_limit"]
    assert s["limited"] >= 5 and s["closes"] == 1


def test_rate_limit_recovers(gateway_factory):
    g = gateway_factory(env=dict(USER_ENV, CLIENT_RATE_LIMIT="10", CLIENT_RATE_BURST="2",
                                 CLIENT_RATE_MAX_STRIKES="100"))
    g.wait_ready()
    c = g.ws()
    first(c)
    for i in range(3):
        c.send({"type": "ping", "id": i})
    got = [c.recv() for _ in range(3)]
    assert [m["type"] for m in got] == ["pong", "pong", "error"]
    assert got[2]["code"] == "rate_limited"
    time.sleep(0.3)
    c.send({"type": "ping", "id": "later"})
    assert c.recv()["id"] == "later"


def test_max_connections_503(gateway_factory):
    g = gateway_factory(env=dict(USER_ENV, MAX_CONNECTIONS="2"))
    g.wait_ready()
    a, b = g.ws(), g.ws()
    first(a)
    first(b)
    with pytest.raises(UpgradeRefused) as e:
        g.ws()
    assert e.value.status == 503
    a.close()
    wait_for(lambda: g.stats()["connections"]["current"] == 1, 5, "a slot to free up")
    first(g.ws())
    assert g.stats()["refused"]["max_connections"] == 1


def test_max_connections_per_ip_429(gateway_factory):
    g = gateway_factory(env=dict(USER_ENV, MAX_CONNECTIONS_PER_IP="2"))
    g.wait_ready()
    a, b = g.ws(), g.ws()
    first(a)
    first(b)
    with pytest.raises(UpgradeRefused) as e:
        g.ws()
    assert e.value.status == 429
    assert g.stats()["refused"]["per_ip"] == 1


def test_stats_token(gateway_factory):
    g = gateway_factory(env=dict(USER_ENV, STATS_TOKEN="stats-secret-1"))
    assert g.http("/health")[0] == 401
    assert g.http("/stats", {"Authorization": "Bearer wrong"})[0] == 401
    status, body = g.http("/health", {"Authorization": "Bearer stats-secret-1"})
    assert status == 200
    status, body = g.http("/stats", {"Authorization": "Bearer stats-secret-1"})
    assert status == 200 and json.loads(body)["stats_unauthorized"] == 2
    assert g.http("/nope")[0] == 404


# --- expiry and refresh ---------------------------------------------------------------

def test_expiry_warning_refresh_and_close(gateway_factory):
    g = gateway_factory(env=dict(USER_ENV, JWT_SECRET=SECRET, JWT_LEEWAY_S="0",
                                 AUTH_EXPIRY_WARNING_S="2"))
    g.wait_ready()
    exp = int(time.time()) + 3
    keeper = g.ws(headers={"Authorization": "Bearer " + token(exp=exp)})
    quitter = g.ws(headers={"Authorization": "Bearer " + token(exp=exp)})
    first(keeper)
    first(quitter)
    keeper.subscribe(["market:tick:AAPL"])
    w = keeper.recv_type("auth_expiring", timeout=5)
    assert w["expires_at"] == exp and 0 < w["expires_in"] <= 2
    # a refresh may not change the role
    keeper.send({"type": "auth", "token": token({"role": "admin"}, exp=exp + 60), "id": "r0"})
    m = keeper.recv()
    assert m["type"] == "error" and m["code"] == "auth_failed" and m["id"] == "r0"
    keeper.send({"type": "auth", "token": token(exp=exp + 60), "id": "r1"})
    m = keeper.recv()
    assert m == {"type": "authenticated", "id": "r1", "role": "user", "expires_at": exp + 60,
                 "seq": m["seq"]}
    assert quitter.expect_close(timeout=6) == 4401
    time.sleep(max(0, exp + 1.5 - time.time()))
    keeper.send({"type": "ping", "id": "alive"})
    assert keeper.recv_type("pong")["id"] == "alive"
    assert g.stats()["auth"]["expired_closes"] == 1


def test_per_ip_limit_behind_a_trusted_proxy(gateway_factory):
    # The test client plays the proxy (127.0.0.1) and names the clients it forwards.
    g = gateway_factory(env=dict(USER_ENV, MAX_CONNECTIONS_PER_IP="2",
                                 TRUSTED_PROXIES="10.9.9.9, 127.0.0.0/8"))
    g.wait_ready()
    a1 = g.ws(headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1"})
    a2 = g.ws(headers={"X-Forwarded-For": "10.0.0.1"})
    for c in (a1, a2):
        first(c)
    with pytest.raises(UpgradeRefused) as e:
        g.ws(headers={"X-Forwarded-For": "10.0.0.1"})
    assert e.value.status == 429
    first(g.ws(headers={"X-Forwarded-For": "10.0.0.2"}))  # another client behind the proxy


def test_forwarded_for_ignored_from_untrusted_peers(gateway_factory):
    g = gateway_factory(env=dict(USER_ENV, MAX_CONNECTIONS_PER_IP="2"))
    g.wait_ready()
    held = [g.ws(headers={"X-Forwarded-For": "10.0.0.%d" % i}) for i in range(2)]
    for c in held:
        first(c)
    with pytest.raises(UpgradeRefused):  # spoofed headers do not buy more connections
        g.ws(headers={"X-Forwarded-For": "10.0.0.99"})


def test_bad_trusted_proxies_exit_2():
    p = subprocess.run([WSGW_BIN], env=dict(os.environ, TRUSTED_PROXIES="10.0.0.1,nginx"),
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "TRUSTED_PROXIES" in p.stderr
