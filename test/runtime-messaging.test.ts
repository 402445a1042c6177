import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type DeadLetter,
  ErrorCode,
  HandlerFailedError,
  InvalidStateError,
  KernelFailedError,
  KernelNotFoundError,
  QueueFullError,
  RingKernelError,
  RingKernelRuntime,
  TimeoutError,
} from '../src/internal.js';
import { FrameHeader } from '../src/wire/frame-header.js';
import { Accumulator, Echo, KILL_WORKER, Numbers, Sink, Slow, Splitter } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';
import { Random, TEST_SEED } from './support/random.js';

describe('messages through kernels', () => {
  let runtime: RingKernelRuntime;
  const letters: DeadLetter[] = [];
  before(async () => {
    runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 2 }).build();
    runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
  });
  after(() => runtime.shutdown());

  it('answer interleaved calls by correlation id, in order per sender, under concurrency', async () => {
    const handle = await runtime.launch(Accumulator, 1, 1, { name: 'calls', autoActivate: true });
    const senders = 8;
    const perSender = 500;
    const results = await Promise.all(
      Array.from({ length: senders }, async (_, sender) => {
        const answers: number[] = [];
        // Each sender keeps several calls in flight at once.
        for (let base = 0; base < perSender; base += 10) {
          const batch = await Promise.all(
            Array.from({ length: 10 }, (_, k) => handle.call({ sender, seq: base + k, value: 1 })),
          );
          for (const [k, reply] of batch.entries()) {
            assert.equal(reply.sender, sender, 'the response belongs to this call');
            assert.equal(reply.seq, base + k);
            answers.push(reply.count);
          }
        }
        return answers;
      }),
    );
    for (const answers of results) {
      for (let i = 1; i < answers.length; i++)
        assert.ok((answers[i] as number) > (answers[i - 1] as number), 'per-sender order kept');
    }
    const counts = results.flat().sort((a, b) => a - b);
    assert.deepEqual(
      counts,
      Array.from({ length: senders * perSender }, (_, i) => i + 1),
      'each message handled exactly once',
    );
    await handle.terminate();
  });

  it(`apply backpressure with nothing lost: 10^5 seeded messages through a mostly-full queue (seed ${TEST_SEED})`, async () => {
    const handle = await runtime.launch(Accumulator, 1, 1, { name: 'pressure', queueCapacity: 16, autoActivate: true });
    const random = new Random(TEST_SEED);
    const total = 100_000;
    let expectedTotal = 0;
    let fullSeen = 0;
    const receiving = (async () => {
      let last = { total: 0, count: 0, seq: -1 };
      for (let i = 0; i < total; i++) {
        const out = await handle.receive(10_000);
        assert.equal(out.seq, last.seq + 1, 'in order');
        last = { total: out.total, count: out.count, seq: out.seq };
        // A slow reader now and then keeps the output queue, and so the input queue, full.
        if (random.next() < 0.001) await new Promise((resolve) => setTimeout(resolve, 2));
      }
      return last;
    })();
    for (let seq = 0; seq < total; seq++) {
      const value = random.int(0, 1000);
      expectedTotal += value;
      if (!handle.trySend({ sender: 1, seq, value })) {
        fullSeen++;
        await handle.send({ sender: 1, seq, value });
      }
    }
    const last = await receiving;
    assert.equal(last.count, total);
    assert.equal(last.total, expectedTotal);
    assert.ok(fullSeen > 1000, `queue found full ${fullSeen} times`);
    const metrics = await eventually(() => {
      const current = handle.metrics();
      assert.equal(current.messagesProcessed, total);
      return current;
    });
    assert.equal(metrics.messagesDropped, 0);
    await handle.terminate();
  });

  it('rejects with QueueFull when told not to wait, and times out a wait for room', async () => {
    const handle = await runtime.launch(Sink, 1, 1, {
      autoActivate: false,
      name: 'full',
      queueCapacity: 4,
      onFull: 'reject',
    });
    let accepted = 0;
    while (handle.trySend({ sender: 0, seq: accepted, value: 0 })) accepted++;
    assert.ok(accepted >= 4);
    await assert.rejects(
      handle.send({ sender: 0, seq: 99, value: 0 }),
      (error: unknown) => error instanceof QueueFullError && error.code === ErrorCode.QueueFull,
    );
    await assert.rejects(
      handle.send({ sender: 0, seq: 99, value: 0 }, { onFull: 'wait', timeout: 30 }),
      (error: unknown) => error instanceof TimeoutError,
    );
    const controller = new AbortController();
    const aborted = handle.send({ sender: 0, seq: 100, value: 0 }, { onFull: 'wait', signal: controller.signal });
    controller.abort(new Error('gave up'));
    await assert.rejects(
      aborted,
      (error: unknown) =>
        error instanceof RingKernelError && error.code === ErrorCode.Aborted && /gave up/.test(String(error.cause)),
    );
    await handle.activate();
    await handle.terminate();
    assert.equal(
      handle.metrics().messagesProcessed,
      accepted,
      'the timed-out and aborted sends never reached the kernel',
    );
  });

  it('keeps order across deactivate and activate; what is sent meanwhile waits', async () => {
    const handle = await runtime.launch(Accumulator, 1, 1, { name: 'pause', autoActivate: true });
    for (let seq = 0; seq < 100; seq++) await handle.send({ sender: 1, seq, value: 1 });
    await handle.deactivate();
    for (let seq = 100; seq < 200; seq++) await handle.send({ sender: 1, seq, value: 1 });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const paused = handle.metrics();
    assert.equal(paused.status, 'Deactivated');
    assert.ok(paused.inputQueueDepth > 0 && paused.messagesReceived < 200, 'input waits while deactivated');
    await handle.activate();
    for (let seq = 0; seq < 200; seq++) assert.equal((await handle.receive(5000)).seq, seq);
    await handle.terminate();
  });

  it('on terminate, finishes the message in hand and drains what is queued (the default)', async () => {
    const handle = await runtime.launch(Slow, 1, 1, { name: 'drain', autoActivate: true });
    for (let seq = 0; seq < 20; seq++) handle.trySend({ sender: 1, seq, value: 2 });
    await handle.terminate();
    assert.equal(handle.status, 'Terminated');
    assert.equal(handle.metrics().messagesProcessed, 20);
    for (let seq = 0; seq < 20; seq++) assert.equal((await handle.receive(1000)).seq, seq, 'outputs stay receivable');
    await assert.rejects(handle.receive(100), /it is Terminated/);
  });

  it('on terminate without draining, dead-letters what is queued — counted, never silently lost', async () => {
    const before = letters.length;
    const handle = await runtime.launch(Slow, 1, 1, { name: 'discard', autoActivate: true });
    for (let seq = 0; seq < 20; seq++) handle.trySend({ sender: 1, seq, value: 5 });
    await new Promise((resolve) => setTimeout(resolve, 12));
    await handle.terminate({ drain: false });
    const metrics = handle.metrics();
    assert.equal(metrics.messagesProcessed + metrics.messagesDropped, 20);
    assert.ok(metrics.messagesDropped > 0);
    const discarded = letters.slice(before).filter((l) => l.kernel === 'discard');
    assert.equal(discarded.length, metrics.messagesDropped);
    assert.ok(discarded.every((l) => l.reason === 'discarded-on-terminate' && l.payload.length === 16));
  });

  it('forces a kernel that will not finish within terminationTimeout, and marks it Failed', async () => {
    const quick = await RingKernelRuntime.builder().config({ workers: 1, terminationTimeout: 50 }).build();
    try {
      const handle = await quick.launch(Slow, 1, 1, { autoActivate: true });
      for (let seq = 0; seq < 50; seq++) handle.trySend({ sender: 1, seq, value: 20 });
      await new Promise((resolve) => setTimeout(resolve, 5));
      await handle.terminate();
      assert.equal(handle.status, 'Failed');
      const m = handle.metrics();
      assert.ok(m.messagesDropped > 0, 'the rest was dead-lettered');
      assert.equal(m.messagesProcessed + m.messagesDropped, 50);
      assert.equal(quick.deadLetters.counts()['discarded-on-terminate'], m.messagesDropped);
    } finally {
      await quick.shutdown();
    }
  });

  it('counts a throwing handler as failed, dead-letters the message, and keeps the kernel running', async () => {
    const before = letters.length;
    const handle = await runtime.launch(Accumulator, 1, 1, { name: 'throws', autoActivate: true });
    const random = new Random(TEST_SEED ^ 7);
    let bad = 0;
    let good = 0;
    for (let seq = 0; seq < 2000; seq++) {
      const negative = random.next() < 0.1;
      if (negative) bad++;
      else good++;
      await handle.send({ sender: 1, seq, value: negative ? -1 : 1 });
    }
    await assert.rejects(handle.call({ sender: 1, seq: 9999, value: -5 }), (error: unknown) => {
      assert.ok(error instanceof HandlerFailedError);
      assert.equal(error.code, ErrorCode.HandlerFailed);
      assert.equal(error.remote.name, 'RangeError');
      assert.match(error.remote.message, /negative value -5/);
      return true;
    });
    bad++;
    const final = await handle.call({ sender: 1, seq: 10_000, value: 0 });
    assert.equal(final.count, good + 1, 'the kernel kept running');
    // Counters are published at the end of the kernel's batch and dead letters travel on its control port: both
    // may trail the reply by a moment.
    const m = await eventually(() => {
      const metrics = handle.metrics();
      assert.equal(metrics.messagesFailed, bad);
      return metrics;
    });
    assert.equal(m.status, 'Active');
    assert.equal(m.lastError?.code, 506);
    const mine = await eventually(() => {
      const letters_ = letters.slice(before).filter((l) => l.kernel === 'throws');
      assert.equal(letters_.length, bad);
      return letters_;
    });
    assert.ok(mine.every((l) => l.reason === 'handler-error' && l.error.name === 'RangeError'));
    await handle.terminate();
  });

  it('holds outputs when the output queue is full and stops taking input: nothing dropped', async () => {
    const handle = await runtime.launch(Splitter, 1, 1, { name: 'split', queueCapacity: 8, autoActivate: true });
    // Backpressure runs all the way back: with outputs unread, the kernel stops taking input and sends wait. So
    // read while sending.
    const sending = (async () => {
      for (let seq = 0; seq < 50; seq++) await handle.send({ sender: 1, seq, value: 10 });
    })();
    const seen: number[] = [];
    for (let i = 0; i < 500; i++) {
      seen.push((await handle.receive(5000)).seq);
      if (i === 100)
        assert.ok(handle.metrics().sendsWaiting > 0 || handle.metrics().inputQueueDepth > 0, 'input backed up');
    }
    await sending;
    assert.deepEqual(
      seen,
      Array.from({ length: 500 }, (_, i) => i + 1),
    );
    await handle.terminate();
  });

  it('rejects a call at once when the handler returns no response', async () => {
    const handle = await runtime.launch(Sink, 1, 1, { name: 'silent', autoActivate: true });
    const started = performance.now();
    await assert.rejects(handle.call({ sender: 1, seq: 0, value: 1 }), (error: unknown) => {
      assert.ok(error instanceof HandlerFailedError);
      assert.equal(error.remote.name, 'NoResponse');
      return true;
    });
    assert.ok(performance.now() - started < 5_000, 'well before the 30 s call timeout');
    await eventually(() => assert.equal(handle.metrics().messagesProcessed, 1, 'not a failure of the handler'));
    assert.equal(handle.metrics().messagesFailed, 0);
    await handle.terminate();
  });

  it('dead-letters messages to a terminated kernel and to no kernel at all, as well as refusing them', async () => {
    const handle = await runtime.launch(Accumulator, 1, 1, { name: 'gone', autoActivate: true });
    await handle.terminate();
    const before = letters.length;
    assert.throws(() => handle.trySend({ sender: 9, seq: 1, value: 1 }), InvalidStateError);
    await assert.rejects(handle.send({ sender: 9, seq: 2, value: 1 }), InvalidStateError);
    await assert.rejects(runtime.send('never-launched', new Uint8Array([1, 2])), KernelNotFoundError);
    const mine = letters.slice(before);
    assert.deepEqual(
      mine.map((l) => [l.kernel, l.reason]),
      [
        ['gone', 'kernel-gone'],
        ['gone', 'kernel-gone'],
        ['never-launched', 'unknown-kernel'],
      ],
    );
    assert.equal(Numbers.decode(mine[0]?.payload as Uint8Array).seq, 1, 'the refused message itself is kept');
    assert.deepEqual([...(mine[2]?.payload ?? [])], [1, 2]);
    assert.ok((runtime.deadLetters.counts()['kernel-gone'] ?? 0) >= 2);
  });

  it('dead-letters frames corrupted in shared memory (bad magic; a flipped payload bit under integrity) and goes on', async () => {
    for (const integrity of [false, true]) {
      const name = `corrupt-${integrity}`;
      const handle = await runtime.launch(Accumulator, 1, 1, { autoActivate: false, name, integrity });
      // Launched, not active: the frames wait in the ring, where a stray write corrupts one of them.
      for (let seq = 0; seq < 3; seq++) assert.ok(handle.trySend({ sender: 7, seq, value: 1 }));
      const ring = new DataView(handle.inputMemory.ring);
      const frameSize = (ring.getUint32(8, true) + 7) & ~7; // the first frame's length, padded
      const second = 8 + frameSize; // ring data starts after the two u32 indices
      if (integrity) ring.setUint8(second + FrameHeader.SIZE, ring.getUint8(second + FrameHeader.SIZE) ^ 0x10);
      else ring.setUint32(second + FrameHeader.MAGIC, 0xbad0_bad0, true);
      const before = letters.length;
      await handle.activate();
      const outputs = [await handle.receive(5_000)];
      await eventually(() => assert.equal(letters.length - before, 1));
      const [letter] = letters.slice(before);
      assert.equal(letter?.kernel, name);
      assert.equal(letter?.reason, 'malformed-frame');
      assert.equal(letter?.error.code, integrity ? ErrorCode.FrameBadChecksum : ErrorCode.FrameBadMagic);
      assert.ok((letter?.payload.length ?? 0) > 0, 'the bad bytes are kept for inspection');
      // A bad magic loses the ring's framing: what follows in that batch is skipped with it. A bad checksum
      // costs only its own frame.
      if (integrity) outputs.push(await handle.receive(5_000));
      assert.deepEqual(
        outputs.map((o) => o.seq),
        integrity ? [0, 2] : [0],
      );
      await eventually(() => assert.equal(handle.metrics().messagesDropped, 1));
      // The ring is usable afterwards.
      assert.equal((await handle.call({ sender: 7, seq: 3, value: 1 })).seq, 3);
      await handle.terminate();
    }
  });

  it('echoes raw bytes', async () => {
    const handle = await runtime.launch(Echo, 1, 1, { name: 'echo', autoActivate: true });
    const reply = await handle.call(new Uint8Array([1, 2, 3, 250]));
    assert.deepEqual([...reply], [1, 2, 3, 250]);
    const big = new Random(TEST_SEED).fill(new Uint8Array(60_000));
    assert.deepEqual(await handle.call(big), big);
    await handle.terminate();
  });

  it('times out a call, and cancels one through its signal', async () => {
    const handle = await runtime.launch(Slow, 1, 1, { name: 'late', autoActivate: true });
    await assert.rejects(
      handle.call({ sender: 1, seq: 0, value: 200 }, { timeout: 20 }),
      (error: unknown) => error instanceof TimeoutError,
    );
    const controller = new AbortController();
    const call = handle.call({ sender: 1, seq: 1, value: 50 }, { signal: controller.signal });
    controller.abort(new Error('not needed'));
    await assert.rejects(
      call,
      (error: unknown) =>
        error instanceof RingKernelError && error.code === ErrorCode.Aborted && /not needed/.test(String(error.cause)),
    );
    const answer = await handle.call({ sender: 1, seq: 2, value: 0 });
    assert.equal(answer.seq, 2, 'late answers to abandoned calls are not mistaken for this one');
    await handle.terminate();
  });

  it('fails the kernels of a worker that dies mid-stream; pending calls reject; other kernels carry on', async () => {
    const isolated = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    try {
      const doomed = await isolated.launch(Accumulator, 1, 1, { name: 'doomed', autoActivate: true });
      const survivor = await isolated.launch(Accumulator, 1, 1, { name: 'survivor', autoActivate: true });
      assert.notEqual(
        doomed.metrics().workerThreadId,
        survivor.metrics().workerThreadId,
        'placed on different workers',
      );
      for (let seq = 0; seq < 100; seq++) doomed.trySend({ sender: 1, seq, value: 1 });
      const pending = doomed.call({ sender: 1, seq: 100, value: KILL_WORKER }); // the handler calls process.exit
      // Messages queued behind the fatal one: each is either refused at send, or dead-lettered by the host.
      let refused = 0;
      for (let seq = 101; seq < 151; seq++) {
        try {
          if (!doomed.trySend({ sender: 1, seq, value: 1 })) refused++;
        } catch (error) {
          assert.ok(error instanceof KernelFailedError);
          refused++;
        }
      }
      await assert.rejects(
        pending,
        (error: unknown) => error instanceof KernelFailedError && /worker thread exited/.test(error.message),
      );
      const salvaged = isolated.deadLetters
        .recent()
        .filter((l) => l.kernel === 'doomed' && l.reason === 'kernel-failed');
      // The fatal message itself was in hand when the worker died: reported too. Those handled before it are not.
      assert.deepEqual(salvaged[0]?.messageId, 101, 'the fatal call');
      assert.equal(salvaged.length - 1 + refused, 50, 'every message behind the crash is accounted for, none twice');
      assert.ok(salvaged.every((l) => l.payload.length === 16));
      assert.ok(
        salvaged.every((l) => l.error.code === ErrorCode.KernelFailed && l.error.message.includes("kernel 'doomed'")),
        'each letter says the kernel failed, with its code',
      );
      assert.equal(doomed.status, 'Failed');
      // What the kernel produced before it died is still delivered; then receive rejects.
      for (let seq = 0; seq < 100; seq++) assert.equal((await doomed.receive(1000)).seq, seq);
      await assert.rejects(doomed.receive(100), KernelFailedError);
      assert.throws(() => doomed.trySend({ sender: 1, seq: 0, value: 1 }), KernelFailedError);
      assert.equal((await survivor.call({ sender: 2, seq: 0, value: 5 })).total, 5, 'the other kernel is untouched');
      const replacement = await isolated.launch(Accumulator, 1, 1, { name: 'doomed', autoActivate: true });
      assert.equal(
        (await replacement.call({ sender: 3, seq: 0, value: 7 })).total,
        7,
        'the name can be launched again',
      );
    } finally {
      const report = await isolated.shutdown();
      assert.equal(report.failed, 1);
    }
  });
});
