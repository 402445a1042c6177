import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RingKernelRuntime } from '../src/internal.js';
import { FrameRingPool } from '../src/wire/frame-ring-pool.js';
import { Accumulator } from './fixtures/kernels.js';
import { SlowSink, WorkerHeapLimits } from './fixtures/reliability-kernels.js';
import { Random, TEST_SEED } from './support/random.js';

const WINDOW = 200;
const MiB = 2 ** 20;

describe('reliability: memory of ended kernels is reused, not accumulated', () => {
  it(`launch / call / terminate churn, at most ${WINDOW} alive, holds ring memory and RSS near their baseline (seed ${TEST_SEED})`, async () => {
    const random = new Random(TEST_SEED);
    const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    let launched = 0;
    /** Waves of up to WINDOW kernels: launched, called (each a random amount of work), terminated (some without draining). */
    const churn = async (cycles: number): Promise<void> => {
      for (let done = 0; done < cycles; done += WINDOW) {
        const wave = await Promise.all(
          Array.from({ length: Math.min(WINDOW, cycles - done) }, () =>
            runtime.launch(SlowSink, 1, 1, { name: `churn-${launched++}`, autoActivate: true }),
          ),
        );
        const answers = await Promise.all(
          wave.map((kernel, k) => kernel.call({ seq: k, micros: random.int(0, 50) }, { timeout: 30_000 })),
        );
        answers.forEach((answer, k) => {
          assert.equal(answer.seq, k);
        });
        await Promise.all(wave.map((kernel) => kernel.terminate({ drain: random.next() < 0.8 })));
        assert.equal(runtime.kernels().length, 0);
      }
    };
    try {
      // The baseline: a runtime that has already run a thousand kernels (workers warm, heaps grown to their size).
      await churn(1_000);
      const before = process.memoryUsage();
      await churn(2_000);
      const after = process.memoryUsage();
      // Ring memory: the rings of ended kernels are reused by the next launches, so shared memory stays at what
      // one window needs (before: every ended kernel's rings stayed until a garbage collection, or for the 30 s of
      // a call's deadline timer, ~1.3 MiB a kernel).
      assert.ok(
        after.arrayBuffers <= before.arrayBuffers + 64 * MiB,
        `array buffers grew from ${Math.round(before.arrayBuffers / MiB)} to ${Math.round(after.arrayBuffers / MiB)} MiB`,
      );
      const ratio = after.rss / before.rss;
      assert.ok(
        ratio <= 1.5,
        `RSS grew from ${Math.round(before.rss / MiB)} to ${Math.round(after.rss / MiB)} MiB over 2000 more kernels`,
      );
    } finally {
      await runtime.shutdown();
    }
  });
});

describe("reliability: the kernel workers' heaps are sized", () => {
  /** The resource limits the worker hosting a kernel of `runtime` runs under. */
  const limitsOf = async (runtime: RingKernelRuntime): Promise<Record<string, number>> => {
    const kernel = await runtime.launch(WorkerHeapLimits, { name: 'limits' });
    const answer = await kernel.call(new Uint8Array(1));
    await kernel.terminate();
    return JSON.parse(new TextDecoder().decode(answer)) as Record<string, number>;
  };

  /** The limits a worker of a one-worker runtime built with `config` runs under. */
  const limitsWith = async (config: Record<string, number>): Promise<Record<string, number>> => {
    await using runtime = await RingKernelRuntime.builder()
      .config({ workers: 1, ...config })
      .build();
    return await limitsOf(runtime); // awaited before the runtime is disposed
  };

  it("by default a 1024 MiB old and a 24 MiB young generation; 0 leaves Node's defaults; others as configured", async () => {
    const sized = await limitsWith({});
    assert.equal(sized.maxOldGenerationSizeMb, 1024);
    assert.equal(sized.maxYoungGenerationSizeMb, 24);
    const configured = await limitsWith({ workerHeapMB: 768, workerYoungHeapMB: 12 });
    assert.equal(configured.maxOldGenerationSizeMb, 768);
    assert.equal(configured.maxYoungGenerationSizeMb, 12);
    // Node's own, sized from the machine's memory: never the runtime's.
    const nodeDefaults = await limitsWith({ workerHeapMB: 0, workerYoungHeapMB: 0 });
    assert.notEqual(nodeDefaults.maxOldGenerationSizeMb, 1024);
    assert.notEqual(nodeDefaults.maxYoungGenerationSizeMb, 24);
  });

  it('refuses limits a worker cannot start with, naming the field', () => {
    const builder = RingKernelRuntime.builder();
    assert.throws(
      () => builder.config({ workerHeapMB: 32 }),
      (error: unknown) =>
        error instanceof RangeError &&
        (error as { code?: string }).code === 'RK_INVALID_ARGUMENT' &&
        error.message === "config.workerHeapMB must be 0 (Node's default) or an integer in [64, 1048576] MiB, got 32",
    );
    assert.throws(
      () => builder.config({ workerYoungHeapMB: 2.5 }),
      /^RangeError: config\.workerYoungHeapMB must be 0 \(Node's default\) or an integer in \[3, 1024\] MiB, got 2\.5$/,
    );
    assert.throws(
      () => builder.config({ workerHeapMB: '1G' as never }),
      /^TypeError: config\.workerHeapMB must be a number, got string$/,
    );
  });
});

describe('reliability: ring reuse', () => {
  it('a pooled ring comes back empty, of its own size class; a full pool lets rings go; a foreign ring is ignored', () => {
    const pool = new FrameRingPool({ maxPooledBytes: 3 * 4096 });
    const small = pool.acquire({ capacityBytes: 2048, maxPayloadSize: 64 });
    const other = pool.acquire({ capacityBytes: 2048, maxPayloadSize: 128 });
    new Uint32Array(small.ring, 0, 2).set([96, 32]);
    new Int32Array(small.signal).fill(7);
    pool.release(small);
    pool.release(small); // twice: the second is ignored
    assert.equal(pool.stats().pooled, 1);
    assert.notEqual(pool.acquire({ capacityBytes: 2048, maxPayloadSize: 128 }), small, 'another size class');
    const again = pool.acquire({ capacityBytes: 2048, maxPayloadSize: 64 });
    assert.equal(again, small);
    assert.deepEqual([...new Uint32Array(again.ring, 0, 2)], [0, 0], 'indices reset');
    assert.ok(
      new Int32Array(again.signal).every((word) => word === 0),
      'doorbell reset',
    );
    for (const ring of [again, other]) pool.release(ring);
    const big = pool.acquire({ capacityBytes: 8192 });
    pool.release(big); // past maxPooledBytes: let go
    assert.equal(pool.stats().discarded, 1);
    pool.release({ ...small }); // not the pool's
    assert.deepEqual(pool.stats(), {
      created: 4,
      reused: 1,
      pooled: 2,
      pooledBytes: pool.stats().pooledBytes,
      discarded: 1,
    });
  });

  it("an ended kernel's unread outputs stay receivable, in order, after its rings went back for reuse", async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      const kernel = await runtime.launch(Accumulator, 1, 1, { autoActivate: true });
      for (let seq = 0; seq < 20; seq++) kernel.trySend({ sender: 1, seq, value: 1 });
      await kernel.terminate();
      // A new kernel of the same size takes the ended one's rings: its traffic must not show up in the old handle.
      const next = await runtime.launch(Accumulator, 1, 1, { name: 'next', autoActivate: true });
      for (let seq = 100; seq < 110; seq++) assert.equal((await next.call({ sender: 2, seq, value: 1 })).seq, seq);
      const outputs: number[] = [];
      for (let out = kernel.tryReceive(); out !== undefined; out = kernel.tryReceive()) outputs.push(out.seq);
      assert.deepEqual(
        outputs,
        Array.from({ length: 20 }, (_, seq) => seq),
      );
      assert.equal(kernel.metrics().inputQueueDepth, 0);
      assert.throws(() => kernel.trySend({ sender: 1, seq: 99, value: 1 }), { code: 'RK_INVALID_STATE' });
    } finally {
      await runtime.shutdown();
    }
  });
});
