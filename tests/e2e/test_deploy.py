"""Deployment files stay valid (there is no Docker engine here: compose is checked
statically, and the same topology runs as processes in the other e2e tests)."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_compose_file_is_valid():
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (Debian package) is installed by scripts/deps.sh"
    p = subprocess.run([exe, "-f", os.path.join(ROOT, "docker-compose.yml"), "config"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "wsgw:" in p.stdout and "redis:" in p.stdout
    assert "GATEWAY_API_KEY=" not in open(os.path.join(ROOT, "docker-compose.yml")).read()


def test_dockerfile_runs_as_non_root_with_healthcheck():
    text = open(os.path.join(ROOT, "deploy", "docker", "Dockerfile.wsgw")).read()
    assert "USER wsgw" in text and "HEALTHCHECK" in text and "/health" in text
    assert text.count("FROM ") == 2  # build stage + runtime stage
