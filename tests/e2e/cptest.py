"""Control-plane fixtures: a wsgw-control process on free ports, Python gRPC grpc_api
generated from proto/ at test time (Debian's protoc + grpc_python_plugin), and a small
client for the Admin API. A second implementation of the contract (grpcio) calling ours
is the point: if the proto and the server disagree, these tests fail."""
import importlib
import re
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

from gwtest import ROOT, Daemon, free_port

CONTROL_BIN = os.environ.get("WSGW_CONTROL_BIN", os.path.join(ROOT, "build", "bin", "wsgw-control"))
ADMIN_TOKEN = "admin-token-0123456789"
NODE_TOKEN = "node-token-0123456789ab"

_grpc_api = None


def grpc_api():
    """(pb2, pb2_grpc) generated into a temp dir once per process."""
    global _grpc_api
    if _grpc_api:
        return _grpc_api
    out = tempfile.mkdtemp(prefix="gwtest-grpc_api-")
    proto_dir = os.path.join(ROOT, "proto")
    subprocess.run(["protoc", "-I", proto_dir, "--python_out=" + out, "--grpc_out=" + out,
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                    "wsgw/control/v1/control.proto"], check=True)
    for d in ("wsgw", "wsgw/control", "wsgw/control/v1"):
        open(os.path.join(out, d, "__init__.py"), "a").close()
    sys.path.insert(0, out)
    pb2 = importlib.import_module("wsgw.control.v1.control_pb2")
    pb2_grpc = importlib.import_module("wsgw.control.v1.control_pb2_grpc")
    _grpc_api = (pb2, pb2_grpc)
    return _grpc_api


class Control(Daemon):
    """A wsgw-control process."""

    name = "wsgw-control"
    logname = "control.log"

    def __init__(self, state_dir=None, env=None):
        self.dir = state_dir or tempfile.mkdtemp(prefix="gwtest-control-")
        self.own_dir = state_dir is None
        self.env = dict(os.environ)
        self.env.update({"CONTROL_ADMIN_TOKEN": ADMIN_TOKEN, "CONTROL_NODE_TOKEN": NODE_TOKEN,
                         "CONTROL_STATE_PATH": os.path.join(self.dir, "state.pb"),
                         "REPORT_INTERVAL_MS": "300", "CONTROL_DEBOUNCE_MS": "20",
                         "CONTROL_METRICS_LISTEN": "127.0.0.1:0",
                         "CONTROL_DEBOUNCE_MAX_MS": "200"})
        self.env.update(env or {})
        self.proc = None
        self.node_port = self.admin_port = None
        if not os.path.exists(self.env["CONTROL_STATE_PATH"]):  # first boot is explicit
            subprocess.run([CONTROL_BIN, "--init"], env=self.env, check=True,
                           capture_output=True, timeout=30)
        self.start()

    def start(self, node_port=None, admin_port=None):
        def pick():
            self.node_port = node_port or free_port()
            self.admin_port = admin_port or free_port()
            self.env["CONTROL_NODE_LISTEN"] = "127.0.0.1:%d" % self.node_port
            self.env["CONTROL_ADMIN_LISTEN"] = "127.0.0.1:%d" % self.admin_port
        self.launch([CONTROL_BIN], pick, fixed=node_port is not None)
        m = re.search(r"metrics_port=(\d+)", self.logtext()[self.log_offset:])
        self.metrics_port = int(m.group(1)) if m else 0

    @property
    def admin_target(self):
        return "127.0.0.1:%d" % self.admin_port

    @property
    def node_target(self):
        return "127.0.0.1:%d" % self.node_port

    def http(self, path):
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.metrics_port, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def admin(self, token=ADMIN_TOKEN):
        pb2, pb2_grpc = grpc_api()
        ch = grpc.insecure_channel(self.admin_target)
        return AdminClient(pb2, pb2_grpc.AdminStub(ch), ch, token)

    def stop(self, sig=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=15)

    def restart(self):
        self.stop()
        self.start(self.node_port, self.admin_port)

    def close(self):
        rc = self.stop() if self.proc.poll() is None else self.proc.returncode
        text = self.logtext()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        assert rc in (0, -9), "wsgw-control exited with %s\n%s" % (rc, text[-3000:])
        assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text, text[-3000:]


class AdminClient:
    def __init__(self, pb2, client, channel, token):
        self.pb2, self.client, self.channel = pb2, client, channel
        self.md = [("authorization", "Bearer " + token)] if token else []

    def __getattr__(self, name):
        method = getattr(self.client, name)
        return lambda req=None, **kw: method(req if req is not None else getattr(
            self.pb2, name + "Request")(**kw), metadata=self.md, timeout=5)

    def close(self):
        self.channel.close()


class FakeNode:
    """A data plane written with grpcio: proves the stream protocol for another client.
    hello=False opens the stream without saying hello; address/build/node_id are sent as
    given (hostile values included)."""

    def __init__(self, control, node_id, version=0, epoch="", token=NODE_TOKEN, digest=b"",
                 address="10.0.0.1:8889", build="test", hello=True):
        pb2, pb2_grpc = grpc_api()
        self.pb2 = pb2
        # Its own connection, as a real node has (grpcio would share one between channels).
        self.ch = grpc.insecure_channel(control.node_target,
                                        options=[("grpc.use_local_subchannel_pool", 1)])
        self.out = []
        import queue
        self.q = queue.Queue()
        if hello:
            self.q.put(pb2.NodeMessage(hello=pb2.NodeHello(
                node_id=node_id, address=address, build_version=build, config_version=version,
                config_epoch=epoch, config_digest=digest)))

        def gen():
            while True:
                m = self.q.get()
                if m is None:
                    return
                yield m
        self.stream = pb2_grpc.ControlPlaneStub(self.ch).Connect(
            gen(), metadata=[("authorization", "Bearer " + token)])

    def end_status(self, timeout=10):
        """(code, details) once the control plane ends the stream."""
        import threading
        box = []
        t = threading.Thread(target=lambda: box.append((self.stream.code(),
                                                        self.stream.details())))
        t.daemon = True
        t.start()
        t.join(timeout)
        assert box, "stream still open after %ss" % timeout
        return box[0]

    def next_push(self, timeout=5):
        import threading
        box = []

        def read():
            try:
                box.append(next(self.stream))
            except grpc.RpcError:
                pass  # the stream ended (the test is over)
        t = threading.Thread(target=read)
        t.daemon = True
        t.start()
        t.join(timeout)
        assert box, "no push within %ss" % timeout
        return box[0].push

    def send(self, **kw):
        self.q.put(self.pb2.NodeMessage(**kw))

    def close(self):
        self.q.put(None)
        self.ch.close()
