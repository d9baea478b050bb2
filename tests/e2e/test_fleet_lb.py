"""The fleet as users run it, as processes on loopback: Redis, the control plane, two
data planes and nginx as the WebSocket load balancer (no sticky sessions). Clients
through the balancer land on both nodes; one publish reaches clients on both; a node
stopped with SIGTERM closes its clients with 1001 and they reconnect through the
balancer to the other node; GetClusterStats shows the fleet before and after. nginx runs
the shipped deploy/nginx/nginx.conf: its X-Forwarded-For handling against forged and
padded headers, and its timeouts against a frozen node."""
import signal
import time

import pytest

from gwtest import T, Gateway, UpgradeRefused, WsClient, WsClosed, wait_for
from lbtest import LB_NODE_ENV, Nginx


def connect(lb):
    """A client through the balancer, reconnecting until a node accepts it."""
    c = WsClient(lb.port, connect=False)
    wait_for(lambda: _try(c), 10, "a node behind the balancer")
    w = c.recv()
    assert w["type"] == "welcome"
    return c, w["node"]


def _try(c):
    try:
        c.buf = b""
        c.connect()
        return True
    except (OSError, ConnectionError):
        return False


def test_balanced_fleet_and_failover(lb_fleet, redis):
    control, nodes, lb = lb_fleet
    admin = control.admin()
    clients = [connect(lb) for _ in range(6)]
    landed = {node for _, node in clients}
    assert landed == {"node-0", "node-1"}, landed  # round robin, no stickiness needed
    for c, _ in clients:
        c.subscribe(["market:tick:AAPL"])
    assert redis.client().command("PUBLISH", "market:tick:AAPL", '{"p":1}') == 2  # 1 per node
    for c, _ in clients:
        assert c.recv_type("message")["data"] == {"p": 1}

    wait_for(lambda: {n.node_id for n in admin.GetClusterStats().nodes} == {"node-0", "node-1"},
             5, "both nodes reporting")
    # (a node's report may predate its clients: wait for the next one)
    wait_for(lambda: admin.GetClusterStats().totals["connections_current"] == 6, 5,
             "every client counted")

    victim = nodes[0]
    victim.proc.send_signal(signal.SIGTERM)
    moved = []
    for c, node in clients:
        if node != "node-0":
            continue
        with pytest.raises(WsClosed) as closed:
            while True:
                c.recv()
        assert closed.value.code == 1001
        c2, node2 = connect(lb)  # the reference client's reconnect, through the balancer
        assert node2 == "node-1"
        c2.subscribe(["market:tick:AAPL"])
        moved.append(c2)
    assert victim.proc.wait(timeout=10) == 0
    assert len(moved) == 3
    assert redis.client().command("PUBLISH", "market:tick:AAPL", '{"p":2}') == 1
    for c in moved + [c for c, n in clients if n == "node-1"]:
        assert c.recv_type("message")["data"] == {"p": 2}

    wait_for(lambda: admin.GetClusterStats().totals["connections_current"] == 6, 5,
             "the fleet view after the failover")
    statuses = {n.node_id: n.sync_status for n in admin.ListNodes().nodes}
    assert statuses == {"node-0": "gone", "node-1": "synced"}
    after = admin.GetClusterStats()
    assert [n.node_id for n in after.nodes] == ["node-1"]


def test_per_address_limit_through_the_shipped_nginx(redis):
    """nginx appends the client's address to the X-Forwarded-For the client sent: whatever a
    client forges or pads, the node counts it under its own address."""
    g = Gateway(redis.url, env=dict(LB_NODE_ENV, MAX_CONNECTIONS_PER_IP="2"))
    lb = None
    try:
        g.wait_ready()
        lb = Nginx([g.port])
        held = [WsClient(lb.port, source="127.0.0.2") for _ in range(2)]
        for forged in (None, "10.9.9.9", "127.0.0.1", "127.0.0.3, 127.0.0.1",
                       "1.1.1.1, " * 500 + "2.2.2.2", "garbage!!" * 400):
            with pytest.raises(UpgradeRefused) as refused:
                WsClient(lb.port, source="127.0.0.2",
                         headers={"X-Forwarded-For": forged} if forged else None)
            assert refused.value.status == 429, forged and forged[-30:]
        # Another address has its own budget, even when it names the first one.
        other = WsClient(lb.port, source="127.0.0.3", headers={"X-Forwarded-For": "127.0.0.2"})
        assert other.recv()["type"] == "welcome"
        assert g.stats()["connections"]["current"] == 3
        for c in held + [other]:
            c.close()
    finally:
        if lb:
            lb.close()
        g.close()


def test_a_frozen_node_stops_receiving_new_clients(redis):
    """A node that is stopped (SIGSTOP) still completes TCP handshakes in the kernel. With
    the shipped configuration a new client waits at most proxy_read_timeout (10 s) once,
    then nginx marks the node failed and sends everyone to the other; an idle client left
    on the frozen node is cut after the same 10 s and can reconnect."""
    nodes = [Gateway(redis.url, env=dict(LB_NODE_ENV, NODE_ID="frz-%d" % i)) for i in range(2)]
    lb = None
    try:
        for g in nodes:
            g.wait_ready()
        lb = Nginx([g.port for g in nodes])
        before = [connect(lb) for _ in range(2)]
        stuck = [c for c, node in before if node == "frz-0"]
        assert len(stuck) == 1
        nodes[0].proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        landed = []
        for _ in range(6):
            c = WsClient(lb.port, timeout=20)
            landed.append(c.recv()["node"])
            c.close()
        elapsed = time.monotonic() - t0
        assert landed == ["frz-1"] * 6
        assert elapsed < 10 + T(4), "six handshakes took %.1f s" % elapsed
        with pytest.raises((WsClosed, ConnectionError)):
            while True:
                stuck[0].recv(timeout=15)
        assert time.monotonic() - t0 < 10 + T(5)
    finally:
        nodes[0].proc.send_signal(signal.SIGCONT)
        if lb:
            lb.close()
        for g in nodes:
            g.close()
