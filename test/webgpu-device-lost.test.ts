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
import { type DeadLetter, type KernelHandle, RingKernelRuntime } from '../src/index.js';
import { WebGpuError } from '../src/webgpu.js';
import { WgslAddOne } from './fixtures/webgpu-kernels.js';
import { eventually } from './support/eventually.js';
import { webgpuMissing } from './support/webgpu.js';

/** The device thread listens for the hook only when its environment says so (it copies ours when it starts). */
process.env.RINGKERNEL_WEBGPU_TEST_HOOKS = '1';
const HOOK_CHANNEL = 'ringkernel.webgpu.test-hook';
const QUEUED = 40;

/** Destroys the device thread's device; resolves once its `lost` promise has resolved there (10 s at most). */
async function loseTheDevice(): Promise<void> {
  const channel = new BroadcastChannel(HOOK_CHANNEL);
  let timer: NodeJS.Timeout | undefined;
  try {
    const lost = new Promise<void>((resolve, reject) => {
      channel.onmessage = (event) => {
        if ((event as MessageEvent).data === 'device-lost') resolve();
      };
      timer = setTimeout(() => reject(new Error('the device thread did not answer the test hook in 10 s')), 10_000);
    });
    channel.postMessage('lose-device');
    await lost;
  } finally {
    clearTimeout(timer);
    channel.close();
  }
}

describe('a lost WebGPU device (real adapter; the loss is a real device.destroy() through a test hook)', () => {
  let skip: string | undefined;
  let runtime: RingKernelRuntime;
  const letters: DeadLetter[] = [];
  type Words = KernelHandle<{ value: number }, { value: number }>;
  let busy: Words;
  let streaming: Words;
  let streamed = 0;
  let idle: Words;
  let supervised: Words;
  let doomed: Promise<unknown>;
  const lettered = (kernel: string): number[] =>
    letters
      .filter((l) => l.kernel === kernel && l.reason === 'kernel-failed')
      .map((l) => new DataView(l.payload.buffer, l.payload.byteOffset).getUint32(0, true));

  before(async () => {
    skip = await webgpuMissing();
    if (skip !== undefined) return;
    runtime = await RingKernelRuntime.builder()
      .backend('webgpu', { allowFallback: true })
      .config({ workers: 1 })
      .build();
    runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
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
    await loseTheDevice();
  });
  after(async () => {
    await runtime?.shutdown();
    delete process.env.RINGKERNEL_WEBGPU_TEST_HOOKS;
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
    for (const kernel of [busy, idle]) {
      await kernel.exited;
      assert.equal(kernel.status, 'Failed', kernel.name);
      assert.match(kernel.metrics().lastError?.message ?? '', /WebGPU device lost/, kernel.name);
    }
  });

  it("dead-letters each unsupervised kernel's queue whole, each message once", async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const expected = Array.from({ length: QUEUED }, (_, i) => 1000 + i);
    await eventually(() => assert.deepEqual(lettered('idle'), expected));
    await eventually(() => assert.deepEqual(lettered('busy'), [7]));
  });

  it('a stream in flight: every message answered or dead-lettered, exactly once, in order', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    await streaming.exited;
    assert.equal(streaming.status, 'Failed');
    const answered: number[] = [];
    for (let out = streaming.tryReceive(); out !== undefined; out = streaming.tryReceive())
      answered.push(out.value - 1);
    const lost = await eventually(() => {
      const found = lettered('streaming');
      assert.equal(answered.length + found.length, streamed, `${answered.length} answered, ${found.length} lettered`);
      return found;
    });
    t.diagnostic(`${streamed} sent: ${answered.length} answered before the loss, ${lost.length} dead-lettered`);
    assert.deepEqual(
      [...answered, ...lost],
      Array.from({ length: streamed }, (_, i) => i),
    );
  });

  it('restarts a supervised kernel on a new device, with its queue: every message answered once', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    await eventually(() => assert.ok(supervised.restarts === 1 && !supervised.awaitingRestart, 'restarted'));
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
