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
// How to run this again: inside an installed package, through its bin; in a clone, through the npm script.
const rerun = root.split(/[\\/]/).includes('node_modules') ? 'npx ringkernel-build-native' : 'npm run build:native';

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

/**
 * Builds one shared library with the system C compiler: C11, threads, position-independent, only the exported
 * symbols visible, never unmapped (koffi dlcloses a library when a worker thread that loaded it is torn down,
 * while native threads may still have to run their way out of its code: a SIGSEGV at exit before -z nodelete).
 * Says what failed, and what that means, instead of failing the install.
 */
function buildLibrary({ what, out, flags, includes, sources, libs = [], ifNot }) {
  const args = ['-std=c11', ...flags, '-pthread', '-fPIC', '-shared', '-fvisibility=hidden', '-Wl,-z,nodelete'];
  args.push('-Wall', '-Wextra', ...includes.flatMap((dir) => ['-I', dir]), ...sources, '-o', out, ...libs);
  const built = spawnSync(compiler, args, { stdio: 'inherit' });
  if (built.error !== undefined || built.status !== 0) {
    const why = built.error !== undefined ? `${compiler} could not run (${built.error.message})` : `${compiler} failed`;
    console.log(`ringkernel: ${what} not built: ${why}; ${ifNot}`);
    console.log(`ringkernel: to build it, install a C compiler (gcc or clang; CC names another) and run ${rerun}`);
    return;
  }
  console.log(`ringkernel: built ${out}`);
}

buildLibrary({
  what: 'native DMA mirror',
  out: output,
  flags: sanitize
    ? ['-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined']
    : ['-O2'],
  includes: [join(root, 'native', 'include')],
  sources: [join(root, 'native', 'src', 'mirror.c'), join(root, 'native', 'src', 'node_hook.c')],
  ifNot: 'the dma strategy will fall back to direct',
});

// Second, independent step: the CUDA driver emulator (native/cuda/emu), which runs the CUDA backend on CPU
// threads where there is no GPU (npm test). Not built with sanitizers; never fatal.
if (!sanitize) {
  buildLibrary({
    what: 'CUDA driver emulator',
    out: join(root, 'native', 'build', 'libcuda-emu.so'),
    flags: ['-O2'],
    includes: [join(root, 'native', 'cuda', 'emu', 'include')],
    sources: [join(root, 'native', 'cuda', 'emu', 'libcuda_emu.c')],
    libs: ['-ldl'],
    ifNot: 'the emulated-device tests will skip',
  });
}
