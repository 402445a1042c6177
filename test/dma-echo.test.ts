/**
 * The DMA mirror (src/bridge, native/src/mirror.c) carrying real traffic: a million frames of random sizes through
 * an echo kernel and back, on rings small enough to wrap and fill all the time, byte-checked in order. The same
 * traffic through `direct` is the control. Skips (with the reason) when the native library is not built.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadMirrorLibrary } from '../src/bridge/native-mirror-library.js';
import { type KernelHandle, RingKernelRuntime, type TransferStrategy } from '../src/internal.js';
import { Echo } from './fixtures/kernels.js';
import { fillPayload, TEST_SEED } from './support/random.js';

const FRAMES = 1_000_000;
/** Frames of 0–400 payload bytes (about 300 B with the header) on rings of about 10 KiB: ~35 frames fill one. */
const MAX_PAYLOAD = 400;
const native = loadMirrorLibrary();
const skipReason = native.available ? false : `skipped: native mirror library unavailable (${native.reason})`;

/**
 * Sends `frames` frames (content and size derived from the seed and the frame's index), reading the echoes as
 * they come, and checks every echoed byte against the frame of the same index: a lost, duplicated, reordered or
 * corrupted frame fails at once. Returns the frames checked.
 */
async function echoThrough(handle: KernelHandle<Uint8Array, Uint8Array>, frames: number): Promise<number> {
  const outgoing = new Uint8Array(MAX_PAYLOAD);
  const expected = new Uint8Array(MAX_PAYLOAD);
  let sent = 0;
  let received = 0;
  const check = (echo: Uint8Array): void => {
    const size = fillPayload(TEST_SEED, received, expected, MAX_PAYLOAD);
    if (echo.length !== size) assert.fail(`frame ${received}: ${echo.length} bytes came back, ${size} were sent`);
    for (let i = 0; i < size; i++) {
      if (echo[i] !== expected[i]) assert.fail(`frame ${received}: byte ${i} is ${echo[i]}, expected ${expected[i]}`);
    }
    received++;
  };
  while (received < frames) {
    let progressed = false;
    while (sent < frames) {
      const size = fillPayload(TEST_SEED, sent, outgoing, MAX_PAYLOAD);
      if (!handle.trySend(outgoing.subarray(0, size))) break;
      sent++;
      progressed = true;
    }
    for (let echo = handle.tryReceive(); echo !== undefined; echo = handle.tryReceive()) {
      check(echo);
      progressed = true;
    }
    if (progressed) continue;
    if (received < sent) {
      check(await handle.receive(10_000)); // parks until the next echo arrives
    } else {
      // Everything echoed, yet the input ring looks full: its read index is still on its way back.
      const size = fillPayload(TEST_SEED, sent, outgoing, MAX_PAYLOAD);
      await handle.send(outgoing.subarray(0, size), { timeout: 10_000 });
      sent++;
    }
  }
  return received;
}

for (const strategy of ['dma', 'direct'] as const satisfies readonly TransferStrategy[]) {
  describe(`a million random-size frames through '${strategy}' and back`, {
    skip: strategy === 'dma' && skipReason,
  }, () => {
    let runtime: RingKernelRuntime;
    before(async () => {
      // 512-byte frames at most and a queue of 64: rings of about 10 KiB, which a million frames wrap ~25 000 times.
      runtime = await RingKernelRuntime.builder().config({ workers: 2, defaultMessageSize: 512 }).build();
    });
    after(() => runtime.shutdown());

    it('loses, duplicates, reorders and corrupts nothing while the rings wrap and fill', async () => {
      const handle = (await runtime.launch(Echo, 1, 1, {
        autoActivate: true,
        queueCapacity: 64,
        transferStrategy: strategy,
      })) as KernelHandle<Uint8Array, Uint8Array>;
      assert.equal(handle.metrics().transferStrategy, strategy);
      assert.equal(await echoThrough(handle, FRAMES), FRAMES);
      const metrics = handle.metrics();
      assert.equal(metrics.messagesProcessed, FRAMES);
      assert.equal(metrics.messagesDropped, 0);
      if (strategy === 'dma') {
        const transfer = metrics.transfer;
        assert.ok(transfer !== null, 'a dma kernel reports what the mirror moved');
        assert.equal(transfer.input.frames, FRAMES, 'every input frame crossed the mirror once');
        assert.equal(transfer.output.frames, FRAMES, 'every output frame crossed the mirror once');
        assert.equal(transfer.input.bytes, transfer.output.bytes, 'an echo moves as many bytes back as out');
        assert.ok(transfer.input.maxLagBytes > 0 && transfer.input.batches > 0 && transfer.input.copyNs > 0);
        const ringBytes = handle.inputMemory.ring.byteLength;
        assert.ok(transfer.input.bytes > 100 * ringBytes, 'the ring wrapped many times');
      } else {
        assert.equal(metrics.transfer, null);
      }
      await handle.terminate();
    });
  });
}
