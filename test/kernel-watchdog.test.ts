import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DeadLetter, RingKernelRuntime, type StaleKernel, type WatchdogRecovery } from '../src/internal.js';
import { Accumulator, LOOP_FOREVER, Looper, Numbers, Slow } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('KernelWatchdog', () => {
  it('finds a kernel stuck in its handler, and not an idle or a busy healthy one', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    try {
      const stuck = await runtime.launch(Slow, 1, 1, { name: 'stuck', autoActivate: true });
      const idle = await runtime.launch(Accumulator, 1, 1, { name: 'idle', autoActivate: true });
      const busy = await runtime.launch(Accumulator, 1, 1, { name: 'busy', autoActivate: true });
      const watchdog = runtime.kernelWatchdog();
      assert.equal(runtime.kernelWatchdog(), watchdog);
      assert.throws(() => watchdog.setHeartbeatTimeout(0), /positive number of ms, got 0/);
      watchdog.setHeartbeatTimeout(150);
      const events: StaleKernel[] = [];
      watchdog.on('stale', (stale) => events.push(stale));
      await idle.call({ sender: 0, seq: 0, value: 1 });
      stuck.trySend({ sender: 0, seq: 0, value: 1_500 }); // one handler call busy for 1.5 s
      const feeding = (async () => {
        for (let seq = 0; seq < 60; seq++) {
          await busy.send({ sender: 0, seq, value: 1 });
          await sleep(10);
        }
      })();
      await sleep(50);
      assert.deepEqual(watchdog.scanStaleKernels(), [], 'first sight is not enough');
      await sleep(250);
      const stale = watchdog.scanStaleKernels();
      // A stuck handler stalls its whole worker: a busy kernel that shares it is stuck too, and found as such.
      const sameWorker = busy.metrics().workerThreadId === stuck.metrics().workerThreadId;
      assert.deepEqual(stale.map((s) => s.handle.name).sort(), sameWorker ? ['busy', 'stuck'] : ['stuck']);
      assert.ok(stale.every((s) => s.stalledMs >= 150));
      assert.equal(stale.find((s) => s.handle === stuck)?.pending, 1, 'the message in hand is still pending');
      assert.equal(events.length, stale.length);
      await feeding;
      await stuck.call({ sender: 0, seq: 1, value: 0 }, { timeout: 5_000 }); // the handler came back
      // Once the handler returns, the worker's kernels catch up and beat again.
      await eventually(() => assert.deepEqual(watchdog.scanStaleKernels(), [], 'no longer stale once they beat again'));
    } finally {
      await runtime.shutdown();
    }
  });

  for (const policy of ['restart', 'fail'] as const) {
    it(`policy '${policy}': replaces the worker of a handler that loops forever; its other kernels move, queues kept`, async () => {
      // One worker: the stuck kernel and its bystander share it, and the replacement worker takes them back.
      const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
      const letters: DeadLetter[] = [];
      runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
      try {
        const looper = await runtime.launch(Looper, 1, 1, { name: 'looper', autoActivate: true });
        // Under 'restart' the bystander reads mirror replicas (dma): its move attaches fresh ones at its cursor.
        const transferStrategy = policy === 'restart' ? 'dma' : 'direct';
        const bystander = await runtime.launch(Accumulator, 1, 1, {
          name: 'bystander',
          autoActivate: true,
          transferStrategy,
        });
        const strategyBefore = bystander.metrics().transferStrategy; // 'direct' if the native mirror is missing
        assert.equal(looper.metrics().workerThreadId, bystander.metrics().workerThreadId);
        const watchdog = runtime.kernelWatchdog();
        assert.throws(() => watchdog.setPolicy('reboot' as never), /must be 'report', 'restart' or 'fail'/);
        watchdog.setPolicy(policy);
        watchdog.setHeartbeatTimeout(100);
        const recoveries: WatchdogRecovery[] = [];
        watchdog.on('recovered', (recovery) => recoveries.push(recovery));
        assert.equal((await bystander.call({ sender: 1, seq: 0, value: 5 })).total, 5);
        const stuckThread = looper.metrics().workerThreadId;
        // Queued for the paused bystander: kept across the move.
        await bystander.deactivate();
        for (let seq = 1; seq <= 3; seq++) bystander.trySend({ sender: 1, seq, value: 1 });
        looper.trySend({ sender: 2, seq: 0, value: LOOP_FOREVER });
        looper.trySend({ sender: 2, seq: 1, value: 7 }); // queued behind the stuck message
        watchdog.start(25);
        await eventually(() => assert.equal(recoveries.length, 1), 10_000);
        watchdog.stop();
        assert.deepEqual(recoveries[0], { kernel: 'looper', policy, threadId: stuckThread, moved: ['bystander'] });
        // The bystander restarted on the new worker with fresh state (still paused), and handles all it was sent.
        await eventually(() => assert.equal(bystander.status, 'Launched'));
        await bystander.activate();
        const outputs = [];
        for (let k = 0; k < 3; k++) outputs.push(await bystander.receive(10_000));
        assert.deepEqual(
          outputs.map((o) => [o.seq, o.total]),
          [
            [1, 1],
            [2, 2],
            [3, 3],
          ],
        );
        assert.notEqual(bystander.metrics().workerThreadId, stuckThread);
        assert.equal(bystander.metrics().transferStrategy, strategyBefore, 'the same strategy after the move');
        assert.equal(bystander.restarts, 1);
        // The stuck message is a dead letter (not retried); the one behind it is handled or dead-lettered.
        await eventually(() => assert.ok(letters.some((l) => l.kernel === 'looper')));
        const looperLetters = letters.filter((l) => l.kernel === 'looper');
        assert.equal(Numbers.decode(looperLetters[0]?.payload as Uint8Array).seq, 0);
        assert.equal(looperLetters[0]?.reason, 'kernel-failed');
        if (policy === 'restart') {
          const next = await looper.receive(10_000);
          assert.equal(next.seq, 1);
          assert.equal(looper.status, 'Active');
          assert.equal((await looper.call({ sender: 2, seq: 2, value: 3 })).count, 2, 'fresh state: 2nd message');
        } else {
          await eventually(() => assert.equal(looper.status, 'Failed'));
          assert.deepEqual(
            looperLetters.map((l) => [Numbers.decode(l.payload).seq, l.reason]),
            [
              [0, 'kernel-failed'],
              [1, 'kernel-failed'],
            ],
          );
        }
        assert.equal(watchdog.recoveries, 1);
      } finally {
        await runtime.shutdown();
      }
    });
  }
});
