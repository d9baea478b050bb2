"""One control plane, two data planes and Redis, all real processes: changes made with
wsgwctl reach both nodes and act on live connections; keys created and revoked through
the control plane; the control plane killed and restarted; a node restarted while the
control plane is down; cluster stats equal the sum of the nodes' /stats; wsgwctl's exit
codes."""
import json
import os
import subprocess
import time

import pytest

from cptest import ADMIN_TOKEN, NODE_TOKEN, Control
from gwtest import ROOT, Gateway, wait_for

WSGWCTL = os.environ.get("WSGWCTL_BIN", os.path.join(ROOT, "build", "bin", "wsgwctl"))


def ctl(control, *args, token=ADMIN_TOKEN, check=True):
    p = subprocess.run([WSGWCTL, "--server", control.admin_target, "--token", token, "--json",
                        *args], capture_output=True, text=True, timeout=30)
    if check:
        assert p.returncode == 0, (args, p.returncode, p.stderr)
    return p


def ctl_json(control, *args):
    return json.loads(ctl(control, *args).stdout)


@pytest.fixture
def fleet(redis, tmp_path):
    control = Control()
    nodes = []
    for i in range(2):
        env = {"CONTROL_PLANE_URL": control.node_target, "CONTROL_NODE_TOKEN": NODE_TOKEN,
               "CONFIG_CACHE_PATH": str(tmp_path / ("node%d.cache" % i)),
               "REPORT_INTERVAL_MS": "200", "NODE_ID": "node-%d" % i}
        g = Gateway(redis.url, env=env)
        g.wait_ready()
        nodes.append(g)
    wait_for(lambda: [n["sync_status"] for n in ctl_json(control, "nodes").get("nodes", [])]
             == ["synced", "synced"], 10, "both nodes synced")
    yield control, nodes
    errors = []
    for g in nodes:
        try:
            g.close()
        except AssertionError as e:
            errors.append(str(e))
    control.close()
    assert not errors, errors


def versions(nodes):
    return [g.stats()["control_plane"]["config_version"] for g in nodes]


def test_role_change_reaches_both_nodes_and_live_connections(fleet, redis):
    control, nodes = fleet
    c = nodes[1].ws()
    w = c.recv()
    assert w["role"] == "user"
    c.subscribe(["market:tick:*", "indicators:*"])
    r = redis.client()
    assert r.numpat() == 2  # two patterns (the nodes' sentinels are exact channels)
    out = ctl_json(control, "role", "set", "user", "--allow", "market:tick:*")
    wait_for(lambda: versions(nodes) == [out["version"]] * 2, 5, "both nodes at the new version")
    m = c.recv_type("unsubscribed", timeout=5)
    assert m["channels"] == ["indicators:*"] and m["reason"] == "acl_changed"
    wait_for(lambda: r.numpat() == 1, 5, "the Redis pattern released")
    r.command("PUBLISH", "market:tick:AAPL", "1")
    assert c.recv_type("message")["channel"] == "market:tick:AAPL"
    c.send({"type": "subscribe", "channels": ["indicators:rsi"]})
    assert c.recv()["code"] == "acl_denied"


def test_key_works_on_both_nodes_and_revocation_closes(fleet):
    control, nodes = fleet
    k = ctl_json(control, "key", "create", "--role", "internal", "--description", "e2e")
    secret = k["secret"]
    wait_for(lambda: versions(nodes) == [k["version"]] * 2, 5, "key pushed")
    clients = []
    for g in nodes:
        c = g.ws(headers={"X-API-Key": secret})
        assert c.recv()["role"] == "internal"
        clients.append(c)
    ctl(control, "key", "revoke", k["key"]["id"])
    for c in clients:
        assert c.expect_close(timeout=5) == 4403
    # REQUIRE_AUTH is off on this fleet: the revoked key is refused, and the client is
    # served as anyone without a credential would be
    refused = nodes[0].ws(headers={"X-API-Key": secret})
    m = refused.recv()
    assert m["type"] == "welcome" and m["auth_error"] == "key_revoked" and m["role"] == "user"


def test_control_plane_restart_keeps_state_and_nodes_serve(fleet, redis):
    control, nodes = fleet
    v = ctl_json(control, "role", "set", "ops", "--allow", "*")["version"]
    wait_for(lambda: versions(nodes) == [v] * 2, 5, "pushed")
    c = nodes[0].ws()
    c.recv()
    c.subscribe(["market:tick:X"])
    control.stop(sig=9)
    # nodes keep serving while the control plane is away
    redis.client().command("PUBLISH", "market:tick:X", "during")
    assert c.recv()["data"] == "during"
    fresh = nodes[1].ws()
    assert fresh.recv()["type"] == "welcome"
    assert nodes[0].health()[0] == 200
    control.start(control.node_port, control.admin_port)
    wait_for(lambda: [n["sync_status"] for n in ctl_json(control, "nodes")["nodes"]]
             == ["synced", "synced"], 15, "nodes reconnected and synced")
    assert any(r["name"] == "ops" for r in ctl_json(control, "role", "list")["roles"])
    assert ctl_json(control, "config")["version"] == v


def test_node_restart_with_control_plane_down_uses_cache(fleet, redis):
    control, nodes = fleet
    v = ctl_json(control, "role", "set", "user", "--allow", "indicators:*")["version"]
    wait_for(lambda: versions(nodes) == [v] * 2, 5, "pushed")
    control.stop(sig=9)
    g = nodes[0]
    assert g.terminate() == 0
    g.start()
    g.wait_ready()  # serves without the control plane
    assert g.stats()["control_plane"]["config_version"] == v
    assert not g.stats()["control_plane"]["connected"]
    c = g.ws()
    c.recv()
    c.send({"type": "subscribe", "channels": ["market:tick:A"]})
    assert c.recv()["code"] == "acl_denied"  # the cached, stricter ACL holds
    c.subscribe(["indicators:x"])
    control.start(control.node_port, control.admin_port)
    wait_for(lambda: g.stats()["control_plane"]["connected"], 15, "the node reconnected")


def test_no_config_no_clients(redis, tmp_path):
    """A node that never had a config (no cache, no control plane) refuses clients."""
    g = Gateway(redis.url, env={"CONTROL_PLANE_URL": "127.0.0.1:1",
                                "CONTROL_NODE_TOKEN": NODE_TOKEN,
                                "CONFIG_CACHE_PATH": str(tmp_path / "none.cache")})
    try:
        status, h = g.health()
        assert status == 503 and "configuration" in h["reason"]
        from gwtest import UpgradeRefused
        with pytest.raises(UpgradeRefused) as e:
            g.ws()
        assert e.value.status == 503
    finally:
        g.close()


def test_cluster_stats_equal_the_sum(fleet, redis):
    control, nodes = fleet
    for g in nodes:
        for _ in range(2):
            c = g.ws()
            c.recv()
            c.close()
    time.sleep(1.0)  # quiet, and at least one report after it

    def matches():
        totals = ctl_json(control, "stats")["totals"]
        s = [g.stats() for g in nodes]
        return (totals.get("connections_total") == sum(x["connections"]["total"] for x in s)
                and totals.get("frames_sent") == sum(x["messages"]["frames_sent"] for x in s))
    wait_for(matches, 5, "GetClusterStats to equal the sum of /stats")


def test_wsgwctl_exit_codes(fleet):
    control, _ = fleet
    assert ctl(control, "role", "set", "bad", "--allow", "[x", check=False).returncode == 1
    assert ctl(control, "role", "get", "nobody", check=False).returncode == 5
    assert ctl(control, "role", "list", token="wrong-token-wrong", check=False).returncode == 4
    assert ctl(control, "frobnicate", check=False).returncode == 2
    p = subprocess.run([WSGWCTL, "--server", "127.0.0.1:1", "--token", ADMIN_TOKEN,
                        "--timeout-ms", "1000", "role", "list"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 3
    table = subprocess.run([WSGWCTL, "--server", control.admin_target, "--token", ADMIN_TOKEN,
                            "nodes"], capture_output=True, text=True, timeout=30)
    assert table.returncode == 0 and "node-0" in table.stdout and "synced" in table.stdout
    env = dict(os.environ, WSGW_CONTROL_URL=control.admin_target, WSGW_ADMIN_TOKEN=ADMIN_TOKEN)
    p = subprocess.run([WSGWCTL, "role", "list"], capture_output=True, text=True, timeout=30,
                       env=env)
    assert p.returncode == 0 and "user" in p.stdout


def test_real_node_nacks_what_it_cannot_apply(fleet, tmp_path):
    control, nodes = fleet
    before = versions(nodes)
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n")
    v = ctl_json(control, "auth", "set", "--jwt-public-key-file", str(bad))["version"]
    wait_for(lambda: [n["sync_status"] for n in ctl_json(control, "nodes")["nodes"]]
             == ["nacked", "nacked"], 10, "both nodes to NACK")
    for n in ctl_json(control, "nodes")["nodes"]:
        assert "jwt_public_key_pem" in n["error_detail"] and n["acked_version"] == before[0]
    assert versions(nodes) == before  # they keep what they had
    # the next change is pushed (no resend of v, but v+1 is new) and refused again,
    # since the bad key is still part of the config
    v2 = ctl_json(control, "auth", "set", "--require-auth", "false")["version"]
    assert v2 == v + 1
    wait_for(lambda: all(n["sent_version"] == v2 and n["sync_status"] == "nacked"
                         for n in ctl_json(control, "nodes")["nodes"]), 10, "v2 NACKed too")
    assert versions(nodes) == before


def test_deleting_a_role_closes_its_connections(fleet):
    control, nodes = fleet
    ctl(control, "role", "set", "temp", "--allow", "market:*")
    k = ctl_json(control, "key", "create", "--role", "temp")
    wait_for(lambda: versions(nodes) == [k["version"]] * 2, 5, "pushed")
    c = nodes[0].ws(headers={"X-API-Key": k["secret"]})
    assert c.recv()["role"] == "temp"
    anon = nodes[0].ws()
    anon.recv()
    ctl(control, "role", "delete", "temp")
    assert c.expect_close(timeout=5) == 4403
    anon.send({"type": "ping", "id": "still"})  # other roles are untouched
    assert anon.recv_type("pong")["id"] == "still"


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl CLI)."""
    def run(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=wsgw-test-ca")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"),
                      ("client", "subjectAltName=DNS:node.test")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
            name + ".csr", "-subj", "/CN=" + name)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "\n")
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")
    return {k: os.path.join(d, k) for k in ("ca.pem", "server.pem", "server.key",
                                             "client.pem", "client.key")}


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_and_mtls(redis, tmp_path, mutual):
    pki = make_pki(str(tmp_path))
    env = {"CONTROL_TLS_CERT": pki["server.pem"], "CONTROL_TLS_KEY": pki["server.key"]}
    if mutual:
        env["CONTROL_TLS_CLIENT_CA"] = pki["ca.pem"]
    control = Control(env=env)
    client = ["--tls-ca", pki["ca.pem"]]
    if mutual:
        client += ["--tls-cert", pki["client.pem"], "--tls-key", pki["client.key"]]
    node_env = {"CONTROL_PLANE_URL": control.node_target, "CONTROL_NODE_TOKEN": NODE_TOKEN,
                "CONFIG_CACHE_PATH": str(tmp_path / "tls.cache"),
                "CONTROL_TLS_CA": pki["ca.pem"]}
    if mutual:
        node_env.update(CONTROL_TLS_CLIENT_CERT=pki["client.pem"],
                        CONTROL_TLS_CLIENT_KEY=pki["client.key"])
    g = Gateway(redis.url, env=node_env)
    try:
        g.wait_ready()  # synced over TLS
        def run(extra):
            return subprocess.run([WSGWCTL, "--server", control.admin_target, "--token",
                                   ADMIN_TOKEN, "--timeout-ms", "3000", *extra, "nodes"],
                                  capture_output=True, text=True, timeout=30)
        ok = run(client)
        assert ok.returncode == 0 and "synced" in ok.stdout, ok.stderr
        assert run([]).returncode == 3  # plaintext to a TLS port
        if mutual:
            assert run(["--tls-ca", pki["ca.pem"]]).returncode == 3  # no client certificate
    finally:
        g.close()
        control.close()


def test_live_sessions_are_reevaluated_against_new_auth_rules(fleet, tmp_path):
    """REQUIRE_AUTH turned on closes anonymous sessions; a new JWT key closes the
    sessions its predecessor let in; API-key sessions are unaffected by either."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    control, nodes = fleet
    keys, pems = [], []
    for i in range(2):
        k = ec.generate_private_key(ec.SECP256R1())
        pem = tmp_path / ("k%d.pem" % i)
        pem.write_bytes(k.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        keys.append(k)
        pems.append(pem)
    v = ctl_json(control, "auth", "set", "--jwt-public-key-file", str(pems[0]))["version"]
    api = ctl_json(control, "key", "create", "--role", "user")
    wait_for(lambda: versions(nodes) == [api["version"]] * 2, 5, "pushed")
    assert api["version"] > v
    tok = jwt.encode({"exp": int(time.time()) + 600, "role": "user"}, keys[0], algorithm="ES256")
    anon = nodes[0].ws()
    by_jwt = nodes[0].ws(headers={"Authorization": "Bearer " + tok})
    by_key = nodes[0].ws(headers={"X-API-Key": api["secret"]})
    for c in (anon, by_jwt, by_key):
        assert c.recv()["type"] == "welcome"

    ctl(control, "auth", "set", "--require-auth", "true")
    assert anon.expect_close(timeout=5) == 4401
    ctl(control, "auth", "set", "--jwt-public-key-file", str(pems[1]))
    assert by_jwt.expect_close(timeout=5) == 4401
    by_key.send({"type": "ping", "id": "still"})
    assert by_key.recv_type("pong")["id"] == "still"
    # the old token does not let anyone in any more; one signed with the new key does
    refused = nodes[1].ws(headers={"Authorization": "Bearer " + tok})
    assert refused.recv()["code"] == "auth_failed"
    tok2 = jwt.encode({"exp": int(time.time()) + 600, "role": "user"}, keys[1], algorithm="ES256")
    assert nodes[1].ws(headers={"Authorization": "Bearer " + tok2}).recv()["type"] == "welcome"


def test_the_nodes_own_key_id_is_reserved(fleet):
    control, nodes = fleet
    p = ctl(control, "key", "create", "--role", "user", "--id", "env", check=False)
    assert p.returncode == 1 and "reserved" in p.stderr
