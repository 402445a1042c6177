/**
 * WebGPU kernels through the runtime, on a real adapter (Mesa's software Vulkan where the machine has no GPU): the
 * executor shell on the WebGPU device thread, the same lifecycle, checkpoints, links and supervision as CPU kernels.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type DeadLetter, InvalidArgumentError, type RingKernelRuntime, StateSnapshotError } from '../src/index.js';
import { WgslCompileError, WgslSchemaError } from '../src/webgpu.js';
import {
  CpuDouble,
  POISON,
  WgslAddOne,
  WgslBroken,
  WgslCount,
  WgslOversizedOutput,
  WgslTotal,
  WgslUnexpressible,
} from './fixtures/webgpu-kernels.js';
import { eventually, within } from './support/eventually.js';
import { OtlpReceiver } from './support/otlp-receiver.js';
import { Random, TEST_SEED } from './support/random.js';
import { startWebGpuRuntime, webgpuMissing } from './support/webgpu.js';

describe('WebGPU kernels in the runtime (real adapter)', () => {
  let skip: string | undefined;
  let runtime: RingKernelRuntime | undefined;
  let letters: DeadLetter[] = [];

  before(async () => {
    skip = await webgpuMissing();
    if (skip !== undefined) return;
    ({ runtime, letters } = await startWebGpuRuntime());
  });
  after(async () => {
    await runtime?.shutdown();
  });

  it('says which adapter it chose and why', (t) => {
    if (skip !== undefined) return t.skip(skip);
    const rt = runtime as RingKernelRuntime;
    assert.equal(rt.backend, 'webgpu');
    assert.match(rt.backendProbes[0]?.reason ?? '', /adapter .* through Dawn/);
  });

  it('answers calls and streams in order; deactivate holds input, activate resumes; terminate drains', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const rt = runtime as RingKernelRuntime;
    const kernel = await rt.launch(WgslAddOne, 1, 1, { name: 'add-one', autoActivate: true });
    assert.equal((await kernel.call({ value: 41 })).value, 42);
    for (let i = 0; i < 500; i++) await kernel.send({ value: i });
    for (let i = 0; i < 500; i++) assert.equal((await kernel.receive()).value, i + 1);
    await kernel.deactivate();
    assert.equal(kernel.status, 'Deactivated');
    for (let i = 0; i < 50; i++) await kernel.send({ value: 1000 + i });
    assert.equal(kernel.tryReceive(), undefined, 'a deactivated kernel handles nothing');
    await kernel.activate();
    for (let i = 0; i < 50; i++) assert.equal((await kernel.receive()).value, 1001 + i);
    for (let i = 0; i < 100; i++) await kernel.send({ value: i });
    await kernel.terminate({ drain: true });
    assert.equal(kernel.status, 'Terminated');
    let drained = 0;
    for (let out = kernel.tryReceive(); out !== undefined; out = kernel.tryReceive()) drained++;
    assert.equal(drained, 100, 'terminate with drain handled what was queued');
  });

  it('terminate without drain dead-letters the queue, each message once', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const rt = runtime as RingKernelRuntime;
    const kernel = await rt.launch(WgslAddOne, 1, 1, { autoActivate: false, name: 'discarding' });
    for (let i = 0; i < 20; i++) await kernel.send({ value: i });
    await kernel.terminate({ drain: false });
    await eventually(() =>
      assert.equal(
        letters.filter((l) => l.kernel === 'discarding' && l.reason === 'discarded-on-terminate').length,
        20,
      ),
    );
  });

  it('keeps state on the device: a checkpoint is exact, and a restored launch goes on from it', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const rt = runtime as RingKernelRuntime;
    const kernel = await rt.launch(WgslTotal, 1, 1, { name: 'totals', autoActivate: true });
    const random = new Random(TEST_SEED);
    let sum = 0;
    for (let i = 0; i < 300; i++) {
      const value = random.int(0, 1000);
      sum += value;
      await kernel.send({ value });
    }
    // Invocations of one batch run concurrently: the running figures come back in no order inside a batch, and the
    // largest is the whole.
    let last = { count: 0, total: 0 };
    for (let i = 0; i < 300; i++) {
      const out = (await kernel.receive()).toObject();
      if (out.count > last.count) last = out;
    }
    assert.deepEqual(last, { count: 300, total: sum });
    const checkpoint = await kernel.checkpoint();
    assert.deepEqual([...new Uint32Array(checkpoint.state.slice().buffer)], [300, sum]);
    await kernel.terminate();
    const resumed = await rt.launch(WgslTotal, 1, 1, { name: 'totals-2', autoActivate: true, restore: checkpoint });
    assert.deepEqual((await resumed.call({ value: 5 })).toObject(), { count: 301, total: sum + 5 });
    await resumed.terminate();
  });

  it('refuses a checkpoint, typed, while a batch waits on outputs nobody reads; takes it once they are read', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const rt = runtime as RingKernelRuntime;
    // Tiny rings: the output ring fills, the next batch waits for room, and the input ring fills behind it.
    const kernel = await rt.launch(WgslTotal, 1, 1, { name: 'unread', queueCapacity: 8 });
    let sent = 0;
    for (let round = 0, stalled = 0; stalled < 3 && round < 200; round++) {
      let taken = 0;
      while (kernel.trySend({ value: sent + taken + 1 })) taken++;
      sent += taken;
      stalled = taken === 0 ? stalled + 1 : 0;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(sent > 8, `the kernel took ${sent} messages: its output ring never filled`);
    // Before: the snapshot waited for that batch, which waited for a reader: the checkpoint never settled.
    await assert.rejects(
      within(kernel.checkpoint(), 10_000, 'checkpoint of a kernel whose outputs nobody reads'),
      (error: unknown) =>
        error instanceof StateSnapshotError && /full output ring: read the kernel's outputs/.test(error.message),
    );
    assert.equal(kernel.status, 'Active', 'the refused checkpoint resumed the kernel');
    let last = { count: 0, total: 0 };
    for (let i = 0; i < sent; i++) {
      const out = (await kernel.receive(10_000)).toObject();
      if (out.count > last.count) last = out;
    }
    const sum = (sent * (sent + 1)) / 2;
    assert.deepEqual(last, { count: sent, total: sum });
    const checkpoint = await within(kernel.checkpoint(), 10_000, 'checkpoint once the outputs were read');
    assert.deepEqual([...new Uint32Array(checkpoint.state.slice().buffer)], [sent, sum]);
    await kernel.terminate();
  });

  it('fails only the messages whose handler returns an error code (a seeded 1 %): each answered or dead-lettered once', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const rt = runtime as RingKernelRuntime;
    const kernel = await rt.launch(WgslAddOne, 1, 1, { name: 'picky', autoActivate: true });
    const random = new Random(TEST_SEED ^ 0x77);
    const expected: number[] = [];
    const poisoned = new Set<number>();
    for (let seq = 0; seq < 3000; seq++) {
      const poison = random.next() < 0.01;
      if (poison) poisoned.add(seq);
      else expected.push(seq + 1);
      await kernel.send({ value: poison ? POISON : seq });
    }
    const outputs: number[] = [];
    while (outputs.length < expected.length) outputs.push((await kernel.receive()).value);
    assert.deepEqual(outputs, expected);
    await eventually(() =>
      assert.equal(letters.filter((l) => l.kernel === 'picky' && l.reason === 'handler-error').length, poisoned.size),
    );
    await assert.rejects(kernel.call({ value: POISON }), /WGSL handler returned RK_HANDLER_FAILED/);
    await kernel.terminate();
  });

  it('links CPU → WebGPU → CPU: every message once, in order, under backpressure', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const rt = runtime as RingKernelRuntime;
    const first = await rt.launch(CpuDouble, 1, 1, { name: 'double-1', autoActivate: true, queueCapacity: 64 });
    const gpu = await rt.launch(WgslAddOne, 1, 1, { name: 'gpu-add', autoActivate: true, queueCapacity: 64 });
    const last = await rt.launch(CpuDouble, 1, 1, { name: 'double-2', autoActivate: true, queueCapacity: 64 });
    await rt.connect(first, gpu, { queueCapacity: 32 });
    await rt.connect(gpu, last, { queueCapacity: 32 });
    const total = 2000;
    const outputs: number[] = [];
    for (let i = 0; i < total; i++) {
      await first.send({ value: i });
      for (let out = last.tryReceive(); out !== undefined; out = last.tryReceive()) outputs.push(out.value);
    }
    while (outputs.length < total) outputs.push((await last.receive()).value);
    assert.deepEqual(
      outputs,
      Array.from({ length: total }, (_, i) => (i * 2 + 1) * 2),
    );
    for (const k of [first, gpu, last]) await k.terminate();
  });

  it('refuses a handler that does not compile, with line and column, and a schema WGSL cannot express', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const rt = runtime as RingKernelRuntime;
    await assert.rejects(rt.launch(WgslBroken, 1, 1, { autoActivate: false }), (error: unknown) => {
      assert.ok(error instanceof WgslCompileError, String(error));
      const first = error.messages.find((m) => m.type === 'error');
      assert.deepEqual([first?.line, first?.column], [3, 14]);
      return true;
    });
    await assert.rejects(rt.launch(WgslUnexpressible, 1, 1, { autoActivate: false }), (error: unknown) => {
      assert.ok(error instanceof WgslSchemaError, String(error));
      assert.equal(error.field, 'value');
      assert.match(error.message, /no 64-bit floats/);
      return true;
    });
  });

  it('refuses launch options a WebGPU kernel cannot take, with typed errors naming the field', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const rt = runtime as RingKernelRuntime;
    await assert.rejects(rt.launch(WgslOversizedOutput, 1, 1), (error: unknown) => {
      assert.ok(error instanceof InvalidArgumentError, String(error));
      assert.equal(error.code, 'RK_INVALID_ARGUMENT');
      assert.equal(error.argument, 'spec.webgpu.outputBytes');
      assert.match(
        error.message,
        /webgpu.outputBytes must be at most \d+ \(the output ring's largest payload\), got 4096/,
      );
      return true;
    });
    await assert.rejects(rt.launch(WgslAddOne, 1, 1, { transferStrategy: 'dma' }), (error: unknown) => {
      assert.ok(error instanceof InvalidArgumentError, String(error));
      assert.equal(error.argument, 'options.transferStrategy');
      assert.match(error.message, /WebGPU kernels take 'direct'/);
      return true;
    });
  });

  it('restarts a supervised kernel that fails on a handler error, with its queue: every good message once', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const rt = runtime as RingKernelRuntime;
    const supervisor = rt.supervisor({ name: 'gpu', maxRestarts: 100, windowMs: 10_000, backoff: { initialMs: 0 } });
    const kernel = await supervisor.launch(WgslAddOne, 1, 1, {
      name: 'supervised',
      autoActivate: true,
      onHandlerError: 'fail',
      queueCapacity: 64,
    });
    const random = new Random(TEST_SEED ^ 0x99);
    const expected: number[] = [];
    let poisoned = 0;
    const outputs: number[] = [];
    for (let seq = 0; seq < 600; seq++) {
      const poison = random.next() < 0.01;
      if (poison) poisoned++;
      else expected.push(seq + 1);
      await kernel.send({ value: poison ? POISON : seq });
      for (let out = kernel.tryReceive(); out !== undefined; out = kernel.tryReceive()) outputs.push(out.value);
    }
    while (outputs.length < expected.length) outputs.push((await kernel.receive(20_000)).value);
    assert.deepEqual(outputs, expected);
    assert.ok(poisoned >= 2);
    await eventually(() => assert.ok(kernel.restarts >= 1, `${kernel.restarts} restarts`));
    await eventually(() =>
      assert.equal(letters.filter((l) => l.kernel === 'supervised' && l.reason === 'handler-error').length, poisoned),
    );
    await supervisor.stop();
  });
});

describe('examples/webgpu: CPU → WGSL → CPU kernels linked, on a real adapter', () => {
  it('runs with one command, answers every reading in order and exits 0', async (t) => {
    const skip = await webgpuMissing();
    if (skip !== undefined) return t.skip(skip);
    const script = fileURLToPath(new URL('../examples/webgpu.js', import.meta.url));
    const out = execFileSync(process.execPath, [script], {
      encoding: 'utf8',
      env: { ...process.env, EXAMPLE_READINGS: '5000' },
      timeout: 120_000,
    });
    assert.match(out, /backend webgpu: .*adapter/);
    // 7 alarms in every 50 readings, less the 5 readings below absolute zero (none of which alarms).
    assert.match(out, /5,000 readings in [\d.]+ s: 695 alarms, out of order 0/);
    assert.match(out, /WGSL kernel: processed 4995, alarms counted on the device 695/);
    assert.match(out, /dead letters: 5 \(readings below absolute zero\)/);
  });
});

describe('WebGPU kernels, traced (real adapter, real OTLP receiver)', () => {
  it('a sampled call is one trace: call → processing on the device (its batch) → receive', async (t) => {
    const skip = await webgpuMissing();
    if (skip !== undefined) return t.skip(skip);
    const receiver = await OtlpReceiver.start();
    const { runtime } = await startWebGpuRuntime({ tracing: { endpoint: receiver.url, exportIntervalMs: 20 } });
    try {
      const kernel = await runtime.launch(WgslAddOne, 1, 1, { name: 'traced', autoActivate: true });
      assert.equal((await kernel.call({ value: 1 })).value, 2);
      await assert.rejects(kernel.call({ value: POISON }));
      const deadline = performance.now() + 10_000;
      while (receiver.named('process traced').length < 2 || receiver.named('receive traced').length < 1) {
        assert.ok(performance.now() < deadline, `spans: ${receiver.spans.map((s) => s.name).join(', ')}`);
        await runtime.tracing?.flush();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const [call] = receiver.named('call traced');
      const inTrace = receiver.spans.filter((s) => s.traceId === call?.traceId);
      const process = inTrace.find((s) => s.name === 'process traced');
      const receive = inTrace.find((s) => s.name === 'receive traced');
      assert.equal(process?.parentSpanId, call?.spanId, 'the device span is parented by the host call');
      assert.equal(receive?.parentSpanId, process?.spanId, 'the answer carries the device span');
      assert.equal(process?.attributes['ringkernel.kernel.id'], 'test.webgpu.addOne');
      const failed = receiver.named('process traced').find((s) => s.traceId !== call?.traceId);
      assert.equal(failed?.statusCode, 2, 'the failing message is an error span');
    } finally {
      await runtime.shutdown();
      await receiver.close();
    }
  });
});

describe('WebGPU runtime teardown with batches in flight (real adapter)', () => {
  it('shuts down mid-stream: no crash, every message handled (drain) and counted, the process goes on', async (t) => {
    const skip = await webgpuMissing();
    if (skip !== undefined) return t.skip(skip);
    const { runtime } = await startWebGpuRuntime();
    const kernel = await runtime.launch(WgslCount, 1, 1, { name: 'teardown', autoActivate: true, queueCapacity: 8192 });
    const random = new Random(TEST_SEED ^ 0x7e);
    let sent = 0;
    const payload = new Uint8Array(64);
    // As many as the queue takes, while the device thread is already taking batches; then shut down at once.
    while (sent < 8000 && kernel.trySend(random.fill(payload, 0, random.int(1, 64)))) sent++;
    const handledBefore = kernel.metrics().messagesProcessed;
    const report = await runtime.shutdown();
    t.diagnostic(`seed ${TEST_SEED}: ${sent} sent, ${handledBefore} handled when the shutdown began`);
    assert.ok(sent > 1000);
    assert.equal(report.messagesProcessed, sent, 'every queued message was handled before the kernel ended');
    assert.equal(report.failed, 0);
    assert.equal(kernel.status, 'Terminated');
  });
});
