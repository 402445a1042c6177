/**
 * The CUDA driver-API bindings without a GPU: the missing-library path and its exact messages, the CUresult name
 * table (checked against the installed cuda.h), argument validation, and — through a stand-in libcuda compiled
 * from test/fixtures/cuda/fake-libcuda.c, because no real driver can exist on a machine without an NVIDIA GPU —
 * that every binding marshals its arguments with the right C types and turns each CUresult into a typed error.
 * The real driver is exercised by test/cuda-gpu.test.ts (`npm run test:gpu`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CU_RESULT_NAMES } from '../src/backends/cuda/cu-result.js';
import {
  CuDeviceAttribute,
  CuMemHostRegisterFlag,
  cudaErrorName,
  loadCudaDriver,
  packKernelArgs,
  probeCuda,
  requireCudaDriver,
} from '../src/backends/cuda/driver.js';
import {
  BackendUnavailableError,
  CudaError,
  ErrorCode,
  ErrorNumber,
  probeBackend,
  RingKernelRuntime,
} from '../src/internal.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'ringkernel-cuda-driver-'));
const cudaHeader = ['/usr/local/cuda/include/cuda.h', '/usr/include/cuda.h'].find((path) => existsSync(path));
const savedLibcuda = process.env.RINGKERNEL_LIBCUDA;

after(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => {
  if (savedLibcuda === undefined) delete process.env.RINGKERNEL_LIBCUDA;
  else process.env.RINGKERNEL_LIBCUDA = savedLibcuda;
  delete process.env.FAKE_CUDA_MODE;
});

/** Builds the stand-in libcuda once; returns its path, or why it cannot be built. */
let fakeBuild: { path: string } | { skip: string } | undefined;
function fakeLibcuda(): { path: string } | { skip: string } {
  if (fakeBuild !== undefined) return fakeBuild;
  const path = join(work, 'libcuda-fake.so');
  const result = spawnSync(
    'cc',
    ['-shared', '-fPIC', '-O1', '-Wall', '-Werror', join(root, 'test/fixtures/cuda/fake-libcuda.c'), '-o', path],
    { encoding: 'utf8' },
  );
  if (result.error !== undefined) fakeBuild = { skip: 'skipped: cc not installed' };
  else if (result.status !== 0) throw new Error(`fake libcuda did not compile:\n${result.stderr}`);
  else fakeBuild = { path };
  return fakeBuild;
}

describe('CUDA driver: no libcuda', () => {
  it('reports the missing library with a typed error that says why', async () => {
    const missing = join(work, 'nowhere/libcuda.so.1');
    process.env.RINGKERNEL_LIBCUDA = missing;
    const load = loadCudaDriver();
    assert.equal(load.available, false);
    const reason = `${missing} could not be loaded (is the NVIDIA driver installed?): `;
    assert.ok(!load.available && load.reason.startsWith(reason), String(!load.available && load.reason));
    assert.throws(
      () => requireCudaDriver(),
      (error: unknown) =>
        error instanceof BackendUnavailableError &&
        error.code === ErrorCode.BackendUnavailable &&
        error.backend === 'cuda' &&
        error.message.startsWith(`backend 'cuda' is not available: ${reason}`),
    );
    assert.deepEqual(probeCuda(), { available: false, deviceCount: 0, reason: (load as { reason: string }).reason });
    const probe = probeBackend('cuda');
    assert.equal(probe.available, false);
    assert.ok(probe.reason.startsWith(reason));
    await assert.rejects(
      RingKernelRuntime.builder().backend('cuda').build(),
      (error: unknown) => error instanceof BackendUnavailableError && error.message.includes(reason),
    );
  });

  it('finds no driver under the default name on this machine, or skips where one is installed', (t) => {
    delete process.env.RINGKERNEL_LIBCUDA;
    const load = loadCudaDriver();
    if (load.available) {
      t.skip('skipped: this machine has libcuda.so.1 (test/cuda-gpu.test.ts covers it)');
      return;
    }
    assert.match(load.reason, /^libcuda\.so\.1 could not be loaded \(is the NVIDIA driver installed\?\): .+/);
  });
});

describe('CUDA driver: CUresult names', () => {
  it('names results from the static table, and unknown ones recognisably', () => {
    assert.equal(cudaErrorName(0), 'CUDA_SUCCESS');
    assert.equal(cudaErrorName(2), 'CUDA_ERROR_OUT_OF_MEMORY');
    assert.equal(cudaErrorName(100), 'CUDA_ERROR_NO_DEVICE');
    assert.equal(cudaErrorName(218), 'CUDA_ERROR_INVALID_PTX');
    assert.equal(cudaErrorName(720), 'CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE');
    assert.equal(cudaErrorName(999), 'CUDA_ERROR_UNKNOWN');
    assert.equal(cudaErrorName(12_345), 'CUDA_ERROR_UNRECOGNIZED_12345');
  });

  it('turns a CUresult into a typed error with the CUDA name and number', () => {
    const error = new CudaError('cuMemAlloc', 2, 'CUDA_ERROR_OUT_OF_MEMORY');
    assert.equal(error.code, ErrorCode.CudaError);
    assert.equal(error.code, 'RK_CUDA_ERROR');
    assert.equal(error.errno, ErrorNumber.CudaError);
    assert.equal(error.errno, 517);
    assert.equal(error.message, 'cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY (2)');
    assert.equal(error.name, 'CudaError');
    assert.deepEqual(
      [error.operation, error.cudaResult, error.cudaErrorName],
      ['cuMemAlloc', 2, 'CUDA_ERROR_OUT_OF_MEMORY'],
    );
  });

  it('matches every CUresult and attribute number in the installed cuda.h', (t) => {
    if (cudaHeader === undefined) {
      t.skip('skipped: cuda.h not installed');
      return;
    }
    const header = readFileSync(cudaHeader, 'utf8');
    const start = header.indexOf('typedef enum cudaError_enum');
    const body = header.slice(start, header.indexOf('} CUresult;', start));
    const declared = [...body.matchAll(/^\s+(CUDA_(?:SUCCESS|ERROR_[A-Z0-9_]+))\s*=\s*(\d+)/gm)].map(
      (m) => [Number(m[2]), m[1]] as const,
    );
    assert.ok(declared.length > 90, `parsed ${declared.length} CUresults from ${cudaHeader}`);
    assert.deepEqual([...CU_RESULT_NAMES.entries()], declared);
    const attributes: Record<string, number> = {
      MULTIPROCESSOR_COUNT: CuDeviceAttribute.MultiprocessorCount,
      CAN_MAP_HOST_MEMORY: CuDeviceAttribute.CanMapHostMemory,
      UNIFIED_ADDRESSING: CuDeviceAttribute.UnifiedAddressing,
      COMPUTE_CAPABILITY_MAJOR: CuDeviceAttribute.ComputeCapabilityMajor,
      COMPUTE_CAPABILITY_MINOR: CuDeviceAttribute.ComputeCapabilityMinor,
      COOPERATIVE_LAUNCH: CuDeviceAttribute.CooperativeLaunch,
    };
    for (const [name, value] of Object.entries(attributes)) {
      assert.match(header, new RegExp(`CU_DEVICE_ATTRIBUTE_${name} = ${value},`), name);
    }
    assert.match(header, new RegExp(`CU_MEMHOSTREGISTER_PORTABLE\\s+0x0${CuMemHostRegisterFlag.Portable}\\b`));
    assert.match(header, new RegExp(`CU_MEMHOSTREGISTER_DEVICEMAP\\s+0x0${CuMemHostRegisterFlag.DeviceMap}\\b`));
    for (const versioned of [
      'cuMemAlloc_v2',
      'cuMemFree_v2',
      'cuDeviceTotalMem_v2',
      'cuMemHostRegister_v2',
      'cuEventDestroy_v2',
      'cuEventElapsedTime_v2',
    ]) {
      assert.match(header, new RegExp(`#define ${versioned.replace('_v2', '')}\\s+${versioned}`));
    }
  });
});

describe('CUDA driver: kernel arguments', () => {
  it('packs each argument into its own 8-byte slot with its C type', () => {
    const slots = packKernelArgs([
      { type: 'pointer', value: 0x7f00_dead_beefn },
      { type: 'u32', value: 0xffff_ffff },
      { type: 'i32', value: -2 },
      { type: 'f32', value: 1.5 },
      { type: 'f64', value: -0.25 },
      { type: 'i64', value: -3n },
    ]);
    assert.equal(slots.length, 6);
    const read = (i: number) => new DataView(slots[i]?.buffer as ArrayBuffer, slots[i]?.byteOffset, 8);
    assert.ok(slots.every((slot, i) => slot.byteLength === 8 && slot.byteOffset === i * 8));
    assert.equal(read(0).getBigUint64(0, true), 0x7f00_dead_beefn);
    assert.equal(read(1).getUint32(0, true), 0xffff_ffff);
    assert.equal(read(2).getInt32(0, true), -2);
    assert.equal(read(3).getFloat32(0, true), 1.5);
    assert.equal(read(4).getFloat64(0, true), -0.25);
    assert.equal(read(5).getBigInt64(0, true), -3n);
  });

  it('rejects arguments that do not fit their type, with exact messages', () => {
    assert.throws(() => packKernelArgs([{ type: 'u32', value: -1 }]), {
      name: 'RangeError',
      message: 'args[0].value must be between 0 and 4294967295, got -1',
    });
    assert.throws(() => packKernelArgs([{ type: 'i32', value: 1.5 }]), {
      name: 'TypeError',
      message: 'args[0].value must be an integer, got 1.5',
    });
    assert.throws(() => packKernelArgs([{ type: 'pointer', value: 5 as never }]), {
      name: 'TypeError',
      message: 'args[0].value must be a bigint device pointer, got number',
    });
    assert.throws(() => packKernelArgs([{ type: 'pointer', value: -1n }]), {
      name: 'RangeError',
      message: 'args[0].value must be a 64-bit unsigned pointer, got -1',
    });
    assert.throws(() => packKernelArgs([{ type: 'u16', value: 1 } as never]), {
      name: 'TypeError',
      message: 'args[0].type must be one of pointer, u64, i64, u32, i32, f32, f64, got "u16"',
    });
    assert.throws(() => packKernelArgs({} as never), { message: 'args must be an array of { type, value }' });
  });
});

describe('CUDA driver: bindings against a stand-in libcuda (no GPU here)', () => {
  function useFake(t: { skip(message: string): void }, mode: string): boolean {
    const fake = fakeLibcuda();
    if ('skip' in fake) {
      t.skip(fake.skip);
      return false;
    }
    process.env.RINGKERNEL_LIBCUDA = fake.path;
    process.env.FAKE_CUDA_MODE = mode;
    return true;
  }

  it('probes: cuInit failing, no devices, one device — and never selects CUDA before it can launch', (t) => {
    if (!useFake(t, 'nodevice')) return;
    const path = process.env.RINGKERNEL_LIBCUDA as string;
    assert.deepEqual(probeCuda(), {
      available: false,
      deviceCount: 0,
      reason: `${path}: cuInit failed: CUDA_ERROR_NO_DEVICE (100)`,
    });
    process.env.FAKE_CUDA_MODE = 'zero';
    assert.deepEqual(probeCuda(), { available: false, deviceCount: 0, reason: `${path}: no CUDA device` });
    process.env.FAKE_CUDA_MODE = 'one';
    assert.deepEqual(probeCuda(), { available: true, deviceCount: 1, reason: `${path}: 1 CUDA device` });
    assert.deepEqual(probeBackend('cuda'), { backend: 'cuda', available: true, reason: `${path}: 1 CUDA device` });
  });

  it('binds the synchronous copies, memory info and peer calls with their C types; a real libcuda is not emulated', (t) => {
    if (!useFake(t, 'one')) return;
    const driver = requireCudaDriver();
    assert.equal(driver.emulated, false, 'no rkEmuVersion: not the emulator');
    driver.init();
    driver.primaryContextRetain(0);
    assert.deepEqual(driver.memGetInfo(), { freeBytes: 1n << 30n, totalBytes: 150754820096n });
    assert.equal(driver.devicePciBusId(0), '0000:17:00.0');
    assert.equal(driver.deviceCanAccessPeer(0, 0), false);
    assert.equal(driver.streamQuery(0x5001n), true);
    driver.contextSynchronize();
    driver.memsetD8(0xd000n, 7, 16);
    driver.memcpyHtoD(0xd000n, new Uint8Array(8));
    driver.memcpyDtoH(new Uint8Array(8), 0xd000n);
    assert.throws(() => driver.streamQuery(0x10n), {
      message: 'cuStreamQuery failed: CUDA_ERROR_INVALID_HANDLE (400)',
    });
    assert.throws(() => driver.memsetD8(0xd000n, 256, 16), { message: 'value must be between 0 and 255, got 256' });
    assert.throws(() => driver.memcpyPeerAsync(1n, 0xc0n, 2n, 0xc0n, 8, 0n), {
      message: 'cuMemcpyPeerAsync failed: CUDA_ERROR_PEER_ACCESS_UNSUPPORTED (217)',
    });
    driver.primaryContextRelease(0);
  });

  it('reads device properties through cuDeviceGet*, with typed errors for bad ordinals', (t) => {
    if (!useFake(t, 'one')) return;
    const driver = requireCudaDriver();
    driver.init();
    assert.equal(driver.driverVersion(), 13_000);
    assert.deepEqual(driver.deviceInfo(0), {
      ordinal: 0,
      name: 'Fake H200 (test stand-in)',
      computeCapability: { major: 9, minor: 0 },
      multiprocessorCount: 132,
      totalMemoryBytes: 150_754_820_096n,
      cooperativeLaunch: true,
      canMapHostMemory: true,
    });
    assert.throws(
      () => driver.device(1),
      (error: unknown) =>
        error instanceof CudaError &&
        error.cudaResult === 101 &&
        error.cudaErrorName === 'CUDA_ERROR_INVALID_DEVICE' &&
        error.message === 'cuDeviceGet failed: CUDA_ERROR_INVALID_DEVICE (101)',
    );
    assert.throws(() => driver.device(-1), {
      name: 'RangeError',
      message: 'ordinal must be between 0 and 2147483647, got -1',
    });
  });

  it('names errors with cuGetErrorName, falling back to the table when the driver does not know one', (t) => {
    if (!useFake(t, 'one')) return;
    const driver = requireCudaDriver();
    assert.equal(driver.errorName(2), 'CUDA_ERROR_OUT_OF_MEMORY');
    assert.equal(driver.errorName(500), 'CUDA_ERROR_NOT_FOUND');
    assert.throws(() => driver.memAlloc(2 ** 41), {
      name: 'CudaError',
      message: 'cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2)',
    });
    assert.throws(() => driver.memAlloc(0), {
      name: 'RangeError',
      message: 'bytes must be a positive safe integer, got 0',
    });
  });

  it('runs context, memory, module, stream and copy calls with the right handles', (t) => {
    if (!useFake(t, 'one')) return;
    const driver = requireCudaDriver();
    assert.equal(driver.primaryContextRetain(0), 0xc0n);
    const pointer = driver.memAlloc(4096);
    assert.equal(pointer, 0xd000n);
    const ring = new Uint8Array(new SharedArrayBuffer(4096));
    assert.notEqual(driver.memHostRegister(ring), 0n, 'mapped device pointer');
    driver.memHostUnregister(ring);
    const module = driver.moduleLoadData(
      '.version 8.8\n.target sm_90\n.visible .entry rk_persistent_kernel()\n{ ret; }\n',
    );
    assert.equal(module, 0xa0n);
    assert.throws(() => driver.moduleLoadData('not ptx'), { message: 'ptx must be PTX text with at least one .entry' });
    assert.throws(
      () => driver.moduleGetFunction(module, 'missing'),
      (error: unknown) => error instanceof CudaError && error.cudaErrorName === 'CUDA_ERROR_NOT_FOUND',
    );
    const stream = driver.streamCreate();
    driver.memcpyHtoDAsync(pointer, new Uint8Array(64), stream);
    driver.streamSynchronize(stream);
    driver.streamDestroy(stream);
    driver.moduleUnload(module);
    driver.memFree(pointer);
    driver.primaryContextRelease(0);
  });

  it('passes launch dimensions and parameters by value, cooperative or not', (t) => {
    if (!useFake(t, 'one')) return;
    const driver = requireCudaDriver();
    const fn = driver.moduleGetFunction(
      driver.moduleLoadData('.visible .entry rk_persistent_kernel() {}'),
      'rk_persistent_kernel',
    );
    const stream = driver.streamCreate();
    const args = [
      { type: 'pointer', value: 0xd000n },
      { type: 'u32', value: 7 },
      { type: 'i32', value: -1 },
      { type: 'u64', value: 1n << 40n },
    ] as const;
    const launched = (cooperative: boolean) => {
      driver.launchKernel(
        fn,
        { grid: [132, 1, 1], block: [256, 1, 1], sharedMemBytes: 1024, stream, cooperative },
        args,
      );
      const record = new Uint8Array(13 * 8);
      driver.memcpyDtoHAsync(record, 0xf00dn, stream);
      return [...new BigUint64Array(record.buffer)];
    };
    assert.deepEqual(launched(false), [
      132n,
      1n,
      1n,
      256n,
      1n,
      1n,
      1024n,
      stream,
      0n,
      0xd000n,
      7n,
      0xffff_ffffn,
      1n << 40n,
    ]);
    assert.equal(launched(true)[8], 1n, 'cuLaunchCooperativeKernel');
    assert.throws(() => driver.launchKernel(fn, { grid: [0, 1, 1], block: [1, 1, 1] }, args), {
      message: 'grid[0] must be between 1 and 2147483647, got 0',
    });
    assert.throws(() => driver.launchKernel(fn, { grid: [1, 1, 1], block: [64, 32, 1] }, args), {
      message: 'block must have at most 1024 threads, got 2048',
    });
    assert.equal(driver.maxActiveBlocksPerMultiprocessor(fn, 256), 8);
    assert.equal(driver.maxActiveBlocksPerMultiprocessor(fn, 128, 1024), 15);
    assert.throws(() => driver.maxActiveBlocksPerMultiprocessor(fn, 2048), {
      message: 'blockSize must be between 1 and 1024, got 2048',
    });
    const start = driver.eventCreate();
    const end = driver.eventCreate();
    driver.eventRecord(start, stream);
    driver.eventRecord(end, stream);
    driver.eventSynchronize(end);
    assert.equal(driver.eventElapsedMs(start, end), 1.5);
    assert.throws(
      () => driver.eventElapsedMs(start, 1n),
      (error: unknown) =>
        error instanceof CudaError && error.message === 'cuEventElapsedTime_v2 failed: CUDA_ERROR_INVALID_HANDLE (400)',
    );
    driver.eventDestroy(start);
    driver.eventDestroy(end);
    assert.throws(() => driver.launchKernel(fn, { grid: [1, 1] as never, block: [1, 1, 1] }, args), {
      message: 'grid must be [x, y, z]',
    });
  });
});
