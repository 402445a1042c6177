import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  InvalidStateError,
  type KernelHandle,
  MigrationError,
  type MigrationPhase,
  type MigrationReport,
  PlacementError,
  RingKernelRuntime,
  StateSnapshotError,
  TimeoutError,
} from '../src/internal.js';
import { CRASH_ON_RESTORE, Fussy, REFUSE_RESTORE, REFUSE_SNAPSHOT, Unserializable } from './fixtures/device-kernels.js';
import { Accumulator, AddOne, Slow } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';
import { Random, TEST_SEED } from './support/random.js';

describe('kernel migration between virtual devices', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().config({ workers: 2, devices: 2 }).build();
  });
  after(() => runtime.shutdown());

  it(`migrate a kernel back and forth under a continuous seeded stream of 10^5 messages: none lost, none twice, in order, state carried (seed ${TEST_SEED})`, async () => {
    const acc = await runtime.launch(Accumulator, 1, 1, {
      name: 'stream-acc',
      device: 0,
      queueCapacity: 256,
      autoActivate: true,
    });
    const total = 100_000;
    const random = new Random(TEST_SEED);
    const values = new Float64Array(total);
    for (let i = 0; i < total; i++) values[i] = random.int(0, 1000);
    const deadBefore = runtime.deadLetters.total;
    let received = 0;
    const receiving = (async () => {
      let sum = 0;
      for (let seq = 0; seq < total; seq++) {
        const out = await acc.receive(20_000);
        sum += values[seq] as number;
        // One compare per message; assert (and build its message) only on a mismatch.
        if (out.seq !== seq || out.count !== seq + 1 || out.total !== sum) {
          assert.deepEqual({ seq: out.seq, count: out.count, total: out.total }, { seq, count: seq + 1, total: sum });
        }
        received++;
      }
    })();
    const reports: MigrationReport[] = [];
    const migrating = (async () => {
      for (let k = 0; k < 6; k++) {
        // Migrate whenever another sixth of the stream has gone through.
        while (received < ((k + 1) * total) / 8) await new Promise((resolve) => setTimeout(resolve, 1));
        reports.push(await runtime.kernelMigrator().migrateKernel('stream-acc', k % 2, (k + 1) % 2));
      }
    })();
    const message = { sender: 1, seq: 0, value: 0 };
    for (let seq = 0; seq < total; seq++) {
      message.seq = seq;
      message.value = values[seq] as number;
      if (!acc.trySend(message)) await acc.send(message);
    }
    await Promise.all([receiving, migrating]);
    assert.equal(received, total);
    assert.equal(acc.tryReceive(), undefined, 'nothing more than was sent');
    assert.equal(runtime.deadLetters.total, deadBefore, 'no dead letters');
    assert.equal(reports.length, 6);
    assert.equal(acc.device, 0, 'six moves: back on device 0');
    assert.equal(acc.metrics().migrations, 6);
    assert.equal(acc.metrics().restarts, 0, 'a migration is not a restart');
    assert.equal(acc.metrics().messagesProcessed, total);
    for (const report of reports) {
      assert.ok(report.stateBytes > 0 && report.bytesMoved === report.stateBytes);
      assert.ok(report.pauseMs > 0 && report.wasActive);
      assert.ok(report.messagesCarried >= 0);
    }
    await acc.terminate();
  });

  it('migrate both ends of a kernel-to-kernel link mid-stream: the producer reaches the consumer at its new home', async () => {
    const first = await runtime.launch(AddOne, 1, 1, {
      name: 'k2k-add',
      device: 0,
      queueCapacity: 128,
      autoActivate: true,
    });
    const acc = await runtime.launch(Accumulator, 1, 1, {
      name: 'k2k-acc',
      device: 0,
      queueCapacity: 128,
      autoActivate: true,
    });
    await runtime.connect(first, acc, { queueCapacity: 128 });
    const total = 50_000;
    const random = new Random(TEST_SEED + 1);
    const values = new Float64Array(total);
    for (let i = 0; i < total; i++) values[i] = random.int(0, 1000);
    let received = 0;
    const receiving = (async () => {
      let sum = 0;
      for (let seq = 0; seq < total; seq++) {
        const out = await acc.receive(20_000);
        sum += (values[seq] as number) + 1;
        if (out.seq !== seq || out.count !== seq + 1 || out.total !== sum) {
          assert.deepEqual({ seq: out.seq, count: out.count, total: out.total }, { seq, count: seq + 1, total: sum });
        }
        received++;
      }
    })();
    const migrating = (async () => {
      const migrator = runtime.kernelMigrator();
      while (received < total / 5) await new Promise((resolve) => setTimeout(resolve, 1));
      await migrator.migrateKernel('k2k-acc', 0, 1); // the consumer: its link input moves with it
      while (received < (2 * total) / 5) await new Promise((resolve) => setTimeout(resolve, 1));
      await migrator.migrateKernel('k2k-add', 0, 1); // the producer: its link output is wired again
      while (received < (3 * total) / 5) await new Promise((resolve) => setTimeout(resolve, 1));
      await migrator.migrateKernel('k2k-acc', 1, 0);
      // Both ends at once, crossing over.
      while (received < (4 * total) / 5) await new Promise((resolve) => setTimeout(resolve, 1));
      await Promise.all([migrator.migrateKernel('k2k-add', 1, 0), migrator.migrateKernel('k2k-acc', 0, 1)]);
    })();
    const message = { sender: 2, seq: 0, value: 0 };
    for (let seq = 0; seq < total; seq++) {
      message.seq = seq;
      message.value = values[seq] as number;
      if (!first.trySend(message)) await first.send(message);
    }
    await Promise.all([receiving, migrating]);
    assert.equal(received, total);
    assert.equal(first.metrics().outputQueueDepth, 0, 'no output of the producer leaked to the host');
    assert.deepEqual([first.device, acc.device], [0, 1]);
    await first.terminate();
    await acc.terminate();
  });

  it('migrate a deactivated kernel: it stays deactivated on the target, its queue carried; bad requests refused', async () => {
    const acc = await runtime.launch(Accumulator, 1, 1, { name: 'idle-move', device: 0, autoActivate: true });
    await acc.call({ sender: 6, seq: 0, value: 1 });
    await acc.deactivate();
    for (let i = 1; i <= 20; i++) await acc.send({ sender: 6, seq: i, value: 1 });
    const report = await runtime.kernelMigrator().migrateKernel('idle-move', 0, 1);
    assert.deepEqual([report.wasActive, report.messagesCarried, acc.status, acc.device], [false, 20, 'Launched', 1]);
    await acc.activate();
    for (let i = 1; i <= 20; i++) {
      const out = await acc.receive(5000);
      assert.deepEqual([out.seq, out.count], [i, i + 1]);
    }
    const migrator = runtime.kernelMigrator();
    await assert.rejects(migrator.migrateKernel(acc, 0, 1), PlacementError, 'not on device 0');
    await assert.rejects(migrator.migrateKernel(acc, 1, 1), PlacementError, 'already there');
    await assert.rejects(migrator.migrateKernel(acc, 1, 5), PlacementError, 'no such device');
    await assert.rejects(migrator.migrateKernel(acc, 1, 0, { failAt: 'later' as MigrationPhase }), TypeError);
    await acc.terminate();
    await assert.rejects(migrator.migrateKernel(acc, 1, 0), InvalidStateError);
  });

  it('a supervised kernel migrates, and its supervisor restarts it on its new device when it fails there', async () => {
    const supervisor = runtime.supervisor({ name: 'mig', maxRestarts: 3, windowMs: 10_000, backoff: { initialMs: 0 } });
    const acc = await supervisor.launch(Accumulator, 1, 1, {
      name: 'supervised-move',
      device: 0,
      autoActivate: true,
      onHandlerError: 'fail',
    });
    await acc.call({ sender: 7, seq: 0, value: 4 });
    await runtime.kernelMigrator().migrateKernel(acc, 0, 1);
    assert.equal((await acc.call({ sender: 7, seq: 1, value: 4 })).count, 2, 'state carried');
    await assert.rejects(acc.call({ sender: 7, seq: 2, value: -1 })); // the handler throws: the kernel fails
    // Restarted (fresh state, as a restart is) on the device it had moved to.
    const after = await acc.call({ sender: 7, seq: 3, value: 4 }, { timeout: 10_000 });
    assert.equal(after.count, 1);
    assert.deepEqual([acc.restarts, acc.device, acc.metrics().migrations], [1, 1, 1]);
    await acc.terminate();
  });

  it('a kernel busy past the timeout cannot be quiesced: the migration times out, and the kernel resumes where it was', async () => {
    const slow = await runtime.launch(Slow, 1, 1, { name: 'busy-move', device: 0, autoActivate: true });
    const first = slow.call({ sender: 8, seq: 0, value: 1000 }, { timeout: 10_000 }); // its handler: busy 1 s
    while (!slow.inBatch) await new Promise((resolve) => setTimeout(resolve, 1)); // it is in the handler now
    await assert.rejects(runtime.kernelMigrator().migrateKernel(slow, 0, 1, { timeoutMs: 100 }), (error) => {
      assert.ok(error instanceof MigrationError);
      assert.deepEqual([error.phase, error.rolledBack], ['quiesce', true]);
      assert.ok(error.cause instanceof TimeoutError);
      return true;
    });
    assert.equal((await first).seq, 0);
    // Re-activated at its source once its worker got to the quiesce: it goes on taking input. (The deactivation
    // is applied after the busy batch ends and the re-activation follows its reply: give the worker a moment.)
    assert.equal((await slow.call({ sender: 8, seq: 1, value: 0 }, { timeout: 5000 })).seq, 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await eventually(() => assert.equal(slow.status, 'Active'));
    assert.equal((await slow.call({ sender: 8, seq: 2, value: 0 }, { timeout: 5000 })).seq, 2);
    assert.equal(slow.device, 0);
    await slow.terminate();
  });

  for (const phase of ['prepare', 'quiesce', 'checkpoint', 'transfer', 'restore', 'swap'] as const) {
    it(`a fault injected in phase ${phase} rolls back: the kernel runs on at its source with its state`, async () => {
      const acc = await runtime.launch(Accumulator, 1, 1, { name: `rollback-${phase}`, device: 1, autoActivate: true });
      for (let i = 0; i < 10; i++) await acc.call({ sender: 3, seq: i, value: 2 });
      // Sent while the migration runs: kept in the queue, handled by the source instance after the rollback.
      const during = acc.call({ sender: 3, seq: 10, value: 2 });
      await assert.rejects(runtime.kernelMigrator().migrateKernel(acc, 1, 0, { failAt: phase }), (error) => {
        assert.ok(error instanceof MigrationError);
        assert.equal(error.phase, phase);
        assert.equal(error.rolledBack, true);
        assert.equal(error.code, 'RK_MIGRATION_FAILED');
        return true;
      });
      assert.equal((await during).count, 11);
      assert.equal(acc.device, 1);
      assert.equal(acc.status, 'Active');
      const after = await acc.call({ sender: 3, seq: 11, value: 2 });
      assert.deepEqual([after.count, after.total], [12, 24], 'state intact, nothing lost or repeated');
      assert.equal(acc.metrics().migrations, 0);
      await acc.terminate();
    });
  }

  it('a fault after the swap (resume) is past the commit point: the kernel is on its target, not rolled back', async () => {
    const acc = await runtime.launch(Accumulator, 1, 1, { name: 'resume-fault', device: 0, autoActivate: true });
    await acc.call({ sender: 4, seq: 0, value: 5 });
    await assert.rejects(runtime.kernelMigrator().migrateKernel(acc, 0, 1, { failAt: 'resume' }), (error) => {
      assert.ok(error instanceof MigrationError);
      assert.deepEqual([error.phase, error.rolledBack], ['resume', false]);
      return true;
    });
    assert.equal(acc.device, 1);
    assert.equal((await acc.call({ sender: 4, seq: 1, value: 5 })).count, 2);
    await acc.terminate();
  });

  const realFailures: { what: string; poison?: number; kernel: string; phase: MigrationPhase; cause?: RegExp }[] = [
    { what: "the kernel's snapshot hook throws", poison: REFUSE_SNAPSHOT, kernel: Fussy.id, phase: 'checkpoint' },
    {
      what: "the kernel's restore hook throws",
      poison: REFUSE_RESTORE,
      kernel: Fussy.id,
      phase: 'restore',
      cause: /refuses to be restored/,
    },
    {
      what: "the target's worker dies in the restore",
      poison: CRASH_ON_RESTORE,
      kernel: Fussy.id,
      phase: 'restore',
      cause: /exited during the restore/,
    },
    { what: 'the state is not serializable (no hooks)', kernel: Unserializable.id, phase: 'checkpoint' },
  ];
  for (const { what, poison, kernel, phase, cause } of realFailures) {
    it(`a real failure rolls back too: ${what} (phase ${phase})`, async () => {
      const handle = (await runtime.launch(kernel, 1, 1, {
        name: `real-${phase}-${what.length}`,
        device: 0,
        autoActivate: true,
      })) as KernelHandle<{ sender: number; seq: number; value: number }, { count: number }>;
      await handle.call({ sender: 5, seq: 0, value: 3 });
      if (poison !== undefined) await handle.call({ sender: 5, seq: 1, value: poison });
      await assert.rejects(runtime.kernelMigrator().migrateKernel(handle, 0, 1), (error) => {
        assert.ok(error instanceof MigrationError);
        assert.deepEqual([error.phase, error.rolledBack], [phase, true], String(error.cause));
        if (phase === 'checkpoint') assert.ok(error.cause instanceof StateSnapshotError);
        if (cause !== undefined) assert.match((error.cause as Error).message, cause);
        return true;
      });
      assert.equal(handle.device, 0);
      assert.equal((await handle.call({ sender: 5, seq: 2, value: 3 })).count, 2, 'state intact at the source');
      await handle.terminate();
    });
  }
});
