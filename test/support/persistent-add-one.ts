/**
 * The persistent add-one kernel driven by hand (the runtime's CUDA launch path is not used): SharedArrayBuffer rings
 * and a control block registered with cuMemHostRegister (the `mapped` strategy's memory), the template launched
 * resident, frames written and read by FrameProducer/FrameConsumer. One body for both devices: a real GPU runs the
 * PTX build (test/cuda-gpu.test.ts), the CUDA driver emulator runs the host build of the same .cu file on CPU threads
 * (test/cuda-emulator.test.ts).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ControlBlock,
  type CudaDriver,
  createFrameRing,
  createTelemetryRing,
  FrameConsumer,
  FrameProducer,
  type MessageCodec,
  PinnedHostMemory,
  SpanRecordOffset,
  SpanRecordReader,
} from '../../src/internal.js';
import { Random, TEST_SEED } from './random.js';

/** Frames of u32 words: the add-one handler's input and output. */
export const Words: MessageCodec<Uint32Array, Uint32Array> = {
  name: 'test.words',
  typeId: 0x5700,
  encodedSize: (value) => value.byteLength,
  encodeInto: (_view, bytes, offset, value) =>
    bytes.set(new Uint8Array(value.buffer, value.byteOffset, value.byteLength), offset),
  view: (_view, bytes, offset, size) => new Uint32Array(bytes.slice(offset, offset + size).buffer),
};

/** sizeof(rk_frame_slot) in persistent_kernel.cu; rk_persistent_scratch_bytes there is the formula below. */
export const FRAME_SLOT_BYTES = 48;
export const scratchBytes = (maxFrameLength: number, batchMax: number) =>
  64 + batchMax * (FRAME_SLOT_BYTES + 2 * ((maxFrameLength + 7) & ~7));

/** How to launch the template. */
export interface ResidentLaunch {
  /** Blocks (x); more than one needs `cooperative` (the template refuses otherwise). */
  readonly grid: number;
  /** Threads per block (x). */
  readonly block: number;
  readonly cooperative: boolean;
  /** Output ring bytes (default 16 KiB: small, so the backpressure step fills it). */
  readonly outputBytes?: number;
  /** Input ring bytes (default 64 KiB). */
  readonly inputBytes?: number;
}

/** Waits until `done()` (polling every millisecond), failing with `what` after `ms`. */
export async function until(what: string, done: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

/**
 * The template with the add-one handler, resident on a device: its rings, control block, telemetry ring and
 * scratch, registered and launched. `close()` terminates it (if it still runs), waits for its stream and frees
 * everything.
 */
export class ResidentKernel {
  readonly driver: CudaDriver;
  readonly control: ControlBlock;
  readonly producer: FrameProducer;
  readonly consumer: FrameConsumer;
  readonly telemetry: SharedArrayBuffer;
  readonly stream: bigint;
  readonly function: bigint;
  readonly module: bigint;
  readonly #registered: Uint8Array[];
  #pinned: PinnedHostMemory | undefined;
  readonly #scratch: bigint;

  private constructor(driver: CudaDriver, image: string, launch: ResidentLaunch) {
    this.driver = driver;
    this.module = driver.moduleLoadData(image);
    this.function = driver.moduleGetFunction(this.module, 'rk_persistent_kernel');
    const maxPayloadSize = 256;
    const input = createFrameRing({ capacityBytes: launch.inputBytes ?? 64 * 1024, maxPayloadSize });
    const output = createFrameRing({ capacityBytes: launch.outputBytes ?? 16 * 1024, maxPayloadSize });
    // cuMemHostRegister pins whole pages: give the 128-byte block pages of its own (a large SAB is page-aligned).
    const fresh = ControlBlock.create(7);
    const pinned = new SharedArrayBuffer(64 * 1024);
    new Uint8Array(pinned).set(new Uint8Array(fresh.buffer));
    this.control = new ControlBlock(pinned);
    const controlBytes = new Uint8Array(this.control.buffer);
    const inputBytes = new Uint8Array(input.ring);
    const outputBytes = new Uint8Array(output.ring);
    this.producer = new FrameProducer(input);
    this.consumer = new FrameConsumer(output);
    const maxFrameLength = 96 + maxPayloadSize;
    const batchMax = 64;
    this.#scratch = driver.memAlloc(scratchBytes(maxFrameLength, batchMax));
    this.stream = driver.streamCreate();
    const epochUnixMs = Date.now();
    this.telemetry = createTelemetryRing(1024, epochUnixMs);
    const telemetryBytes = new Uint8Array(this.telemetry);
    this.#registered = [controlBytes, inputBytes, outputBytes, telemetryBytes];
    // Small SharedArrayBuffers share pages, and the driver pins whole pages: the runtime's registry registers
    // each page once.
    this.#pinned = PinnedHostMemory.open(driver, [driver.device(0)]);
    const [controlPtr, inputPtr, outputPtr, telemetryPtr] = this.#registered.map((bytes) =>
      (this.#pinned as PinnedHostMemory).pin(bytes),
    ) as [bigint, bigint, bigint, bigint];
    this.control.setActive(true);
    // All blocks must be co-resident for the cooperative launch.
    assert.ok(
      driver.maxActiveBlocksPerMultiprocessor(this.function, launch.block) >= 1,
      `a ${launch.block}-thread block fits on an SM`,
    );
    driver.launchKernel(
      this.function,
      { grid: [launch.grid, 1, 1], block: [launch.block, 1, 1], stream: this.stream, cooperative: launch.cooperative },
      [
        { type: 'pointer', value: controlPtr },
        { type: 'pointer', value: inputPtr },
        { type: 'u32', value: inputBytes.length - 8 },
        { type: 'pointer', value: outputPtr },
        { type: 'u32', value: outputBytes.length - 8 },
        { type: 'pointer', value: telemetryPtr },
        { type: 'pointer', value: this.#scratch },
        { type: 'u32', value: maxFrameLength },
        { type: 'u32', value: batchMax },
        // %globaltimer is driver-synchronised Unix time on Linux: no offset to Unix ns, minus the epoch for spans.
        { type: 'i64', value: 0n },
        { type: 'i64', value: -BigInt(epochUnixMs) * 1_000_000n },
        { type: 'pointer', value: 0n }, // user_state
        { type: 'pointer', value: 0n }, // links: none
        { type: 'pointer', value: 0n }, // routes: none
      ],
    );
  }

  /** Loads `image` (PTX on a GPU, an emulated-device image on the emulator) and launches the template resident. */
  static launch(driver: CudaDriver, image: string, launch: ResidentLaunch): ResidentKernel {
    return new ResidentKernel(driver, image, launch);
  }

  /** Reads every output frame there is, appending its words to `into`. */
  drain(into: Uint32Array[]): void {
    this.consumer.drain((frame) => void into.push(new Uint32Array(frame.payload.slice().buffer)));
  }

  /**
   * Sends `count` seeded 4-word messages (never 0xFFFFFFFF, the handler's fault value), reading outputs as it goes,
   * and checks that every output came back once, in order, with each word plus one.
   */
  async echo(count: number, seed = TEST_SEED): Promise<void> {
    const random = new Random(seed);
    const sent: Uint32Array[] = [];
    const received: Uint32Array[] = [];
    for (let i = 0; i < count; i++) {
      const words = Uint32Array.from({ length: 4 }, () => random.int(0, 0xffff_fffe));
      while (!this.producer.tryWrite(Words, words)) {
        this.drain(received);
        await sleep(0);
      }
      sent.push(words);
      this.drain(received);
    }
    await until(`${count} outputs`, () => {
      this.drain(received);
      return received.length >= sent.length;
    });
    assert.equal(received.length, sent.length);
    for (let i = 0; i < sent.length; i++) {
      const expected = (sent[i] as Uint32Array).map((w) => w + 1);
      // One deepEqual per message is slow at 10⁵: compare cheaply, explain only a mismatch.
      const got = received[i] as Uint32Array;
      if (got.length !== expected.length || got.some((w, k) => w !== expected[k])) {
        assert.deepEqual(got, expected, `message ${i}`);
      }
    }
  }

  /** Terminates the kernel (if it still runs), waits for its stream, unregisters and frees everything. */
  close(): void {
    if (!this.control.hasTerminated) this.control.requestTermination(2);
    this.driver.streamSynchronize(this.stream);
    this.driver.streamDestroy(this.stream);
    for (const bytes of this.#registered) this.#pinned?.unpin(bytes);
    this.driver.memFree(this.#scratch);
    this.driver.moduleUnload(this.module);
  }
}

/**
 * Echo in order (10 000 messages), pause via is_active (stays resident), a handler fault reported through the
 * control block, a full output ring held and delivered, span records for sampled frames only, terminate.
 */
export async function runPersistentAddOneScenario(
  driver: CudaDriver,
  image: string,
  launch: ResidentLaunch,
): Promise<void> {
  const kernel = ResidentKernel.launch(driver, image, launch);
  const { control, producer } = kernel;
  const received: Uint32Array[] = [];
  try {
    // 1. Echo 10 000 messages, in order, nothing lost.
    await kernel.echo(10_000);
    assert.equal(control.messagesProcessed, 10_000n);
    assert.ok(control.heartbeatUs > 0, 'heartbeat');

    // 2. Paused: stays resident, consumes nothing; resumed: consumes.
    control.setActive(false);
    await sleep(20);
    const before = control.messagesReceived;
    for (let i = 0; i < 10; i++) assert.ok(producer.tryWrite(Words, Uint32Array.of(i)));
    await sleep(100);
    assert.equal(control.messagesReceived, before);
    assert.equal(control.hasTerminated, false);
    control.setActive(true);
    await until('outputs after resume', () => {
      kernel.drain(received);
      return received.length === 10;
    });

    // 3. A handler fault is counted and reported through the control block (with no route table, the kernel has
    //    no dead-letter ring: the runtime's kernels do; see test/cuda-runtime.test.ts).
    assert.ok(producer.tryWrite(Words, Uint32Array.of(0xffff_ffff)));
    await until('the fault', () => control.messagesFailed === 1n);
    assert.equal(control.lastErrorCode, 201); // RK_E_VALUE_OUT_OF_RANGE

    // 4. Output ring full: the kernel holds outputs (never overwrites), then delivers every one.
    received.length = 0;
    let written = 0;
    let stuckSince = Date.now();
    while (Date.now() - stuckSince < 300) {
      if (producer.tryWrite(Words, Uint32Array.of(written))) {
        written++;
        stuckSince = Date.now();
      } else await sleep(1);
    }
    assert.ok(written * 104 > 16 * 1024, `wrote ${written} frames: more than the output ring holds`);
    await until('all held outputs', () => {
      kernel.drain(received);
      return received.length === written;
    });
    assert.deepEqual(
      received.map((w) => w[0]),
      Array.from({ length: written }, (_, i) => i + 1),
    );

    // 5. Sampled frames get a process span record with device times; the unsampled ones above wrote none.
    const spans = new SpanRecordReader(kernel.telemetry);
    assert.equal(spans.pending, 0, 'no span for unsampled frames');
    const traceId = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    const spanIds = Array.from({ length: 5 }, (_, k) => Uint8Array.from({ length: 8 }, (_, i) => 0x10 * (k + 1) + i));
    received.length = 0;
    for (const spanId of spanIds) {
      assert.ok(producer.tryWrite(Words, Uint32Array.of(1), { traceId, spanId, traceFlags: 1 }));
    }
    await until('traced outputs', () => {
      kernel.drain(received);
      return received.length === spanIds.length;
    });
    const records: { parent: string; trace: string; kind: number; kernel: number; start: bigint; end: bigint }[] = [];
    spans.drain((view, at) => {
      const bytes = new Uint8Array(view.buffer, at, SpanRecordOffset.SIZE);
      records.push({
        trace: Buffer.from(bytes.subarray(0, 16)).toString('hex'),
        parent: Buffer.from(
          bytes.subarray(SpanRecordOffset.PARENT_SPAN_ID, SpanRecordOffset.PARENT_SPAN_ID + 8),
        ).toString('hex'),
        kind: view.getUint8(at + SpanRecordOffset.KIND),
        kernel: view.getUint32(at + SpanRecordOffset.KERNEL, true),
        start: view.getBigUint64(at + SpanRecordOffset.START_NS, true),
        end: view.getBigUint64(at + SpanRecordOffset.END_NS, true),
      });
    });
    assert.deepEqual(
      records.map((r) => [r.trace, r.parent, r.kind, r.kernel]),
      spanIds.map((id) => [Buffer.from(traceId).toString('hex'), Buffer.from(id).toString('hex'), 3, 7]),
    );
    for (const r of records) {
      assert.ok(r.end >= r.start, 'end after start');
      // Times are ns since the ring's epoch: within the last minute.
      assert.ok(r.start < 60_000_000_000n, `start ${r.start} ns after the epoch`);
    }

    // 6. Terminate: finish, then exit.
    control.requestTermination(1);
    await until('has_terminated', () => control.hasTerminated, 5_000);
    driver.streamSynchronize(kernel.stream);
  } finally {
    kernel.close();
  }
}
