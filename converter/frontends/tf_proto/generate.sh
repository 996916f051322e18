#!/bin/sh
# Regenerates tf_graph_pb2.py from tf_graph.proto. protoc comes from grpcio-tools, installed in
# a throwaway venv (the project's own environment stays untouched):
#   python3 -m venv /tmp/protocvenv && /tmp/protocvenv/bin/pip install grpcio-tools
#   PYTHON=/tmp/protocvenv/bin/python sh converter/frontends/tf_proto/generate.sh
# The checked-in module was made with grpcio-tools 1.85.1 (protoc gencode 7.35.1) for the
# protobuf 7.36 runtime onnx brought. protoc stamps a runtime-version check into the module
# that rejects any older runtime; the module only uses descriptor_pool.AddSerializedFile and
# internal.builder (protobuf >= 3.20), so the check is removed below and the module loads with
# whatever protobuf onnx installs.
set -e
cd "$(dirname "$0")"
"${PYTHON:-python3}" -m grpc_tools.protoc -I. --python_out=. tf_graph.proto
"${PYTHON:-python3}" - <<'PY'
import re
path = "tf_graph_pb2.py"
src = open(path).read()
src = src.replace("from google.protobuf import runtime_version as _runtime_version\n", "")
src = re.sub(r"_runtime_version\.ValidateProtobufRuntimeVersion\(.*?\n\)\n", "", src,
             flags=re.S)
open(path, "w").write(src)
PY
