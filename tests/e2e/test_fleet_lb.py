"""The fleet as users run it, as processes on loopback: Redis, the control plane, two
data planes and nginx as the WebSocket load balancer (no sticky sessions). Clients
through the balancer land on both nodes; one publish reaches clients on both; a node
stopped with SIGTERM closes its clients with 1001 and they reconnect through the
balancer to the other node; GetClusterStats shows the fleet before and after."""
import signal

import pytest

from gwtest import WsClient, WsClosed, wait_for

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
    before = admin.GetClusterStats()
    assert before.totals["connections_current"] == 6

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
