"""nginx as the WebSocket load balancer in front of data planes, for the fleet tests: the
shipped deploy/nginx/nginx.conf, with local addresses. Nodes behind it need
KEEPALIVE_INTERVAL_S below its proxy_read_timeout (LB_NODE_ENV), as in docker-compose.yml."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile

from gwtest import ROOT, free_port, wait_for

# What docker-compose.yml gives the nodes behind this nginx.
LB_NODE_ENV = {"KEEPALIVE_INTERVAL_S": "5", "TRUSTED_PROXIES": "127.0.0.1/32"}

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SHIPPED = os.path.join(ROOT, "deploy", "nginx", "nginx.conf")

# What a test run needs besides the shipped file: its own files, in the foreground.
PREFIX = """daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
"""
TEMPS = """http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
"""


def render(upstream_ports, port, tmpdir):
    """deploy/nginx/nginx.conf with local upstreams, a local listen address and private
    paths; nothing else changes (each substitution must find exactly what it expects)."""
    with open(SHIPPED) as f:
        conf = f.read()

    def sub(pattern, repl, text, count):
        out, n = re.subn(pattern, repl, text)
        assert n == count, "deploy/nginx/nginx.conf changed shape: %r matched %d" % (pattern, n)
        return out
    servers = re.findall(r"(?m)^\s*server wsgw-\d+:8889 ([^;]*);$", conf)
    assert servers, "no upstream servers in deploy/nginx/nginx.conf"
    lines = "".join("        server 127.0.0.1:%d %s;\n" % (p, servers[0]) for p in upstream_ports)
    conf = sub(r"(?m)^\s*server wsgw-\d+:8889 [^;]*;\n", "", conf, len(servers))
    conf = sub(r"upstream wsgw \{\n", lambda m: m.group(0) + lines, conf, 1)
    conf = sub(r"(?m)^(\s*)listen 8889;", r"\1listen 127.0.0.1:%d;" % port, conf, 1)
    conf = sub(r"(?m)^worker_processes auto;", "worker_processes 1;", conf, 1)
    conf = sub(r"(?m)^http \{\n", lambda m: TEMPS.format(dir=tmpdir), conf, 1)
    return PREFIX.format(dir=tmpdir) + conf


class Nginx:
    def __init__(self, upstream_ports):
        self.dir = tempfile.mkdtemp(prefix="gwtest-nginx-")
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(render(upstream_ports, self.port, self.dir))
        self.proc = subprocess.Popen([NGINX, "-c", conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

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


