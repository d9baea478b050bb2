"""wsgw-control over real gRPC from Python grpcio: the Admin API, its status codes, the
ControlPlane stream protocol (hello, push, ACK/NACK, stats, no resend loop), persistence
across restarts, debounced pushes."""
import os
import re
import subprocess
import time

import grpc
import pytest

from cptest import ADMIN_TOKEN, CONTROL_BIN, NODE_TOKEN, Control, FakeNode, grpc_api
from gwtest import WSGW_BIN, wait_for


@pytest.fixture
def control():
    c = Control()
    yield c
    c.close()


def code_of(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


def test_roles_crud(control):
    pb2, _ = grpc_api()
    a = control.admin()
    names = [r.name for r in a.ListRoles().roles]
    assert names == ["user", "admin", "internal"]
    v = a.PutRole(role=pb2.Role(name="trader", allow=["market:*"], deny=["market:secret:*"],
                                limits=pb2.Limits(max_channels=10))).version
    assert v == 2
    r = a.GetRole(name="trader")
    assert list(r.allow) == ["market:*"] and r.limits.max_channels == 10
    assert a.DeleteRole(name="trader").version == 3
    assert code_of(lambda: a.GetRole(name="trader"))[0] == grpc.StatusCode.NOT_FOUND


def test_bad_requests_get_the_right_status(control):
    pb2, _ = grpc_api()
    a = control.admin()
    code, detail = code_of(lambda: a.PutRole(role=pb2.Role(name="x", allow=["ok", "[bad"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "role.allow[1]" in detail
    code, detail = code_of(lambda: a.PutRole(role=pb2.Role(name="bad name")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "role.name" in detail
    code, detail = code_of(lambda: a.CreateApiKey(role="ghost"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "role" in detail
    code, _ = code_of(lambda: a.RevokeApiKey(id="nope"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, detail = code_of(lambda: a.DeleteRole(name="user"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "default role" in detail
    code, detail = code_of(lambda: a.SetAuthConfig(auth=pb2.AuthConfig(default_role="ghost",
                                                                       jwt_role_claim="role")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "auth.default_role" in detail
    code, detail = code_of(lambda: a.SetLimits(limits=pb2.Limits(max_channels=5, max_wildcards=9)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "max_wildcards" in detail
    a.CreateApiKey(role="user", id="dup")
    assert code_of(lambda: a.CreateApiKey(role="user", id="dup"))[0] == \
        grpc.StatusCode.ALREADY_EXISTS
    assert a.GetConfig().version == 2  # nothing refused changed the state


def test_admin_auth(control):
    assert code_of(lambda: control.admin(token=None).ListRoles())[0] == \
        grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: control.admin(token="wrong-token").ListRoles())[0] == \
        grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: control.admin(token=NODE_TOKEN).ListRoles())[0] == \
        grpc.StatusCode.PERMISSION_DENIED


def test_unknown_method_is_unimplemented(control):
    ch = grpc.insecure_channel(control.admin_target)
    call = ch.unary_unary("/wsgw.control.v1.Admin/Nope")
    with pytest.raises(grpc.RpcError) as e:
        call(b"", timeout=3, metadata=[("authorization", "Bearer " + ADMIN_TOKEN)])
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_keys_secret_once_hash_only(control):
    a = control.admin()
    r = a.CreateApiKey(role="internal", description="ci")
    assert r.secret.startswith("wsgw_") and r.key.id.startswith("k_") and not r.key.sha256
    keys = a.ListApiKeys().keys
    assert [k.id for k in keys] == [r.key.id] and not keys[0].sha256
    assert r.secret not in control.logtext()
    assert a.RevokeApiKey(id=r.key.id).version == r.version + 1
    assert a.ListApiKeys().keys[0].revoked
    cfg = a.GetConfig()
    assert not cfg.api_keys[0].sha256  # admin views never carry hashes


def test_stream_push_ack_nack_and_no_resend_loop(control):
    pb2, _ = grpc_api()
    a = control.admin()
    n = FakeNode(control, "n1")
    p = n.next_push()
    assert p.snapshot.version == 1 and p.nonce and len(p.snapshot.roles) == 3
    n.send(ack=pb2.Ack(version=1, nonce=p.nonce))
    wait_for(lambda: a.ListNodes().nodes[0].sync_status == "synced", 5, "synced")
    node = a.ListNodes().nodes[0]
    assert node.node_id == "n1" and node.address == "10.0.0.1:8889" and node.acked_version == 1

    v = a.PutRole(role=pb2.Role(name="r2", allow=["a"])).version
    p = n.next_push()
    assert p.snapshot.version == v
    assert a.ListNodes().nodes[0].sync_status == "pending"
    n.send(nack=pb2.Nack(version_kept=1, nonce=p.nonce, error_detail="cannot apply: test",
                         rejected_version=v))
    wait_for(lambda: a.ListNodes().nodes[0].sync_status == "nacked", 5, "nacked")
    assert "cannot apply" in a.ListNodes().nodes[0].error_detail
    # The NACKed version is not sent again; the next change is.
    time.sleep(0.5)
    v2 = a.PutRole(role=pb2.Role(name="r3", allow=["b"])).version
    p = n.next_push()
    assert p.snapshot.version == v2
    n.close()
    wait_for(lambda: a.ListNodes().nodes[0].sync_status == "gone", 5, "gone")


def test_stream_needs_node_token(control):
    n = FakeNode(control, "bad", token=ADMIN_TOKEN)
    with pytest.raises(grpc.RpcError) as e:
        next(n.stream)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    n.close()


def test_node_that_holds_the_version_gets_nothing(control):
    import hashlib
    a = control.admin()
    cfg = a.GetConfig()
    digest = hashlib.sha256(cfg.SerializeToString()).digest()
    n = FakeNode(control, "n2", version=cfg.version, epoch=cfg.epoch, digest=digest)
    with pytest.raises(AssertionError):
        n.next_push(timeout=0.5)
    # the same version and epoch, but not the same bytes (a cache altered on the node, or
    # one that never came from here): pushed again
    for bad in (b"", b"\0" * 32):
        other = FakeNode(control, "n4", version=cfg.version, epoch=cfg.epoch, digest=bad)
        assert other.next_push().snapshot.version == cfg.version
        other.close()
    pb2, _ = grpc_api()
    n.send(stats=pb2.NodeStats(time_unix_ms=1))  # a report keeps it from going stale
    wait_for(lambda: {x.node_id: x.sync_status for x in a.ListNodes().nodes}["n2"] == "synced", 5,
             "synced from hello")
    stale = FakeNode(control, "n3", version=cfg.version, epoch="another-epoch")
    assert stale.next_push().snapshot.epoch == cfg.epoch  # same number, other epoch: pushed
    n.close()
    stale.close()


def test_stats_and_cluster_totals(control):
    pb2, _ = grpc_api()
    a = control.admin()
    nodes = [FakeNode(control, "s%d" % i) for i in range(2)]
    for i, n in enumerate(nodes):
        n.next_push()
        n.send(stats=pb2.NodeStats(time_unix_ms=1, counters={"frames_sent": 10 + i, "x": 1}))
    wait_for(lambda: len(a.GetClusterStats().nodes) == 2, 5, "two reports")
    r = a.GetClusterStats()
    assert r.totals["frames_sent"] == 21 and r.totals["x"] == 2
    # stale: no report for 3 intervals (REPORT_INTERVAL_MS=300)
    wait_for(lambda: {x.sync_status for x in a.ListNodes().nodes} == {"stale"}, 5, "stale")
    for n in nodes:
        n.close()


def test_debounce_coalesces_changes(control):
    pb2, _ = grpc_api()
    a = control.admin()
    n = FakeNode(control, "d1")
    p = n.next_push()
    n.send(ack=pb2.Ack(version=p.snapshot.version, nonce=p.nonce))
    for i in range(10):
        a.PutRole(role=pb2.Role(name="burst%d" % i, allow=["x"]))
    p = n.next_push()
    # pushes may split once at the cap, but never one per change
    versions = [p.snapshot.version]
    try:
        while versions[-1] < 11:
            versions.append(n.next_push(timeout=1).snapshot.version)
    except AssertionError:
        pass
    assert versions[-1] == 11 and len(versions) <= 3, versions
    n.close()


def test_state_survives_restart(control):
    pb2, _ = grpc_api()
    a = control.admin()
    a.PutRole(role=pb2.Role(name="kept", allow=["k:*"]))
    key = a.CreateApiKey(role="kept", id="kk")
    before = a.GetConfig()
    a.close()
    control.restart()
    a = control.admin()
    after = a.GetConfig()
    assert after.version == before.version and after.epoch == before.epoch
    assert [r.name for r in after.roles] == [r.name for r in before.roles]
    assert a.PutRole(role=pb2.Role(name="next", allow=["n"])).version == key.version + 1


def test_metrics_and_health(control):
    pb2, _ = grpc_api()
    a = control.admin()
    a.PutRole(role=pb2.Role(name="m", allow=["x"]))
    try:
        a.GetRole(name="nobody")
    except grpc.RpcError:
        pass
    n = FakeNode(control, "mnode")
    n.next_push()
    import re
    def metrics():
        status, body = control.http("/metrics")
        assert status == 200
        for line in body.splitlines():
            assert line.startswith("#") or re.match(r'^[a-z_]+(\{[^}]*\})? [0-9]+$', line), line
        return body
    wait_for(lambda: 'wsgw_control_nodes{status="pending"} 1' in metrics(), 5, "node counted")
    body = metrics()
    assert "wsgw_control_config_version 2" in body
    assert 'wsgw_control_admin_calls_total{method="PutRole",code="OK"} 1' in body
    assert 'wsgw_control_admin_calls_total{method="GetRole",code="NOT_FOUND"} 1' in body
    assert "wsgw_control_pushes_total 1" in body
    status, health = control.http("/health")
    import json
    assert status == 200 and json.loads(health)["status"] == "ok"
    assert control.http("/nope")[0] == 404
    n.close()


# --- start-up rules: explicit first boot, validated state, settings that cannot work -------

def run_control(env, *args):
    full = dict(os.environ, CONTROL_ADMIN_TOKEN=ADMIN_TOKEN, CONTROL_NODE_TOKEN=NODE_TOKEN,
                CONTROL_NODE_LISTEN="127.0.0.1:0", CONTROL_ADMIN_LISTEN="127.0.0.1:0",
                CONTROL_METRICS_LISTEN="")
    full.update(env)
    return subprocess.run([CONTROL_BIN, *args], env=full, capture_output=True, text=True,
                          timeout=30)


def test_a_missing_state_file_is_an_error_and_first_boot_is_explicit(tmp_path):
    path = str(tmp_path / "state.pb")
    p = run_control({"CONTROL_STATE_PATH": path})
    assert p.returncode == 2 and "--init" in p.stderr and not os.path.exists(path)
    p = run_control({"CONTROL_STATE_PATH": path}, "--init")
    assert p.returncode == 0 and os.path.exists(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    epoch = re.search(r"epoch=(\w+)", p.stderr).group(1)
    p = run_control({"CONTROL_STATE_PATH": path}, "--init")  # kept, not replaced
    assert p.returncode == 0 and "init_skipped" in p.stderr
    c = Control(state_dir=str(tmp_path))
    try:
        assert c.admin().GetConfig().epoch == epoch
    finally:
        c.close()


def test_settings_that_cannot_work_together_are_refused(tmp_path):
    path = str(tmp_path / "state.pb")
    assert run_control({"CONTROL_STATE_PATH": path}, "--init").returncode == 0
    pem = tmp_path / "x.pem"
    pem.write_text("not used")
    for env, name in [({"CONTROL_TLS_CLIENT_CA": str(pem)}, "CONTROL_TLS_CLIENT_CA"),
                      ({"CONTROL_TLS_CERT": str(pem)}, "CONTROL_TLS_KEY"),
                      ({"CONTROL_NODE_TOKEN": ADMIN_TOKEN}, "CONTROL_NODE_TOKEN")]:
        p = run_control(dict(env, CONTROL_STATE_PATH=path))
        assert p.returncode == 2 and name in p.stderr, (env, p.stderr)
    node = subprocess.run([WSGW_BIN], env=dict(os.environ, CONTROL_PLANE_URL="127.0.0.1:1",
                                               CONTROL_NODE_TOKEN=NODE_TOKEN,
                                               CONTROL_TLS_CLIENT_CERT=str(pem),
                                               CONTROL_TLS_CLIENT_KEY=str(pem)),
                          capture_output=True, text=True, timeout=10)
    assert node.returncode == 2 and "CONTROL_TLS_CLIENT_CERT" in node.stderr


def test_the_state_file_is_written_without_following_links(tmp_path):
    c = Control(state_dir=str(tmp_path))
    try:
        victim = tmp_path / "victim"
        victim.write_text("precious")
        # where a predictable temporary name would be: a link to another file
        os.symlink(str(victim), str(tmp_path / ("state.pb.tmp.%d" % c.proc.pid)))
        c.admin().PutRole(role=grpc_api()[0].Role(name="ops", allow=["*"]))
        assert victim.read_text() == "precious"
        assert c.admin().GetRole(name="ops").name == "ops"
    finally:
        c.close()
