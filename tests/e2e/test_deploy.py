"""Deployment files, checked without Docker or a cluster: docker-compose.yml with
`docker-compose config`, the Dockerfiles' shape, the Kubernetes manifests parsed as YAML
with their important fields checked, and the Grafana dashboard against the metrics the
programs really export."""
import json
import os
import re
import shutil
import subprocess

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")


def test_compose_file_is_valid_and_complete():
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (Debian package) is installed by scripts/deps.sh"
    p = subprocess.run([exe, "-f", os.path.join(ROOT, "docker-compose.yml"), "config"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    cfg = yaml.safe_load(p.stdout)
    services = cfg["services"]
    for name in ("redis", "wsgw-control", "wsgw-1", "wsgw-2", "nginx", "publisher", "prometheus",
                 "grafana"):
        assert name in services, name
    nginx = open(os.path.join(DEPLOY, "nginx", "nginx.conf")).read()
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", nginx).group(1))
    for node in ("wsgw-1", "wsgw-2"):
        env = services[node]["environment"]
        assert env["CONTROL_PLANE_URL"] == "wsgw-control:7400" and env["NODE_ID"] == node
        # pings keep an idle client's connection through nginx alive
        assert int(env["KEEPALIVE_INTERVAL_S"]) * 2 <= read_timeout
    assert {"published": 8889, "target": 8889} in services["nginx"]["ports"]
    text = open(os.path.join(ROOT, "docker-compose.yml")).read()
    # secrets come from the env file, never from the compose file
    assert not re.search(r"(TOKEN|SECRET|API_KEY|PASSWORD)\s*[:=]\s*\S", text)


def test_dockerfiles():
    for name, user in (("Dockerfile.wsgw", "wsgw"), ("Dockerfile.wsgw-control", "wsgw"),
                       ("Dockerfile.publisher", "publisher")):
        text = open(os.path.join(DEPLOY, "docker", name)).read()
        assert text.count("FROM debian:12") >= 1 and "USER " + user in text, name
        assert "-dev" not in text.split("FROM debian:12-slim\n")[-1], name + ": runtime has -dev"
    for name in ("Dockerfile.wsgw", "Dockerfile.wsgw-control"):
        text = open(os.path.join(DEPLOY, "docker", name)).read()
        assert text.count("FROM ") == 2 and "HEALTHCHECK" in text, name


def load_k8s():
    docs = []
    for f in sorted(os.listdir(os.path.join(DEPLOY, "k8s"))):
        if f.endswith(".yaml"):
            with open(os.path.join(DEPLOY, "k8s", f)) as fh:
                docs += [d for d in yaml.safe_load_all(fh) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_k8s_manifests():
    k = load_k8s()
    dp = k[("Deployment", "wsgw")]
    pod = dp["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert "livenessProbe" in c and "httpGet" not in c["livenessProbe"]  # Redis down != dead
    assert c["lifecycle"]["preStop"]
    assert pod["terminationGracePeriodSeconds"] > 10 + 20  # preStop + SHUTDOWN_TIMEOUT_MS
    assert pod["securityContext"]["runAsNonRoot"] is True
    labels = dp["spec"]["template"]["metadata"]["labels"]
    assert dp["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = k[("Service", "wsgw")]
    assert svc["spec"]["selector"].items() <= labels.items()
    hpa = k[("HorizontalPodAutoscaler", "wsgw")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "wsgw" and hpa["spec"]["minReplicas"] >= 2
    pdb = k[("PodDisruptionBudget", "wsgw")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    cm = k[("ConfigMap", "wsgw")]["data"]
    assert cm["CONTROL_PLANE_URL"].startswith("wsgw-control:")
    env = {e["name"]: e for e in c["env"]}
    assert "secretKeyRef" in env["CONTROL_NODE_TOKEN"]["valueFrom"]
    cp = k[("Deployment", "wsgw-control")]["spec"]["template"]["spec"]["containers"][0]
    assert cp["readinessProbe"]["httpGet"]["path"] == "/health"
    assert {e["name"] for e in cp["env"]} >= {"CONTROL_ADMIN_TOKEN", "CONTROL_NODE_TOKEN",
                                              "CONTROL_STATE_PATH"}
    assert ("Service", "wsgw-control") in k and ("PersistentVolumeClaim",
                                                 "wsgw-control-state") in k


def exported_metrics(gw, control):
    names = set()
    for body in (gw.http("/metrics")[1].decode(), control.http("/metrics")[1]):
        names |= {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")}
    return names


def test_grafana_dashboard_uses_real_metrics(gw):
    from cptest import Control
    control = Control()
    try:
        names = exported_metrics(gw, control)
    finally:
        control.close()
    with open(os.path.join(DEPLOY, "grafana", "wsgw-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    for e in exprs:
        for metric in re.findall(r"\b(wsgw_[a-z_]+)", e):
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            assert base in names, (metric, e)
    prom = yaml.safe_load(open(os.path.join(DEPLOY, "prometheus", "prometheus.yml")))
    assert {j["job_name"] for j in prom["scrape_configs"]} == {"wsgw", "wsgw-control"}
