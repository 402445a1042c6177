/**
 * The CUDA backend on the emulated device: CPU threads stand in for the GPU, because no GPU can exist on these
 * machines or on CI. The driver bindings (src/backends/cuda/driver.ts) run against ringkernel's CUDA driver
 * emulator (native/build/libcuda-emu.so, native/cuda/emu/libcuda_emu.c) and the persistent-kernel template runs as
 * a host build of the same .cu file the GPU runs as PTX (src/backends/cuda/emulated-build.ts): driver binding →
 * module load → launch → mapped SharedArrayBuffer rings → lifecycle flags → terminate, for real, on CPU threads.
 * What this cannot prove is anything about a GPU's memory model, occupancy or speed: test/cuda-gpu.test.ts does
 * that on a device. Every test name says "emulated device".
 *
 * Skips with the reason when the emulator was not built (no C compiler at install) or g++ is missing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CuDeviceP2PAttribute,
  type CudaDriver,
  emulatorLibraryPath,
  loadCudaDriver,
} from '../src/backends/cuda/driver.js';
import { buildEmulatedKernel, EMULATED_IMAGE_PREFIX, type EmulatedBuild } from '../src/backends/cuda/emulated-build.js';
import { CudaError, FRAME_MAGIC, FRAME_VERSION, FrameFlags, FrameHeader, probeCuda } from '../src/internal.js';
import { addOneHandlerPath, repoRoot } from './support/cuda-ptx.js';
import { ResidentKernel, runPersistentAddOneScenario, until, Words } from './support/persistent-add-one.js';

const EMULATED = 'emulated device: CPU threads stand in for the GPU';
const emulator = emulatorLibraryPath();
const hasGxx = (() => {
  const result = spawnSync(process.env.CXX || 'g++', ['--version'], { encoding: 'utf8' });
  return result.error === undefined && result.status === 0;
})();
const skipReason =
  emulator === undefined
    ? 'skipped: the CUDA driver emulator is not built (native/build/libcuda-emu.so; no C compiler at install?)'
    : !hasGxx
      ? 'skipped: g++ not installed (needed for the emulated-device build of the template)'
      : undefined;

// Before the first loadCudaDriver in this process (it caches per path), and before cuInit reads the device count.
if (emulator !== undefined) process.env.RINGKERNEL_LIBCUDA = emulator;
process.env.RINGKERNEL_EMU_DEVICES = '2';

const work = mkdtempSync(join(tmpdir(), 'ringkernel-emu-'));
after(() => rmSync(work, { recursive: true, force: true }));

function emulatorDriver(): CudaDriver {
  const load = loadCudaDriver();
  assert.ok(load.available, load.available ? '' : load.reason);
  return load.driver;
}

/** Asserts that `fn` throws a CudaError with `name`. */
function throwsCuda(fn: () => unknown, operation: string, name: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof CudaError, String(error));
    assert.equal(error.operation, operation);
    assert.equal(error.cudaErrorName, name);
    return true;
  });
}

describe(`CUDA driver emulator: lifecycle errors (${EMULATED})`, () => {
  it('emulated device: says NOT_INITIALIZED before cuInit and INVALID_CONTEXT without a current context', (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const driver = emulatorDriver();
    assert.equal(driver.emulated, true);
    throwsCuda(() => driver.deviceCount(), 'cuDeviceGetCount', 'CUDA_ERROR_NOT_INITIALIZED');
    throwsCuda(() => driver.device(0), 'cuDeviceGet', 'CUDA_ERROR_NOT_INITIALIZED');
    assert.equal(driver.driverVersion(), 13_000, 'cuDriverGetVersion needs no cuInit, as in the driver');
    driver.init();
    driver.init(); // idempotent
    assert.equal(driver.deviceCount(), 2);
    throwsCuda(() => driver.device(2), 'cuDeviceGet', 'CUDA_ERROR_INVALID_DEVICE');
    throwsCuda(() => driver.deviceAttribute(7, 16), 'cuDeviceGetAttribute', 'CUDA_ERROR_INVALID_DEVICE');
    throwsCuda(() => driver.deviceAttribute(0, 4000), 'cuDeviceGetAttribute', 'CUDA_ERROR_INVALID_VALUE');
    throwsCuda(() => driver.memAlloc(64), 'cuMemAlloc_v2', 'CUDA_ERROR_INVALID_CONTEXT');
    throwsCuda(() => driver.streamCreate(), 'cuStreamCreate', 'CUDA_ERROR_INVALID_CONTEXT');
    throwsCuda(
      () => driver.moduleLoadData(`${EMULATED_IMAGE_PREFIX}/x.so`),
      'cuModuleLoadData',
      'CUDA_ERROR_INVALID_CONTEXT',
    );
    throwsCuda(() => driver.primaryContextRelease(0), 'cuDevicePrimaryCtxRelease_v2', 'CUDA_ERROR_INVALID_CONTEXT');
    assert.deepEqual(probeCuda(), { available: true, deviceCount: 2, reason: `${emulator}: 2 CUDA devices` });
  });
});

describe(`CUDA driver emulator (${EMULATED})`, () => {
  let driver: CudaDriver;
  let addOne: EmulatedBuild;
  let context0 = 0n;
  let context1 = 0n;

  before(() => {
    if (skipReason !== undefined) return;
    driver = emulatorDriver();
    driver.init();
    context1 = driver.primaryContextRetain(driver.device(1));
    context0 = driver.primaryContextRetain(driver.device(0)); // current from here on
    addOne = buildEmulatedKernel({ handlerPath: addOneHandlerPath, outputPath: join(work, 'add_one.so') });
  });
  after(() => {
    if (skipReason !== undefined) return;
    driver.primaryContextRelease(0);
    driver.primaryContextRelease(1);
  });

  it('emulated device: reads as an sm_90 with 2 SMs, mapped host memory, cooperative launch and every peer', (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    assert.equal(driver.emulated, true);
    assert.deepEqual(driver.deviceInfo(1), {
      ordinal: 1,
      name: 'ringkernel emulated device 1 (CPU threads)',
      computeCapability: { major: 9, minor: 0 },
      multiprocessorCount: 2,
      totalMemoryBytes: 1n << 30n,
      cooperativeLaunch: true,
      canMapHostMemory: true,
    });
    assert.equal(driver.deviceAttribute(0, 41), 1, 'unified addressing');
    assert.equal(driver.deviceAttribute(0, 1), 1024, 'max threads per block');
    assert.equal(driver.devicePciBusId(0), '0000:01:00.0');
    assert.equal(driver.devicePciBusId(1), '0000:02:00.0');
    assert.equal(driver.deviceCanAccessPeer(0, 1), true);
    assert.equal(driver.deviceCanAccessPeer(1, 0), true);
    assert.equal(driver.deviceCanAccessPeer(0, 0), false, 'a device is not its own peer');
    assert.equal(driver.deviceP2PAttribute(CuDeviceP2PAttribute.PerformanceRank, 0, 1), 0);
    assert.equal(driver.deviceP2PAttribute(CuDeviceP2PAttribute.AccessSupported, 1, 0), 1);
    assert.equal(driver.deviceP2PAttribute(CuDeviceP2PAttribute.NativeAtomicSupported, 0, 1), 1);
    throwsCuda(
      () => driver.deviceP2PAttribute(CuDeviceP2PAttribute.AccessSupported, 0, 0),
      'cuDeviceGetP2PAttribute',
      'CUDA_ERROR_INVALID_DEVICE',
    );
    driver.contextEnablePeerAccess(context1);
    throwsCuda(
      () => driver.contextEnablePeerAccess(context1),
      'cuCtxEnablePeerAccess',
      'CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED',
    );
    throwsCuda(() => driver.contextEnablePeerAccess(context0), 'cuCtxEnablePeerAccess', 'CUDA_ERROR_INVALID_DEVICE');
    assert.equal(driver.errorName(209), 'CUDA_ERROR_NO_BINARY_FOR_GPU');
    assert.equal(driver.errorName(4242), 'CUDA_ERROR_UNRECOGNIZED_4242', 'unknown numbers fall back to the table');
  });

  it('emulated device: allocates, copies, sets and peer-copies device memory, and accounts for it', (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const before = driver.memGetInfo();
    assert.equal(before.totalBytes, 1n << 30n);
    const a = driver.memAlloc(1000);
    const b = driver.memAlloc(1000);
    assert.equal(a % 256n, 0n, 'allocations are 256-aligned, as cuMemAlloc promises');
    assert.equal(driver.memGetInfo().freeBytes, before.freeBytes - 2000n);
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
    driver.memcpyHtoD(a, bytes);
    const stream = driver.streamCreate();
    driver.memcpyPeerAsync(b, context1, a, context0, 1000, stream);
    driver.streamSynchronize(stream);
    const back = new Uint8Array(1000);
    driver.memcpyDtoH(back, b);
    assert.deepEqual(back, bytes);
    driver.memsetD8(b, 0xab, 10);
    driver.memcpyDtoHAsync(back, b, stream);
    driver.streamSynchronize(stream);
    assert.deepEqual([...back.subarray(0, 11)], [...new Array(10).fill(0xab), bytes[10]]);
    // Misuse, answered as the driver answers it.
    throwsCuda(() => driver.memcpyDtoH(new Uint8Array(2000), a), 'cuMemcpyDtoH_v2', 'CUDA_ERROR_INVALID_VALUE');
    throwsCuda(() => driver.memsetD8(0x1000n, 0, 8), 'cuMemsetD8_v2', 'CUDA_ERROR_INVALID_VALUE');
    throwsCuda(() => driver.memAlloc(2 ** 31), 'cuMemAlloc_v2', 'CUDA_ERROR_OUT_OF_MEMORY');
    driver.streamDestroy(stream);
    driver.memFree(a);
    driver.memFree(b);
    throwsCuda(() => driver.memFree(a), 'cuMemFree_v2', 'CUDA_ERROR_INVALID_VALUE');
    assert.equal(driver.memGetInfo().freeBytes, before.freeBytes);
    throwsCuda(() => driver.streamSynchronize(stream), 'cuStreamSynchronize', 'CUDA_ERROR_INVALID_HANDLE');
  });

  it('emulated device: maps registered host memory at the same address (UVA) and refuses double or missing registration', (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const sab = new SharedArrayBuffer(64 * 1024);
    const view = new Uint8Array(sab);
    const devicePointer = driver.memHostRegister(view);
    view[5] = 42;
    const back = new Uint8Array(8);
    driver.memcpyDtoH(back, devicePointer);
    assert.equal(back[5], 42, 'the device pointer reads the SharedArrayBuffer itself');
    throwsCuda(() => driver.memHostRegister(view), 'cuMemHostRegister_v2', 'CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED');
    driver.memHostUnregister(view);
    throwsCuda(() => driver.memHostUnregister(view), 'cuMemHostUnregister', 'CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED');
    throwsCuda(() => driver.memcpyDtoH(back, devicePointer), 'cuMemcpyDtoH_v2', 'CUDA_ERROR_INVALID_VALUE');
  });

  it('emulated device: refuses PTX (NO_BINARY_FOR_GPU), unknown kernels (NOT_FOUND) and launches past its limits', (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    assert.ok(addOne.ok, addOne.ok ? '' : addOne.stderr);
    throwsCuda(
      () => driver.moduleLoadData('.visible .entry rk_persistent_kernel() {}'),
      'cuModuleLoadData',
      'CUDA_ERROR_NO_BINARY_FOR_GPU',
    );
    throwsCuda(
      () => driver.moduleLoadData(`${EMULATED_IMAGE_PREFIX}${join(work, 'missing.so')}`),
      'cuModuleLoadData',
      'CUDA_ERROR_INVALID_IMAGE',
    );
    const module = driver.moduleLoadData(addOne.image);
    try {
      throwsCuda(
        () => driver.moduleGetFunction(module, 'no_such_kernel'),
        'cuModuleGetFunction',
        'CUDA_ERROR_NOT_FOUND',
      );
      const fn = driver.moduleGetFunction(module, 'rk_persistent_kernel');
      assert.equal(driver.maxActiveBlocksPerMultiprocessor(fn, 1), 32);
      assert.equal(driver.maxActiveBlocksPerMultiprocessor(fn, 128), 1, '256 emulated threads over 2 SMs');
      assert.equal(driver.maxActiveBlocksPerMultiprocessor(fn, 256), 0);
      const args = Array.from({ length: 12 }, () => ({ type: 'u64' as const, value: 0n }));
      throwsCuda(
        () => driver.launchKernel(fn, { grid: [1, 1, 1], block: [512, 1, 1] }, args),
        'cuLaunchKernel',
        'CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES',
      );
      throwsCuda(
        () => driver.launchKernel(fn, { grid: [3, 1, 1], block: [128, 1, 1], cooperative: true }, args),
        'cuLaunchCooperativeKernel',
        'CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE',
      );
    } finally {
      driver.moduleUnload(module);
    }
    throwsCuda(() => driver.moduleUnload(module), 'cuModuleUnload', 'CUDA_ERROR_INVALID_HANDLE');
  });

  it('emulated device: runs the persistent add-one kernel (1 thread): echo in order, pause, handler fault, full output ring, terminate', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    assert.ok(addOne.ok, addOne.ok ? '' : addOne.stderr);
    t.diagnostic(EMULATED);
    await runPersistentAddOneScenario(driver, addOne.image, { grid: 1, block: 1, cooperative: false });
  });

  it('emulated device: runs the same scenario cooperatively on 2 blocks of 4 threads (grid.sync)', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    assert.ok(addOne.ok, addOne.ok ? '' : addOne.stderr);
    t.diagnostic(EMULATED);
    await runPersistentAddOneScenario(driver, addOne.image, { grid: 2, block: 4, cooperative: true });
  });

  it('emulated device: spreads one batch over the threads of a 4-thread block (__syncthreads) and of a cooperative grid', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const threadIds = buildEmulatedKernel({
      handlerPath: join(repoRoot, 'test/fixtures/cuda/thread_ids.cu'),
      outputPath: join(work, 'thread_ids.so'),
    });
    assert.ok(threadIds.ok, threadIds.ok ? '' : threadIds.stderr);
    for (const [grid, cooperative, expected] of [
      [1, false, [0, 1, 2, 3, 0, 1, 2, 3]],
      [2, true, [0, 1, 2, 3, 4, 5, 6, 7]],
    ] as const) {
      const kernel = ResidentKernel.launch(driver, threadIds.image, { grid, block: 4, cooperative });
      try {
        // Paused while 8 frames queue up, so the leader plans all 8 as one batch when resumed.
        kernel.control.setActive(false);
        for (let i = 0; i < 8; i++) assert.ok(kernel.producer.tryWrite(Words, Uint32Array.of(i)));
        kernel.control.setActive(true);
        const received: Uint32Array[] = [];
        await until('8 outputs', () => {
          kernel.drain(received);
          return received.length === 8;
        });
        // Frame i goes to grid thread i mod (grid × 4): one batch, handled by every thread at once.
        assert.deepEqual(
          received.map((w) => w[0]),
          [...expected],
          `grid ${grid} × 4`,
        );
        kernel.control.requestTermination(1);
        await until('has_terminated', () => kernel.control.hasTerminated);
      } finally {
        kernel.close();
      }
    }
  });

  it('emulated device: the template refuses a non-cooperative launch of 2 blocks (RK_E_INVALID_STATE, has_terminated)', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    assert.ok(addOne.ok, addOne.ok ? '' : addOne.stderr);
    const kernel = ResidentKernel.launch(driver, addOne.image, { grid: 2, block: 1, cooperative: false });
    try {
      driver.streamSynchronize(kernel.stream); // it returns at once, so the launch completes
      assert.equal(driver.streamQuery(kernel.stream), true);
      assert.equal(kernel.control.hasTerminated, true);
      assert.equal(kernel.control.lastErrorCode, 502); // RK_E_INVALID_STATE
      assert.equal(kernel.control.errorCount, 1);
      assert.equal(kernel.control.messagesReceived, 0n);
    } finally {
      kernel.close();
    }
  });

  it('emulated device: echoes 10⁵ seeded messages through the resident kernel with nothing lost or reordered', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    assert.ok(addOne.ok, addOne.ok ? '' : addOne.stderr);
    const kernel = ResidentKernel.launch(driver, addOne.image, { grid: 1, block: 1, cooperative: false });
    try {
      assert.equal(driver.streamQuery(kernel.stream), false, 'cuStreamQuery: NOT_READY while the kernel is resident');
      await kernel.echo(100_000);
      assert.equal(kernel.control.messagesProcessed, 100_000n);
      assert.equal(kernel.control.messagesDropped, 0n);
      kernel.control.requestTermination(1);
      await until('has_terminated', () => kernel.control.hasTerminated);
      driver.contextSynchronize();
      assert.equal(driver.streamQuery(kernel.stream), true);
    } finally {
      kernel.close();
    }
  });

  it('emulated device: an idle resident kernel sleeps instead of spinning a core', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    assert.ok(addOne.ok, addOne.ok ? '' : addOne.stderr);
    const kernel = ResidentKernel.launch(driver, addOne.image, { grid: 1, block: 1, cooperative: false });
    try {
      await sleep(200);
      const start = process.cpuUsage();
      const startWall = process.hrtime.bigint();
      await sleep(1_000);
      const used = process.cpuUsage(start);
      const wallUs = Number(process.hrtime.bigint() - startWall) / 1000;
      const share = (used.user + used.system) / wallUs;
      t.diagnostic(`idle resident kernel (1 thread), whole process: ${(share * 100).toFixed(1)} % of one core`);
      // Not a speed figure: a hot spin would show ~100 %; the emulated __nanosleep keeps it to a few percent.
      assert.ok(share < 0.5, `idle process used ${(share * 100).toFixed(1)} % of a core`);
      assert.ok(kernel.control.heartbeatUs > 0, 'still alive');
    } finally {
      kernel.close();
    }
  });

  it('emulated device: launches the per-message kernel: one frame in, one complete output frame out', (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    assert.ok(addOne.ok, addOne.ok ? '' : addOne.stderr);
    const module = driver.moduleLoadData(addOne.image);
    const fn = driver.moduleGetFunction(module, 'rk_single_frame_kernel');
    const maxFrameLength = 96 + 256; // room for the error reply body (~100 bytes)
    const frameIn = driver.memAlloc(maxFrameLength);
    const frameOut = driver.memAlloc(maxFrameLength);
    const stream = driver.streamCreate();
    const start = driver.eventCreate();
    const end = driver.eventCreate();
    const runOne = (words: Uint32Array, flags: number): DataView => {
      const frame = new Uint8Array(96 + words.byteLength);
      const view = new DataView(frame.buffer);
      view.setUint32(FrameHeader.LENGTH, frame.length, true);
      view.setUint32(FrameHeader.MAGIC, FRAME_MAGIC, true);
      view.setUint16(FrameHeader.VERSION, FRAME_VERSION, true);
      view.setUint16(FrameHeader.FLAGS, flags, true);
      view.setUint32(FrameHeader.TYPE_ID, Words.typeId, true);
      view.setBigUint64(FrameHeader.MESSAGE_ID, 77n, true);
      view.setUint32(FrameHeader.SOURCE, 3, true);
      view.setUint32(FrameHeader.DESTINATION, 9, true);
      view.setUint32(FrameHeader.PAYLOAD_SIZE, words.byteLength, true);
      frame.set(new Uint8Array(words.buffer), 96);
      driver.memcpyHtoD(frameIn, frame);
      driver.eventRecord(start, stream);
      driver.launchKernel(fn, { grid: [1, 1, 1], block: [1, 1, 1], stream }, [
        { type: 'pointer', value: frameIn },
        { type: 'pointer', value: frameOut },
        { type: 'u32', value: maxFrameLength },
        { type: 'pointer', value: 0n },
      ]);
      driver.eventRecord(end, stream);
      driver.eventSynchronize(end);
      assert.ok(driver.eventElapsedMs(start, end) >= 0);
      const out = new Uint8Array(maxFrameLength);
      driver.memcpyDtoH(out, frameOut);
      return new DataView(out.buffer);
    };
    try {
      const reply = runOne(Uint32Array.of(41, 9), FrameFlags.REQUEST);
      assert.equal(reply.getUint32(FrameHeader.LENGTH, true), 104);
      assert.equal(reply.getUint32(FrameHeader.MAGIC, true), FRAME_MAGIC);
      assert.equal(reply.getUint16(FrameHeader.FLAGS, true), FrameFlags.RESPONSE);
      assert.equal(reply.getBigUint64(FrameHeader.CORRELATION_ID, true), 77n);
      assert.equal(reply.getUint32(FrameHeader.SOURCE, true), 9);
      assert.equal(reply.getUint32(FrameHeader.DESTINATION, true), 3);
      assert.deepEqual([reply.getUint32(96, true), reply.getUint32(100, true)], [42, 10]);
      const fault = runOne(Uint32Array.of(0xffff_ffff), FrameFlags.REQUEST);
      assert.equal(fault.getUint16(FrameHeader.FLAGS, true), FrameFlags.RESPONSE | FrameFlags.ERROR);
      assert.equal(fault.getUint32(FrameHeader.TYPE_ID, true), 2, 'the error reply type');
      const body = Buffer.from(fault.buffer, 96, fault.getUint32(FrameHeader.PAYLOAD_SIZE, true)).toString();
      assert.match(body, /"code":"RK_HANDLER_FAILED"/);
      const silent = runOne(Uint32Array.of(0xffff_ffff), 0);
      assert.equal(silent.getUint32(FrameHeader.LENGTH, true), 0, 'no output frame for a failed one-way message');
      assert.equal(silent.getUint32(FrameHeader.ERROR_CODE, true), 201, 'the result: RK_E_VALUE_OUT_OF_RANGE');
    } finally {
      driver.eventDestroy(start);
      driver.eventDestroy(end);
      driver.streamDestroy(stream);
      driver.memFree(frameIn);
      driver.memFree(frameOut);
      driver.moduleUnload(module);
    }
  });

  it('emulated device: buildEmulatedKernel reports compile errors and a missing compiler instead of throwing', (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const broken = join(work, 'broken.cu');
    writeFileSync(broken, '#include "rk_handler.cuh"\n#define RK_HANDLER_DEFINED 1\nthis is not C++;\n');
    const failed = buildEmulatedKernel({ handlerPath: broken, outputPath: join(work, 'broken.so') });
    assert.equal(failed.ok, false);
    assert.match((failed as { stderr: string }).stderr, /broken\.cu:3/);
    const saved = process.env.CXX;
    process.env.CXX = join(work, 'no-such-compiler');
    try {
      const none = buildEmulatedKernel({ handlerPath: addOneHandlerPath, outputPath: join(work, 'none.so') });
      assert.equal(none.ok, false);
      assert.match((none as { stderr: string }).stderr, /no-such-compiler could not run: /);
    } finally {
      if (saved === undefined) delete process.env.CXX;
      else process.env.CXX = saved;
    }
    assert.throws(() => buildEmulatedKernel({ handlerPath: addOneHandlerPath, outputPath: 'relative.so' }), {
      name: 'TypeError',
      message: 'options.outputPath must be an absolute path',
    });
  });
});
