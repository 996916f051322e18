#!/usr/bin/env bash
# Sets up and runs every test: Python, and C (plain, ASan+UBSan, libFuzzer, aarch64 under qemu)
# through pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
EMBER_EXTRAS=test source .ci/setup.sh
python -m pytest tests -q "$@"
