/**
 * The CUDA backend on a real GPU: the driver bindings against libcuda, and the persistent kernel template with the
 * add-one handler running resident on the device over SharedArrayBuffer rings registered with cuMemHostRegister
 * (the `mapped` strategy's memory, driven here by hand: the runtime's CUDA launch path is not built yet).
 *
 * Without a CUDA device every test says "skipped: no CUDA device" (node:test skip, never a silent pass).
 * `npm run test:gpu` sets RINGKERNEL_REQUIRE_GPU=1, which turns that skip into a failure: on a GPU machine the
 * suite must really run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ControlBlock,
  type CudaDeviceInfo,
  type CudaDriver,
  createFrameRing,
  createTelemetryRing,
  FrameConsumer,
  FrameProducer,
  type MessageCodec,
  probeCuda,
  requireCudaDriver,
  SpanRecordOffset,
  SpanRecordReader,
} from '../src/index.js';
import { addOneHandlerPath, compilePersistentKernel, hasNvcc } from './support/cuda-ptx.js';
import { Random, TEST_SEED } from './support/random.js';

const probe = probeCuda();
const requireGpu = process.env.RINGKERNEL_REQUIRE_GPU === '1';

/** Skips (or, under `npm run test:gpu`, fails) when there is no device; returns whether the test may go on. */
function needsDevice(t: { skip(message: string): void }, alsoNvcc = false): boolean {
  if (!probe.available) {
    if (requireGpu) assert.fail(`RINGKERNEL_REQUIRE_GPU=1 but CUDA is unavailable: ${probe.reason}`);
    t.skip('skipped: no CUDA device');
    return false;
  }
  if (alsoNvcc && !hasNvcc) {
    if (requireGpu) assert.fail('RINGKERNEL_REQUIRE_GPU=1 but nvcc is not installed (needed to build the PTX)');
    t.skip('skipped: nvcc not installed');
    return false;
  }
  return true;
}

/** Frames of u32 words: the add-one handler's input and output. */
const Words: MessageCodec<Uint32Array, Uint32Array> = {
  name: 'test.words',
  typeId: 0x5700,
  encodedSize: (value) => value.byteLength,
  encodeInto: (_view, bytes, offset, value) =>
    bytes.set(new Uint8Array(value.buffer, value.byteOffset, value.byteLength), offset),
  view: (_view, bytes, offset, size) => new Uint32Array(bytes.slice(offset, offset + size).buffer),
};

/** sizeof(rk_frame_slot) in persistent_kernel.cu; rk_persistent_scratch_bytes there is the formula below. */
const FRAME_SLOT_BYTES = 48;
const scratchBytes = (maxFrameLength: number, batchMax: number) =>
  64 + batchMax * (FRAME_SLOT_BYTES + 2 * ((maxFrameLength + 7) & ~7));

describe('CUDA on a real device', () => {
  let driver: CudaDriver;
  let info: CudaDeviceInfo;
  let device = 0;

  before(() => {
    if (!probe.available) return;
    driver = requireCudaDriver();
    driver.init();
    device = driver.device(0);
    info = driver.deviceInfo(0);
    driver.primaryContextRetain(device);
  });
  after(() => {
    if (probe.available) driver.primaryContextRelease(device);
  });

  it('reads the device: name, compute capability, SMs, memory, cooperative launch', (t) => {
    if (!needsDevice(t)) return;
    assert.ok(info.name.length > 0);
    assert.ok(info.computeCapability.major >= 7, `compute capability ${info.computeCapability.major}`);
    assert.ok(info.multiprocessorCount > 0);
    assert.ok(info.totalMemoryBytes > 1n << 30n);
    assert.ok(driver.driverVersion() >= 12_000);
    t.diagnostic(
      `${info.name}: sm_${info.computeCapability.major}${info.computeCapability.minor}, ${info.multiprocessorCount} SMs`,
    );
  });

  it('copies host → device → host through a stream without changing a byte', (t) => {
    if (!needsDevice(t)) return;
    const random = new Random(TEST_SEED);
    const bytes = new Uint8Array(1 << 16).map(() => random.int(0, 255));
    const back = new Uint8Array(bytes.length);
    const pointer = driver.memAlloc(bytes.length);
    const stream = driver.streamCreate();
    try {
      driver.memcpyHtoDAsync(pointer, bytes, stream);
      driver.memcpyDtoHAsync(back, pointer, stream);
      driver.streamSynchronize(stream);
      assert.deepEqual(back, bytes);
    } finally {
      driver.streamDestroy(stream);
      driver.memFree(pointer);
    }
  });

  it('runs the persistent add-one kernel: echo in order, pause, handler fault, full output ring, terminate', async (t) => {
    if (!needsDevice(t, true)) return;
    const build = compilePersistentKernel(
      addOneHandlerPath,
      `sm_${info.computeCapability.major}${info.computeCapability.minor}`,
    );
    assert.ok(build.ok, build.ok ? '' : build.stderr);
    const module = driver.moduleLoadData(build.ptx);
    const fn = driver.moduleGetFunction(module, 'rk_persistent_kernel');
    const maxPayloadSize = 256;
    const input = createFrameRing({ capacityBytes: 64 * 1024, maxPayloadSize });
    const output = createFrameRing({ capacityBytes: 16 * 1024, maxPayloadSize });
    // cuMemHostRegister pins whole pages: give the 128-byte block pages of its own (a large SAB is page-aligned).
    const fresh = ControlBlock.create(7);
    const pinned = new SharedArrayBuffer(64 * 1024);
    new Uint8Array(pinned).set(new Uint8Array(fresh.buffer));
    const control = new ControlBlock(pinned);
    const controlBytes = new Uint8Array(control.buffer);
    const inputBytes = new Uint8Array(input.ring);
    const outputBytes = new Uint8Array(output.ring);
    const producer = new FrameProducer(input);
    const consumer = new FrameConsumer(output);
    const maxFrameLength = 96 + maxPayloadSize;
    const batchMax = 64;
    const scratch = driver.memAlloc(scratchBytes(maxFrameLength, batchMax));
    const stream = driver.streamCreate();
    const controlPtr = driver.memHostRegister(controlBytes);
    const inputPtr = driver.memHostRegister(inputBytes);
    const outputPtr = driver.memHostRegister(outputBytes);
    const epochUnixMs = Date.now();
    const telemetry = createTelemetryRing(1024, epochUnixMs);
    const telemetryBytes = new Uint8Array(telemetry);
    const telemetryPtr = driver.memHostRegister(telemetryBytes);
    control.setActive(true);
    const cooperative = info.cooperativeLaunch;
    // One block per SM must fit for the cooperative launch (all blocks co-resident).
    assert.ok(driver.maxActiveBlocksPerMultiprocessor(fn, 128) >= 1, 'a 128-thread block fits on an SM');
    driver.launchKernel(
      fn,
      { grid: [cooperative ? info.multiprocessorCount : 1, 1, 1], block: [128, 1, 1], stream, cooperative },
      [
        { type: 'pointer', value: controlPtr },
        { type: 'pointer', value: inputPtr },
        { type: 'u32', value: inputBytes.length - 8 },
        { type: 'pointer', value: outputPtr },
        { type: 'u32', value: outputBytes.length - 8 },
        { type: 'pointer', value: telemetryPtr },
        { type: 'pointer', value: scratch },
        { type: 'u32', value: maxFrameLength },
        { type: 'u32', value: batchMax },
        // %globaltimer is driver-synchronised Unix time on Linux: no offset to Unix ns, minus the epoch for spans.
        { type: 'i64', value: 0n },
        { type: 'i64', value: -BigInt(epochUnixMs) * 1_000_000n },
        { type: 'pointer', value: 0n },
      ],
    );
    const random = new Random(TEST_SEED);
    const received: Uint32Array[] = [];
    const drain = () => consumer.drain((frame) => void received.push(new Uint32Array(frame.payload.slice().buffer)));
    const until = async (what: string, done: () => boolean, ms = 20_000) => {
      const deadline = Date.now() + ms;
      while (!done()) {
        if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
        await sleep(1);
      }
    };
    try {
      // 1. Echo 10 000 messages, in order, nothing lost.
      const sent: Uint32Array[] = [];
      for (let i = 0; i < 10_000; i++) {
        const words = Uint32Array.from({ length: 4 }, () => random.int(0, 0xffff_fffe));
        while (!producer.tryWrite(Words, words)) {
          drain();
          await sleep(0);
        }
        sent.push(words);
        drain();
      }
      await until('10 000 outputs', () => {
        drain();
        return received.length >= sent.length;
      });
      assert.equal(received.length, sent.length);
      for (let i = 0; i < sent.length; i++) {
        assert.deepEqual(
          received[i],
          (sent[i] as Uint32Array).map((w) => w + 1),
          `message ${i}`,
        );
      }
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
      received.length = 0;
      control.setActive(true);
      await until('outputs after resume', () => {
        drain();
        return received.length === 10;
      });

      // 3. A handler fault is counted and reported through the control block.
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
        drain();
        return received.length === written;
      });
      assert.deepEqual(
        received.map((w) => w[0]),
        Array.from({ length: written }, (_, i) => i + 1),
      );

      // 5. Sampled frames get a process span record with GPU times; the unsampled ones above wrote none.
      const spans = new SpanRecordReader(telemetry);
      assert.equal(spans.pending, 0, 'no span for unsampled frames');
      const traceId = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
      const spanIds = Array.from({ length: 5 }, (_, k) => Uint8Array.from({ length: 8 }, (_, i) => 0x10 * (k + 1) + i));
      received.length = 0;
      for (const spanId of spanIds) {
        assert.ok(producer.tryWrite(Words, Uint32Array.of(1), { traceId, spanId, traceFlags: 1 }));
      }
      await until('traced outputs', () => {
        drain();
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
      driver.streamSynchronize(stream);
    } finally {
      if (!control.hasTerminated) control.requestTermination(2);
      driver.streamSynchronize(stream);
      driver.streamDestroy(stream);
      driver.memHostUnregister(controlBytes);
      driver.memHostUnregister(inputBytes);
      driver.memHostUnregister(outputBytes);
      driver.memHostUnregister(telemetryBytes);
      driver.memFree(scratch);
      driver.moduleUnload(module);
    }
  });
});
