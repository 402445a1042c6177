/**
 * A fault on the device (`__trap()`: what an illegal address or a failed device assert does) ends the kernel's
 * launch. The CUDA device thread sees the launch's stream fail and the kernel ends Failed, with the driver's error
 * name in the reason; waiting calls are answered with typed errors instead of hanging. On the emulated device
 * (CPU threads stand in for the GPU: no GPU on these machines), where a trap fails the launch's stream; a GPU
 * also poisons the whole context (every kernel of the device), which the emulator does not model. A file of its
 * own: a process whose device faulted is not one to go on testing in.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type DeadLetter, RingKernelRuntime } from '../src/index.js';
import { TRAP_WORD, TrappingAddOne } from './fixtures/cuda-kernels.js';

const EMULATOR = fileURLToPath(new URL('../../native/build/libcuda-emu.so', import.meta.url));
const words = (...values: number[]): Uint8Array => new Uint8Array(new Uint32Array(values).buffer);

describe('a fault on the device (emulated device: CPU threads stand in for the GPU)', () => {
  it('fails the kernel with the driver error, answers the waiting call, and accounts for the queued messages', async (t) => {
    if (!existsSync(EMULATOR)) return t.skip('skipped: the CUDA emulator library was not built (needs cc)');
    process.env.RINGKERNEL_LIBCUDA = EMULATOR;
    try {
      await using runtime = await RingKernelRuntime.builder().backend('cuda').config({ workers: 1 }).build();
      const letters: DeadLetter[] = [];
      runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
      const kernel = await runtime.launch(TrappingAddOne, 1, 1, { name: 'trapping', autoActivate: true });
      assert.deepEqual([...new Uint32Array((await kernel.call(words(1, 2))).slice().buffer)], [2, 3]);
      const doomed = kernel.call(words(TRAP_WORD));
      // Queued behind the fault: never handled, so each must come back as a dead letter.
      for (let i = 0; i < 5; i++) await kernel.send(words(100 + i));
      await assert.rejects(doomed, (error: unknown) => error instanceof Error && /trapping/.test(error.message));
      await kernel.exited;
      assert.equal(kernel.status, 'Failed');
      assert.match(kernel.metrics().lastError?.message ?? '', /CUDA_ERROR_LAUNCH_FAILED/);
      // The trapping frame and the five behind it were never handled: each is a dead letter (the kernel failed
      // mid-batch, so the device never released them), none is lost.
      const lost = letters.filter((letter) => letter.kernel === 'trapping' && letter.reason === 'kernel-failed');
      const values = lost.map((letter) => new Uint32Array(letter.payload.slice().buffer)[0]);
      assert.deepEqual(values, [TRAP_WORD, 100, 101, 102, 103, 104]);
      await assert.rejects(kernel.call(words(1)), (rejected: unknown) => rejected instanceof Error);
    } finally {
      delete process.env.RINGKERNEL_LIBCUDA;
    }
  });
});
