#!/usr/bin/env bash
# Regenerates converter/schema_fb/ (Python flatbuffers code) from schema/ember.fbs.
# Needs Debian's flatbuffers-compiler (flatc 2.0.8). Never edit the generated files by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flatc --python -o "$tmp" schema/ember.fbs
rm -rf converter/schema_fb
cp -r "$tmp/ember/converter/schema_fb" converter/schema_fb
echo "generated converter/schema_fb from schema/ember.fbs"
