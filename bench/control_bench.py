#!/usr/bin/python3
"""Control-plane benchmark: time from an Admin call returning to the change being applied
on every data plane (p50/p99 over N changes, for 2 and 10 nodes), and the control
plane's memory and CPU with 10 nodes reporting every second.

"Applied" is read from each node's /stats (control_plane.config_version), polled every
millisecond or so after the call returns; the poll adds up to ~1 ms per node.

usage: bench/control_bench.py [--changes 100] [--debounce-ms 50]
"""
import argparse
import json
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

from cptest import NODE_TOKEN, Control, grpc_api  # noqa: E402
from gwtest import Gateway, Redis  # noqa: E402


def version_of(g):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats" % g.port, timeout=2) as r:
        return json.loads(r.read())["control_plane"]["config_version"]


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def run(nodes_n, changes, debounce, report_ms, redis):
    control = Control(env={"CONTROL_DEBOUNCE_MS": str(debounce),
                           "CONTROL_DEBOUNCE_MAX_MS": str(max(debounce * 10, 1)),
                           "REPORT_INTERVAL_MS": str(report_ms), "LOG_LEVEL": "notice"})
    nodes = []
    try:
        for i in range(nodes_n):
            g = Gateway(redis.url, env={"CONTROL_PLANE_URL": control.node_target,
                                        "CONTROL_NODE_TOKEN": NODE_TOKEN,
                                        "CONFIG_CACHE_PATH": os.path.join(control.dir,
                                                                          "n%d.cache" % i),
                                        "REPORT_INTERVAL_MS": str(report_ms), "LOG_LEVEL": "notice",
                                        "NODE_ID": "bench-%d" % i})
            g.wait_ready()
            nodes.append(g)
        pb2, _ = grpc_api()
        a = control.admin()
        lat = []
        for i in range(changes):
            v = a.PutRole(role=pb2.Role(name="bench", allow=["bench:%d:*" % i])).version
            t0 = time.perf_counter()
            pending = list(nodes)
            while pending:
                pending = [g for g in pending if version_of(g) < v]
            lat.append((time.perf_counter() - t0) * 1000)
        result = {"nodes": nodes_n, "changes": changes, "debounce_ms": debounce,
                  "p50_ms": round(pct(lat, 0.5), 2), "p99_ms": round(pct(lat, 0.99), 2),
                  "max_ms": round(max(lat), 2)}
        if nodes_n >= 10:
            cpu0, t0 = proc_cpu_s(control.proc.pid), time.time()
            time.sleep(20)
            cpu1, t1 = proc_cpu_s(control.proc.pid), time.time()
            result["control_cpu_pct"] = round((cpu1 - cpu0) / (t1 - t0) * 100, 2)
            result["control_rss_kb"] = proc_rss_kb(control.proc.pid)
        a.close()
        return result
    finally:
        for g in nodes:
            g.close()
        control.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--debounce-ms", type=int, default=50)
    args = ap.parse_args()
    redis = Redis()
    try:
        print("machine: %d CPUs, %s" % (os.cpu_count(), os.uname().release))
        for n in (2, 10):
            for d in sorted({0, args.debounce_ms}):
                print(json.dumps(run(n, args.changes, d, 1000, redis)), flush=True)
    finally:
        redis.close()


if __name__ == "__main__":
    main()
