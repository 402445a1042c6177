import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RingKernelRuntime } from '../src/internal.js';
import { Accumulator, KILL_WORKER } from './fixtures/kernels.js';
import { Random, TEST_SEED } from './support/random.js';

/** Settles within `ms`, or says it did not (a launch that waits for room must not be mistaken for a hang). */
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const perWorker = (handles: readonly { metrics(): { workerThreadId: number } }[]): number[] => {
  const hosted = new Map<number, number>();
  for (const handle of handles) {
    const thread = handle.metrics().workerThreadId;
    hosted.set(thread, (hosted.get(thread) ?? 0) + 1);
  }
  return [...hosted.values()];
};

describe('placement of launches made together', () => {
  it(`a wave larger than the workers' room: each worker hosts at most maxKernelsPerWorker, the rest attach as kernels end (seed ${TEST_SEED})`, async () => {
    const random = new Random(TEST_SEED);
    const runtime = await RingKernelRuntime.builder().config({ workers: 2, maxKernelsPerWorker: 3 }).build();
    try {
      for (let round = 0; round < 3; round++) {
        const extra = random.int(1, 3);
        const launches = Array.from({ length: 6 + extra }, (_, i) =>
          runtime.launch(Accumulator, 1, 1, { name: `wave-${round}-${i}`, autoActivate: true }),
        );
        const first = await Promise.all(launches.slice(0, 6));
        assert.deepEqual(perWorker(first).sort(), [3, 3], 'the room of both workers, no more');
        const waiting = launches.slice(6);
        for (const launch of waiting) assert.equal(await within(launch, 300), 'pending', 'no room: it waits');
        // Room comes back as kernels end: every waiting launch attaches, never over the limit.
        const ending = first.splice(0, extra);
        await Promise.all(ending.map((handle) => handle.terminate()));
        const late = await Promise.all(waiting.map((launch) => within(launch, 10_000)));
        assert.ok(
          late.every((handle) => handle !== 'pending'),
          'each waiting launch attached once room came back',
        );
        const alive = [...first, ...(late as (typeof first)[number][])];
        assert.ok(
          perWorker(alive).every((hosted) => hosted <= 3),
          `at most 3 per worker: ${perWorker(alive)}`,
        );
        const answers = await Promise.all(alive.map((handle, i) => handle.call({ sender: i, seq: 0, value: 1 })));
        assert.deepEqual(
          answers.map((answer) => answer.total),
          alive.map(() => 1),
        );
        await Promise.all(alive.map((handle) => handle.terminate()));
      }
    } finally {
      await runtime.shutdown();
    }
  });

  it('a wave launched after a worker died is placed on the live workers only, and every kernel answers', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    try {
      const victim = await runtime.launch(Accumulator, 1, 1, { name: 'victim', autoActivate: true });
      const deadThread = victim.metrics().workerThreadId;
      // A call waits (and keeps the process alive) until the worker's death fails it.
      await assert.rejects(victim.call({ sender: 0, seq: 0, value: KILL_WORKER }), { code: 'RK_KERNEL_FAILED' });
      assert.equal(victim.status, 'Failed');
      const wave = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          runtime.launch(Accumulator, 1, 1, { name: `after-${i}`, autoActivate: true }),
        ),
      );
      assert.ok(
        wave.every((handle) => handle.metrics().workerThreadId !== deadThread),
        'nothing placed on the dead thread',
      );
      const answers = await Promise.all(wave.map((handle, i) => handle.call({ sender: i, seq: 0, value: i })));
      assert.deepEqual(
        answers.map((answer) => answer.sender),
        wave.map((_, i) => i),
      );
    } finally {
      await runtime.shutdown();
    }
  });
});
