import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  BytesMessage,
  createFrameRing,
  ErrorCode,
  FrameConsumer,
  FrameProducer,
  RingSignalOffset,
  TimeoutError,
} from '../src/internal.js';

const DATA_SEQ = RingSignalOffset.DATA_SEQ >> 2;
const SPACE_SEQ = RingSignalOffset.SPACE_SEQ >> 2;

describe('eventcount wake-ups', () => {
  it('notify nobody while nobody sleeps: a busy stream costs no notify', () => {
    const memory = createFrameRing({ capacityBytes: 1 << 16 });
    const producer = new FrameProducer(memory);
    const consumer = new FrameConsumer(memory);
    const signal = new Int32Array(memory.signal);
    for (let i = 0; i < 10_000; i++) {
      producer.tryWrite(BytesMessage, new Uint8Array(16));
      if (i % 7 === 0) consumer.drain(() => {});
    }
    consumer.drain(() => {});
    assert.equal(Atomics.load(signal, DATA_SEQ), 0, 'the producer never bumped the consumer doorbell');
    assert.equal(Atomics.load(signal, SPACE_SEQ), 0, 'the consumer never bumped the producer doorbell');
  });

  it('a deferWake producer wakes a sleeping consumer once per batch, when it calls wakeConsumer', () => {
    const memory = createFrameRing({ capacityBytes: 1 << 16 });
    const signal = new Int32Array(memory.signal);
    const CONSUMER_SLEEPING = RingSignalOffset.CONSUMER_SLEEPING >> 2;
    Atomics.store(signal, CONSUMER_SLEEPING, 1); // the consumer has parked
    const batched = new FrameProducer(memory, { deferWake: true });
    for (let i = 0; i < 100; i++) assert.ok(batched.tryWrite(BytesMessage, new Uint8Array(8)));
    assert.equal(Atomics.load(signal, DATA_SEQ), 0, 'no wake per frame');
    batched.wakeConsumer();
    assert.equal(Atomics.load(signal, DATA_SEQ), 1, 'one wake for the batch');
    batched.wakeConsumer();
    assert.equal(Atomics.load(signal, DATA_SEQ), 1, 'nothing new: no wake');
    // Without deferWake, a producer wakes a sleeping consumer after every frame that finds it parked.
    const eagerMemory = createFrameRing({ capacityBytes: 1 << 16 });
    const eagerSignal = new Int32Array(eagerMemory.signal);
    const eager = new FrameProducer(eagerMemory);
    for (let i = 0; i < 3; i++) {
      Atomics.store(eagerSignal, CONSUMER_SLEEPING, 1); // the consumer has parked again
      eager.tryWrite(BytesMessage, new Uint8Array(8));
    }
    assert.equal(Atomics.load(eagerSignal, DATA_SEQ), 3);
  });

  it('one notify per park: the first waker lowers the flag, the frames after it find the consumer owed nothing', () => {
    const memory = createFrameRing({ capacityBytes: 1 << 16 });
    const signal = new Int32Array(memory.signal);
    const CONSUMER_SLEEPING = RingSignalOffset.CONSUMER_SLEEPING >> 2;
    const PRODUCER_SLEEPING = RingSignalOffset.PRODUCER_SLEEPING >> 2;
    Atomics.store(signal, CONSUMER_SLEEPING, 1); // parked; it has not run yet to lower the flag itself
    const producer = new FrameProducer(memory);
    // A second producer ringing the same doorbell (a kernel-to-kernel link's `alsoWake`) finds the same park.
    const linked = new FrameProducer(createFrameRing({ capacityBytes: 1 << 16 }), { alsoWake: memory.signal });
    for (let i = 0; i < 50; i++) assert.ok(producer.tryWrite(BytesMessage, new Uint8Array(8)));
    assert.ok(linked.tryWrite(BytesMessage, new Uint8Array(8)));
    assert.equal(Atomics.load(signal, DATA_SEQ), 1, 'one bump (and notify) for the one park');
    assert.equal(Atomics.load(signal, CONSUMER_SLEEPING), 0, 'the waker lowered the flag');
    // The same on the way back: a consumer freeing room wakes a waiting producer once.
    const consumer = new FrameConsumer(memory);
    Atomics.store(signal, PRODUCER_SLEEPING, 1);
    for (let i = 0; i < 10; i++) consumer.drain(() => {}, 5);
    assert.equal(Atomics.load(signal, SPACE_SEQ), 1);
    assert.equal(Atomics.load(signal, PRODUCER_SLEEPING), 0);
  });

  it('deferWakes(true) holds the wake-ups of a burst; deferWakes(false) wakes once for it, then per frame again', () => {
    const memory = createFrameRing({ capacityBytes: 1 << 16 });
    const signal = new Int32Array(memory.signal);
    Atomics.store(signal, RingSignalOffset.CONSUMER_SLEEPING >> 2, 1); // the consumer has parked
    const producer = new FrameProducer(memory);
    producer.deferWakes(true);
    for (let i = 0; i < 64; i++) assert.ok(producer.tryWrite(BytesMessage, new Uint8Array(8)));
    assert.equal(Atomics.load(signal, DATA_SEQ), 0, 'no wake per frame of the burst');
    producer.deferWakes(false);
    assert.equal(Atomics.load(signal, DATA_SEQ), 1, 'one wake for the burst');
    Atomics.store(signal, RingSignalOffset.CONSUMER_SLEEPING >> 2, 1); // the consumer has parked again
    assert.ok(producer.tryWrite(BytesMessage, new Uint8Array(8)));
    assert.equal(Atomics.load(signal, DATA_SEQ), 2, 'per frame again after the burst');
  });

  for (const mode of ['sync', 'async'] as const) {
    it(`wake a consumer parked with ${mode === 'sync' ? 'Atomics.wait' : 'Atomics.waitAsync'} in a worker, once per park`, async () => {
      const input = createFrameRing({ capacityBytes: 4096 });
      const output = createFrameRing({ capacityBytes: 4096 });
      const worker = new Worker(new URL('./fixtures/echo-consumer.js', import.meta.url), {
        workerData: { input, output, count: 20, mode },
      });
      const exited = once(worker, 'exit');
      await once(worker, 'message');
      const producer = new FrameProducer(input);
      const replies = new FrameConsumer(output);
      const signal = new Int32Array(input.signal);
      for (let i = 0; i < 20; i++) {
        // Wait for the worker to park (a loaded machine may take a while to run it), so every frame has to wake it.
        for (let waited = 0; waited < 2_000 && Atomics.load(signal, RingSignalOffset.CONSUMER_SLEEPING >> 2) === 0; ) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          waited += 5;
        }
        assert.equal(
          Atomics.load(signal, RingSignalOffset.CONSUMER_SLEEPING >> 2),
          1,
          `worker parked before frame ${i}`,
        );
        assert.ok(producer.tryWrite(BytesMessage, new Uint8Array([i])));
        assert.ok(await replies.waitForDataAsync(5_000), `echo ${i} arrived`);
        const echo = replies.pop();
        assert.equal(echo?.correlationId, i + 1);
        assert.equal(echo?.payload[0], i);
      }
      assert.equal(Atomics.load(signal, DATA_SEQ), 20, 'exactly one notify per park');
      const [code] = await exited;
      assert.equal(code, 0);
    });
  }

  it('time out a wait for data, in both flavours', async () => {
    const consumer = new FrameConsumer(createFrameRing({ capacityBytes: 1024 }), { spin: 10 });
    const start = performance.now();
    assert.equal(consumer.waitForData(30), false);
    assert.ok(performance.now() - start >= 25);
    assert.equal(await consumer.waitForDataAsync(30), false);
  });

  it('end an async wait through its AbortSignal', async () => {
    const consumer = new FrameConsumer(createFrameRing({ capacityBytes: 1024 }));
    const controller = new AbortController();
    const waiting = consumer.waitForDataAsync(60_000, controller.signal);
    setTimeout(() => controller.abort(new Error('stop waiting')), 10);
    await assert.rejects(waiting, /stop waiting/);
  });

  it('let a producer wait for room until the consumer frees it, or time out with a typed error', async () => {
    const memory = createFrameRing({ capacityBytes: 1024 });
    const producer = new FrameProducer(memory, { spin: 10 });
    const consumer = new FrameConsumer(memory);
    while (producer.tryWrite(BytesMessage, new Uint8Array(200)));
    assert.equal(producer.waitForSpace(304, 20), false);
    assert.throws(
      () => producer.write(BytesMessage, new Uint8Array(200), undefined, 20),
      (error: unknown) => error instanceof TimeoutError && error.code === ErrorCode.Timeout,
    );
    setTimeout(() => consumer.drain(() => {}, 1), 10);
    assert.equal(await producer.waitForSpaceAsync(304, 5_000), true);
    assert.equal(Atomics.load(new Int32Array(memory.signal), SPACE_SEQ), 1, 'the consumer woke the sleeping producer');
    assert.ok(producer.tryWrite(BytesMessage, new Uint8Array(200)));
  });
});
