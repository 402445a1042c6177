/**
 * A WebGPU device lost under its kernels, on a real adapter (Mesa's software Vulkan where the machine has no GPU).
 *
 * What is real: the device thread's own `GPUDevice` is destroyed (`device.destroy()`, through the device thread's
 * test hook, since nothing here can pull a GPU out or reset a driver), so Dawn resolves the device's `lost` promise
 * and fails its pending readbacks exactly as on a real loss; the kernels, rings, supervisor and the new device a
 * restart lands on are the real ones. What is not: the cause (a destroy, not a driver reset).
 *
 * Then: every kernel of the device fails with `WebGpuError` (`RK_WEBGPU_DEVICE_LOST`), a waiting call is rejected
 * with it, each unsupervised queue is dead-lettered, each message once; a supervised kernel restarts on a new device
 * with its queue, every message answered once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeadLetter, KernelHandle, RingKernelRuntime } from '../src/index.js';
import { WebGpuError } from '../src/webgpu.js';
import { WgslAddOne } from './fixtures/webgpu-kernels.js';
import { eventually } from './support/eventually.js';
import { letteredValues, startWebGpuRuntime, webgpuMissing } from './support/webgpu.js';

/** The device thread listens for the hook only when its environment says so (it copies ours when it starts). */
process.env.RINGKERNEL_WEBGPU_TEST_HOOKS = '1';
after(() => {
  delete process.env.RINGKERNEL_WEBGPU_TEST_HOOKS;
});
const HOOK_CHANNEL = 'ringkernel.webgpu.test-hook';
const QUEUED = 40;

/**
 * Asks the device thread's test hook for `hook` (`'lose-device'`: destroy its device; `'uncaptured-error'`: make a
 * real validation error outside any error scope); resolves once the thread says it is done (10 s at most).
 */
async function deviceHook(hook: 'lose-device' | 'uncaptured-error'): Promise<void> {
  const channel = new BroadcastChannel(HOOK_CHANNEL);
  let timer: NodeJS.Timeout | undefined;
  try {
    const lost = new Promise<void>((resolve, reject) => {
      channel.onmessage = (event) => {
        if ((event as MessageEvent).data === (hook === 'lose-device' ? 'device-lost' : hook)) resolve();
      };
      timer = setTimeout(() => reject(new Error('the device thread did not answer the test hook in 10 s')), 10_000);
    });
    channel.postMessage(hook);
    await lost;
  } finally {
    clearTimeout(timer);
    channel.close();
  }
}

describe('a lost WebGPU device (real adapter; the loss is a real device.destroy() through a test hook)', () => {
  let skip: string | undefined;
  let runtime: RingKernelRuntime;
  type Words = KernelHandle<{ value: number }, { value: number }>;
  let busy: Words;
  let streaming: Words;
  let streamed = 0;
  let idle: Words;
  let supervised: Words;
  let doomed: Promise<unknown>;
  let letters: DeadLetter[] = [];
  const lettered = (kernel: string): number[] =>
    letteredValues(letters, (l) => l.kernel === kernel && l.reason === 'kernel-failed');

  before(async () => {
    skip = await webgpuMissing();
    if (skip !== undefined) return;
    ({ runtime, letters } = await startWebGpuRuntime());
    const supervisor = runtime.supervisor({ name: 'gpu', maxRestarts: 5, windowMs: 60_000, backoff: { initialMs: 0 } });
    busy = (await runtime.launch(WgslAddOne, 1, 1, { name: 'busy', autoActivate: true })) as unknown as Words;
    // Launched and never activated: each holds a queue when the device goes.
    idle = (await runtime.launch(WgslAddOne, 1, 1, { name: 'idle', autoActivate: false })) as unknown as Words;
    supervised = (await supervisor.launch(WgslAddOne, 1, 1, {
      name: 'supervised',
      autoActivate: false,
    })) as unknown as Words;
    assert.equal((await busy.call({ value: 1 })).value, 2, 'the device works before it is lost');
    for (let i = 0; i < QUEUED; i++) {
      await idle.send({ value: 1000 + i });
      await supervised.send({ value: 2000 + i });
    }
    // A call the busy kernel cannot answer before the loss: it waits, deactivated, in the queue.
    await busy.deactivate();
    doomed = busy.call({ value: 7 });
    doomed.catch(() => {});
    // A stream with batches in flight when the device goes (its output ring has room for all of it).
    streaming = (await runtime.launch(WgslAddOne, 1, 1, {
      name: 'streaming',
      autoActivate: true,
      queueCapacity: 16_384,
    })) as unknown as Words;
    while (streamed < 16_000 && streaming.trySend({ value: streamed })) streamed++;
    await deviceHook('lose-device');
  });
  after(async () => {
    await runtime?.shutdown();
  });

  it('fails every kernel of the device with WebGpuError (RK_WEBGPU_DEVICE_LOST); a waiting call is rejected with it', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    await assert.rejects(doomed, (error: unknown) => {
      assert.ok(error instanceof WebGpuError, String(error));
      assert.equal(error.code, 'RK_WEBGPU_DEVICE_LOST');
      assert.equal(error.kind, 'lost');
      assert.match(error.message, /WebGPU device lost during/);
      return true;
    });
    // Polled, not `await kernel.exited`: a kernel's port does not hold the event loop.
    for (const kernel of [busy, idle]) {
      await eventually(() => {
        assert.equal(kernel.status, 'Failed', kernel.name);
        assert.match(kernel.metrics().lastError?.message ?? '', /WebGPU device lost/, kernel.name);
      }, 20_000);
    }
  });

  it("dead-letters each unsupervised kernel's queue whole, each message once", async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const expected = Array.from({ length: QUEUED }, (_, i) => 1000 + i);
    await eventually(() => assert.deepEqual(lettered('idle'), expected), 20_000);
    await eventually(() => assert.deepEqual(lettered('busy'), [7]), 20_000);
  });

  it('a stream in flight: every message answered or dead-lettered, exactly once, in order', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    await eventually(() => assert.equal(streaming.status, 'Failed'), 20_000);
    const answered: number[] = [];
    for (let out = streaming.tryReceive(); out !== undefined; out = streaming.tryReceive())
      answered.push(out.value - 1);
    const lost = await eventually(() => {
      const found = lettered('streaming');
      assert.equal(answered.length + found.length, streamed, `${answered.length} answered, ${found.length} lettered`);
      return found;
    }, 20_000);
    t.diagnostic(`${streamed} sent: ${answered.length} answered before the loss, ${lost.length} dead-lettered`);
    assert.deepEqual(
      [...answered, ...lost],
      Array.from({ length: streamed }, (_, i) => i),
    );
  });

  it('restarts a supervised kernel on a new device, with its queue: every message answered once', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    await eventually(() => assert.ok(supervised.restarts === 1 && !supervised.awaitingRestart, 'restarted'), 20_000);
    await supervised.activate();
    for (let i = 0; i < QUEUED; i++) await supervised.send({ value: 2000 + QUEUED + i });
    const outputs: number[] = [];
    while (outputs.length < 2 * QUEUED) outputs.push((await supervised.receive(20_000)).value);
    assert.deepEqual(
      outputs,
      Array.from({ length: 2 * QUEUED }, (_, i) => 2001 + i),
    );
    assert.equal((await supervised.call({ value: 41 })).value, 42);
    assert.deepEqual(lettered('supervised'), [], 'nothing of its queue was lost');
    // A new launch lands on the new device too.
    const fresh = await runtime.launch(WgslAddOne, 1, 1, { name: 'fresh', autoActivate: true });
    assert.equal((await fresh.call({ value: 9 })).value, 10);
  });
});

describe('an uncaptured WebGPU error (real adapter; a real validation error made on the device thread through a test hook)', () => {
  it("fails the device's kernels with WebGpuError of that kind, dead-letters their queues; a supervised kernel restarts on a new device", async (t) => {
    const skip = await webgpuMissing();
    if (skip !== undefined) return t.skip(skip);
    const { runtime, letters } = await startWebGpuRuntime();
    try {
      const supervisor = runtime.supervisor({
        name: 'gpu',
        maxRestarts: 5,
        windowMs: 60_000,
        backoff: { initialMs: 0 },
      });
      const plain = await runtime.launch(WgslAddOne, 1, 1, { name: 'plain', autoActivate: true });
      // Deactivated: its queue and a call wait in its ring when the error comes.
      await plain.deactivate();
      const supervised = await supervisor.launch(WgslAddOne, 1, 1, { name: 'kept', autoActivate: false });
      for (let i = 0; i < QUEUED; i++) {
        await plain.send({ value: 1000 + i });
        await supervised.send({ value: 2000 + i });
      }
      const waiting = plain.call({ value: 7 }, { timeout: 20_000 });
      waiting.catch(() => {});
      await deviceHook('uncaptured-error');
      await assert.rejects(waiting, (error: unknown) => {
        assert.ok(error instanceof WebGpuError, String(error));
        assert.equal(error.code, 'RK_WEBGPU_ERROR');
        assert.equal(error.kind, 'validation');
        assert.match(error.message, /WebGPU validation error during running batches: .*does not fit/s);
        return true;
      });
      await eventually(() => assert.equal(plain.status, 'Failed'), 20_000);
      const lettered = (kernel: string): number[] =>
        letteredValues(letters, (l) => l.kernel === kernel && l.reason === 'kernel-failed');
      await eventually(
        () => assert.deepEqual(lettered('plain'), [...Array.from({ length: QUEUED }, (_, i) => 1000 + i), 7]),
        20_000,
      );
      await eventually(() => assert.ok(supervised.restarts === 1 && !supervised.awaitingRestart, 'restarted'), 20_000);
      await supervised.activate();
      const outputs: number[] = [];
      while (outputs.length < QUEUED) outputs.push((await supervised.receive(20_000)).value);
      assert.deepEqual(
        outputs,
        Array.from({ length: QUEUED }, (_, i) => 2001 + i),
      );
      assert.deepEqual(lettered('kept'), []);
    } finally {
      await runtime.shutdown();
    }
  });
});

describe('a WebGPU device lost while a batch waits for room in a full output ring (real adapter; real device.destroy())', () => {
  it('the answers written stay answered, the rest is dead-lettered: every message exactly once, in order', async (t) => {
    const skip = await webgpuMissing();
    if (skip !== undefined) return t.skip(skip);
    const { runtime, letters } = await startWebGpuRuntime();
    try {
      const kernel = await runtime.launch(WgslAddOne, 1, 1, { name: 'blocked', autoActivate: true, queueCapacity: 64 });
      // Nobody reads the outputs: send until both rings are full and the batch in hand waits for room (half a
      // second without progress, bounded).
      let sent = 0;
      let progressAt = performance.now();
      while (sent < 5000 && performance.now() - progressAt < 500) {
        if (kernel.trySend({ value: sent })) {
          sent++;
          progressAt = performance.now();
        } else await new Promise((resolve) => setTimeout(resolve, 1));
      }
      assert.ok(sent > 64, `${sent} sent: more than the output ring holds`);
      await deviceHook('lose-device');
      const answered: number[] = [];
      const lettered = (): number[] => letteredValues(letters, (l) => l.kernel === 'blocked');
      await eventually(() => {
        for (let out = kernel.tryReceive(); out !== undefined; out = kernel.tryReceive()) answered.push(out.value - 1);
        assert.equal(kernel.status, 'Failed');
        assert.equal(
          answered.length + lettered().length,
          sent,
          `${answered.length} answered, ${lettered().length} lettered`,
        );
      }, 20_000);
      t.diagnostic(`${sent} sent: ${answered.length} answered, ${lettered().length} dead-lettered`);
      assert.deepEqual(
        [...answered, ...lettered()],
        Array.from({ length: sent }, (_, i) => i),
      );
      assert.ok(
        letters.filter((l) => l.kernel === 'blocked').every((l) => l.reason === 'kernel-failed'),
        'only the kernel failure dead-lettered',
      );
    } finally {
      await runtime.shutdown();
    }
  });
});
