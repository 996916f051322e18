#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine for Ember and activates .venv with Ember installed.
# Sourced by examples/run.sh and tests/run.sh:  EMBER_EXTRAS=test source .ci/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# System packages: a C compiler and venv support; for the tests also clang (sanitizers,
# libFuzzer), flatc (checks the generated schema code), an aarch64 cross compiler with
# qemu-user (the ARM tests), and PoCL with the OpenCL ICD loader (the GPU delegate's tests).
need=()
command -v cc >/dev/null || need+=(build-essential)
python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
if [ "${EMBER_EXTRAS:-}" = test ]; then
  command -v clang >/dev/null || need+=(clang)
  command -v flatc >/dev/null || need+=(flatbuffers-compiler)
  # ARM builds tested under emulation (tests/test_arm.py): a cross compiler and qemu-user.
  if [ "$(uname -m)" = x86_64 ]; then
    command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
    command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
  fi
  # The OpenCL delegate's tests (tests/test_opencl.py): the ICD loader and PoCL, OpenCL on
  # the CPU; clinfo to see what OpenCL finds.
  ls /usr/lib/*/libOpenCL.so.1 >/dev/null 2>&1 || need+=(ocl-icd-libopencl1)
  ls /etc/OpenCL/vendors/pocl*.icd >/dev/null 2>&1 || need+=(pocl-opencl-icd)
  command -v clinfo >/dev/null || need+=(clinfo)
  # LeakSanitizer and libFuzzer runtimes ship with clang on Debian; make sure they are there.
  ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 \
    || [ "$(uname -m)" != x86_64 ] || need+=(libclang-rt-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pip install -q --upgrade pip
spec="."
[ -n "${EMBER_EXTRAS:-}" ] && spec=".[${EMBER_EXTRAS}]"
python -m pip install -q "$spec"
