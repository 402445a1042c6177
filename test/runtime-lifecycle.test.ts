import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  BackendUnavailableError,
  ErrorCode,
  InvalidStateError,
  KernelNotFoundError,
  RingKernelRuntime,
  RuntimeShutDownError,
} from '../src/internal.js';
import { Accumulator } from './fixtures/kernels.js';

describe('RuntimeBuilder', () => {
  it('validates settings with messages naming the field', () => {
    const builder = RingKernelRuntime.builder();
    assert.throws(
      () => builder.config({ defaultQueueCapacity: 0 }),
      /config.defaultQueueCapacity must be an integer in \[1, 1048576\], got 0/,
    );
    assert.throws(
      () => builder.config({ terminationTimeout: '5s' as never }),
      /config.terminationTimeout must be a number, got string/,
    );
    assert.throws(() => builder.config({ enableTelemetry: 1 as never }), /config.enableTelemetry must be a boolean/);
    assert.throws(() => builder.config({ nonsense: 1 } as never), /config.nonsense is not a runtime setting/);
    assert.throws(
      () => builder.backend('tpu' as never),
      /backend must be one of cpu, cuda, webgpu, wgpu, metal, got "tpu"/,
    );
    assert.throws(() => builder.device(-1), /device must be a non-negative integer, got -1/);
  });

  it('fails build() with a typed error that says why a backend cannot run here', async () => {
    for (const backend of ['cuda', 'wgpu', 'metal'] as const) {
      await assert.rejects(
        RingKernelRuntime.builder().backend(backend).build(),
        (error: unknown) =>
          error instanceof BackendUnavailableError &&
          error.code === ErrorCode.BackendUnavailable &&
          // 'wgpu' is the seed's name for the WebGPU backend: the error names it 'webgpu'.
          error.message.includes(backend === 'wgpu' ? 'webgpu' : backend),
      );
    }
    await assert.rejects(RingKernelRuntime.builder().backend('metal').build(), /Metal needs macOS; this is linux/);
    await assert.rejects(RingKernelRuntime.builder().backend('cpu').device(1).build(), /device 1 does not exist/);
  });

  it('auto-selects the best available backend and falls back to the CPU', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      assert.equal(runtime.backend, 'cpu');
      assert.equal(runtime.backendProbes.find((p) => p.backend === 'cuda')?.available, false);
      assert.equal(runtime.config.defaultQueueCapacity, 4096);
      assert.equal(runtime.config.defaultMessageSize, 65_792);
      assert.equal(runtime.config.bridgePollInterval, 100);
      assert.equal(runtime.config.terminationTimeout, 5_000);
      assert.equal(runtime.config.enableTelemetry, true);
    } finally {
      await runtime.shutdown();
    }
  });
});

describe('kernel lifecycle', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 2 }).build();
  });
  after(() => runtime.shutdown());

  it('goes Launched → Active ⇄ Deactivated → Terminated, mirrored in the ControlBlock', async () => {
    const handle = await runtime.launch(Accumulator, 1, 1, { name: 'life', autoActivate: false });
    assert.equal(handle.status, 'Launched');
    await handle.activate();
    assert.equal(handle.status, 'Active');
    await handle.deactivate();
    assert.equal(handle.status, 'Deactivated');
    await handle.activate();
    assert.equal(runtime.status('life'), 'Active');
    await handle.terminate();
    assert.equal(handle.status, 'Terminated');
    assert.throws(() => runtime.kernel('life'), KernelNotFoundError);
  });

  it('activates on launch by default, as a fromKernel actor does; activate() on an Active kernel resolves', async () => {
    const handle = await runtime.launch(Accumulator, { name: 'eager' });
    assert.equal(handle.status, 'Active');
    const reply = await handle.call({ sender: 1, seq: 1, value: 5 }, { timeout: 5_000 });
    assert.equal(reply.total, 5, 'a call right after launch is answered without activate()');
    await handle.activate();
    assert.equal(handle.status, 'Active');
    const next = await handle.call({ sender: 1, seq: 2, value: 7 }, { timeout: 5_000 });
    assert.equal(next.total, 12, 'still Active, its state kept');
    await handle.terminate();
  });

  it('refuses invalid transitions with a typed InvalidState error naming both states', async () => {
    const handle = await runtime.launch(Accumulator, 1, 1, { name: 'invalid', autoActivate: false });
    await assert.rejects(handle.deactivate(), (error: unknown) => {
      assert.ok(error instanceof InvalidStateError);
      assert.equal(error.code, ErrorCode.InvalidState);
      assert.equal(error.state, 'Launched');
      assert.equal(error.target, 'Deactivated');
      assert.match(error.message, /it is Launched, and Launched → Deactivated is not a valid transition/);
      return true;
    });
    await handle.activate();
    await handle.deactivate();
    await assert.rejects(handle.deactivate(), /it is Deactivated, and Deactivated → Deactivated/);
    await handle.activate();
    await assert.rejects(
      runtime.launch(Accumulator, 1, 1, { name: 'invalid' }),
      /cannot launch kernel 'invalid': it is Active/,
    );
    await handle.terminate();
    assert.throws(
      () => handle.trySend({ sender: 0, seq: 0, value: 1 }),
      /it is Terminated, and takes no more messages/,
    );
    await assert.rejects(handle.send({ sender: 0, seq: 0, value: 1 }), InvalidStateError);
    await assert.rejects(handle.activate(), /it is Terminated/);
    await assert.rejects(handle.call({ sender: 0, seq: 0, value: 1 }), InvalidStateError);
    await assert.rejects(handle.receive(100), InvalidStateError);
  });

  it('a launched kernel holds its input until activated; an unknown kernel id is KernelNotFound', async () => {
    await assert.rejects(
      runtime.launch('no.such.kernel'),
      (error: unknown) => error instanceof KernelNotFoundError && error.code === 'RK_KERNEL_NOT_FOUND',
    );
    assert.throws(() => runtime.status('nobody'), KernelNotFoundError);
    const handle = await runtime.launch(Accumulator, [2, 2], [32], { name: 'held', autoActivate: false });
    assert.deepEqual(handle.metrics().gridSize, [2, 2, 1]);
    for (let i = 0; i < 10; i++) assert.ok(handle.trySend({ sender: 1, seq: i, value: 1 }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(handle.metrics().messagesReceived, 0, 'nothing consumed while Launched');
    assert.equal(handle.metrics().inputQueueDepth, 10);
    await handle.activate();
    for (let i = 0; i < 10; i++) assert.equal((await handle.receive(2000)).seq, i);
    await handle.terminate();
  });

  it('validates launch sizes and options', async () => {
    await assert.rejects(
      runtime.launch(Accumulator, 0),
      /gridSize must be a positive integer or up to three of them, got 0/,
    );
    await assert.rejects(runtime.launch(Accumulator, 1, [1, 1, 1, 1] as never), /blockSize/);
    await assert.rejects(
      runtime.launch(Accumulator, 1, 1, { queueCapacity: 0 }),
      /options.queueCapacity must be an integer/,
    );
  });

  it('mirrors state into a ControlBlock any thread can read', async () => {
    const handle = await runtime.launch(Accumulator, 1, 1, { name: 'mirror', autoActivate: true });
    const metrics = handle.metrics();
    assert.equal(metrics.status, 'Active');
    assert.equal(metrics.transferStrategy, 'direct');
    assert.ok(metrics.workerThreadId > 0);
    await handle.terminate();
  });

  it('refuses a second launch under a name whose first launch is still in progress', async () => {
    const [first, second] = await Promise.allSettled([
      runtime.launch(Accumulator, 1, 1, { name: 'twice' }),
      runtime.launch(Accumulator, 1, 1, { name: 'twice' }),
    ]);
    assert.equal(first.status, 'fulfilled');
    assert.equal(second.status, 'rejected');
    assert.match(String((second as PromiseRejectedResult).reason), /cannot launch kernel 'twice': it is Created/);
    if (first.status === 'fulfilled') await first.value.terminate();
  });

  it('terminates a handle and shuts a runtime down at the end of an `await using` block', async () => {
    let handle: Awaited<ReturnType<RingKernelRuntime['launch']>> | undefined;
    let inner: RingKernelRuntime | undefined;
    {
      await using scoped = await RingKernelRuntime.builder().config({ workers: 1 }).build();
      inner = scoped;
      await using launched = await scoped.launch(Accumulator, 1, 1, { autoActivate: true });
      handle = launched;
      assert.equal(launched.status, 'Active');
    }
    assert.equal(handle?.status, 'Terminated');
    await assert.rejects(inner.launch(Accumulator), RuntimeShutDownError);
  });

  it('after shutdown, refuses new launches with a typed error', async () => {
    const other = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    await other.launch(Accumulator, 1, 1, { autoActivate: true });
    const report = await other.shutdown();
    assert.equal(report.terminated, 1);
    assert.equal(report.failed, 0);
    await assert.rejects(other.launch(Accumulator), (error: unknown) => error instanceof RuntimeShutDownError);
    assert.deepEqual(await other.shutdown(), report, 'idempotent');
  });
});
