"""The fleet as users run it, as processes on loopback: Redis, the control plane, two
data planes and nginx as the WebSocket load balancer (no sticky sessions). Clients
through the balancer land on both nodes; one publish reaches clients on both; a node
stopped with SIGTERM closes its clients with 1001 and they reconnect through the
balancer to the other node; GetClusterStats shows the fleet before and after."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from cptest import NODE_TOKEN, Control
from gwtest import Gateway, WsClient, WsClosed, free_port, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream wsgw {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://wsgw;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout 1h;
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, upstream_ports):
        self.dir = tempfile.mkdtemp(prefix="gwtest-nginx-")
        self.port = free_port()
        servers = "\n".join("        server 127.0.0.1:%d max_fails=1 fail_timeout=1s;" % p
                            for p in upstream_ports)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(dir=self.dir, port=self.port, servers=servers))
        self.proc = subprocess.Popen([NGINX, "-c", conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, "nginx")

    def close(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def lb_fleet(redis, tmp_path):
    control = Control()
    nodes = []
    for i in range(2):
        g = Gateway(redis.url, env={"CONTROL_PLANE_URL": control.node_target,
                                    "CONTROL_NODE_TOKEN": NODE_TOKEN,
                                    "CONFIG_CACHE_PATH": str(tmp_path / ("n%d.cache" % i)),
                                    "REPORT_INTERVAL_MS": "200", "NODE_ID": "node-%d" % i,
                                    "SHUTDOWN_TIMEOUT_MS": "2000"})
        g.wait_ready()
        nodes.append(g)
    lb = Nginx([g.port for g in nodes])
    yield control, nodes, lb
    lb.close()
    for g in nodes:
        if g.proc.poll() is None:
            g.close()
    control.close()


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
