#!/usr/bin/env node
/**
 * Builds the native DMA mirror library (native/build/libringkernel.so) and the CUDA driver emulator
 * (native/build/libcuda-emu.so, for the emulated-device tests) with the system C compiler. Runs on
 * `npm install` / `npm ci` (the package's postinstall) and by hand: `node scripts/build-native.mjs [--sanitize]`.
 * Plain JavaScript on purpose: it runs before `tsc` has built anything.
 *
 * No compiler (or a failed build) is not an install error: ringkernel then says once, when a kernel asks for the
 * `dma` strategy, that the library is missing and uses `direct`. Set RINGKERNEL_SKIP_NATIVE=1 to skip the build.
 * `--sanitize` builds native/build/libringkernel-asan.so with AddressSanitizer and UndefinedBehaviorSanitizer.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sanitize = process.argv.includes('--sanitize');
const output = join(root, 'native', 'build', sanitize ? 'libringkernel-asan.so' : 'libringkernel.so');
const compiler = process.env.CC || 'cc';

if (process.env.RINGKERNEL_SKIP_NATIVE === '1') {
  console.log('ringkernel: native build skipped (RINGKERNEL_SKIP_NATIVE=1); the dma strategy will fall back to direct');
  process.exit(0);
}
if (process.platform !== 'linux') {
  console.log(
    `ringkernel: the native DMA mirror builds on Linux only (this is ${process.platform}); dma falls back to direct`,
  );
  process.exit(0);
}

mkdirSync(dirname(output), { recursive: true });
const flags = sanitize
  ? ['-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined']
  : ['-O2'];
const args = [
  '-std=c11',
  ...flags,
  '-pthread',
  '-fPIC',
  '-shared',
  '-fvisibility=hidden',
  // Never unmapped: koffi dlcloses the library when a worker thread that loaded it is torn down, while the
  // mirror's threads may still have to run their way out of its code (a SIGSEGV at exit before this flag).
  '-Wl,-z,nodelete',
  '-Wall',
  '-Wextra',
  '-I',
  join(root, 'native', 'include'),
  join(root, 'native', 'src', 'mirror.c'),
  join(root, 'native', 'src', 'node_hook.c'),
  '-o',
  output,
];
const result = spawnSync(compiler, args, { stdio: 'inherit' });
if (result.error !== undefined || result.status !== 0) {
  const why = result.error !== undefined ? `${compiler} could not run (${result.error.message})` : `${compiler} failed`;
  console.log(`ringkernel: native DMA mirror not built: ${why}; the dma strategy will fall back to direct`);
} else {
  console.log(`ringkernel: built ${output}`);
}

// Second, independent step: the CUDA driver emulator (native/cuda/emu), which runs the CUDA backend on CPU
// threads where there is no GPU (npm test). Not built with sanitizers; never fatal.
if (!sanitize) buildCudaEmulator();

function buildCudaEmulator() {
  const emulator = join(root, 'native', 'build', 'libcuda-emu.so');
  const emuArgs = [
    '-std=c11',
    '-O2',
    '-pthread',
    '-fPIC',
    '-shared',
    '-fvisibility=hidden',
    // Kernel threads run emulator code (barriers) until they are joined; never unmap it under them.
    '-Wl,-z,nodelete',
    '-Wall',
    '-Wextra',
    '-I',
    join(root, 'native', 'cuda', 'emu', 'include'),
    join(root, 'native', 'cuda', 'emu', 'libcuda_emu.c'),
    '-o',
    emulator,
    '-ldl',
  ];
  const built = spawnSync(compiler, emuArgs, { stdio: 'inherit' });
  if (built.error !== undefined || built.status !== 0) {
    const why = built.error !== undefined ? `${compiler} could not run (${built.error.message})` : `${compiler} failed`;
    console.log(`ringkernel: CUDA driver emulator not built: ${why}; the emulated-device tests will skip`);
    return;
  }
  console.log(`ringkernel: built ${emulator}`);
}
