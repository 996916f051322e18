# Cross-compiling for 64-bit ARM Linux (Raspberry Pi 3/4/5 with a 64-bit OS, Jetson, most
# arm64 boards) from an x86-64 Debian/Ubuntu machine:
#
#   sudo apt-get install gcc-aarch64-linux-gnu qemu-user     # qemu-user: to run it here
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DEMBER_STATIC=ON && cmake --build build/aarch64 -j
#   qemu-aarch64 build/aarch64/ember_bench --model model.ember
#
# A dynamic build runs under qemu with `qemu-aarch64 -L /usr/aarch64-linux-gnu ...`.
# Another cross prefix: -DEMBER_CROSS_PREFIX=aarch64-none-linux-gnu- (an Arm GNU toolchain).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT DEFINED EMBER_CROSS_PREFIX)
  set(EMBER_CROSS_PREFIX "aarch64-linux-gnu-")
endif()
set(CMAKE_C_COMPILER ${EMBER_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${EMBER_CROSS_PREFIX}g++)

# Debian/Ubuntu's cross libc lives here; find_* look there for libraries and headers only.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest and try_run use this to run the target programs here.
find_program(EMBER_QEMU_AARCH64 qemu-aarch64)
if(EMBER_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${EMBER_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()
