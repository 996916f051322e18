#!/usr/bin/env bash
# The main job: set up, convert the digits CNN (ONNX) to .ember, run the test split
# (predictions, accuracy, latency), then inspect and bench the converted model.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/setup.sh
python examples/digits/run.py --out examples/build/digits_cnn.ember
ember inspect examples/build/digits_cnn.ember | head -9
ember bench examples/build/digits_cnn.ember --runs 200 --profile
