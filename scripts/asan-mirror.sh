#!/usr/bin/env bash
# Runs the DMA mirror under AddressSanitizer: the C stress harness (also part of npm test, with UBSan and TSan),
# then the JavaScript dma tests with node loading an ASan build of the library (libasan preloaded, since node
# itself is not instrumented; leak detection off, as node's own allocations are not ours to judge).
# Usage: npm run test:asan   (after npm run build)
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/build-native.mjs --sanitize
node --test dist/test/native-mirror.test.js
LD_PRELOAD="$(cc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 \
  RINGKERNEL_NATIVE_LIB="$PWD/native/build/libringkernel-asan.so" \
  node --test dist/test/dma-bridge.test.js dist/test/dma-echo.test.js
