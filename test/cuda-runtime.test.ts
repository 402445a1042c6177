/**
 * The runtime's CUDA launch path, end to end: `defineKernel({ cuda })` compiled into the persistent-kernel template
 * (cached), launched resident on a device over the kernel's own rings pinned and mapped into it (`mapped`), driven
 * by the same lifecycle machine and the same KernelHandle as a CPU kernel.
 *
 * The same suite runs three times where it can:
 * - on the CPU backend (the kernels' `cpu` handlers): the reference behaviour;
 * - on the **emulated CUDA device** (native/build/libcuda-emu.so): there is no GPU on these machines, so a stand-in
 *   libcuda runs the very same template and handler sources, built for the host, on CPU threads. This is a mock of
 *   the GPU only: the driver binding, compile pipeline, cache, pinning, launch, lifecycle and rings are the real ones;
 * - on a real GPU when one is present (`npm run test:gpu` requires it).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BackendUnavailableError,
  CudaCompileError,
  type DeadLetter,
  FrameHeader,
  HandlerFailedError,
  probeCuda,
  RingKernelRuntime,
  RingOffset,
} from '../src/internal.js';
import {
  ADD_ONE_POISON,
  AddOneWords,
  AddTenWords,
  BrokenCuda,
  CudaOnly,
  DeviceTotal,
  DoubleReading,
  TotalRelay,
  TripleWords,
} from './fixtures/cuda-kernels.js';
import { AddOne, Numbers } from './fixtures/kernels.js';
import { EMULATOR, emulatorMissing, onEmulatedDevice } from './support/emulated-cuda.js';
import { eventually } from './support/eventually.js';
import { OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver.js';
import { Random, TEST_SEED } from './support/random.js';

const requireGpu = process.env.RINGKERNEL_REQUIRE_GPU === '1';
// A real driver, looked at before the emulator is put in its place.
const realProbe = process.env.RINGKERNEL_LIBCUDA === undefined ? probeCuda() : { available: false, reason: '' };
const cache = mkdtempSync(join(tmpdir(), 'ringkernel-kernel-cache-'));
process.env.RINGKERNEL_CACHE_DIR = cache;
after(() => rmSync(cache, { recursive: true, force: true }));

const words = (...values: number[]): Uint8Array => new Uint8Array(new Uint32Array(values).buffer);
const unwords = (bytes: Uint8Array): number[] => [...new Uint32Array(bytes.slice().buffer)];

interface Target {
  readonly label: string;
  /** The transfer strategy every launch asks for (undefined: the backend's default). */
  readonly strategy?: 'dma';
  /** Messages in the seeded echo (default 20 000). */
  readonly echoCount?: number;
  /** Why the suite cannot run here, or undefined when it can. */
  readonly skip: () => string | undefined;
  readonly build: () => Promise<RingKernelRuntime>;
}

const targets: Target[] = [
  {
    label: 'CPU backend (the reference)',
    skip: () => undefined,
    build: () => RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build(),
  },
  ...([undefined, 'dma'] as const).map(
    (strategy): Target => ({
      label: strategy === undefined ? 'real GPU' : 'real GPU over dma',
      ...(strategy === undefined ? {} : { strategy }),
      // The bar on a device: 10⁶ messages echoed, nothing lost, under both strategies.
      echoCount: 1_000_000,
      skip: () => {
        if (realProbe.available) return undefined;
        if (requireGpu) assert.fail(`RINGKERNEL_REQUIRE_GPU=1 but CUDA is unavailable: ${realProbe.reason}`);
        return 'skipped: no CUDA device';
      },
      build: () => RingKernelRuntime.builder().backend('cuda').config({ workers: 1 }).build(),
    }),
  ),
  ...([undefined, 'dma'] as const).map(
    (strategy): Target => ({
      label:
        strategy === undefined
          ? 'emulated CUDA device (CPU threads stand in for the GPU)'
          : 'emulated CUDA device over dma (rings in device memory, copied by the native mirror thread)',
      ...(strategy === undefined ? {} : { strategy }),
      skip: emulatorMissing,
      build: () => {
        process.env.RINGKERNEL_LIBCUDA = EMULATOR;
        return RingKernelRuntime.builder().backend('cuda').config({ workers: 1 }).build();
      },
    }),
  ),
];

for (const target of targets) {
  describe(`kernels with CUDA handlers, on the ${target.label}`, () => {
    let runtime: RingKernelRuntime | undefined;
    const letters: DeadLetter[] = [];
    const skipped = target.skip();
    const strategy = target.strategy === undefined ? {} : { transferStrategy: target.strategy };
    before(async () => {
      if (skipped !== undefined) return;
      runtime = await target.build();
      runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    });
    after(async () => {
      await runtime?.shutdown();
      delete process.env.RINGKERNEL_LIBCUDA;
    });
    const run = (t: { skip(message: string): void }): RingKernelRuntime | undefined => {
      if (skipped !== undefined) {
        t.skip(skipped);
        return undefined;
      }
      return runtime;
    };

    it('runs handlers named by cuda.entry: two kernels from one source, each its own function, chained', async (t) => {
      const rt = run(t);
      if (rt === undefined) return;
      const triple = await rt.launch(TripleWords, 1, 1, { name: 'triple', autoActivate: true, ...strategy });
      const addTen = await rt.launch(AddTenWords, 1, 1, { name: 'add-ten', autoActivate: true, ...strategy });
      assert.deepEqual(unwords(await triple.call(words(1, 7, 0x5555_5556))), [3, 21, 2], 'u32 arithmetic wraps');
      assert.deepEqual(unwords(await addTen.call(words(1, 7))), [11, 17]);
      await rt.connect(triple, addTen);
      await triple.send(words(4, 5));
      assert.deepEqual(unwords(await addTen.receive(10_000)), [22, 25], 'tripled, then ten added');
      await triple.terminate();
      await addTen.terminate();
    });

    it('launches resident, answers calls, and echoes a seeded stream in order with nothing lost', async (t) => {
      const rt = run(t);
      if (rt === undefined) return;
      const kernel = await rt.launch(AddOneWords, 1, 1, {
        autoActivate: false,
        name: 'add-one',
        queueCapacity: 256,
        ...strategy,
      });
      assert.equal(kernel.status, 'Launched');
      assert.equal(kernel.metrics().transferStrategy, target.strategy ?? (rt.backend === 'cuda' ? 'mapped' : 'direct'));
      await kernel.activate();
      assert.deepEqual(unwords(await kernel.call(words(1, 2, 41))), [2, 3, 42]);
      const random = new Random(TEST_SEED);
      const total = target.echoCount ?? 20_000;
      const sent: number[] = [];
      const received: number[] = [];
      const receiving = (async () => {
        while (received.length < total) {
          const out = await kernel.receive();
          received.push(...unwords(out));
        }
      })();
      for (let i = 0; i < total; i++) {
        const value = random.int(0, 0xfff_ffff);
        sent.push(value + 1);
        await kernel.send(words(value));
      }
      await receiving;
      assert.deepEqual(received, sent);
      const metrics = kernel.metrics();
      assert.equal(metrics.messagesProcessed, total + 1);
      assert.equal(metrics.messagesFailed, 0);
      await kernel.terminate();
      assert.equal(kernel.status, 'Terminated');
    });

    it('pauses without leaving the device, then takes what queued meanwhile', async (t) => {
      const rt = run(t);
      if (rt === undefined) return;
      const kernel = await rt.launch(AddOneWords, 1, 1, { name: 'pausing', autoActivate: true, ...strategy });
      assert.deepEqual(unwords(await kernel.call(words(7))), [8]);
      await kernel.deactivate();
      assert.equal(kernel.status, 'Deactivated');
      for (let i = 0; i < 10; i++) await kernel.send(words(100 + i));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(kernel.tryReceive(), undefined, 'a paused kernel takes no input');
      assert.equal(kernel.metrics().messagesProcessed, 1);
      await kernel.activate();
      const back: number[] = [];
      while (back.length < 10) back.push(...unwords(await kernel.receive()));
      assert.deepEqual(
        back,
        Array.from({ length: 10 }, (_, i) => 101 + i),
      );
      await kernel.terminate();
    });

    it('reports a handler fault as a typed error on the call and a dead letter, and keeps going', async (t) => {
      const rt = run(t);
      if (rt === undefined) return;
      const kernel = await rt.launch(AddOneWords, 1, 1, { name: 'faulty', autoActivate: true, ...strategy });
      const before = letters.filter((letter) => letter.kernel === 'faulty').length;
      await assert.rejects(kernel.call(words(ADD_ONE_POISON)), (error: unknown) => error instanceof HandlerFailedError);
      assert.deepEqual(unwords(await kernel.call(words(1))), [2], 'the kernel goes on after a fault');
      assert.equal(kernel.metrics().messagesFailed, 1);
      const deadline = Date.now() + 5_000;
      while (letters.filter((letter) => letter.kernel === 'faulty').length === before && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const mine = letters.filter((letter) => letter.kernel === 'faulty').slice(before);
      assert.equal(mine.length, 1);
      assert.equal(mine[0]?.reason, 'handler-error');
      // The message itself, on every backend (a CUDA kernel sends it back whole as a DEAD_LETTER frame).
      assert.deepEqual(unwords(mine[0]?.payload ?? new Uint8Array(0)), [ADD_ONE_POISON]);
      await kernel.terminate();
    });

    it('holds outputs while the output ring is full, and loses none of them', async (t) => {
      const rt = run(t);
      if (rt === undefined) return;
      const kernel = await rt.launch(DoubleReading, 1, 1, {
        name: 'backpressure',
        queueCapacity: 8,
        autoActivate: true,
      });
      const count = 400;
      const sending = (async () => {
        for (let seq = 0; seq < count; seq++) await kernel.send({ sender: 3, seq, value: seq });
      })();
      // Nobody reads for a while: the output ring fills, the kernel holds, the input ring fills, send waits.
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.ok(kernel.metrics().messagesProcessed < count, 'the kernel is held by the full output ring');
      const totals: number[] = [];
      while (totals.length < count) {
        const out = await kernel.receive();
        assert.equal(out.seq, totals.length);
        totals.push(out.total);
      }
      await sending;
      assert.deepEqual(
        totals,
        Array.from({ length: count }, (_, seq) => seq * 2),
      );
      await kernel.terminate();
    });

    it('terminates without draining: what was queued becomes dead letters, counted', async (t) => {
      const rt = run(t);
      if (rt === undefined) return;
      const kernel = await rt.launch(DoubleReading, 1, 1, {
        autoActivate: false,
        name: 'discarding',
        queueCapacity: 64,
        ...strategy,
      });
      for (let seq = 0; seq < 20; seq++) await kernel.send({ sender: 9, seq, value: 1 });
      await kernel.terminate({ drain: false });
      assert.equal(kernel.status, 'Terminated');
      const deadline = Date.now() + 5_000;
      const mine = () => letters.filter((letter) => letter.kernel === 'discarding');
      while (mine().length < 20 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(mine().length, 20);
      assert.ok(mine().every((letter) => letter.reason === 'discarded-on-terminate'));
      const seqs = mine().map((letter) => Numbers.decode(letter.payload).seq);
      assert.deepEqual(
        seqs,
        Array.from({ length: 20 }, (_, seq) => seq),
      );
    });
  });
}

describe('the CUDA launch path refuses what it cannot do, with typed errors', () => {
  it('a CUDA-only kernel on the CPU backend', async () => {
    await using runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
    await assert.rejects(
      runtime.launch(CudaOnly, { autoActivate: false }),
      (error: unknown) => error instanceof BackendUnavailableError && /has only a CUDA handler/.test(error.message),
    );
  });

  it('a handler that does not compile, with the compiler log; a cache hit on the second launch; CUDA → CUDA link', (t) =>
    onEmulatedDevice(t, async (runtime) => {
      await assert.rejects(runtime.launch(BrokenCuda, { autoActivate: false }), (error: unknown) => {
        if (!(error instanceof CudaCompileError)) assert.fail(String(error));
        assert.equal(error.code, 'RK_CUDA_COMPILE_FAILED');
        assert.equal(error.compiler, 'g++');
        assert.match(error.log, /error/);
        return true;
      });
      const first = await runtime.launch(AddOneWords, 1, 1, { autoActivate: false, name: 'cached-1' });
      const built = readdirSync(cache).filter((file) => file.endsWith('.so'));
      assert.ok(built.length >= 1, 'the build is in the cache');
      const stamps = built.map((file) => statSync(join(cache, file)).mtimeMs);
      const second = await runtime.launch(AddOneWords, 1, 1, { name: 'cached-2', autoActivate: true });
      assert.deepEqual(
        built.map((file) => statSync(join(cache, file)).mtimeMs),
        stamps,
        'the second launch reused the cached build',
      );
      assert.deepEqual(unwords(await second.call(words(5))), [6]);
      // CUDA → CUDA: the first kernel's device loop writes the link ring the second one's device loop drains.
      await runtime.connect(first, second);
      await first.activate();
      await first.send(words(5, 10));
      assert.deepEqual(unwords(await second.receive(10_000)), [7, 12], 'one added by each kernel');
      await assert.rejects(
        runtime.launch(AddOneWords, 1, 1, { autoActivate: false, name: 'as-direct', transferStrategy: 'direct' }),
        (error: unknown) => error instanceof RangeError && /take 'mapped' .* or 'dma'/.test(error.message),
      );
    }));
});

describe('tracing a CUDA kernel: the device writes the processing spans (emulated device)', () => {
  it('a call is one trace: call on the host → process on the device (GPU timestamps) → receive', async (t) => {
    const receiver = await OtlpReceiver.start();
    try {
      await onEmulatedDevice(
        t,
        async (runtime) => {
          const kernel = await runtime.launch(AddOneWords, 1, 1, { name: 'traced', autoActivate: true });
          assert.deepEqual(unwords(await kernel.call(words(9))), [10]);
          const deadline = performance.now() + 10_000;
          let processing: ReceivedSpan | undefined;
          let call: ReceivedSpan | undefined;
          let receive: ReceivedSpan | undefined;
          while (performance.now() < deadline) {
            await runtime.tracing?.flush();
            call = receiver.named('call traced')[0];
            processing = receiver.named('process traced')[0];
            receive = receiver.named('receive traced')[0];
            if (call && processing && receive) break;
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          assert.ok(call && processing && receive, `spans: ${receiver.spans.map((s) => s.name).join(', ')}`);
          assert.equal(processing.traceId, call.traceId);
          assert.equal(processing.parentSpanId, call.spanId, 'the device span is parented by the host call span');
          assert.equal(receive.parentSpanId, processing.spanId, 'the host receive is parented by the device span');
          const ms = 1_000_000n;
          assert.ok(
            processing.startNs + ms >= call.startNs && processing.endNs <= call.endNs + ms,
            'process inside call',
          );
          assert.equal(processing.attributes['messaging.operation'], 'process');
          assert.equal(processing.attributes['messaging.message.id'], call.attributes['messaging.message.id']);
        },
        () =>
          RingKernelRuntime.builder()
            .backend('cuda')
            .config({ workers: 1 })
            .tracing({ endpoint: receiver.url, serviceName: 'cuda-trace', exportIntervalMs: 20 })
            .build(),
      );
    } finally {
      await receiver.close();
    }
  });
});

describe('a CUDA kernel with device state (emulated device: CPU threads stand in for the GPU)', () => {
  it('keeps state in device memory across messages; checkpoint copies it back between batches; restore resumes it', (t) =>
    onEmulatedDevice(t, async (runtime) => {
      const kernel = await runtime.launch(DeviceTotal, 1, 1, { name: 'totals', autoActivate: true });
      const random = new Random(TEST_SEED);
      let sum = 0;
      for (let seq = 0; seq < 200; seq++) {
        const value = random.int(0, 1000) / 8; // exact in binary: the sums compare exactly
        sum += value;
        await kernel.send({ sender: 1, seq, value });
        // Checkpoints taken while messages flow: each sees the state at rest between two batches.
        if (seq % 50 === 49) {
          const checkpoint = await kernel.checkpoint();
          const view = new DataView(checkpoint.state.buffer, checkpoint.state.byteOffset, checkpoint.state.byteLength);
          const count = Number(view.getBigUint64(0, true));
          assert.ok(count <= seq + 1, `${count} counted of ${seq + 1} sent`);
          assert.equal(checkpoint.state.byteLength, 16);
        }
      }
      const outputs = [];
      for (let i = 0; i < 200; i++) outputs.push(await kernel.receive());
      assert.deepEqual(
        outputs.map((o) => o.count),
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      assert.equal(outputs.at(-1)?.total, sum);
      const checkpoint = await kernel.checkpoint();
      const view = new DataView(checkpoint.state.buffer, checkpoint.state.byteOffset, 16);
      assert.equal(view.getBigUint64(0, true), 200n);
      assert.equal(view.getFloat64(8, true), sum);
      assert.equal(kernel.status, 'Active', 'a checkpoint leaves an active kernel active');
      await kernel.terminate();
      // A new kernel from the checkpoint: its device state starts where the old one's was.
      const resumed = await runtime.launch(DeviceTotal, 1, 1, {
        name: 'totals-2',
        autoActivate: true,
        restore: checkpoint,
      });
      const next = await resumed.call({ sender: 1, seq: 200, value: 2 });
      assert.equal(next.count, 201);
      assert.equal(next.total, sum + 2);
    }));
});

describe('kernel-to-kernel into a CUDA kernel (emulated device: CPU threads stand in for the GPU)', () => {
  for (const strategy of ['mapped', 'dma'] as const) {
    it(`a CPU stage feeds a ${strategy} CUDA kernel through a link ring: every message once, in order, under backpressure`, (t) =>
      onEmulatedDevice(t, async (runtime) => {
        const stage = await runtime.launch(AddOne, 1, 1, { name: `stage-${strategy}`, autoActivate: true });
        const totals = await runtime.launch(DeviceTotal, 1, 1, {
          name: `totals-${strategy}`,
          autoActivate: true,
          transferStrategy: strategy,
        });
        // A small link ring: the CPU stage fills it and parks; the device thread rings its room doorbell.
        await runtime.connect(stage, totals, { queueCapacity: 8 });
        const random = new Random(TEST_SEED);
        const count = 2_000;
        const values = Array.from({ length: count }, () => random.int(0, 1000) / 4);
        const outputs: { seq: number; count: number; total: number }[] = [];
        const receiving = (async () => {
          while (outputs.length < count) {
            const out = await totals.receive(20_000);
            outputs.push({ seq: out.seq, count: out.count, total: out.total });
          }
        })();
        for (let seq = 0; seq < count; seq++) await stage.send({ sender: 4, seq, value: values[seq] as number });
        await receiving;
        assert.deepEqual(
          outputs.map((o) => o.seq),
          Array.from({ length: count }, (_, seq) => seq),
        );
        assert.deepEqual(
          outputs.map((o) => o.count),
          Array.from({ length: count }, (_, seq) => seq + 1),
        );
        let sum = 0;
        assert.deepEqual(
          outputs.map((o) => o.total),
          values.map((value) => (sum += value + 1)),
          'each value went through the CPU stage (+1) before the device summed it',
        );
        assert.equal(totals.metrics().messagesProcessed, count);
        await stage.terminate();
        await totals.terminate();
      }));
  }
});

describe('kernel-to-kernel out of a CUDA kernel (emulated device: CPU threads stand in for the GPU)', () => {
  it('a CUDA kernel feeds a CPU stage through a link ring: its outputs go there, not to the host; calls still answer the caller', (t) =>
    onEmulatedDevice(t, async (runtime) => {
      const totals = await runtime.launch(DeviceTotal, 1, 1, { name: 'gpu-totals', autoActivate: true });
      const relay = await runtime.launch(TotalRelay, 1, 1, { name: 'cpu-relay', autoActivate: true });
      await runtime.connect(totals, relay, { queueCapacity: 8 });
      const count = 2_000;
      const received: { seq: number; count: number }[] = [];
      const receiving = (async () => {
        while (received.length < count) {
          const out = await relay.receive(20_000);
          received.push({ seq: out.seq, count: out.count });
        }
      })();
      for (let seq = 0; seq < count; seq++) await totals.send({ sender: 6, seq, value: 1 });
      await receiving;
      assert.deepEqual(
        received.map((o) => o.seq),
        Array.from({ length: count }, (_, seq) => seq),
      );
      assert.deepEqual(
        received.map((o) => o.count),
        Array.from({ length: count }, (_, seq) => seq + 1),
      );
      assert.equal(totals.tryReceive(), undefined, 'linked outputs do not reach the host');
      // A call's response goes to its caller, not down the link.
      const answer = await totals.call({ sender: 6, seq: count, value: 1 });
      assert.equal(answer.count, count + 1);
      await totals.terminate();
      await relay.terminate();
    }));
});

describe('integrity on a CUDA kernel (emulated device: CPU threads stand in for the GPU)', () => {
  it('checks every input CRC32-C and checksums every output; a frame corrupted in shared memory is dead-lettered', (t) =>
    onEmulatedDevice(t, async (runtime, letters) => {
      const kernel = await runtime.launch(DoubleReading, 1, 1, {
        autoActivate: false,
        name: 'checked',
        integrity: true,
      });
      // Launched, not active: the frames wait in the ring, where a stray write flips a payload bit of the second.
      for (let seq = 0; seq < 3; seq++) assert.ok(kernel.trySend({ sender: 8, seq, value: seq + 1 }));
      const ring = new DataView(kernel.inputMemory.ring);
      const second = 8 + ((ring.getUint32(8, true) + 7) & ~7);
      ring.setUint8(second + FrameHeader.SIZE, ring.getUint8(second + FrameHeader.SIZE) ^ 0x10);
      await kernel.activate();
      // The outputs reach the host through its consumer, which rejects any frame whose checksum is wrong.
      const outputs = [await kernel.receive(5_000), await kernel.receive(5_000)];
      assert.deepEqual(
        outputs.map((o) => [o.seq, o.total]),
        [
          [0, 2],
          [2, 6],
        ],
      );
      await eventually(() => assert.equal(letters.length, 1));
      assert.equal(letters[0]?.reason, 'malformed-frame');
      assert.equal(letters[0]?.error.code, 'RK_FRAME_BAD_CHECKSUM');
      // The device knows the frame's extent, so it sends it back whole: the letter carries the corrupted bytes.
      const returned = Numbers.decode(letters[0]?.payload as Uint8Array);
      assert.deepEqual([returned.sender, returned.seq, returned.value], [8 ^ 0x10, 1, 2]);
      assert.ok((letters[0]?.messageId ?? 0) > 0, 'with the message id it was sent with');
      assert.equal(kernel.metrics().messagesDropped, 1);
      // A handler failure under integrity: its dead-letter frame is checksummed too, and arrives whole.
      await assert.rejects(
        kernel.call({ sender: 8, seq: 3, value: -1 }),
        (error: unknown) => error instanceof HandlerFailedError,
      );
      await eventually(() => assert.equal(letters.length, 2));
      assert.equal(letters[1]?.reason, 'handler-error');
      assert.equal(Numbers.decode(letters[1]?.payload as Uint8Array).value, -1);
      await kernel.terminate();
    }));

  it('seeded: frames corrupted every way the device checks come back whole, once each, with the right code', (t) =>
    onEmulatedDevice(t, async (runtime, letters) => {
      const kernel = await runtime.launch(DoubleReading, 1, 1, {
        autoActivate: false,
        name: 'fuzzed',
        integrity: true,
        queueCapacity: 64,
      });
      const ring = new DataView(kernel.inputMemory.ring);
      const storage = kernel.inputMemory.ring.byteLength - RingOffset.DATA;
      // Bytes of the input ring's data area, wrapping as the ring does.
      const at = (offset: number): number => RingOffset.DATA + (offset % storage);
      const bytesAt = (offset: number, length: number): number[] =>
        Array.from({ length }, (_, i) => ring.getUint8(at(offset + i)));
      const corruptions = {
        magic: {
          code: 'RK_FRAME_BAD_MAGIC',
          apply: (f: number) => ring.setUint32(at(f + FrameHeader.MAGIC), 0xdeadbeef, true),
        },
        version: {
          code: 'RK_FRAME_BAD_VERSION',
          apply: (f: number) => ring.setUint16(at(f + FrameHeader.VERSION), 99, true),
        },
        size: {
          code: 'RK_FRAME_PAYLOAD_SIZE_MISMATCH',
          apply: (f: number) => ring.setUint32(at(f + FrameHeader.PAYLOAD_SIZE), 8, true),
        },
        checksum: {
          code: 'RK_FRAME_BAD_CHECKSUM',
          apply: (f: number) =>
            ring.setUint8(at(f + FrameHeader.CHECKSUM), ring.getUint8(at(f + FrameHeader.CHECKSUM)) ^ 1),
        },
        payload: {
          code: 'RK_FRAME_BAD_CHECKSUM',
          apply: (f: number) =>
            ring.setUint8(at(f + FrameHeader.SIZE + 9), ring.getUint8(at(f + FrameHeader.SIZE + 9)) ^ 0x40),
        },
      } as const;
      const kinds = Object.keys(corruptions) as (keyof typeof corruptions)[];
      const random = new Random(TEST_SEED);
      let seq = 0;
      let corruptedTotal = 0;
      for (let round = 0; round < 12; round++) {
        // Paused (launched, then deactivated): the frames wait in the ring, damaged before the device reads them.
        if (kernel.status === 'Active') await kernel.deactivate();
        const expectedOutputs: number[] = [];
        const expectedLetters: { seq: number; code: string; payload: number[]; messageId: bigint }[] = [];
        const count = random.int(5, 30);
        for (let i = 0; i < count; i++, seq++) {
          const frame = ring.getUint32(RingOffset.WRITE_INDEX, true);
          assert.ok(kernel.trySend({ sender: 5, seq, value: seq + 0.5 }));
          if (random.next() >= 0.3) {
            expectedOutputs.push(seq);
            continue;
          }
          const kind = kinds[random.int(0, kinds.length - 1)] as keyof typeof corruptions;
          corruptions[kind].apply(frame);
          expectedLetters.push({
            seq,
            code: corruptions[kind].code,
            // What the device sends back: the payload as it found it (a flipped bit included).
            payload: bytesAt(frame + FrameHeader.SIZE, Numbers.encodedSize({ sender: 0, seq: 0, value: 0 })),
            messageId: ring.getBigUint64(at(frame + FrameHeader.MESSAGE_ID), true),
          });
        }
        corruptedTotal += expectedLetters.length;
        const lettersBefore = letters.length;
        await kernel.activate();
        const outputs: number[] = [];
        while (outputs.length < expectedOutputs.length) outputs.push((await kernel.receive(5_000)).seq);
        assert.deepEqual(outputs, expectedOutputs, `round ${round}: every intact frame answered, in order`);
        await eventually(() => assert.equal(letters.length - lettersBefore, expectedLetters.length, `round ${round}`));
        const got = letters.slice(lettersBefore);
        assert.deepEqual(
          got.map((l) => ({
            reason: l.reason,
            code: l.error.code,
            payload: [...l.payload],
            messageId: BigInt(l.messageId),
          })),
          expectedLetters.map((e) => ({
            reason: 'malformed-frame',
            code: e.code,
            payload: e.payload,
            messageId: e.messageId,
          })),
          `round ${round}`,
        );
      }
      assert.ok(corruptedTotal >= 30, `${corruptedTotal} frames corrupted`);
      assert.equal(kernel.metrics().messagesDropped, corruptedTotal);
      // Nothing was reported twice, or without its bytes.
      assert.equal(letters.filter((l) => l.payload.length === 0).length, 0);
      await kernel.terminate();
    }));
});
