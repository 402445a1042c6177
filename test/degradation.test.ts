import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type DeadLetter,
  type DegradationChange,
  DegradationManager,
  ErrorCode,
  LoadShedError,
  Priority,
  RingKernelRuntime,
} from '../src/internal.js';
import { Accumulator } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';

describe('DegradationManager', () => {
  it('rises with measured load, sheds by priority (typed, counted, dead-lettered), falls with hysteresis', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    const letters: DeadLetter[] = [];
    runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    try {
      const host = { measure: () => degradation.signals(), shedBelow: () => {} };
      assert.throws(
        () => new DegradationManager(host, { hysteresis: 2 }),
        /hysteresis must be a number in \[0, 0.9\], got 2/,
      );
      assert.throws(
        () => new DegradationManager(host, { thresholds: { errorRate: [0.5, 0.4, 0.6, 0.7] } }),
        /thresholds.errorRate must be four increasing positive numbers/,
      );
      const degradation = runtime.degradationManager();
      assert.equal(runtime.degradationManager(), degradation, 'one per runtime');
      assert.equal(degradation.level(), 'Normal');
      const changes: DegradationChange[] = [];
      degradation.on('change', (change) => changes.push(change));
      // Launched, not active: its queue fills as we send. Capacity 100 frames.
      const queue = await runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: 'queue', queueCapacity: 100 });
      let seq = 0;
      const fill = (n: number) => {
        for (let k = 0; k < n; k++) assert.ok(queue.trySend({ sender: 1, seq: seq++, value: 1 }, Priority.Critical));
      };
      fill(40);
      assert.equal(degradation.evaluate(), 'Normal');
      assert.equal(degradation.signals().queuePressure, 0.4);
      fill(20);
      assert.equal(degradation.evaluate(), 'Light');
      // Light sheds Background only.
      assert.throws(
        () => queue.trySend({ sender: 1, seq: 1000, value: 1 }, Priority.Background),
        (error: unknown) => {
          assert.ok(error instanceof LoadShedError);
          assert.equal(error.code, ErrorCode.LoadShed);
          assert.equal(error.level, 'Light');
          assert.equal(error.minPriority, Priority.Low);
          return true;
        },
      );
      assert.ok(queue.trySend({ sender: 1, seq: seq++, value: 1 }, Priority.Low));
      fill(25); // 86 queued
      assert.equal(degradation.evaluate(), 'Severe');
      await assert.rejects(queue.send({ sender: 1, seq: 1001, value: 1 }), LoadShedError); // Normal priority
      await assert.rejects(
        queue.call({ sender: 1, seq: 1002, value: 1 }, { priority: Priority.Normal }),
        LoadShedError,
      );
      assert.ok(queue.trySend({ sender: 1, seq: seq++, value: 1 }, Priority.High));
      assert.deepEqual(degradation.shedCounts(), { Normal: 0, Light: 1, Moderate: 0, Severe: 2, Critical: 0 });
      assert.deepEqual(
        letters.map((l) => l.reason),
        ['load-shed', 'load-shed', 'load-shed'],
      );

      // The queue drains: the level falls, but only past the hysteresis margin.
      await queue.activate();
      // Its answers are read as they come (a kernel whose output queue is full stops taking input).
      const reader = setInterval(() => {
        while (queue.tryReceive() !== undefined);
      }, 1);
      await eventually(() => assert.equal(queue.counters().received, seq)); // counters are published per batch
      assert.equal(degradation.evaluate(), 'Normal');
      assert.equal(degradation.evaluate({ queuePressure: 0.55 }), 'Light');
      // 0.45 is below Light's 0.5 but within the 20 % margin (0.4): still Light.
      assert.equal(degradation.evaluate({ queuePressure: 0.45 }), 'Light');
      assert.equal(degradation.evaluate({ queuePressure: 0.39 }), 'Normal');
      assert.ok(queue.trySend({ sender: 1, seq: seq++, value: 1 }, Priority.Background), 'admitted again at Normal');
      await eventually(() => assert.equal(queue.counters().received, seq));

      // Other signals drive it too: an error rate of 30 % is Severe; an open breaker (all of one) is Critical.
      for (let k = 0; k < 100; k++) await queue.send({ sender: 2, seq: k, value: k % 10 < 3 ? -1 : 1 });
      await eventually(() => assert.equal(queue.counters().received, seq + 100));
      clearInterval(reader);
      assert.equal(degradation.evaluate(), 'Severe');
      // 30 of the 101 messages handled since the last evaluation (the Background one, then the 100) failed.
      assert.ok(Math.abs(degradation.signals().errorRate - 30 / 101) < 1e-9, `${degradation.signals().errorRate}`);
      const breaker = runtime.circuitBreaker('down', { failureThreshold: 1 });
      await assert.rejects(breaker.execute(() => Promise.reject(new Error('down'))));
      assert.equal(degradation.evaluate(), 'Critical');
      assert.throws(() => queue.trySend({ sender: 1, seq: 2000, value: 1 }, Priority.High), LoadShedError);
      assert.deepEqual(
        changes.map((c) => `${c.from}→${c.to}`),
        [
          'Normal→Light',
          'Light→Severe',
          'Severe→Normal',
          'Normal→Light',
          'Light→Normal',
          'Normal→Severe',
          'Severe→Critical',
        ],
      );
      const report = await runtime.shutdown();
      assert.equal(report.shedMessages, 4);
      assert.equal(report.deadLettersByReason['load-shed'], 4);
    } finally {
      await runtime.shutdown();
    }
  });
});
