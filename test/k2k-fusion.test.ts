import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DeadLetter, RingKernelRuntime, type SupervisorEvent } from '../src/internal.js';
import { Accumulator, AddOne, Fragile, KILL_WORKER, Numbers } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';
import { Random, TEST_SEED } from './support/random.js';

/**
 * Fused kernel-to-kernel links: a producer and a consumer on the same worker thread, the producer having the
 * consumer handle its frames on its own turn. One worker per virtual device, so kernels placed on one device share
 * a worker (fused), and a migration to the other device splits them (not fused) until one comes back.
 */
describe('fused kernel-to-kernel links', () => {
  let runtime: RingKernelRuntime;
  const letters: DeadLetter[] = [];
  before(async () => {
    runtime = await RingKernelRuntime.builder().config({ workers: 2, devices: 2 }).build();
    runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
  });
  after(() => runtime.shutdown());

  it(`a fused pipeline through supervised restarts and a migration out and back: every message handled once or dead-lettered once, in order (seed ${TEST_SEED})`, {
    timeout: 120_000,
  }, async () => {
    const events: SupervisorEvent[] = [];
    const supervisor = runtime.supervisor({ name: 'fused', backoff: { initialMs: 5 } });
    supervisor.on((event) => events.push(event));
    const restarted = (n: number) =>
      eventually(() => assert.ok(events.filter((e) => e.type === 'restarted').length >= n, `restart ${n}`), 20_000);
    const queueCapacity = 128;
    // add-one → fragile (supervised: a negative value fails it) → accumulator (answers the host), all on device 0.
    const first = await runtime.launch(AddOne, 1, 1, { name: 'fz-add', device: 0, queueCapacity, autoActivate: true });
    const middle = await supervisor.launch(Fragile, 1, 1, {
      name: 'fz-fragile',
      device: 0,
      queueCapacity,
      autoActivate: true,
      onHandlerError: 'fail',
    });
    const sink = await runtime.launch(Accumulator, 1, 1, {
      name: 'fz-acc',
      device: 0,
      queueCapacity,
      autoActivate: true,
    });
    await runtime.connect(first, middle, { queueCapacity });
    await runtime.connect(middle, sink, { queueCapacity });

    // Five stretches of one seeded stream. Three poison messages (the middle stage fails on each and is restarted
    // with what is queued behind it): one while the stages share a worker, one while the middle stage lives on the
    // other device, one after it came back. The stream goes on through both migrations, frames in the link rings.
    const random = new Random(TEST_SEED + 21);
    const poison: number[] = [];
    const poisoned = new Set<number>();
    const poisonAt = (seq: number) => {
      poison.push(seq);
      poisoned.add(seq);
    };
    const letterCount = letters.length;

    let received = 0;
    let goal = Number.POSITIVE_INFINITY;
    const receiving = (async () => {
      // The middle stage outputs how many messages its instance has handled (state a migration carries and a
      // restart starts afresh); the sink adds those up.
      let expected = 0;
      let handled = 0;
      let sum = 0;
      while (received < goal) {
        while (poisoned.has(expected)) {
          expected++;
          handled = 0;
        }
        handled++;
        sum += handled;
        const out = await sink.receive(20_000);
        const count = received + 1;
        // One compare per message; assert (and build its message) only on a mismatch.
        if (out.seq !== expected || out.count !== count || out.total !== sum) {
          assert.deepEqual({ seq: out.seq, count: out.count, total: out.total }, { seq: expected, count, total: sum });
        }
        expected++;
        received++;
      }
    })();
    receiving.catch(() => {}); // awaited below
    let sent = 0;
    const reachSent = async () => {
      const target = sent - poison.length;
      while (received < target) await Promise.race([receiving, new Promise((resolve) => setTimeout(resolve, 1))]);
    };
    const message = { sender: 21, seq: 0, value: 0 };
    const sendOne = async () => {
      message.seq = sent;
      message.value = poisoned.has(sent) ? -2 : sent; // add-one passes -1 on: the middle stage throws on it
      if (!first.trySend(message)) await first.send(message);
      sent++;
    };
    const send = async (count: number) => {
      for (const end = sent + count; sent < end; ) await sendOne();
    };
    /** Streams while `move` runs (it starts once 1,000 more have gone through), then 2,000 more. */
    const sendThrough = async (move: () => Promise<unknown>) => {
      const from = received;
      let moved = false;
      const moving = (async () => {
        while (received < from + 1_000) await new Promise((resolve) => setTimeout(resolve, 1));
        await move();
      })().finally(() => {
        moved = true;
      });
      moving.catch(() => {});
      while (!moved) await sendOne();
      await moving;
      await send(2_000);
    };
    const fused = () => ({ middle: middle.counters().fused, sink: sink.counters().fused });
    const migrator = runtime.kernelMigrator();

    poisonAt(random.int(2_000, 5_999));
    await send(12_000);
    await reachSent();
    await restarted(1);
    const together = fused();
    await sendThrough(() => migrator.migrateKernel(middle, 0, 1));
    await reachSent();
    const split = fused();
    poisonAt(sent + random.int(1_000, 4_999));
    await send(8_000);
    await reachSent();
    await restarted(2);
    const apart = fused();
    await sendThrough(() => migrator.migrateKernel(middle, 1, 0));
    await reachSent();
    const joined = fused();
    let lastRestart: ReturnType<typeof fused> | undefined;
    const watching = restarted(3).then(() => {
      lastRestart = fused();
    });
    poisonAt(sent + random.int(1_000, 4_999));
    goal = sent + 8_000 - poison.length;
    await send(8_000);
    await Promise.all([receiving, watching]);
    const total = sent;

    assert.equal(received, total - poison.length);
    assert.equal(sink.tryReceive(), undefined, 'nothing more than was sent');
    const ours = await eventually(() => {
      const found = letters.slice(letterCount);
      assert.equal(found.length, poison.length);
      return found;
    });
    assert.deepEqual(
      ours.map((letter) => [letter.kernel, letter.reason, Numbers.decode(letter.payload).seq]),
      poison.map((seq) => ['fz-fragile', 'handler-error', seq]),
      'each poison message dead-lettered once, nothing else',
    );
    assert.equal(middle.restarts, 3);
    assert.deepEqual([first.device, middle.device, sink.device], [0, 0, 0]);
    assert.equal(first.counters().processed, total);
    assert.equal(sink.counters().processed, total - poison.length);

    // It ran fused while the stages shared a worker (and after the first restart), not while they were apart (a
    // restart there included), and again once the middle stage came back (and after the last restart).
    const end = fused();
    const seen = JSON.stringify({ together, split, apart, joined, lastRestart, end });
    assert.ok(together.middle > 0 && together.sink > 0, `fused while together: ${seen}`);
    assert.deepEqual(apart, split, `nothing fused while apart: ${seen}`);
    assert.ok(joined.middle > apart.middle && joined.sink > apart.sink, `fused again after the join: ${seen}`);
    assert.ok(lastRestart !== undefined && end.middle > lastRestart.middle, `fused after the restart: ${seen}`);
    assert.ok(end.sink > lastRestart.sink, `fused after the restart: ${seen}`);
    assert.ok(end.sink <= sink.counters().received && end.middle <= middle.counters().received);
    await supervisor.stop();
    await first.terminate();
    await sink.terminate();
  });
  it(`a worker dies inside a fused consumer's handler: only that message is dead-lettered, nothing else lost or repeated (seed ${TEST_SEED})`, {
    timeout: 60_000,
  }, async () => {
    // One worker: producer and consumer share it (fused); its death fails both, and both are restarted.
    const solo = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    const found: DeadLetter[] = [];
    solo.deadLetters.on('deadLetter', (letter) => found.push(letter));
    try {
      const supervisor = solo.supervisor({ name: 'fused-death', backoff: { initialMs: 5 } });
      const producer = await supervisor.launch(AddOne, 1, 1, { name: 'fd-add', autoActivate: true });
      const consumer = await supervisor.launch(Accumulator, 1, 1, { name: 'fd-acc', autoActivate: true });
      // A link of 4 frames: the producer fills it within each of its batches, again and again.
      await solo.connect(producer, consumer, { queueCapacity: 4 });
      const total = 3_000;
      const killer = new Random(TEST_SEED + 22).int(500, 2_499);
      const message = { sender: 22, seq: 0, value: 0 };
      for (let seq = 0; seq < total; seq++) {
        message.seq = seq;
        message.value = seq === killer ? KILL_WORKER - 1 : seq; // add-one makes it the consumer's killer
        if (!producer.trySend(message)) await producer.send(message);
      }
      const seqs: number[] = [];
      for (let i = 0; i < total - 1; i++) seqs.push((await consumer.receive(20_000)).seq);
      assert.deepEqual(
        seqs,
        Array.from({ length: total }, (_, seq) => seq).filter((seq) => seq !== killer),
        'every other message handled once, in order',
      );
      assert.equal(consumer.tryReceive(), undefined);
      await eventually(() => assert.equal(found.length, 1));
      assert.deepEqual(
        found.map((letter) => [letter.kernel, letter.reason, Numbers.decode(letter.payload).seq]),
        [['fd-acc', 'kernel-failed', killer]],
        "only the message in hand is dead-lettered, and it is the consumer's",
      );
      assert.deepEqual([producer.restarts, consumer.restarts], [1, 1]);
      assert.ok(consumer.counters().fused > 0, 'the link ran fused');
      await supervisor.stop();
    } finally {
      await solo.shutdown();
    }
  });
});
