#!/usr/bin/env bash
# Install, build the default models, and run the main job on the embedded default (ONNX Runtime CPU):
# replay a real clip from ../shared through deploy/specs/dev-cpu.yaml → out/replay.jsonl plus a summary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
CLIP="${1:-$IMS_SHARED_DIR/data/videos/video01.mp4}"
mkdir -p out
echo "== ims-runtime replay $CLIP"
.venv/bin/ims-runtime replay --spec deploy/specs/dev-cpu.yaml "$CLIP" --out out/replay.jsonl \
  --summary-json out/replay-summary.json
echo "== first message:"
head -n 1 out/replay.jsonl
