/**
 * Test support: the CUDA driver emulator (native/build/libcuda-emu.so), which stands in for a GPU on machines
 * without one: CPU threads run host builds of the same template and handler sources (built with g++).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type DeadLetter, RingKernelRuntime } from '../../src/internal.js';

/** The emulator library, built by `npm install` where a C compiler is. */
export const EMULATOR = fileURLToPath(new URL('../../../native/build/libcuda-emu.so', import.meta.url));

/** Whether g++ runs here (the emulated device's kernels are host builds). */
export const hasGxx = (() => {
  const result = spawnSync(process.env.CXX ?? 'g++', ['--version'], { encoding: 'utf8' });
  return result.error === undefined && result.status === 0;
})();

/** Why the emulated device cannot run here, or undefined when it can. */
export function emulatorMissing(): string | undefined {
  if (!existsSync(EMULATOR)) return 'skipped: the CUDA emulator library was not built (needs cc)';
  if (!hasGxx) return 'skipped: g++ is not installed (the emulated device runs host builds of kernels)';
  return undefined;
}

/**
 * Runs `body` with a CUDA runtime on the emulated device (one CPU worker), the dead letters it publishes collected
 * in `letters`; `RINGKERNEL_LIBCUDA` names the emulator for the body's duration. Skips the test, saying why, where
 * the emulated device cannot run. `build` makes another runtime (tracing, say).
 */
export async function onEmulatedDevice(
  t: { skip(message: string): void },
  body: (runtime: RingKernelRuntime, letters: DeadLetter[]) => Promise<void>,
  build: () => Promise<RingKernelRuntime> = () =>
    RingKernelRuntime.builder().backend('cuda').config({ workers: 1 }).build(),
): Promise<void> {
  const missing = emulatorMissing();
  if (missing !== undefined) {
    t.skip(missing);
    return;
  }
  process.env.RINGKERNEL_LIBCUDA = EMULATOR;
  try {
    await using runtime = await build();
    const letters: DeadLetter[] = [];
    runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    await body(runtime, letters);
  } finally {
    delete process.env.RINGKERNEL_LIBCUDA;
  }
}
