import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { BatchDeadLetter } from '../src/backends/webgpu/batch-engine.js';
import { WebGpuDeviceThread } from '../src/backends/webgpu/device-thread.js';
import { buildWgslProgram } from '../src/backends/webgpu/wgsl-program.js';
import { WgslCompileError } from '../src/errors/webgpu-errors.js';
import { FrameConsumer } from '../src/wire/frame-consumer.js';
import { FrameProducer } from '../src/wire/frame-producer.js';
import { createFrameRing } from '../src/wire/frame-ring.js';
import { BytesMessage } from '../src/wire/message-schema.js';
import { Random, TEST_SEED } from './support/random.js';
import { webgpuMissing } from './support/webgpu.js';

// A real device thread (a worker owning a GPUDevice on a real adapter: lavapipe where there is no GPU).

const COUNT_AND_ECHO = buildWgslProgram({
  kernelId: 'count-echo',
  source: `fn count_echo(i: u32) -> u32 {
  let v = rk_in_word(i, 0);
  if (v == 0xffffffffu) { return RK_E_HANDLER_FAILED; }
  atomicAdd(&rk_state[0], 1u);
  rk_out_word(i, 0, v);
  rk_emit(i, 4u, rk_message(i).type_id);
  return RK_E_NONE;
}`,
  entry: 'count_echo',
  workgroupSize: 64,
  stateBytes: 4,
  schemas: [],
});

describe('WebGPU device thread', () => {
  let skip: string | undefined;
  before(async () => {
    skip = await webgpuMissing();
  });

  it('closes with batches in flight: every message answered or dead-lettered, readbacks settled, the thread exits 0', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const letters: BatchDeadLetter[] = [];
    const thread = await WebGpuDeviceThread.open(
      { allowFallback: true },
      { onDeadLetters: (_kernel, batch) => letters.push(...batch) },
    );
    const input = createFrameRing({ capacityBytes: 16 * 1024, maxPayloadSize: 8 });
    const output = createFrameRing({ capacityBytes: 16 * 1024, maxPayloadSize: 512 });
    await thread.launch({ kernelId: 'count-echo', program: COUNT_AND_ECHO, input, output, sourceId: 7, maxBatch: 256 });
    const producer = new FrameProducer(input);
    const consumer = new FrameConsumer(output);
    const random = new Random(TEST_SEED ^ 0xd7);
    const total = 50_000;
    const bad = new Set<number>();
    const word = new Uint8Array(4);
    const view = new DataView(word.buffer);
    let sent = 0;
    let received = 0;
    let closing: Promise<void> | undefined;
    const deadline = Date.now() + 120_000;
    while (received + letters.length < total) {
      assert.ok(Date.now() < deadline, `stuck at ${received} received, ${letters.length} dead letters`);
      while (sent < total && closing === undefined) {
        const isBad = random.next() < 0.01;
        view.setUint32(0, isBad ? 0xffff_ffff : sent + 1, true);
        if (!producer.tryWrite(BytesMessage, word, { messageId: sent + 1 })) break;
        if (isBad) bad.add(sent + 1);
        sent++;
      }
      consumer.drain((frame) => {
        received++;
        assert.equal(frame.source, 7);
        assert.ok(!bad.has(frame.correlationId));
      });
      // Once everything is queued, close (draining) while batches are still in flight.
      if (sent === total && closing === undefined) {
        const state = new DataView((await thread.checkpoint('count-echo')).buffer).getUint32(0, true);
        assert.ok(state <= received + 4096, 'the checkpoint counts handled messages');
        closing = thread.close('drain');
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    await closing;
    assert.equal(await thread.exited, 0);
    assert.equal(received, total - bad.size);
    assert.equal(letters.length, bad.size);
    assert.ok(letters.every((letter) => letter.reason === 'handler-error' && bad.has(letter.messageId)));
    t.diagnostic(`seed ${TEST_SEED}: ${bad.size} handler errors of ${total}`);
  });

  it('reports a compile error with line and column through the thread, and stays usable', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const thread = await WebGpuDeviceThread.open({ allowFallback: true });
    try {
      const program = buildWgslProgram({
        kernelId: 'broken',
        source: 'fn broken(i: u32) -> u32 {\n  return i +;\n}',
        entry: 'broken',
        workgroupSize: 64,
        stateBytes: 0,
        schemas: [],
      });
      const input = createFrameRing({ capacityBytes: 4096 });
      const output = createFrameRing({ capacityBytes: 4096 });
      await assert.rejects(thread.launch({ kernelId: 'broken', program, input, output, sourceId: 1 }), (error) => {
        assert.ok(error instanceof WgslCompileError, String(error));
        assert.equal(error.kernelId, 'broken');
        assert.equal(error.messages.find((m) => m.type === 'error')?.line, 2);
        return true;
      });
      await thread.launch({ kernelId: 'count-echo', program: COUNT_AND_ECHO, input, output, sourceId: 1 });
      assert.ok(new FrameProducer(input).tryWrite(BytesMessage, new Uint8Array(4)));
      const consumer = new FrameConsumer(output);
      const deadline = Date.now() + 30_000;
      while (consumer.drain(() => {}) === 0) {
        assert.ok(Date.now() < deadline);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      assert.equal((await thread.stats('count-echo')).messages, 1);
    } finally {
      await thread.close();
    }
    assert.equal(await thread.exited, 0);
  });
});
