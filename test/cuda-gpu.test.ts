/**
 * The CUDA backend on a real GPU: the driver bindings against libcuda, and the persistent kernel template with the
 * add-one handler running resident on the device over SharedArrayBuffer rings registered with cuMemHostRegister
 * (the `mapped` strategy's memory, driven here by hand: the runtime's CUDA launch path is not built yet). The
 * persistent-kernel body is shared with the emulated device (test/support/persistent-add-one.ts).
 *
 * Without a CUDA device every test says "skipped: no CUDA device" (node:test skip, never a silent pass).
 * `npm run test:gpu` sets RINGKERNEL_REQUIRE_GPU=1, which turns that skip into a failure: on a GPU machine the
 * suite must really run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type CudaDeviceInfo, type CudaDriver, probeCuda, requireCudaDriver } from '../src/internal.js';
import { addOneHandlerPath, compilePersistentKernel, hasNvcc } from './support/cuda-ptx.js';
import { runPersistentAddOneScenario } from './support/persistent-add-one.js';
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
  if (requireCudaDriver().emulated) {
    // RINGKERNEL_LIBCUDA names the CUDA driver emulator: CPU threads, no GPU (test/cuda-emulator.test.ts runs it).
    if (requireGpu) assert.fail('RINGKERNEL_REQUIRE_GPU=1 but RINGKERNEL_LIBCUDA is the CUDA driver emulator');
    t.skip('skipped: no CUDA device (RINGKERNEL_LIBCUDA is the CUDA driver emulator)');
    return false;
  }
  if (alsoNvcc && !hasNvcc) {
    if (requireGpu) assert.fail('RINGKERNEL_REQUIRE_GPU=1 but nvcc is not installed (needed to build the PTX)');
    t.skip('skipped: nvcc not installed');
    return false;
  }
  return true;
}

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
    // One 128-thread block per SM, cooperative where supported (else one block, as the template requires).
    const cooperative = info.cooperativeLaunch;
    await runPersistentAddOneScenario(driver, build.ptx, {
      grid: cooperative ? info.multiprocessorCount : 1,
      block: 128,
      cooperative,
    });
  });
});
