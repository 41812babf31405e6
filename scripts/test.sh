#!/usr/bin/env bash
# Runs every test of the workspace, installing what the end-to-end tests need first:
#   - Prometheus and promtool, Debian package `prometheus` (apt-get, as root or via sudo);
#   - Alertmanager, Debian package `prometheus-alertmanager` (binary prometheus-alertmanager), the same way;
#   - the rotel collector, PyPI `rotel`, in a virtualenv this script owns (target/e2e-tools/venv).
# Under CI (CI=true) a tool that cannot be installed fails the run; elsewhere the
# end-to-end tests that need it print a loud SKIPPED line and pass.
# Extra arguments go to `cargo test` (e.g. `bash scripts/test.sh -p outcometer`).
set -euo pipefail
cd "$(dirname "$0")/.."

ROTEL_VERSION=0.0.1a15
PROMETHEUS_CLIENT_VERSION=0.21.1
TOOLS="$PWD/target/e2e-tools"
ci=false
[ "${CI:-}" = "true" ] && ci=true

missing() {
  if $ci; then
    echo "error: $1 (CI=true requires every end-to-end tool)" >&2
    exit 1
  fi
  echo "warning: $1; the end-to-end tests that need it will be skipped" >&2
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"; else return 1; fi
}

install_prometheus() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return 0
  command -v apt-get >/dev/null || return 1
  echo "installing Prometheus (Debian package prometheus)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null ||
    { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } ||
    return 1
  # The package starts a system service on :9090 where systemd runs; the tests start their own.
  command -v prometheus >/dev/null && command -v promtool >/dev/null
}

install_alertmanager() {
  command -v prometheus-alertmanager >/dev/null && return 0
  command -v apt-get >/dev/null || return 1
  echo "installing Alertmanager (Debian package prometheus-alertmanager)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null ||
    { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null; } ||
    return 1
  command -v prometheus-alertmanager >/dev/null
}

install_rotel() {
  local venv="$TOOLS/venv"
  if ! "$venv/bin/python" -m pip show rotel 2>/dev/null | grep -qx "Version: $ROTEL_VERSION"; then
    command -v python3 >/dev/null || return 1
    echo "installing rotel $ROTEL_VERSION into $venv..." >&2
    python3 -m venv "$venv" &&
      "$venv/bin/python" -m pip install -q --disable-pip-version-check "rotel==$ROTEL_VERSION" || return 1
  fi
  # The Prometheus project's Python client: its strict OpenMetrics parser checks our output.
  if ! "$venv/bin/python" -c 'import prometheus_client' 2>/dev/null; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "prometheus-client==$PROMETHEUS_CLIENT_VERSION" || return 1
  fi
  OUTCOMETER_PYTHON="$venv/bin/python"
  export OUTCOMETER_PYTHON
  OUTCOMETER_ROTEL="$("$venv/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
  [ -x "$OUTCOMETER_ROTEL" ] || return 1
  export OUTCOMETER_ROTEL
}

install_prometheus || missing "could not install Prometheus (apt-get install prometheus needs root or passwordless sudo)"
if command -v prometheus >/dev/null; then
  OUTCOMETER_PROMETHEUS="$(command -v prometheus)"
  OUTCOMETER_PROMTOOL="$(command -v promtool)"
  export OUTCOMETER_PROMETHEUS OUTCOMETER_PROMTOOL
fi
install_alertmanager || missing "could not install Alertmanager (apt-get install prometheus-alertmanager needs root or passwordless sudo)"
if command -v prometheus-alertmanager >/dev/null; then
  OUTCOMETER_ALERTMANAGER="$(command -v prometheus-alertmanager)"
  export OUTCOMETER_ALERTMANAGER
fi
install_rotel || missing "could not install rotel==$ROTEL_VERSION from PyPI into $TOOLS/venv"

# --all-features includes the SDK's `tracing` feature: its property test
# (sdk/tests/tracing_detail.rs) and no_alloc's subscriber cases run with it.
cargo test --workspace --all-features --locked "$@"
# Each benchmark once, as a test: their setup checks must hold. Timings come
# from `cargo bench` (docs/performance.md), never from tests.
cargo test --workspace --all-features --locked --benches
