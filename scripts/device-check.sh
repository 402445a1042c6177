#!/usr/bin/env bash
# The GPU check, run on a lent GPU machine in one call (it has no Node.js and no registry). Writes to $OUT:
# nvidia-smi.txt, test-gpu.txt (npm run test:gpu's suites, failing instead of skipping without a device) and
# bench-cuda.txt / bench-cuda.json (bench/cuda-cases.ts: injection, call, sustained 64 B / 1 KiB, both
# strategies, against launch-per-message), so a short lease is enough.
#
# Here, first: npm install && npm run build && ../shared/tools/device-pack.sh
# Then (device tool): run with carry ['.device', 'dist'] and the command
#   source .device/unpack.sh && bash scripts/device-check.sh
set -uo pipefail
out=${OUT:-/tmp/ringkernel-device-check}
mkdir -p "$out"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
# The image's own C compiler rebuilds the native libraries (this machine's build may not load there).
node scripts/build-native.mjs > "$out/build-native.txt" 2>&1
# NVRTC comes with the image's Python packages (nvidia-cuda-nvrtc): use it, so the NVRTC path runs too.
nvrtc=$(find / -xdev -name 'libnvrtc.so.1[0-9]*' 2>/dev/null | grep -v stub | head -1)
if [[ -n "$nvrtc" ]]; then export RINGKERNEL_LIBNVRTC=$nvrtc; fi
# NVRTC has no headers of its own: cooperative_groups.h and libcu++ may sit in separate packages (wheels).
groups=$(find / -xdev -name cooperative_groups.h -path '*include*' 2>/dev/null | head -1)
libcu=$(find / -xdev -path '*/include/cuda/std/cstdint' 2>/dev/null | head -1)
export RINGKERNEL_NVRTC_INCLUDE="${groups:+$(dirname "$groups")}:${libcu:+${libcu%/cuda/std/cstdint}}"
echo "nvrtc: ${nvrtc:-none}; nvcc: $(command -v nvcc || echo none); NVRTC includes: $RINGKERNEL_NVRTC_INCLUDE" >> "$out/build-native.txt"
RINGKERNEL_REQUIRE_GPU=1 timeout 300 node --test --test-reporter=spec dist/test/cuda-*.test.js > "$out/test-gpu.txt" 2>&1
echo "test:gpu rc=$?" >> "$out/test-gpu.txt"
timeout 200 node dist/bench/cuda-only.js --json "$out/bench-cuda.json" > "$out/bench-cuda.txt" 2>&1
echo "bench rc=$?" >> "$out/bench-cuda.txt"
tail -3 "$out/test-gpu.txt" "$out/bench-cuda.txt"
