import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type DeadLetter, ErrorCode, RingKernelRuntime } from '../src/internal.js';
import { Accumulator, LOOP_FOREVER, Looper } from './fixtures/kernels.js';
import { SlowSink, Work } from './fixtures/reliability-kernels.js';
import { eventually, within } from './support/eventually.js';
import { Random, TEST_SEED } from './support/random.js';

/** The seq a dead letter of a `Work` message carried. */
function seqOf(letter: DeadLetter): number {
  const payload = letter.payload.slice();
  return Work.view(new DataView(payload.buffer), payload, 0, payload.length).seq;
}

/** Settles within `ms`, or says what never did (a hang is the defect these tests look for). */
async function settlesWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, hang]);
  } finally {
    clearTimeout(timer);
  }
}

type Outcome = { seq: number; state: 'pending' | 'sent' | 'refused'; error?: unknown };

const STOP_ROUNDS = 12;

describe('reliability: stopping a kernel while sends wait for room', () => {
  for (let round = 0; round < STOP_ROUNDS; round++) {
    const seed = (TEST_SEED + round * 104_729) >>> 0;
    const how = (['terminate', 'terminate-no-drain', 'shutdown'] as const)[round % 3] as string;
    it(`${how}: every waiting send settles, every message is handled or dead-lettered, no hang (seed ${seed})`, async () => {
      const random = new Random(seed);
      const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
      const letters: DeadLetter[] = [];
      runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
      let shutDown = false;
      try {
        const kernel = await runtime.launch(SlowSink, 1, 1, { queueCapacity: 64, autoActivate: true });
        let seq = 0;
        const accepted = new Set<number>();
        while (kernel.trySend({ seq, micros: random.int(50, 300) })) accepted.add(seq++);
        const outcomes: Outcome[] = [];
        const waiting = random.int(100, 250);
        const settled: Promise<void>[] = [];
        for (let k = 0; k < waiting; k++) {
          const outcome: Outcome = { seq: seq++, state: 'pending' };
          outcomes.push(outcome);
          settled.push(
            kernel.send({ seq: outcome.seq, micros: random.int(50, 300) }).then(
              () => {
                outcome.state = 'sent';
              },
              (error: unknown) => {
                outcome.state = 'refused';
                outcome.error = error;
              },
            ),
          );
        }
        // Stop at a random moment: at once, or after some of the waiting sends got room.
        const delay = random.int(0, 20);
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
        if (how === 'shutdown') {
          shutDown = true;
          await settlesWithin(runtime.shutdown(), 4_000, 'shutdown');
        } else {
          await settlesWithin(kernel.terminate({ drain: how === 'terminate' }), 4_000, 'terminate');
        }
        // Not forced: a drain takes as long as the work (a forced one ends Failed after terminationTimeout).
        assert.equal(kernel.status, 'Terminated');
        await settlesWithin(Promise.all(settled), 1_000, 'the waiting sends');
        assert.equal(kernel.metrics().sendsWaiting, 0);
        for (const outcome of outcomes) {
          if (outcome.state === 'sent') accepted.add(outcome.seq);
          else {
            const error = outcome.error as { code?: string };
            assert.equal(error.code, ErrorCode.InvalidState, `refused send ${outcome.seq}: ${String(error)}`);
          }
        }
        const lettered = new Map<number, DeadLetter>();
        for (const letter of letters) {
          const at = seqOf(letter);
          assert.ok(!lettered.has(at), `seq ${at} dead-lettered twice`);
          lettered.set(at, letter);
        }
        for (const outcome of outcomes) {
          if (outcome.state !== 'refused') continue;
          assert.equal(lettered.get(outcome.seq)?.reason, 'discarded-on-terminate', `refused ${outcome.seq}`);
        }
        // Every message written into the ring: handled (counted by the kernel) or dead-lettered, never both.
        let acceptedLettered = 0;
        for (const at of accepted) if (lettered.has(at)) acceptedLettered++;
        const { processed, dropped } = kernel.counters();
        assert.equal(processed + acceptedLettered, accepted.size, 'written = handled + dead-lettered');
        assert.equal(dropped, acceptedLettered);
        if (how !== 'terminate-no-drain') assert.equal(acceptedLettered, 0, 'a drain handles all it accepted');
        assert.equal(lettered.size, acceptedLettered + outcomes.filter((o) => o.state === 'refused').length);
      } finally {
        if (!shutDown) await runtime.shutdown();
      }
    });
  }

  it('the process exits by itself after a terminate that left sends waiting', () => {
    const script = fileURLToPath(new URL('./fixtures/terminate-with-waiting-sends.js', import.meta.url));
    const result = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(result.signal, null, `killed: the process did not exit by itself\n${result.stdout}`);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /settled \d+ sends/);
  });
});

const CONCURRENT_ROUNDS = 20;

describe('reliability: lifecycle commands issued concurrently all settle', () => {
  it(`two terminates, and commands racing a terminate, over ${CONCURRENT_ROUNDS} seeded rounds (seed ${TEST_SEED})`, async () => {
    const random = new Random(TEST_SEED);
    const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    try {
      for (let round = 0; round < CONCURRENT_ROUNDS; round++) {
        const kernel = await runtime.launch(SlowSink, 1, 1, { autoActivate: random.next() < 0.7 });
        for (let seq = 0, n = random.int(0, 50); seq < n; seq++) kernel.trySend({ seq, micros: random.int(0, 200) });
        const commands: { what: string; promise: Promise<void> }[] = [];
        commands.push({ what: 'first terminate', promise: kernel.terminate({ drain: random.next() < 0.5 }) });
        const gap = random.int(0, 3);
        if (gap === 1) await Promise.resolve();
        else if (gap === 2) await new Promise((resolve) => setImmediate(resolve));
        else if (gap === 3) await new Promise((resolve) => setTimeout(resolve, random.int(0, 5)));
        const second = random.int(0, 2);
        if (second === 0) commands.push({ what: 'second terminate', promise: kernel.terminate() });
        else if (second === 1) commands.push({ what: 'activate', promise: kernel.activate() });
        else commands.push({ what: 'deactivate', promise: kernel.deactivate() });
        const results = await Promise.all(
          commands.map(({ what, promise }) =>
            settlesWithin(
              promise.then(
                () => 'ok',
                (error: { code?: string }) => error.code ?? String(error),
              ),
              3_000,
              `round ${round}: ${what}`,
            ),
          ),
        );
        assert.equal(results[0], 'ok', `round ${round}: the first terminate`);
        // A second terminate joins the first; a command the ended kernel can no longer take is refused, typed.
        if (second === 0) assert.equal(results[1], 'ok', `round ${round}: the second terminate`);
        else assert.ok(results[1] === 'ok' || results[1] === ErrorCode.InvalidState, `round ${round}: ${results[1]}`);
        assert.equal(kernel.status, 'Terminated');
      }
    } finally {
      await runtime.shutdown();
    }
  });
});

describe('terminate of a kernel whose handler never returns', () => {
  it('fails it after the grace, dead-letters its queue once its worker is replaced, and its neighbour goes on', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1, terminationTimeout: 200 }).build();
    const letters: DeadLetter[] = [];
    runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    try {
      const looper = await runtime.launch(Looper, 1, 1, { name: 'looper' });
      const neighbour = await runtime.launch(Accumulator, 1, 1, { name: 'neighbour' });
      assert.equal((await neighbour.call({ sender: 0, seq: 0, value: 2 })).total, 2);
      assert.ok(looper.trySend({ sender: 0, seq: 0, value: LOOP_FOREVER }));
      for (let seq = 1; seq <= 5; seq++) assert.ok(looper.trySend({ sender: 0, seq, value: seq }));
      // Before, terminate waited for the worker to answer its command, which a handler that never returns never
      // lets it do: the promise never settled (and shutdown hung with it).
      const outcome = await within(
        looper.terminate().then(
          () => undefined,
          (error: unknown) => error,
        ),
        10_000,
        'terminate of a stuck kernel',
      );
      assert.equal(outcome, undefined, `terminate rejected: ${String(outcome)}`);
      assert.equal(looper.status, 'Failed');
      assert.match(looper.metrics().lastError?.message ?? '', /did not terminate within 200 ms/);
      // The stuck message and the five behind it: each a dead letter, once, after the worker has gone.
      await eventually(() => assert.equal(letters.filter((l) => l.kernel === 'looper').length, 6), 10_000);
      assert.ok(letters.every((l) => l.reason === 'kernel-failed'));
      assert.deepEqual(
        letters.map((l) => new DataView(l.payload.buffer, l.payload.byteOffset).getUint32(4, true)).sort(),
        [0, 1, 2, 3, 4, 5],
      );
      // The neighbour shared the stuck worker: it was restarted on a fresh one (a restart starts from fresh state).
      // One call, waited for: it is queued while the neighbour restarts (a retried call would leave a second
      // message behind it).
      const answer = await neighbour.call({ sender: 0, seq: 1, value: 3 }, { timeout: 15_000 });
      assert.equal(answer.total, 3);
      assert.equal(neighbour.status, 'Active');
    } finally {
      const report = await within(runtime.shutdown(), 15_000, 'shutdown');
      assert.equal(
        report.failed,
        1,
        JSON.stringify({ report, neighbour: runtime.kernels().map((k) => [k.name, k.status]) }),
      );
    }
  });
});
