import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type DeadLetter,
  ErrorCode,
  NotAcceptingWorkError,
  RingKernelRuntime,
  RuntimeShutDownError,
} from '../src/internal.js';
import { Accumulator, AddOne, Double, Slow } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';

describe('runtime lifecycle: start, drain, complete shutdown', () => {
  it('a deferred runtime is Initializing and refuses work until started', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).deferStart().build();
    try {
      assert.equal(runtime.state().value, 'Initializing');
      assert.equal(runtime.state().isAcceptingWork(), false);
      await assert.rejects(runtime.launch(Accumulator, { autoActivate: false }), (error: unknown) => {
        assert.ok(error instanceof NotAcceptingWorkError);
        assert.equal(error.code, ErrorCode.NotAcceptingWork);
        assert.equal(error.state, 'Initializing');
        return true;
      });
      runtime.start();
      runtime.start(); // idempotent
      assert.equal(runtime.state().value, 'Running');
      assert.equal(runtime.state().isAcceptingWork(), true);
      const handle = await runtime.launch(Accumulator, 1, 1, { autoActivate: true });
      assert.equal((await handle.call({ sender: 0, seq: 0, value: 2 })).total, 2);
    } finally {
      await runtime.shutdown();
    }
    assert.equal(runtime.state().value, 'Stopped');
    assert.throws(() => runtime.start(), RuntimeShutDownError);
  });

  it('drain refuses new work with a typed error (dead-lettered) and lets queued work, calls and pipelines finish', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    const letters: DeadLetter[] = [];
    runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    const slow = await runtime.launch(Slow, 1, 1, { name: 'slow', autoActivate: true });
    const first = await runtime.launch(AddOne, 1, 1, { name: 'first', autoActivate: true });
    const last = await runtime.launch(Double, 1, 1, { name: 'last', autoActivate: true });
    await runtime.connect(first, last);
    // Work in hand when the drain starts: 20 slow messages, 2 calls behind them, 500 messages in a pipeline.
    for (let seq = 0; seq < 20; seq++) assert.ok(slow.trySend({ sender: 1, seq, value: 3 }));
    const calls = [20, 21].map((seq) => slow.call({ sender: 1, seq, value: 1 }, { timeout: 10_000 }));
    for (let seq = 0; seq < 500; seq++) assert.ok(first.trySend({ sender: 2, seq, value: seq }));

    const draining = runtime.drain(10_000);
    assert.equal(runtime.state().value, 'Draining');
    assert.equal(runtime.state().isAcceptingWork(), false);
    assert.throws(() => slow.trySend({ sender: 1, seq: 99, value: 1 }), NotAcceptingWorkError);
    await assert.rejects(slow.call({ sender: 1, seq: 100, value: 1 }), NotAcceptingWorkError);
    await assert.rejects(
      runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: 'late' }),
      NotAcceptingWorkError,
    );
    const report = await draining;
    assert.equal(report.drained, true);
    assert.equal(report.pendingWork, 0);

    assert.deepEqual(
      (await Promise.all(calls)).map((answer) => answer.seq),
      [20, 21],
    );
    const slowOutputs = [];
    for (let out = slow.tryReceive(); out !== undefined; out = slow.tryReceive()) slowOutputs.push(out.seq);
    assert.deepEqual(
      slowOutputs,
      Array.from({ length: 20 }, (_, seq) => seq),
    );
    const piped = [];
    for (let out = last.tryReceive(); out !== undefined; out = last.tryReceive()) piped.push(out.value);
    assert.deepEqual(
      piped,
      Array.from({ length: 500 }, (_, seq) => (seq + 1) * 2),
    );
    assert.deepEqual(
      letters.map((l) => [l.kernel, l.reason]),
      [
        ['slow', 'not-accepting-work'],
        ['slow', 'not-accepting-work'],
      ],
    );

    const shutdown = await runtime.completeShutdown();
    assert.equal(runtime.state().value, 'Stopped');
    assert.equal(shutdown.drained, true);
    assert.equal(shutdown.kernelsLaunched, 3);
    assert.equal(shutdown.terminated, 3);
    assert.equal(shutdown.messagesProcessed, 22 + 500 + 500);
    assert.deepEqual(shutdown.deadLettersByReason, { 'not-accepting-work': 2 });
  });

  it('a drain that cannot finish says so after its timeout, with the work left', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      const paused = await runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: 'paused' }); // launched, never activated
      for (let seq = 0; seq < 7; seq++) paused.trySend({ sender: 3, seq, value: 1 });
      const report = await runtime.drain(50);
      assert.equal(report.drained, false);
      assert.equal(report.pendingWork, 7);
      assert.ok(report.waitedMs >= 50);
    } finally {
      const shutdown = await runtime.shutdown();
      assert.equal(shutdown.drained, false);
      assert.equal(
        shutdown.messagesProcessed,
        7,
        'terminating (with drain, the default) handled what the drain could not',
      );
    }
  });

  it('the shutdown report adds up what was done: launches, messages, failures, restarts, breakers, health checks', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    const supervisor = runtime.supervisor({ name: 'report', backoff: { initialMs: 1 } });
    const acc = await supervisor.launch(Accumulator, 1, 1, { name: 'acc', autoActivate: true, onHandlerError: 'fail' });
    const plain = await runtime.launch(Accumulator, 1, 1, { name: 'plain', autoActivate: true });
    for (let seq = 0; seq < 100; seq++) await plain.send({ sender: 4, seq, value: seq % 10 === 0 ? -1 : 1 });
    for (let seq = 0; seq < 50; seq++) await acc.send({ sender: 4, seq, value: 1 });
    acc.trySend({ sender: 4, seq: 50, value: -1 }); // fails the kernel: the supervisor restarts it
    await eventually(() => assert.equal(acc.restarts, 1));
    await supervisor.settled();
    const breaker = runtime.circuitBreaker('report', { failureThreshold: 1 });
    await assert.rejects(breaker.execute(() => Promise.reject(new Error('boom'))));
    const health = runtime.healthChecker();
    await health.check();
    await health.check();
    await eventually(() => assert.equal(plain.counters().received, 100));
    const report = await runtime.shutdown();
    assert.equal(report.kernelsLaunched, 2);
    assert.equal(report.terminated, 2);
    assert.equal(report.failed, 0);
    assert.equal(report.restarts, 1);
    assert.equal(report.messagesProcessed, 90 + 50);
    assert.equal(report.messagesFailed, 10 + 1);
    assert.equal(report.deadLetters, 11);
    assert.deepEqual(report.deadLettersByReason, { 'handler-error': 11 });
    assert.equal(report.circuitTrips, 1);
    assert.equal(report.healthChecks, 2);
    assert.equal(report.migratedKernels, 0);
    assert.equal(report.drained, undefined);
    assert.ok(report.uptimeMs >= report.durationMs);
  });

  it('SIGTERM, when opted in, drains and completes the shutdown; the process then exits by itself', async () => {
    const script = fileURLToPath(new URL('./fixtures/signal-child.js', import.meta.url));
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });
    await eventually(() => assert.match(out, /ready/), 20_000);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, err);
    const report = JSON.parse(out.slice(out.indexOf('{'))) as { drained: boolean; messagesProcessed: number };
    assert.equal(report.drained, true);
    assert.equal(report.messagesProcessed, 1000, 'the queued messages were handled before the stop');
  });
});

describe('a draining terminate whose outputs nobody reads', () => {
  it('finishes promptly: the host keeps the outputs for receive() while the kernel drains into a full ring', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    const letters: DeadLetter[] = [];
    runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    try {
      // Tiny rings: the output ring fills, the kernel waits for room, and its input ring fills behind it.
      const kernel = await runtime.launch(Accumulator, 1, 1, { name: 'unread', queueCapacity: 8 });
      let sent = 0;
      // Until it stops taking more: three quiet rounds after it has taken more than one queue's worth (a loaded
      // machine may keep the worker from its first messages for longer than three rounds).
      for (let round = 0, stalled = 0; (stalled < 3 || sent <= 8) && round < 200; round++) {
        let taken = 0;
        while (kernel.trySend({ sender: 0, seq: sent + taken, value: 1 })) taken++;
        sent += taken;
        stalled = taken === 0 ? stalled + 1 : 0;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(sent > 8, `the kernel took ${sent} messages: its output ring never filled`);
      // Before, the drain waited for a reader until terminationTimeout (5 s here), then failed the kernel.
      const started = performance.now();
      await kernel.terminate();
      const ms = performance.now() - started;
      assert.equal(
        kernel.status,
        'Terminated',
        `terminate took ${ms.toFixed(0)} ms and left the kernel ${kernel.status}`,
      );
      // Every message handled once, in order, and still the caller's to receive.
      for (let seq = 0; seq < sent; seq++) {
        const out = kernel.tryReceive();
        assert.ok(out !== undefined, `output ${seq} of ${sent} is missing`);
        assert.equal(out.seq, seq);
        assert.equal(out.total, seq + 1);
      }
      assert.equal(kernel.tryReceive(), undefined);
      assert.deepEqual(letters, []);
    } finally {
      const report = await runtime.shutdown();
      assert.equal(report.failed, 0);
    }
  });
});
