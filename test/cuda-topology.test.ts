/**
 * The CUDA topology without a GPU (there is none on these machines): the driver is the CUDA driver emulator
 * (native/build/libcuda-emu.so, 4 emulated devices, CPU threads stand in for the GPUs, every pair a peer unless
 * `RINGKERNEL_EMU_NO_PEER` switches it off) and NVML is a stand-in compiled from test/fixtures/cuda/fake-nvml.c
 * that reports NVLinks where the test says. What is real: the koffi bindings and struct layout, the topology's
 * classification (nvlink / pcie / host), the copies it times through the driver API, the runtime's wiring
 * (gpuTopology, the coordinator's memory from cuMemGetInfo, the Prometheus gauge). What is not: any GPU figure.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nvmlPciInfoType } from '../src/backends/cuda/nvml.js';
import {
  cudaTopology,
  ErrorCode,
  ErrorNumber,
  LoadBalancingStrategy,
  loadNvml,
  type Nvml,
  NvmlError,
  pciKey,
  RingKernelRuntime,
  requireCudaDriver,
} from '../src/internal.js';
import { Sink } from './fixtures/kernels.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const EMULATOR = join(root, 'native/build/libcuda-emu.so');
const work = mkdtempSync(join(tmpdir(), 'ringkernel-cuda-topology-'));
after(() => rmSync(work, { recursive: true, force: true }));

// Before the first driver load: the emulator caches its device count at cuInit.
process.env.RINGKERNEL_LIBCUDA = EMULATOR;
process.env.RINGKERNEL_EMU_DEVICES = '4';
const FAKE_ENV = ['FAKE_NVML_LINKS', 'FAKE_NVML_SWITCH', 'FAKE_NVML_DOWN', 'FAKE_NVML_MODE', 'RINGKERNEL_EMU_NO_PEER'];
afterEach(() => {
  for (const name of FAKE_ENV) delete process.env[name];
});

/** Builds the stand-in NVML once; its path, or why it cannot be built. */
let fakeBuild: { path: string } | { skip: string } | undefined;
function fakeNvml(): { path: string } | { skip: string } {
  if (fakeBuild !== undefined) return fakeBuild;
  const path = join(work, 'libnvidia-ml-fake.so');
  const result = spawnSync(
    'cc',
    ['-shared', '-fPIC', '-O1', '-Wall', '-Werror', join(root, 'test/fixtures/cuda/fake-nvml.c'), '-o', path],
    { encoding: 'utf8' },
  );
  if (result.error !== undefined) fakeBuild = { skip: 'skipped: cc not installed' };
  else if (result.status !== 0) throw new Error(`the stand-in NVML did not compile:\n${result.stderr}`);
  else fakeBuild = { path };
  return fakeBuild;
}

/** The stand-in NVML through the real loader, or undefined (and the test skipped) when it cannot be built. */
function useFake(t: { skip(message: string): void }): Nvml | undefined {
  if (!existsSync(EMULATOR)) {
    t.skip('skipped: the CUDA emulator library was not built (needs cc)');
    return undefined;
  }
  const fake = fakeNvml();
  if ('skip' in fake) {
    t.skip(fake.skip);
    return undefined;
  }
  process.env.RINGKERNEL_LIBNVML = fake.path;
  const load = loadNvml();
  assert.ok(load.available, load.available ? '' : load.reason);
  return load.nvml;
}

/** The stand-in's count of nvmlInit_v2 not yet matched by nvmlShutdown. */
function fakeInitCount(): number {
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  return koffi.load((fakeNvml() as { path: string }).path).func('int fakeNvmlInitCount()')() as number;
}

const kinds = (links: readonly { from: number; to: number; kind: string }[]): string[] =>
  links.map((link) => `${link.from}-${link.to}:${link.kind}`);

describe('NVML bindings (stand-in NVML: no GPU on these machines)', () => {
  it("lay nvmlPciInfo_t out as nvml.h does, and compare CUDA's and NVML's PCI addresses", () => {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const type = nvmlPciInfoType(koffi) as Parameters<typeof koffi.sizeof>[0];
    assert.equal(koffi.sizeof(type), 68);
    assert.deepEqual(
      ['busIdLegacy', 'domain', 'bus', 'device', 'pciDeviceId', 'pciSubSystemId', 'busId'].map((field) =>
        koffi.offsetof(type, field),
      ),
      [0, 16, 20, 24, 28, 32, 36],
    );
    assert.equal(pciKey('0000:3B:00.0'), '00000000:3b:00.0');
    assert.equal(pciKey('00000000:3b:00.0'), pciKey('0000:3B:00.0'));
    assert.equal(pciKey('not a bus id'), undefined);
  });

  it('read active links and what they reach; an NVML error is typed with its name, number and description', (t) => {
    const nvml = useFake(t);
    if (nvml === undefined) return;
    process.env.FAKE_NVML_LINKS = '0-1,0-1,2-3';
    process.env.FAKE_NVML_DOWN = '0:1';
    nvml.init();
    try {
      const gpu0 = nvml.deviceHandleByPciBusId('0000:01:00.0');
      assert.deepEqual(
        nvml.activeNvLinks(gpu0).map((link) => [link.link, link.remote.busId, link.remote.bus, link.remoteType]),
        [[0, '00000000:02:00.0', 2, 'gpu']],
        'link 1 of GPU 0 is trained but inactive',
      );
      assert.throws(() => nvml.deviceHandleByPciBusId('0000:09:00.0'), {
        name: 'NvmlError',
        message: 'nvmlDeviceGetHandleByPciBusId_v2 failed: NVML_ERROR_NOT_FOUND (6): Not Found',
      });
      assert.throws(() => nvml.nvLinkState(gpu0, 18), new RangeError('link must be an integer in [0, 17], got 18'));
      assert.throws(
        () => nvml.deviceHandleByPciBusId('gpu0'),
        new TypeError('busId must be a PCI address domain:bus:device.function, got "gpu0"'),
      );
    } finally {
      nvml.shutdown();
    }
    process.env.FAKE_NVML_MODE = 'nodriver';
    try {
      nvml.init();
      assert.fail('nvmlInit_v2 should fail');
    } catch (error) {
      assert.ok(error instanceof NvmlError);
      assert.equal(error.code, ErrorCode.NvmlError);
      assert.equal(error.errno, ErrorNumber.NvmlError);
      assert.equal(error.nvmlErrorName, 'NVML_ERROR_DRIVER_NOT_LOADED');
      assert.equal(error.nvmlResult, 9);
      assert.equal(error.message, 'nvmlInit_v2 failed: NVML_ERROR_DRIVER_NOT_LOADED (9): Driver Not Loaded');
    }
    assert.equal(fakeInitCount(), 0, 'every nvmlInit_v2 was matched by nvmlShutdown');
  });
});

describe('CUDA topology (emulated driver, stand-in NVML: no GPU on these machines)', () => {
  it('names NVLink exactly where NVML reports active links, PCIe between the other peers', (t) => {
    const nvml = useFake(t);
    if (nvml === undefined) return;
    process.env.FAKE_NVML_LINKS = '0-1,0-1,2-3';
    const topology = cudaTopology(requireCudaDriver(), { nvml, copyBytes: 1 << 20 });
    assert.deepEqual(
      topology.devices.map((d) => [d.id, d.kind, d.memoryMB, d.computeUnits]),
      [0, 1, 2, 3].map((id) => [id, 'cuda', 1024, 2]),
      'four emulated devices: 1 GiB and 2 SMs each',
    );
    assert.equal(topology.linkSource, 'cuda+nvml');
    assert.deepEqual(kinds(topology.links), [
      '0-1:nvlink',
      '0-2:pcie',
      '0-3:pcie',
      '1-2:pcie',
      '1-3:pcie',
      '2-3:nvlink',
    ]);
    assert.deepEqual(
      topology.links.map((link) => link.nvlinks),
      [2, 0, 0, 0, 0, 1],
      'each link counted once, from both ends reported',
    );
    for (const link of topology.links) {
      assert.equal(link.peerAccess, true);
      assert.equal(link.nativeAtomics, true);
      assert.equal(link.measuredWith, 'cuMemcpyPeerAsync');
      assert.ok(link.bandwidthGBps > 0 && link.latencyUs > 0, `measured, so positive: ${JSON.stringify(link)}`);
    }
    assert.match(topology.notes.join('\n'), /emulator/, 'says the figures are not a GPU');
    assert.equal(fakeInitCount(), 0, 'NVML shut down after the scan');
  });

  it('falls back to host-staged links where the emulator switches peer access off; NVSwitch pairs are NVLink', (t) => {
    const nvml = useFake(t);
    if (nvml === undefined) return;
    process.env.RINGKERNEL_EMU_NO_PEER = '0-2,1-2';
    process.env.FAKE_NVML_SWITCH = '1,3';
    const topology = cudaTopology(requireCudaDriver(), { nvml, copyBytes: 1 << 20, repetitions: 2 });
    assert.deepEqual(kinds(topology.links), ['0-1:pcie', '0-2:host', '0-3:pcie', '1-2:host', '1-3:nvlink', '2-3:pcie']);
    const byPair = new Map(topology.links.map((link) => [`${link.from}-${link.to}`, link]));
    for (const pair of ['0-2', '1-2']) {
      const link = byPair.get(pair);
      assert.equal(link?.peerAccess, false);
      assert.equal(link?.nativeAtomics, false);
      assert.equal(link?.measuredWith, 'host-staged');
      assert.ok((link?.bandwidthGBps ?? 0) > 0 && (link?.latencyUs ?? 0) > 0);
    }
    assert.equal(byPair.get('1-3')?.nvswitch, true);
    assert.equal(byPair.get('1-3')?.nvlinks, 2, 'two switch links each');
    // Everything was undone: the emulator's memory is free again.
    const driver = requireCudaDriver();
    driver.primaryContextRetain(driver.device(0));
    assert.equal(driver.memGetInfo().freeBytes, 1n << 30n);
    driver.primaryContextRelease(driver.device(0));
    driver.setCurrentContext(0n);
  });

  it('without NVML (missing, failing to start, or switched off) reports no NVLink and says why', (t) => {
    const nvml = useFake(t);
    if (nvml === undefined) return;
    process.env.FAKE_NVML_LINKS = '0-1';
    const driver = requireCudaDriver();
    process.env.FAKE_NVML_MODE = 'nodriver';
    const failing = cudaTopology(driver, { nvml, copyBytes: 1 << 20, repetitions: 1 });
    assert.equal(failing.linkSource, 'cuda');
    assert.ok(failing.links.every((link) => link.kind === 'pcie'));
    assert.match(failing.notes.join('\n'), /NVML did not start \(nvmlInit_v2 failed: NVML_ERROR_DRIVER_NOT_LOADED/);
    delete process.env.FAKE_NVML_MODE;
    process.env.RINGKERNEL_LIBNVML = join(work, 'no-libnvidia-ml.so.1');
    const missing = cudaTopology(driver, { copyBytes: 1 << 20, repetitions: 1 });
    assert.equal(missing.linkSource, 'cuda');
    assert.match(missing.notes.join('\n'), /NVML is not available \(.*no-libnvidia-ml\.so\.1 could not be loaded/);
    const off = cudaTopology(driver, { nvml: null, copyBytes: 1 << 20, repetitions: 1 });
    assert.match(off.notes.join('\n'), /NVLink detection was switched off/);
    assert.throws(
      () => cudaTopology(driver, { copyBytes: 100 }),
      new RangeError('options.copyBytes must be an integer of at least 4096, got 100'),
    );
    assert.throws(
      () => cudaTopology(driver, { repetitions: 0 }),
      new RangeError('options.repetitions must be an integer in [1, 100], got 0'),
    );
  });
});

describe('CUDA runtime devices (emulated driver: no GPU on these machines)', () => {
  it('gpuTopology is the CUDA topology, measured once; MemoryBased and LeastLoaded read the devices; the memory gauge', async (t) => {
    const nvml = useFake(t);
    if (nvml === undefined) return;
    process.env.FAKE_NVML_LINKS = '2-3';
    await using runtime = await RingKernelRuntime.builder().backend('cuda').config({ workers: 4 }).build();
    const topology = runtime.gpuTopology();
    assert.equal(topology.devices.length, 4);
    assert.deepEqual(kinds(topology.links), ['0-1:pcie', '0-2:pcie', '0-3:pcie', '1-2:pcie', '1-3:pcie', '2-3:nvlink']);
    assert.ok(
      topology.devices.every((device) => device.workerThreadIds.length === 1),
      'each device has its worker',
    );
    process.env.FAKE_NVML_LINKS = '0-1';
    assert.equal(runtime.gpuTopology().links, topology.links, 'measured once: the same links, NVML not asked again');

    // Device memory in use, as another user of the GPUs would hold it: 300, 200, 0 and 100 MiB.
    const driver = requireCudaDriver();
    const held: { device: number; pointer: bigint }[] = [];
    const hold = (device: number, mib: number): void => {
      driver.primaryContextRetain(driver.device(device));
      held.push({ device, pointer: driver.memAlloc(mib << 20) });
      driver.setCurrentContext(0n);
    };
    try {
      hold(0, 300);
      hold(1, 200);
      hold(3, 100);
      const coordinator = runtime.multiGpuCoordinator();
      coordinator.setStrategy(LoadBalancingStrategy.MemoryBased);
      assert.equal(coordinator.selectDevice(), 2, 'device 2 has the most free memory');
      hold(2, 400);
      assert.equal(coordinator.selectDevice(), 3, 'now device 3 does');
      assert.deepEqual(
        coordinator.loads().map((load) => [load.memoryUsedBytes / 2 ** 20, load.memoryBudgetBytes / 2 ** 20]),
        [
          [300, 1024],
          [200, 1024],
          [400, 1024],
          [100, 1024],
        ],
      );
      const text = await runtime.prometheusExporter().gather();
      for (const [device, used] of [300, 200, 400, 100].entries()) {
        assert.match(
          text,
          new RegExp(`^ringkernel_device_memory_bytes\\{device="${device}",kind="used"\\} ${used * 2 ** 20}$`, 'm'),
        );
        assert.match(
          text,
          new RegExp(`^ringkernel_device_memory_bytes\\{device="${device}",kind="budget"\\} ${2 ** 30}$`, 'm'),
        );
      }

      // LeastLoaded: backlogs on devices 0, 1 and 3 (kernels never activated), so device 2.
      coordinator.setStrategy(LoadBalancingStrategy.LeastLoaded);
      for (const device of [0, 1, 3]) {
        const backlog = await runtime.launch(Sink, 1, 1, {
          autoActivate: false,
          name: `backlog${device}`,
          device,
          queueCapacity: 64,
        });
        for (let i = 0; i < 60; i++) backlog.trySend({ sender: 9, seq: i, value: 0 });
      }
      assert.equal(coordinator.selectDevice(), 2);
      const placed = await runtime.launch(Sink, 1, 1, { autoActivate: false, name: 'placed', queueCapacity: 64 });
      assert.equal(placed.device, 2, 'a launch that names no device goes where the coordinator says');
    } finally {
      for (const { device, pointer } of held) {
        driver.setCurrentContext(driver.primaryContextRetain(driver.device(device)));
        driver.memFree(pointer);
        driver.primaryContextRelease(driver.device(device));
        driver.primaryContextRelease(driver.device(device));
      }
      driver.setCurrentContext(0n);
    }
  });
});

describe('device memory gauge (CPU backend)', () => {
  it("reports each virtual device's kernel memory against its budget", async () => {
    await using runtime = await RingKernelRuntime.builder()
      .backend('cpu')
      .config({ workers: 2, devices: 2, deviceMemoryMB: 16 })
      .build();
    const sink = await runtime.launch(Sink, 1, 1, { autoActivate: false, device: 1 });
    const bytes = runtime.gpuMemoryDashboard().totals().total;
    assert.ok(bytes > 0);
    assert.deepEqual(runtime.deviceMemory(), [
      { device: 0, kind: 'cpu', usedBytes: 0, budgetBytes: 16 * 2 ** 20 },
      { device: 1, kind: 'cpu', usedBytes: bytes, budgetBytes: 16 * 2 ** 20 },
    ]);
    const text = await runtime.prometheusExporter().gather();
    assert.match(text, /^ringkernel_device_memory_bytes\{device="0",kind="used"\} 0$/m);
    assert.match(text, new RegExp(`^ringkernel_device_memory_bytes\\{device="1",kind="used"\\} ${bytes}$`, 'm'));
    assert.match(
      text,
      new RegExp(`^ringkernel_device_memory_bytes\\{device="1",kind="budget"\\} ${16 * 2 ** 20}$`, 'm'),
    );
    assert.equal(runtime.gpuTopology().linkSource, 'host-memory');
    await sink.terminate();
  });
});
