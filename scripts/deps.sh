#!/usr/bin/env bash
# Installs the Debian 12 packages the build and the tests need. Does nothing when
# they are all present, so it is cheap to call from every entry point.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
  libwebsockets-dev libhiredis-dev libjansson-dev libjwt-dev libuv1-dev libssl-dev
  libcmocka-dev redis-server redis-tools libwebsockets-evlib-uv
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler protobuf-compiler-grpc
  python3-grpcio python3-protobuf
  python3 python3-pytest python3-jwt python3-cryptography python3-yaml openssl curl
  docker-compose nginx-light chromium
)
[ "${WSGW_DEPS_EXTRA:-}" ] && read -r -a extra <<<"$WSGW_DEPS_EXTRA" && PKGS+=("${extra[@]}")

# Node.js for the browser test: the machine's own when it has one (>= 20), Debian's
# otherwise.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
