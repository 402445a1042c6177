import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AbortedError,
  type DeadLetter,
  ErrorCode,
  InvalidArgumentError,
  type KernelHandle,
  RingKernelError,
  RingKernelRuntime,
  TimeoutError,
} from '../src/internal.js';
import { SlowSink, Work } from './fixtures/reliability-kernels.js';
import { eventually } from './support/eventually.js';
import { Random, TEST_SEED } from './support/random.js';

type Sink = KernelHandle<{ seq: number; micros: number }, { readonly seq: number }>;

/** A runtime with one SlowSink kernel, its dead letters collected; shut down after `body`. */
async function withSink(
  body: (kernel: Sink, letters: DeadLetter[]) => Promise<void>,
  options: { queueCapacity?: number; autoActivate?: boolean } = {},
): Promise<void> {
  const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
  const letters: DeadLetter[] = [];
  runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
  try {
    const kernel = (await runtime.launch(SlowSink, 1, 1, {
      autoActivate: options.autoActivate ?? true,
      ...(options.queueCapacity === undefined ? {} : { queueCapacity: options.queueCapacity }),
    })) as unknown as Sink;
    await body(kernel, letters);
  } finally {
    await runtime.shutdown();
  }
}

/** The error is the library's argument error: a RangeError with code RK_INVALID_ARGUMENT naming `argument`. */
function isInvalidArgument(argument: string) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof InvalidArgumentError, `${String(error)}`);
    assert.ok(error instanceof RangeError);
    assert.ok(error instanceof RingKernelError, 'every library error is a RingKernelError');
    assert.equal(error.code, ErrorCode.InvalidArgument);
    assert.equal(error.argument, argument);
    assert.match(error.message, new RegExp(argument.replace('.', '\\.')));
    return true;
  };
}

function seqOf(letter: DeadLetter): number {
  const payload = letter.payload.slice();
  return Work.view(new DataView(payload.buffer), payload, 0, payload.length).seq;
}

const BAD_PRIORITIES = [-1, Number.NaN, 256, 300, 1.5, Number.POSITIVE_INFINITY, -0.5];

describe('reliability: bad priorities are the caller’s mistake, typed and dead-lettered', () => {
  it(`trySend, send and call refuse a priority outside 0…255 without touching a healthy kernel (seed ${TEST_SEED})`, async () => {
    const random = new Random(TEST_SEED);
    await withSink(async (kernel, letters) => {
      let refused = 0;
      for (let round = 0; round < 60; round++) {
        const priority = BAD_PRIORITIES[random.int(0, BAD_PRIORITIES.length - 1)] as number;
        const seq = 1000 + round;
        const how = random.int(0, 2);
        if (how === 0) {
          assert.throws(() => kernel.trySend({ seq, micros: 0 }, priority), isInvalidArgument('priority'));
        } else if (how === 1) {
          await assert.rejects(kernel.send({ seq, micros: 0 }, { priority }), isInvalidArgument('options.priority'));
        } else {
          await assert.rejects(kernel.call({ seq, micros: 0 }, { priority }), isInvalidArgument('options.priority'));
        }
        refused++;
        assert.equal(kernel.status, 'Active', 'the kernel is untouched');
        // A good message right after goes through.
        assert.equal((await kernel.call({ seq: round, micros: 0 })).seq, round);
      }
      assert.equal(letters.length, refused);
      for (const letter of letters) {
        assert.equal(letter.reason, 'invalid-argument');
        assert.equal(letter.error.code, ErrorCode.InvalidArgument);
        assert.ok(seqOf(letter) >= 1000);
      }
      assert.ok(!letters.some((letter) => letter.reason === 'kernel-gone'));
      assert.equal(kernel.counters().received, 60, 'nothing refused was written');
    });
  });
});

describe('reliability: timeouts and cancellation', () => {
  it('NaN, negative and overflowing timeouts are refused, typed and at once; Infinity is no limit', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning.name);
    };
    process.on('warning', onWarning);
    try {
      await withSink(async (kernel, letters) => {
        for (const timeout of [Number.NaN, -1, 2 ** 31, 1e12]) {
          await assert.rejects(kernel.receive(timeout), isInvalidArgument('timeout'));
          await assert.rejects(kernel.receive({ timeout }), isInvalidArgument('options.timeout'));
          await assert.rejects(kernel.call({ seq: 1, micros: 0 }, { timeout }), isInvalidArgument('options.timeout'));
          await assert.rejects(kernel.send({ seq: 2, micros: 0 }, { timeout }), isInvalidArgument('options.timeout'));
        }
        await assert.rejects(
          kernel.call({ seq: 3, micros: 0 }, { timeout: '5' as unknown as number }),
          (error: unknown) =>
            error instanceof TypeError && (error as { code?: string }).code === ErrorCode.InvalidArgument,
        );
        assert.equal(letters.filter((letter) => letter.reason === 'invalid-argument').length, 4 * 2 + 1);
        assert.equal(kernel.counters().received, 0, 'nothing refused was sent');
        assert.equal((await kernel.call({ seq: 4, micros: 0 }, { timeout: Number.POSITIVE_INFINITY })).seq, 4);
        // A receive with no limit still ends: with the kernel's termination, typed.
        const waiting = kernel.receive(Number.POSITIVE_INFINITY);
        await kernel.terminate();
        await assert.rejects(waiting, (error: unknown) => (error as { code?: string }).code === ErrorCode.InvalidState);
      });
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(warnings, [], 'no TimeoutOverflowWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('an already-aborted signal sends nothing: call, send (also on a full queue) and receive reject with RK_ABORTED, the reason as cause', async () => {
    await withSink(
      async (kernel) => {
        await kernel.deactivate(); // takes no input: the queue fills and stays full
        const reason = new Error('the user went away');
        const signal = AbortSignal.abort(reason);
        const isAborted = (error: unknown): boolean => {
          assert.ok(error instanceof AbortedError, String(error));
          assert.equal(error.code, ErrorCode.Aborted);
          assert.equal(error.cause, reason);
          return true;
        };
        await assert.rejects(kernel.call({ seq: 1, micros: 0 }, { signal }), isAborted);
        await assert.rejects(kernel.send({ seq: 2, micros: 0 }, { signal }), isAborted);
        await assert.rejects(kernel.receive({ signal }), isAborted);
        assert.equal(kernel.metrics().messagesSent, 0);
        // A full queue: the aborted send rejects at once instead of waiting for room.
        for (let seq = 0; kernel.trySend({ seq, micros: 0 }); seq++);
        await assert.rejects(kernel.send({ seq: 99, micros: 0 }, { signal }), isAborted);
        assert.equal(kernel.metrics().sendsWaiting, 0);
      },
      { queueCapacity: 8 },
    );
  });

  it(`signals that abort mid-flight reject with RK_ABORTED (not a DOMException), over seeded waits (seed ${TEST_SEED})`, async () => {
    const random = new Random(TEST_SEED ^ 0xab0);
    await withSink(
      async (kernel, letters) => {
        // Deactivated, the kernel takes no input: every wait below can end only through its signal.
        await kernel.deactivate();
        let calls = 0;
        for (let round = 0; round < 20; round++) {
          const controller = new AbortController();
          const what = random.int(0, 2);
          let pending: Promise<unknown>;
          if (what === 0) {
            calls++;
            pending = kernel.call({ seq: round, micros: 0 }, { signal: controller.signal });
          } else if (what === 1) pending = kernel.receive({ signal: controller.signal });
          else {
            // Waiting for room behind a full queue.
            while (kernel.trySend({ seq: round, micros: 0 }));
            pending = kernel.send({ seq: round, micros: 0 }, { signal: controller.signal });
          }
          const reason = `abort ${round}`;
          setTimeout(() => controller.abort(reason), random.int(0, 3));
          await assert.rejects(pending, (error: unknown) => {
            assert.ok(error instanceof AbortedError, `round ${round}: ${String(error)}`);
            assert.ok(!(error instanceof DOMException));
            assert.equal(error.code, ErrorCode.Aborted);
            assert.equal(error.cause, reason);
            return true;
          });
          assert.equal(kernel.metrics().sendsWaiting, 0);
        }
        // Resumed, the kernel answers the calls that were written: their callers have left, so each answer is a
        // dead letter, never an output; withdrawn ones were never written.
        await kernel.activate();
        await eventually(() => assert.equal(kernel.metrics().inputQueueDepth, 0));
        await eventually(() => assert.equal(kernel.counters().processed, kernel.counters().received));
        assert.equal(kernel.tryReceive(), undefined);
        assert.ok(letters.every((letter) => letter.reason === 'late-response'));
        assert.ok(letters.length <= calls, `${letters.length} late responses for ${calls} calls`);
      },
      { queueCapacity: 4 },
    );
  });
});

describe('reliability: a response whose call has given up is a dead letter', () => {
  it('a late response is dead-lettered when it comes, with no later call or receive to read it', async () => {
    await withSink(async (kernel, letters) => {
      // The handler takes 50 ms; the call gives up after 1 ms, and nothing reads the kernel's outputs afterwards.
      await assert.rejects(kernel.call({ seq: 1, micros: 50_000 }, { timeout: 1 }), TimeoutError);
      await eventually(() => assert.equal(kernel.counters().processed, 1));
      // Before, the output pump stopped with the last waiting call: the answer sat in the ring, undelivered and
      // not dead-lettered, until some later call or receive happened to read it.
      await eventually(() => assert.equal(letters.filter((l) => l.reason === 'late-response').length, 1));
      assert.equal(kernel.tryReceive(), undefined, 'a late response is not an output');
    });
  });

  it(`late responses never reach receive(); each is dead-lettered late-response (seed ${TEST_SEED})`, async () => {
    const random = new Random(TEST_SEED ^ 0x1a7e);
    await withSink(async (kernel, letters) => {
      const calls: Promise<string>[] = [];
      for (let seq = 0; seq < 60; seq++) {
        const micros = random.int(0, 3_000);
        const roll = random.next();
        if (roll < 0.3) {
          kernel.trySend({ seq, micros });
          continue;
        }
        const options =
          roll < 0.65
            ? { timeout: random.int(0, 3) }
            : roll < 0.8
              ? { signal: AbortSignal.timeout(random.int(0, 3)) }
              : { timeout: 10_000 };
        calls.push(
          kernel.call({ seq, micros }, options).then(
            (answer) => {
              assert.equal(answer.seq, seq);
              return 'answered';
            },
            (error: { code?: string }) => {
              assert.ok(
                error.code === ErrorCode.Timeout || error.code === ErrorCode.Aborted,
                `call ${seq}: ${String(error)}`,
              );
              return 'gave-up';
            },
          ),
        );
      }
      const outcomes = await Promise.all(calls);
      const gaveUp = outcomes.filter((outcome) => outcome === 'gave-up').length;
      assert.ok(gaveUp > 0, 'some calls gave up');
      await eventually(() => assert.equal(kernel.counters().processed, 60));
      // Every response has come back by now: none is an output; those of calls that gave up are dead letters.
      await eventually(() =>
        assert.equal(letters.filter((letter) => letter.reason === 'late-response').length, gaveUp),
      );
      assert.equal(kernel.tryReceive(), undefined, 'a late response is not an output');
      await assert.rejects(kernel.receive(20), TimeoutError);
      for (const letter of letters) {
        assert.equal(letter.reason, 'late-response');
        assert.ok(letter.correlationId > 0);
        assert.ok(letter.error.code === ErrorCode.Timeout || letter.error.code === ErrorCode.Aborted);
      }
    });
  });
});
