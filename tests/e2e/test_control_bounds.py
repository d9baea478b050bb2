"""The control plane against hostile or broken nodes (a process holding the node token):
identity cannot be taken over, the state a node makes the control plane hold is bounded,
and what a node says reaches logs and wsgwctl escaped. Each test is an attack that
succeeded before the fix."""
import json
import os
import subprocess
import time

import grpc
import pytest

from cptest import ADMIN_TOKEN, Control, FakeNode, grpc_api
from gwtest import ROOT, wait_for

WSGWCTL = os.environ.get("WSGWCTL_BIN", os.path.join(ROOT, "build", "bin", "wsgwctl"))


@pytest.fixture
def control():
    c = Control()
    yield c
    c.close()


def ctl(control, *args):
    return subprocess.run([WSGWCTL, "--server", control.admin_target, "--token", ADMIN_TOKEN]
                          + list(args), capture_output=True, timeout=30)


def ends_within(nodes, seconds):
    """[(code, details)] of the streams among nodes that ended within `seconds`."""
    import threading
    done = []

    def watch(n):
        code = n.stream.code()  # blocks until the call ends
        done.append((code, n.stream.details()))
    for n in nodes:
        threading.Thread(target=watch, args=(n,), daemon=True).start()
    time.sleep(seconds)
    return list(done)


def synced(node, pb2):
    p = node.next_push()
    node.send(ack=pb2.Ack(version=p.snapshot.version, nonce=p.nonce))
    return p.snapshot.version


def test_a_second_stream_with_the_same_node_id_hides_nothing(control):
    pb2, _ = grpc_api()
    a = control.admin()
    real = FakeNode(control, "n-dup", address="10.0.0.1:8889")
    synced(real, pb2)
    wait_for(lambda: [n.sync_status for n in a.ListNodes().nodes] == ["synced"], 5, "synced")
    impostor = FakeNode(control, "n-dup", address="10.6.6.6:1")
    impostor.next_push()
    wait_for(lambda: len(a.ListNodes().nodes) == 2, 5, "an entry per stream")
    nodes = a.ListNodes().nodes
    assert {n.address for n in nodes} == {"10.0.0.1:8889", "10.6.6.6:1"}
    assert all(n.node_id == "n-dup" and n.duplicate for n in nodes)
    assert "event=node_duplicate node=n-dup" in control.logtext()
    wait_for(lambda: "wsgw_control_nodes_duplicate 2\n" in control.http("/metrics")[1], 5,
             "the duplicate gauge")
    out = ctl(control, "nodes").stdout.decode()
    assert out.count("DUPLICATE") == 2 and "10.6.6.6:1" in out

    # A change (a revocation, say) reaches the real node while the impostor is connected.
    v = a.PutRole(role=pb2.Role(name="after", allow=["x"])).version
    assert real.next_push().snapshot.version == v
    assert impostor.next_push().snapshot.version == v

    # The impostor leaves: the real node is still there, not "gone", not a duplicate.
    impostor.close()
    wait_for(lambda: len(a.ListNodes().nodes) == 1, 5, "the impostor's entry to go")
    n = a.ListNodes().nodes[0]
    assert n.address == "10.0.0.1:8889" and not n.duplicate and n.sync_status != "gone"
    v = a.PutRole(role=pb2.Role(name="later", allow=["y"])).version
    assert real.next_push().snapshot.version == v
    real.close()
    wait_for(lambda: [x.sync_status for x in a.ListNodes().nodes] == ["gone"], 5, "gone")
    # A node that comes back takes over its own gone entry.
    back = FakeNode(control, "n-dup")
    back.next_push()
    wait_for(lambda: [(x.node_id, x.sync_status != "gone", x.duplicate)
                      for x in a.ListNodes().nodes] == [("n-dup", True, False)], 5, "back")
    back.close()


def test_the_fleet_is_bounded_and_forgets_gone_nodes():
    c = Control(env={"CONTROL_MAX_NODES": "3", "CONTROL_GONE_TTL_S": "2"})
    try:
        a = c.admin()
        nodes = [FakeNode(c, "f%d" % i) for i in range(3)]
        for n in nodes:
            n.next_push()
        extra = FakeNode(c, "f3")
        code, detail = extra.end_status()
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "CONTROL_MAX_NODES" in detail
        nodes[0].close()
        wait_for(lambda: "gone" in [x.sync_status for x in a.ListNodes().nodes], 5, "gone")
        again = FakeNode(c, "f4")  # evicts the gone entry rather than being refused
        again.next_push()
        assert sorted(x.node_id for x in a.ListNodes().nodes) == ["f1", "f2", "f4"]
        assert "wsgw_control_fleet_limit 3\n" in c.http("/metrics")[1]
        for n in nodes[1:] + [again]:
            n.close()
        wait_for(lambda: not a.ListNodes().nodes, 8, "gone nodes to expire")
        assert "event=nodes_expired" in c.logtext()

        # Streams that never say hello: at most CONTROL_MAX_NODES + 64 at once (whichever
        # arrives last is refused), and each is ended after 5 s.
        wait_for(lambda: "wsgw_control_node_streams 0\n" in c.http("/metrics")[1], 5,
                 "every earlier stream to be freed")
        silent = [FakeNode(c, "", hello=False) for _ in range(3 + 64 + 1)]
        ended = ends_within(silent, 2.0)
        assert [code for code, _ in ended] == [grpc.StatusCode.RESOURCE_EXHAUSTED], ended
        assert "too many node streams" in ended[0][1]
        ended = ends_within(silent, 6.0)
        assert len(ended) == len(silent)
        assert sum(code == grpc.StatusCode.DEADLINE_EXCEEDED and "no hello" in d
                   for code, d in ended) == len(silent) - 1
        for n in silent + [extra]:
            n.close()
    finally:
        c.close()


@pytest.mark.parametrize("field,hello,expect", [
    ("address", dict(address="x" * (5 << 20)), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ("address", dict(address="10.0.0.1\x1b[2J\x1b]0;owned\x07"), grpc.StatusCode.INVALID_ARGUMENT),
    ("address", dict(address="a" * 257), grpc.StatusCode.INVALID_ARGUMENT),
    ("node_id", dict(node_id="evil\nts=2026-01-01T00:00:00Z level=error event=forged"),
     grpc.StatusCode.INVALID_ARGUMENT),
    ("node_id", dict(node_id="n" * 129), grpc.StatusCode.INVALID_ARGUMENT),
    ("build_version", dict(build='x" y'), grpc.StatusCode.INVALID_ARGUMENT),
    ("config_digest", dict(digest=b"\0" * 31), grpc.StatusCode.INVALID_ARGUMENT),
    ("config_epoch", dict(epoch="e" * 65), grpc.StatusCode.INVALID_ARGUMENT),
])
def test_hostile_hellos_are_refused(control, field, hello, expect):
    kw = dict(node_id="hostile")
    kw.update(hello)
    node_id = kw.pop("node_id")
    n = FakeNode(control, node_id, **kw)
    code, detail = n.end_status()
    assert code == expect, (code, detail)
    if expect == grpc.StatusCode.INVALID_ARGUMENT:
        assert detail.startswith("hello: " + field), detail
    n.close()
    assert len(control.admin().ListNodes().nodes) == 0
    assert ctl(control, "nodes").returncode == 0
    log = control.logtext()
    assert "\x1b" not in log and "\nts=2026-01-01" not in log


def test_acks_and_nacks_are_only_for_our_pushes(control):
    """An ACK or NACK sent before any push (empty nonce) changes nothing, an ACK's version
    is the one we pushed whatever the node claims, and a NACK's text cannot close the
    quotes of our log line."""
    pb2, _ = grpc_api()
    n = FakeNode(control, "liar")
    try:
        n.send(ack=pb2.Ack(version=999, nonce=""))
        n.send(nack=pb2.Nack(rejected_version=998, nonce="", error_detail="early"))
        p = n.next_push()
        time.sleep(0.3)
        node = control.admin().ListNodes().nodes[0]
        assert node.acked_version == 0 and node.error_detail == "", node
        n.send(ack=pb2.Ack(version=p.snapshot.version + 1000, nonce=p.nonce))
        wait_for(lambda: control.admin().ListNodes().nodes[0].acked_version
                 == p.snapshot.version, 5, "the pushed version acknowledged")
        lim = control.admin().GetConfig(pb2.GetConfigRequest()).limits
        lim.max_channels = 7 if lim.max_channels != 7 else 8
        control.admin().SetLimits(pb2.SetLimitsRequest(limits=lim))
        p2 = n.next_push()
        n.send(nack=pb2.Nack(rejected_version=p2.snapshot.version, nonce=p2.nonce,
                             error_detail='bad" level=error event=forged x="'))
        wait_for(lambda: control.admin().ListNodes().nodes[0].error_detail != "", 5, "the NACK")
        line = [ln for ln in control.logtext().splitlines() if "event=node_nack" in ln][0]
        assert line.count('"') == 2 and line.endswith("x='\""), line  # one quoted value
    finally:
        n.close()


def test_node_text_is_escaped_in_logs_and_wsgwctl(control):
    pb2, _ = grpc_api()
    a = control.admin()
    n = FakeNode(control, "esc-node")
    p = n.next_push()
    forged = "cannot apply\x1b[31m\nts=2026-01-01T00:00:00Z level=error sub=control event=forged"
    n.send(nack=pb2.Nack(version_kept=0, nonce=p.nonce, error_detail=forged,
                         rejected_version=p.snapshot.version))
    wait_for(lambda: a.ListNodes().nodes[0].sync_status == "nacked", 5, "nacked")
    assert a.ListNodes().nodes[0].error_detail == forged  # kept as sent, escaped when shown
    log = control.logtext()
    assert "\x1b" not in log and "\nts=2026-01-01" not in log
    assert "cannot apply\\x1b[31m\\x0ats=2026" in log
    table = ctl(control, "nodes").stdout
    assert b"\x1b" not in table and b"\\x1b[31m\\x0ats=2026" in table
    js = ctl(control, "--json", "nodes").stdout
    assert b"\x1b" not in js
    assert json.loads(js)["nodes"][0]["error_detail"] == forged
    n.close()


def test_stats_reports_are_bounded(control):
    pb2, _ = grpc_api()
    a = control.admin()
    n = FakeNode(control, "stats-node")
    synced(n, pb2)
    n.send(stats=pb2.NodeStats(time_unix_ms=1, counters={"c%d" % i: 1 for i in range(257)}))
    n.send(stats=pb2.NodeStats(time_unix_ms=1, counters={"Bad\x1bName": 1}))
    n.send(stats=pb2.NodeStats(time_unix_ms=1, counters={"k" * 65: 1}))
    wait_for(lambda: control.logtext().count("event=stats_refused") >= 3, 5, "three refusals")
    log = control.logtext()
    assert "more than 256" in log and "longer than 64" in log
    assert len(a.GetClusterStats().nodes) == 0  # nothing refused was kept
    n.send(stats=pb2.NodeStats(time_unix_ms=2, counters={"frames_sent": 5}))
    wait_for(lambda: dict(a.GetClusterStats().totals) == {"frames_sent": 5}, 5, "a good report")
    # Refusing a report does not cut the node off from config.
    v = a.PutRole(role=pb2.Role(name="still", allow=["x"])).version
    assert n.next_push().snapshot.version == v
    # One message over 64 KiB ends the stream: gRPC refuses it before we hold it.
    n.send(stats=pb2.NodeStats(time_unix_ms=3, counters={("%d" % i) * 40: 1 for i in range(2000)}))
    code, _ = n.end_status()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    n.close()


def test_cluster_stats_cost_is_linear_in_counter_names(control):
    """160 nodes x 256 distinct names = 40,960 names: the aggregation that stalled every
    Admin call for ~3 s answers within a second (typically tens of milliseconds)."""
    pb2, _ = grpc_api()
    a = control.admin()
    nodes = [FakeNode(control, "agg%03d" % i) for i in range(160)]
    for i, n in enumerate(nodes):
        n.next_push()
        n.send(stats=pb2.NodeStats(time_unix_ms=1, counters={
            "n%03d_c%03d" % (i, k): 1 for k in range(256)}))
    wait_for(lambda: len(a.GetClusterStats().nodes) == 160, 30, "160 reports")
    t0 = time.monotonic()
    r = a.GetClusterStats()
    elapsed = time.monotonic() - t0
    assert len(r.totals) == 160 * 256
    assert elapsed < 1.0, "GetClusterStats took %.2f s" % elapsed
    for n in nodes:
        n.close()


def test_idle_sockets_do_not_delay_a_scrape(control):
    """The metrics server used to serve one connection at a time with a 2 s wait each."""
    import socket
    idle = []
    for _ in range(5):
        idle.append(socket.create_connection(("127.0.0.1", control.metrics_port)))
    t0 = time.monotonic()
    assert control.http("/metrics")[0] == 200
    assert time.monotonic() - t0 < 1.0
    # More idle sockets than slots (64): each scrape still gets one, the oldest idler
    # makes room.
    for _ in range(100):
        idle.append(socket.create_connection(("127.0.0.1", control.metrics_port)))
    for _ in range(3):
        t0 = time.monotonic()
        assert control.http("/health")[0] == 200
        assert time.monotonic() - t0 < 1.0
    for s in idle:
        s.close()
