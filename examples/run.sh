#!/usr/bin/env bash
# The main job: set up, build the example model, run it (results + latency), inspect and bench it.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/setup.sh
python examples/quickstart.py --out examples/build/tiny_cnn.ember
ember inspect examples/build/tiny_cnn.ember | head -8
ember bench examples/build/tiny_cnn.ember --runs 200 --profile
