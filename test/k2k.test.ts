import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { defineKernel, RingKernelRuntime } from '../src/internal.js';
import {
  Accumulator,
  AddOne,
  Classifier,
  Double,
  Echo,
  LOOP_FOREVER,
  Looper,
  MinusThree,
  Numbers,
  TotalsToNumbers,
} from './fixtures/kernels.js';
import { Random, TEST_SEED } from './support/random.js';

describe('kernel-to-kernel links', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
  });
  after(() => runtime.shutdown());

  it(`move 10^6 seeded messages through a 3-stage pipeline, in order, none through the main thread (seed ${TEST_SEED})`, async () => {
    const first = await runtime.launch(AddOne, 1, 1, { name: 'p1', queueCapacity: 256, autoActivate: true });
    const second = await runtime.launch(Double, 1, 1, { name: 'p2', queueCapacity: 256, autoActivate: true });
    const third = await runtime.launch(MinusThree, 1, 1, { name: 'p3', queueCapacity: 256, autoActivate: true });
    await runtime.connect(first, second, { queueCapacity: 256 });
    await runtime.connect('p2', 'p3', { queueCapacity: 256 });
    const total = 1_000_000;
    const random = new Random(TEST_SEED);
    const values = new Float64Array(total);
    for (let i = 0; i < total; i++) values[i] = random.int(-1_000_000, 1_000_000);
    const receiving = (async () => {
      for (let seq = 0; seq < total; seq++) {
        const out = await third.receive(20_000);
        if (out.seq !== seq) assert.equal(out.seq, seq, 'in order, none lost');
        if (out.value !== ((values[seq] as number) + 1) * 2 - 3)
          assert.equal(out.value, ((values[seq] as number) + 1) * 2 - 3);
      }
    })();
    const message = { sender: 1, seq: 0, value: 0 };
    for (let seq = 0; seq < total; seq++) {
      message.seq = seq;
      message.value = values[seq] as number;
      if (!first.trySend(message)) await first.send(message);
    }
    await receiving;
    // The main thread sent into stage 1 and read from stage 3; stages 1 and 2 never handed it a frame.
    assert.equal(first.metrics().messagesSent, total);
    assert.equal(second.metrics().messagesSent, 0, 'nothing sent to stage 2 from the host');
    assert.equal(third.metrics().messagesSent, 0, 'nothing sent to stage 3 from the host');
    assert.equal(first.tryReceive(), undefined);
    assert.equal(second.tryReceive(), undefined);
    assert.equal(first.metrics().outputQueueDepth + second.metrics().outputQueueDepth, 0, 'no output reached the host');
    assert.equal(third.tryReceive(), undefined, 'exactly total outputs');
    for (const handle of [first, second, third]) await handle.terminate();
  });

  it('merge fan-in fairly and copy to every consumer on fan-out', async () => {
    const a = await runtime.launch(AddOne, 1, 1, { name: 'fan-a', autoActivate: true });
    const b = await runtime.launch(Double, 1, 1, { name: 'fan-b', autoActivate: true });
    const merge = await runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: 'fan-merge' });
    const copy = await runtime.launch(MinusThree, 1, 1, { name: 'fan-copy', autoActivate: true });
    await runtime.connect(a, merge);
    await runtime.connect(b, merge);
    await runtime.connect(b, copy); // b fans out to merge and copy
    // Fill both producers' links while the merger is paused, then let it run.
    for (let seq = 0; seq < 400; seq++) {
      await a.send({ sender: 1, seq, value: 0 });
      await b.send({ sender: 2, seq, value: 0 });
    }
    const copies: number[] = [];
    for (let seq = 0; seq < 400; seq++) copies.push((await copy.receive(5_000)).seq);
    assert.deepEqual(
      copies,
      Array.from({ length: 400 }, (_, i) => i),
      'fan-out: every output reached the copy',
    );
    await merge.activate();
    const order: number[] = [];
    for (let i = 0; i < 800; i++) order.push((await merge.receive(5_000)).sender);
    // Fair: in any stretch, neither producer runs far ahead of the other.
    let lead = 0;
    let maxLead = 0;
    for (const sender of order) {
      lead += sender === 1 ? 1 : -1;
      maxLead = Math.max(maxLead, Math.abs(lead));
    }
    assert.equal(lead, 0, 'both producers fully merged');
    assert.ok(maxLead <= 130, `one producer ran ${maxLead} ahead`);
    for (const handle of [a, b, merge, copy]) await handle.terminate();
  });

  it('lose nothing when a blocked pipeline is forced down: every message is an output or a dead letter', async () => {
    const quick = await RingKernelRuntime.builder().config({ workers: 2, terminationTimeout: 200 }).build();
    try {
      const a = await quick.launch(AddOne, 1, 1, { name: 'a', queueCapacity: 32, autoActivate: true });
      const b = await quick.launch(Double, 1, 1, { name: 'b', queueCapacity: 32, autoActivate: true });
      const c = await quick.launch(MinusThree, 1, 1, { name: 'c', queueCapacity: 32, autoActivate: true });
      // The stage after c never takes input: its handler never returns on the first message.
      const d = await quick.launch(Looper, 1, 1, { name: 'd', queueCapacity: 32, autoActivate: true });
      await quick.connect(a, b, { queueCapacity: 32 });
      await quick.connect(b, c, { queueCapacity: 32 });
      await quick.connect(c, d, { queueCapacity: 32 });
      // c's first output is LOOP_FOREVER for d: then d's ring fills, and every stage holds an output and stops
      // taking input. (A host that does not read is no block: a draining kernel's outputs are taken for it.)
      const first = (LOOP_FOREVER + 3) / 2 - 1;
      let sent = 0;
      for (let seq = 0; seq < 1000; seq++) {
        if (a.trySend({ sender: 0, seq, value: seq === 0 ? first : seq })) sent++;
        else await new Promise((resolve) => setTimeout(resolve, 1));
      }
      assert.ok(sent < 1000, 'the pipeline backed up');
      const report = await quick.shutdown();
      // d never stops: forced, and failed once the grace is over; the stages behind it are forced as well (or, should
      // one be stopped with nothing in hand, end Terminated): every kernel ended, and nothing is lost either way.
      assert.equal(d.status, 'Failed');
      assert.match(d.metrics().lastError?.message ?? '', /did not terminate within 200 ms/);
      assert.equal(report.failed + report.terminated, 4);
      assert.ok(report.failed >= 1, 'draining was impossible, so termination was forced');
      let outputs = 0;
      while (c.tryReceive() !== undefined) outputs++;
      while (d.tryReceive() !== undefined) outputs++;
      const seqs = new Set(quick.deadLetters.recent().map((letter) => letter.payload.length));
      assert.deepEqual([...seqs], [16], 'every dead letter carries a whole message');
      assert.equal(
        outputs + quick.deadLetters.total,
        sent,
        'each message sent is exactly one output or one dead letter',
      );
    } finally {
      await quick.shutdown();
    }
  });

  it('route by message type: each link takes its consumer type, a type no link takes goes to the host', async () => {
    assert.throws(
      () =>
        defineKernel({ id: 'test.badEmits', input: Numbers, output: Numbers, emits: [Numbers], cpu: () => undefined }),
      /kernel 'test.badEmits': emits lists type test.Numbers twice \(or the output type again\)/,
    );
    const classifier = await runtime.launch(Classifier, 1, 1, { name: 'route-src', autoActivate: true });
    const evens = await runtime.launch(AddOne, 1, 1, { name: 'route-evens', autoActivate: true });
    await runtime.connect(classifier, evens); // Numbers only
    for (let seq = 0; seq < 200; seq++) await classifier.send({ sender: 7, seq, value: seq });
    // Evens went down the Numbers link; odds (Total) have no link yet, so they come to the host, typed.
    const atHost = [];
    for (let k = 0; k < 100; k++) atHost.push(await classifier.receive(5_000));
    assert.deepEqual(
      atHost.map((t) => [(t as unknown as { total: number }).total, (t as unknown as { count: number }).count]),
      Array.from({ length: 100 }, (_, k) => [2 * k + 1, 1]),
    );
    const odds = await runtime.launch(TotalsToNumbers, 1, 1, { name: 'route-odds', autoActivate: true });
    await runtime.connect(classifier, odds); // Total only
    for (let seq = 200; seq < 400; seq++) await classifier.send({ sender: 7, seq, value: seq });
    const fromEvens = [];
    for (let k = 0; k < 200; k++) fromEvens.push((await evens.receive(5_000)).value);
    assert.deepEqual(
      fromEvens,
      Array.from({ length: 200 }, (_, k) => 2 * k + 1), // every even value 0…398, plus one
    );
    const fromOdds = [];
    for (let k = 0; k < 100; k++) fromOdds.push((await odds.receive(5_000)).value);
    assert.deepEqual(
      fromOdds,
      Array.from({ length: 100 }, (_, k) => (201 + 2 * k) * 10),
    );
    assert.equal(classifier.tryReceive(), undefined, 'nothing else reached the host');
    const echo = await runtime.launch(Echo, 1, 1, { autoActivate: false, name: 'route-none' });
    await assert.rejects(
      runtime.connect(classifier, echo),
      /cannot connect 'route-src' to 'route-none': 'route-src' outputs test.Numbers, test.Total and 'route-none' takes /,
    );
    for (const handle of [classifier, evens, odds, echo]) await handle.terminate();
  });

  it('refuse to connect kernels whose message types do not match', async () => {
    const add = await runtime.launch(AddOne, 1, 1, { autoActivate: false, name: 'type-a' });
    const acc = await runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: 'type-b' });
    await assert.rejects(
      runtime.connect(acc, add),
      /cannot connect 'type-b' to 'type-a': 'type-b' outputs test.Total and 'type-a' takes test.Numbers/,
    );
    await assert.rejects(runtime.connect(add, add), /cannot be connected to itself/);
    await add.terminate();
    await acc.terminate();
  });

  it('answer calls to a linked kernel back to the caller, not down the link', async () => {
    const a = await runtime.launch(AddOne, 1, 1, { name: 'call-a', autoActivate: true });
    const b = await runtime.launch(Double, 1, 1, { name: 'call-b', autoActivate: true });
    await runtime.connect(a, b);
    assert.equal((await a.call({ sender: 0, seq: 0, value: 41 })).value, 42);
    await a.send({ sender: 0, seq: 1, value: 1 });
    assert.equal((await b.receive(5_000)).value, 4, 'plain sends flow down the link');
    await a.terminate();
    await b.terminate();
  });
});
