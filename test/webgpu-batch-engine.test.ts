import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebGpuBatchEngine } from '../src/backends/webgpu/batch-engine.js';
import type { BatchDeadLetter } from '../src/backends/webgpu/batch-engine-contract.js';
import { buildWgslProgram, type WgslProgram, type WgslProgramSource } from '../src/backends/webgpu/wgsl-program.js';
import { ErrorNumber } from '../src/errors/codes.js';
import { WgslCompileError } from '../src/errors/webgpu-errors.js';
import { FrameConsumer } from '../src/wire/frame-consumer.js';
import { FrameFlags } from '../src/wire/frame-header.js';
import { FrameProducer } from '../src/wire/frame-producer.js';
import { createFrameRing, type FrameRingMemory } from '../src/wire/frame-ring.js';
import { BytesMessage } from '../src/wire/message-schema.js';
import { Random, TEST_SEED } from './support/random.js';
import { openTestDevice, webgpuMissing } from './support/webgpu.js';

// Tests run on a real WebGPU adapter: Mesa's software Vulkan (lavapipe) where the machine has no GPU.

const ECHO = `
fn echo(i: u32) -> u32 {
  let m = rk_message(i);
  for (var w = 0u; w < (m.size + 3u) / 4u; w++) { rk_out_word(i, w, rk_in_word(i, w)); }
  rk_emit(i, m.size, m.type_id);
  return RK_E_NONE;
}`;

const program = (source: string, entry: string, extra: Partial<WgslProgramSource> = {}): WgslProgram =>
  buildWgslProgram({
    kernelId: `test-${entry}`,
    source,
    entry,
    workgroupSize: 64,
    stateBytes: 0,
    schemas: [],
    ...extra,
  });

interface Harness {
  readonly input: FrameRingMemory;
  readonly output: FrameRingMemory;
  readonly producer: FrameProducer;
  readonly consumer: FrameConsumer;
  readonly letters: BatchDeadLetter[];
}

function rings(capacityBytes: number, maxPayloadSize: number): Harness {
  const input = createFrameRing({ capacityBytes, maxPayloadSize });
  const output = createFrameRing({ capacityBytes, maxPayloadSize: Math.max(maxPayloadSize, 512) });
  return {
    input,
    output,
    producer: new FrameProducer(input),
    consumer: new FrameConsumer(output),
    letters: [],
  };
}

/** Runs until `done()` or the deadline (a hang guard, not a speed assertion), yielding to the engine each round. */
async function pump(step: () => boolean, done: () => boolean, what: string, deadlineMs = 240_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what}: not done within ${deadlineMs} ms`);
    if (!step()) await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('WebGPU batch engine (real adapter)', () => {
  let device: GPUDevice | undefined;
  let skip: string | undefined;

  before(async () => {
    skip = await webgpuMissing();
    if (skip === undefined) device = await openTestDevice();
  });
  after(() => device?.destroy());

  it('echoes a seeded 10^6 messages of random sizes through tiny rings: none lost, duplicated or reordered', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const random = new Random(TEST_SEED);
    const total = 1_000_000;
    const h = rings(8192, 96);
    const engine = await WebGpuBatchEngine.create({
      device: device as GPUDevice,
      program: program(ECHO, 'echo'),
      input: h.input,
      output: h.output,
      outputBytes: 96,
      onDeadLetter: (letter) => h.letters.push(letter),
    });
    engine.start();
    const expectRandom = new Random(TEST_SEED);
    const payload = new Uint8Array(96);
    const expected = new Uint8Array(96);
    let sent = 0;
    let received = 0;
    let pendingSize = -1;
    let fullRing = 0;
    await pump(
      () => {
        let progressed = false;
        while (sent < total) {
          if (pendingSize < 0) {
            pendingSize = random.int(0, 96);
            random.fill(payload, 0, pendingSize);
          }
          if (!h.producer.tryWrite(BytesMessage, payload.subarray(0, pendingSize), { messageId: sent + 1 })) {
            fullRing++;
            break;
          }
          pendingSize = -1;
          sent++;
          progressed = true;
        }
        h.producer.wakeConsumer();
        h.consumer.drain((frame) => {
          received++;
          assert.equal(frame.correlationId, received, 'outputs come back in input order, each once');
          const size = expectRandom.int(0, 96);
          expectRandom.fill(expected, 0, size);
          assert.equal(frame.payloadSize, size);
          assert.deepEqual(frame.payload, expected.subarray(0, size));
          progressed = true;
        });
        return progressed;
      },
      () => received === total,
      'echo',
    );
    await engine.stop('drain');
    const stats = engine.stats;
    t.diagnostic(
      `seed ${TEST_SEED}: ${stats.batches} batches, largest ${stats.largestBatch}, input ring full ${fullRing} times`,
    );
    assert.equal(received, total);
    assert.equal(stats.messages, total);
    assert.equal(h.letters.length, 0);
    assert.ok(fullRing > 1000, 'the tiny input ring pushed back often');
    assert.ok(stats.batches > 1000 && stats.largestBatch > 1, 'many batches, several messages in some');
  });

  it('keeps state across batches exactly: a running sum over 10^5 messages equals the host sum', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const h = rings(16 * 1024, 8);
    const engine = await WebGpuBatchEngine.create({
      device: device as GPUDevice,
      program: program(
        `fn add(i: u32) -> u32 {
  atomicAdd(&rk_state[0], rk_in_word(i, 0));
  atomicAdd(&rk_state[1], 1u);
  return RK_E_NONE;
}`,
        'add',
        { stateBytes: 8 },
      ),
      input: h.input,
      output: h.output,
    });
    engine.start();
    const random = new Random(TEST_SEED ^ 0x51);
    const total = 100_000;
    let sum = 0;
    let sent = 0;
    const word = new Uint8Array(4);
    const view = new DataView(word.buffer);
    let pending = -1;
    await pump(
      () => {
        let progressed = false;
        while (sent < total) {
          if (pending < 0) pending = random.u32();
          view.setUint32(0, pending, true);
          if (!h.producer.tryWrite(BytesMessage, word)) break;
          sum = (sum + pending) >>> 0;
          pending = -1;
          sent++;
          progressed = true;
        }
        return progressed;
      },
      () => engine.stats.messages === total,
      'sum',
    );
    const state = new DataView((await engine.checkpoint()).buffer);
    assert.equal(state.getUint32(4, true), total, 'every message added once');
    assert.equal(state.getUint32(0, true), sum, 'the device sum (mod 2^32) equals the host sum');
    // Restore writes the state back before the next batch: add one more message to a restored sum.
    engine.restore(new Uint8Array(new Uint32Array([41, 7]).buffer));
    view.setUint32(0, 1, true);
    assert.ok(h.producer.tryWrite(BytesMessage, word));
    await pump(
      () => false,
      () => engine.stats.messages === total + 1,
      'restore',
    );
    const restored = new DataView((await engine.checkpoint()).buffer);
    assert.deepEqual([restored.getUint32(0, true), restored.getUint32(4, true)], [42, 8]);
    await engine.stop('drain');
    t.diagnostic(`seed ${TEST_SEED}: ${engine.stats.batches} batches, largest ${engine.stats.largestBatch}`);
  });

  it('fails only the messages whose handler returns an error code (a seeded 1 %): each answered once or dead-lettered once', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const random = new Random(TEST_SEED ^ 0xe1);
    const total = 20_000;
    const h = rings(32 * 1024, 16);
    const engine = await WebGpuBatchEngine.create({
      device: device as GPUDevice,
      program: program(
        `fn picky(i: u32) -> u32 {
  let v = rk_in_word(i, 0);
  if (v == 0xdeadu) { return RK_E_HANDLER_FAILED; }
  rk_out_word(i, 0, v + 1u);
  rk_emit(i, 4u, rk_message(i).type_id);
  return RK_E_NONE;
}`,
        'picky',
      ),
      input: h.input,
      output: h.output,
      onDeadLetter: (letter) => h.letters.push(letter),
    });
    engine.start();
    const failing = new Set<number>();
    const requests = new Set<number>();
    const answered = new Map<number, number>();
    const errorResponses = new Set<number>();
    let sent = 0;
    const word = new Uint8Array(4);
    const view = new DataView(word.buffer);
    await pump(
      () => {
        let progressed = false;
        while (sent < total) {
          const id = sent + 1;
          const fails = random.next() < 0.01;
          const isRequest = random.next() < 0.1;
          view.setUint32(0, fails ? 0xdead : id, true);
          const flags = isRequest ? FrameFlags.REQUEST : 0;
          // A full ring: this id is drawn again next round; the sets record only what was sent.
          if (!h.producer.tryWrite(BytesMessage, word, { messageId: id, flags })) break;
          if (fails) failing.add(id);
          if (isRequest) requests.add(id);
          sent++;
          progressed = true;
        }
        h.consumer.drain((frame) => {
          progressed = true;
          if (frame.flags & FrameFlags.ERROR) {
            errorResponses.add(frame.correlationId);
            return;
          }
          answered.set(frame.correlationId, (answered.get(frame.correlationId) ?? 0) + 1);
          assert.equal(new DataView(frame.payload.slice().buffer).getUint32(0, true), frame.correlationId + 1);
        });
        return progressed;
      },
      () => answered.size + h.letters.length >= total,
      'errors',
    );
    await engine.stop('drain');
    h.consumer.drain((frame) => {
      if (frame.flags & FrameFlags.ERROR) errorResponses.add(frame.correlationId);
    });
    t.diagnostic(`seed ${TEST_SEED}: ${failing.size} failing of ${total}`);
    assert.ok(failing.size > 100, 'about 1 % fail');
    assert.equal(h.letters.length, failing.size);
    for (const letter of h.letters) {
      assert.equal(letter.reason, 'handler-error');
      assert.equal(letter.errorNumber, ErrorNumber.HandlerFailed);
      assert.ok(failing.has(letter.messageId));
      assert.deepEqual([...letter.payload], [0xad, 0xde, 0, 0]);
    }
    for (let id = 1; id <= total; id++) {
      assert.equal(answered.get(id), failing.has(id) ? undefined : 1, `message ${id}`);
    }
    assert.deepEqual(
      [...errorResponses].sort((a, b) => a - b),
      [...failing].filter((id) => requests.has(id)).sort((a, b) => a - b),
      'a failed call gets an error response',
    );
    assert.equal(engine.stats.failed, failing.size);
  });

  it('checkpoints exactly at once: the state of the finished batches plus what the input ring still holds is everything sent', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const h = rings(64 * 1024, 8);
    const batches: number[] = [];
    const engine = await WebGpuBatchEngine.create({
      device: device as GPUDevice,
      program: program('fn count(i: u32) -> u32 { atomicAdd(&rk_state[0], 1u); return RK_E_NONE; }', 'count', {
        stateBytes: 4,
      }),
      input: h.input,
      output: h.output,
      maxBatch: 97,
      inFlight: 6,
      onBatch: (batch) => batches.push(batch.received),
    });
    engine.start();
    const random = new Random(TEST_SEED ^ 0xc4);
    const total = 30_000;
    const word = new Uint8Array(4);
    let sent = 0;
    let checks = 0;
    await pump(
      () => {
        const burst = random.int(1, 300);
        for (let k = 0; k < burst && sent < total && h.producer.tryWrite(BytesMessage, word); k++) sent++;
        // Whenever we look (between the engine's steps, with batches in flight), the pair is exact.
        const counted = new DataView(engine.stateSnapshot().buffer).getUint32(0, true);
        assert.equal(counted + h.producer.pendingFrames(), sent, `after ${sent} sent`);
        checks++;
        return false;
      },
      () => engine.stats.messages === total,
      'checkpoint',
    );
    assert.equal(new DataView(engine.stateSnapshot().buffer).getUint32(0, true), total);
    assert.equal(
      batches.reduce((a, b) => a + b, 0),
      total,
    );
    t.diagnostic(`seed ${TEST_SEED}: ${checks} checks over ${batches.length} batches`);
    await engine.stop('drain');
  });

  it('refuses a handler that does not compile, with the line and column in the handler source', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const h = rings(4096, 16);
    const source = 'fn broken(i: u32) -> u32 {\n  let x: u32 = 1u;\n  return x + undefined_thing;\n}';
    await assert.rejects(
      WebGpuBatchEngine.create({
        device: device as GPUDevice,
        program: program(source, 'broken'),
        input: h.input,
        output: h.output,
      }),
      (error: unknown) => {
        assert.ok(error instanceof WgslCompileError);
        assert.equal(error.code, 'RK_WGSL_COMPILE_FAILED');
        const first = error.messages.find((m) => m.type === 'error');
        assert.equal(first?.line, 3);
        assert.equal(first?.column, 14);
        assert.match(error.message, /undefined_thing/);
        return true;
      },
    );
  });

  it('holds input while paused, handles it after resume, and dead-letters what a discard leaves', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const h = rings(64 * 1024, 16);
    const engine = await WebGpuBatchEngine.create({
      device: device as GPUDevice,
      program: program(ECHO, 'echo'),
      input: h.input,
      output: h.output,
      onDeadLetter: (letter) => h.letters.push(letter),
    });
    engine.start();
    engine.pause();
    const word = new Uint8Array(4);
    for (let i = 0; i < 100; i++) assert.ok(h.producer.tryWrite(BytesMessage, word));
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(h.producer.pendingFrames(), 100, 'a paused engine takes nothing');
    engine.resume();
    let received = 0;
    await pump(
      () => h.consumer.drain(() => received++) > 0,
      () => received === 100,
      'resume',
    );
    engine.pause();
    for (let i = 0; i < 50; i++) assert.ok(h.producer.tryWrite(BytesMessage, word));
    await engine.stop('discard');
    assert.equal(h.letters.length, 50);
    assert.ok(h.letters.every((letter) => letter.reason === 'discarded-on-terminate'));
    assert.equal(engine.stats.discarded, 50);
    assert.equal(
      h.consumer.drain(() => {}),
      0,
      'nothing more came out',
    );
  });

  it('drains every queued message on stop(drain) with batches in flight', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const h = rings(256 * 1024, 16);
    const engine = await WebGpuBatchEngine.create({
      device: device as GPUDevice,
      program: program(ECHO, 'echo'),
      input: h.input,
      output: h.output,
      maxBatch: 64,
    });
    engine.start();
    const word = new Uint8Array(4);
    let sent = 0;
    while (h.producer.tryWrite(BytesMessage, word)) sent++;
    // Let some batches start, then stop while the rest are queued or in flight.
    await new Promise((resolve) => setImmediate(resolve));
    const stopped = engine.stop('drain');
    let received = 0;
    await pump(
      () => h.consumer.drain(() => received++) > 0,
      () => received === sent,
      'drain',
    );
    await stopped;
    assert.equal(engine.stats.messages, sent);
  });
});
