import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { createFrameRing } from '../src/internal.js';
import type { StressJob, StressReport } from './fixtures/stress-protocol.js';
import { TEST_SEED } from './support/random.js';

const workers = new Set<Worker>();

function run(file: string, job: StressJob): Promise<StressReport> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(`./fixtures/${file}`, import.meta.url), { workerData: job });
    workers.add(worker);
    worker.once('exit', () => workers.delete(worker));
    worker.once('message', (report: StressReport) => {
      resolve(report);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`${file} exited with ${code} before reporting`)));
  });
}

const FRAMES = 1_000_000;

describe('frames between two real worker threads', () => {
  for (const wait of ['sync', 'async'] as const) {
    const count = FRAMES;
    it(`deliver ${count} random-size frames with nothing lost, duplicated, reordered or corrupted (consumer parks with ${wait === 'sync' ? 'Atomics.wait' : 'Atomics.waitAsync'}, seed ${TEST_SEED})`, async () => {
      // 4 KiB of ring for frames of up to 96 + 509 bytes: a handful of frames fill it, so it is full most of the
      // time and wraps around every few frames.
      const memory = createFrameRing({ capacityBytes: 4096, maxPayloadSize: 509 });
      const job = { memory, seed: TEST_SEED ^ (wait === 'sync' ? 0 : 1), count, wait };
      const consumer = run('stress-consumer.js', job);
      // If the consumer stops early (a problem found), the producer would wait for room forever: end it.
      void consumer.finally(() => setTimeout(() => workers.forEach((w) => void w.terminate()), 12_000).unref());
      const [produced, consumed] = await Promise.all([run('stress-producer.js', job), consumer]);
      assert.equal(consumed.problem, undefined);
      assert.equal(produced.problem, undefined);
      assert.equal(produced.frames, count);
      assert.equal(consumed.frames, count);
      assert.equal(consumed.malformed, 0);
      const wraps = (count * (96 + 509 / 2)) / 4096;
      assert.ok(wraps > 50_000, `wrapped about ${Math.round(wraps)} times`);
      // Backpressure really happened: the producer found the ring full and waited, many times.
      assert.ok(produced.waits > 100, `producer waited ${produced.waits} times`);
    });
  }
});
