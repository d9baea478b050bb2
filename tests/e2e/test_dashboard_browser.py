"""The dashboard page in headless Chromium (Debian's chromium, driven by playwright-core
from npm) against a real fleet behind nginx: loads, subscribes, shows a published
message, and after its node is stopped reconnects through the balancer to the other
node. The browser part is tests/browser/dashboard.e2e.mjs."""
import json
import os
import shutil
import subprocess

BROWSER_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "browser")


def test_dashboard_in_chromium(lb_fleet, redis):
    assert shutil.which("node") and os.path.exists("/usr/bin/chromium"), \
        "node and Debian's chromium are installed by scripts/deps.sh"
    assert os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")), \
        "scripts/test.sh runs npm ci in tests/browser"
    control, nodes, lb = lb_fleet
    args = ["node", os.path.join(BROWSER_DIR, "dashboard.e2e.mjs"), str(lb.port), str(redis.port)]
    args += ["node-%d=%d" % (i, g.proc.pid) for i, g in enumerate(nodes)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert {result["first"], result["second"]} == {"node-0", "node-1"}
    assert result["gaps"] == 0 and result["messages"] == 2
    stopped = [g for g in nodes if g.proc.poll() is not None]
    assert len(stopped) == 1 and stopped[0].proc.returncode == 0
