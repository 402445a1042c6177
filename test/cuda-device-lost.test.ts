/**
 * A fault on the device (`__trap()`: what an illegal address or a failed device assert does) and what it costs.
 * CUDA's errors from a fault are sticky: the device's context is poisoned, every kernel on the device ends, every
 * later call there returns the error, and CUDA documents no way back but a new process. So the runtime:
 * - fails the faulting kernel with the driver's error name, answers its waiting call, dead-letters its batch and
 *   queue;
 * - fails every other kernel on the device the same way (`CudaDeviceLostError`), with their queues;
 * - marks the device lost (`runtime.lostDevices()`, the `devices` health check, a Prometheus gauge) and places
 *   nothing more there: a launch naming it gets `CudaDeviceLostError`, others go to the devices left;
 * - restarts a supervised `mapped` kernel on another device, with its queue; a `dma` kernel cannot move (its
 *   ring replicas were on the lost device): its supervisor gives up and its queue is dead-lettered.
 *
 * On the emulated device (CPU threads stand in for the GPU: there is none on these machines), two devices. The
 * emulator models the sticky error as the CUDA documentation describes it. A file of its own: device 0 stays lost
 * for the rest of the process, as on a GPU.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CudaDeviceLostError,
  type DeadLetter,
  type KernelHandle,
  LoadBalancingStrategy,
  PinnedHostMemory,
  RingKernelRuntime,
  requireCudaDriver,
  type Supervisor,
  type SupervisorEvent,
} from '../src/internal.js';
import { AddOneWords, TRAP_WORD, TrappingAddOne } from './fixtures/cuda-kernels.js';
import { EMULATOR, emulatorMissing } from './support/emulated-cuda.js';
import { eventually, within } from './support/eventually.js';

process.env.RINGKERNEL_EMU_DEVICES = '2';
const words = (...values: number[]): Uint8Array => new Uint8Array(new Uint32Array(values).buffer);
const unwords = (bytes: Uint8Array): number[] => [...new Uint32Array(bytes.slice().buffer)];
const QUEUED = 40;

describe('a fault on a CUDA device loses the device (emulated devices: CPU threads stand in for the GPU)', () => {
  const skipped = emulatorMissing();
  let runtime: RingKernelRuntime;
  const letters: DeadLetter[] = [];
  type BytesKernel = KernelHandle<Uint8Array, Uint8Array>;
  let trapping: BytesKernel;
  let neighbour: BytesKernel;
  let survivor: BytesKernel;
  let replicated: BytesKernel;
  let bystander: BytesKernel;
  let dmaSupervisor: Supervisor;
  let sibling: BytesKernel;
  const supervisorEvents: SupervisorEvent[] = [];
  const lettersOf = (kernel: string, reason: DeadLetter['reason']): number[] =>
    letters.filter((l) => l.kernel === kernel && l.reason === reason).map((l) => unwords(l.payload)[0] as number);

  before(async () => {
    if (skipped !== undefined) return;
    process.env.RINGKERNEL_LIBCUDA = EMULATOR;
    runtime = await RingKernelRuntime.builder().backend('cuda').config({ workers: 1 }).build();
    runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    const supervisor = runtime.supervisor({
      name: 'mapped',
      maxRestarts: 5,
      windowMs: 60_000,
      backoff: { initialMs: 0 },
    });
    dmaSupervisor = runtime.supervisor({ name: 'dma', maxRestarts: 5, windowMs: 60_000, backoff: { initialMs: 0 } });
    const on0 = { device: 0, queueCapacity: 128 } as const;
    trapping = await runtime.launch(TrappingAddOne, 1, 1, { ...on0, name: 'trapping', autoActivate: true });
    neighbour = await runtime.launch(AddOneWords, 1, 1, { autoActivate: false, ...on0, name: 'neighbour' });
    survivor = await supervisor.launch(AddOneWords, 1, 1, { autoActivate: false, ...on0, name: 'survivor' });
    replicated = await dmaSupervisor.launch(AddOneWords, 1, 1, {
      autoActivate: false,
      ...on0,
      name: 'replicated',
      transferStrategy: 'dma',
    });
    // Under the same supervisor, on the device that stays: it must run on when its sibling is given up.
    sibling = await dmaSupervisor.launch(AddOneWords, 1, 1, { device: 1, name: 'sibling', autoActivate: true });
    dmaSupervisor.on((event) => supervisorEvents.push(event));
    bystander = await runtime.launch(AddOneWords, 1, 1, { device: 1, name: 'bystander', autoActivate: true });
    // Launched, never activated: each holds a queue when the device goes.
    for (let i = 0; i < QUEUED; i++) {
      await neighbour.send(words(1000 + i));
      await survivor.send(words(2000 + i));
      await replicated.send(words(3000 + i));
    }
  });
  after(async () => {
    await runtime?.shutdown();
    delete process.env.RINGKERNEL_LIBCUDA;
  });

  it('fails the faulting kernel with the sticky error, answers its waiting call, dead-letters what it held', async (t) => {
    if (skipped !== undefined) return t.skip(skipped);
    assert.deepEqual(unwords(await trapping.call(words(1, 2))), [2, 3]);
    await trapping.deactivate();
    const doomed = trapping.call(words(TRAP_WORD));
    for (let i = 0; i < 5; i++) await trapping.send(words(100 + i));
    await trapping.activate();
    await assert.rejects(doomed, (error: unknown) => {
      assert.ok(error instanceof CudaDeviceLostError, String(error));
      assert.equal(error.code, 'RK_CUDA_DEVICE_LOST');
      assert.equal(error.device, 0);
      assert.equal(error.cudaErrorName, 'CUDA_ERROR_LAUNCH_FAILED');
      assert.match(error.message, /kernel 'trapping' failed/);
      return true;
    });
    await within(trapping.exited, 20_000, "the trapping kernel's exit");
    assert.equal(trapping.status, 'Failed');
    assert.match(trapping.metrics().lastError?.message ?? '', /CUDA_ERROR_LAUNCH_FAILED/);
    // The trapping frame and the five behind it were never handled: each is a dead letter, none is lost.
    assert.deepEqual(lettersOf('trapping', 'kernel-failed'), [TRAP_WORD, 100, 101, 102, 103, 104]);
    await assert.rejects(trapping.call(words(1)), (rejected: unknown) => rejected instanceof Error);
  });

  it('fails every other kernel of the device, and dead-letters each queue whole', async (t) => {
    if (skipped !== undefined) return t.skip(skipped);
    await within(neighbour.exited, 20_000, "its neighbour's exit");
    assert.equal(neighbour.status, 'Failed');
    assert.match(neighbour.metrics().lastError?.message ?? '', /CUDA device 0 is lost .*CUDA_ERROR_LAUNCH_FAILED/);
    const expected = Array.from({ length: QUEUED }, (_, i) => 1000 + i);
    await eventually(() => assert.deepEqual(lettersOf('neighbour', 'kernel-failed'), expected));
    assert.deepEqual(
      runtime.lostDevices().map(({ device, cudaErrorName }) => ({ device, cudaErrorName })),
      [{ device: 0, cudaErrorName: 'CUDA_ERROR_LAUNCH_FAILED' }],
    );
  });

  it('restarts a supervised mapped kernel on the device left, with its queue: every message answered once', async (t) => {
    if (skipped !== undefined) return t.skip(skipped);
    await eventually(() => assert.ok(survivor.device === 1 && !survivor.awaitingRestart, 'restarted on device 1'));
    assert.equal(survivor.restarts, 1);
    await survivor.activate();
    for (let i = 0; i < QUEUED; i++) await survivor.send(words(2000 + QUEUED + i));
    const outputs: number[] = [];
    while (outputs.length < 2 * QUEUED) outputs.push(...unwords(await survivor.receive(20_000)));
    assert.deepEqual(
      outputs,
      Array.from({ length: 2 * QUEUED }, (_, i) => 2001 + i),
    );
    assert.deepEqual(unwords(await survivor.call(words(7))), [8]);
    assert.deepEqual(lettersOf('survivor', 'kernel-failed'), [], 'nothing of its queue was lost');
  });

  it('cannot move a dma kernel (its replicas were on the lost device): it alone is given up, its queue dead-lettered', async (t) => {
    if (skipped !== undefined) return t.skip(skipped);
    await eventually(() => assert.equal(replicated.status, 'Failed'));
    const givenUp = supervisorEvents.find((event) => event.type === 'child-given-up');
    assert.ok(givenUp?.type === 'child-given-up' && givenUp.child === 'replicated');
    assert.ok(givenUp.error instanceof CudaDeviceLostError);
    // The rest of its tree runs on.
    assert.equal(dmaSupervisor.status, 'running');
    assert.deepEqual(unwords(await sibling.call(words(3))), [4]);
    const expected = Array.from({ length: QUEUED }, (_, i) => 3000 + i);
    await eventually(() => {
      const lost = letters
        .filter((l) => l.kernel === 'replicated' && l.reason !== 'handler-error')
        .map((l) => unwords(l.payload)[0] as number);
      assert.deepEqual(lost, expected);
    });
  });

  it('places nothing more on the lost device; the other device works on; health and metrics say so', async (t) => {
    if (skipped !== undefined) return t.skip(skipped);
    assert.deepEqual(unwords(await bystander.call(words(41))), [42]);
    await assert.rejects(
      runtime.launch(AddOneWords, 1, 1, { autoActivate: false, device: 0, name: 'on-lost' }),
      (error: unknown) => error instanceof CudaDeviceLostError && error.device === 0,
    );
    const placed = await runtime.launch(AddOneWords, 1, 1, { name: 'placed', autoActivate: true });
    assert.equal(placed.device, 1);
    assert.deepEqual(unwords(await placed.call(words(1))), [2]);
    const report = await runtime.healthChecker().check();
    const devices = report.checks.find((check) => check.name === 'devices');
    assert.equal(devices?.status, 'Degraded');
    assert.match(devices?.reason ?? '', /0 \(CUDA_ERROR_LAUNCH_FAILED\)/);
    const text = await runtime.prometheusExporter().gather();
    assert.match(text, /ringkernel_cuda_device_lost\{device="0",error="CUDA_ERROR_LAUNCH_FAILED"\} 1/);
    assert.doesNotMatch(text, /ringkernel_cuda_device_lost\{device="1"/);
    const memory = runtime.deviceMemory().find((d) => d.device === 0);
    assert.equal(memory?.usedBytes, memory?.budgetBytes, 'a lost device counts as full');
  });

  it('pinned host memory: a registration made for a kernel of the lost device is undone from another context', async (t) => {
    if (skipped !== undefined) return t.skip(skipped);
    const driver = requireCudaDriver();
    driver.init();
    const devices = [driver.device(0), driver.device(1)];
    const pinned = PinnedHostMemory.open(driver, devices);
    // A registry of its own beside the runtime's (one per process in the library): its view must not share a page
    // with a buffer the runtime pinned, which the driver would refuse (CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED).
    // Small SharedArrayBuffers lie side by side on the C heap; these three pages lie inside this one's own five.
    const view = new Uint8Array(new SharedArrayBuffer(5 * 4096), 4096, 3 * 4096);
    driver.primaryContextRetain(devices[1] as number); // current: the device that is left
    pinned.pin(view);
    assert.equal(pinned.registrations, 1);
    // The kernel's device thread lets go with the lost device's context current, which refuses every call.
    driver.primaryContextRetain(devices[0] as number);
    assert.throws(() => driver.memGetInfo(), /CUDA_ERROR_LAUNCH_FAILED/);
    pinned.unpin(view);
    assert.equal(pinned.registrations, 0);
    // Undone in the driver too: the pages can be registered again (the driver refuses a page registered twice).
    driver.primaryContextRetain(devices[1] as number);
    pinned.pin(view);
    pinned.unpin(view);
    assert.equal(pinned.registrations, 0);
  });

  it('a runtime built later in the same process learns of the lost device before it places anything there', async (t) => {
    if (skipped !== undefined) return t.skip(skipped);
    const build = () => RingKernelRuntime.builder().backend('cuda').config({ workers: 1 }).build();
    // A dma launch that names the device: its replicas cannot be allocated there.
    {
      await using later = await build();
      assert.deepEqual(later.lostDevices(), []);
      await assert.rejects(
        later.launch(AddOneWords, 1, 1, { autoActivate: false, device: 0, name: 'named-dma', transferStrategy: 'dma' }),
        (error: unknown) => error instanceof CudaDeviceLostError && error.device === 0,
      );
      assert.deepEqual(
        later.lostDevices().map((lost) => lost.device),
        [0],
      );
    }
    // A mapped launch that names it: the device thread finds the sticky error when it opens the device.
    {
      await using later = await build();
      await assert.rejects(
        later.launch(AddOneWords, 1, 1, { autoActivate: false, device: 0, name: 'named-mapped' }),
        (error: unknown) => error instanceof CudaDeviceLostError && error.cudaErrorName === 'CUDA_ERROR_LAUNCH_FAILED',
      );
      assert.deepEqual(
        later.lostDevices().map((lost) => lost.device),
        [0],
      );
    }
    // A launch placed by the coordinator: reading device 0's memory finds the sticky error, so it goes to device 1
    // (first-available would have taken device 0).
    {
      await using later = await build();
      later.multiGpuCoordinator(LoadBalancingStrategy.FirstAvailable);
      const placed = await later.launch(AddOneWords, 1, 1, { name: 'placed-later', autoActivate: true });
      assert.equal(placed.device, 1);
      assert.deepEqual(unwords(await placed.call(words(9))), [10]);
      assert.deepEqual(
        later.lostDevices().map((lost) => [lost.device, lost.cudaErrorName]),
        [[0, 'CUDA_ERROR_LAUNCH_FAILED']],
      );
    }
  });
});
