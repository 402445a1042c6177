/**
 * Kernels moving between nodes of a cluster (`runtime.kernelMigrator().moveToNode`), over a real nats-server on
 * loopback: a third node keeps sending and calling by name while the kernel moves A → B → A.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterNodeUnknownError } from '../src/cluster.js';
import {
  type ClusterOptions,
  type DeadLetter,
  ErrorCode,
  type KernelRef,
  MigrationError,
  RingKernelRuntime,
} from '../src/index.js';
import { Accumulator, OrderedSum } from './fixtures/kernels.js';
import { startNodeProcess } from './support/cluster-process.js';
import { until } from './support/eventually.js';
import { natsServerForSuite, natsServerMissing } from './support/nats-server.js';
import { Random, TEST_SEED } from './support/random.js';

const missing = natsServerMissing();

type NumbersIn = { sender: number; seq: number; value: number };
type TallyOut = { total: number; count: number; disorder: number };
type TotalOut = { sender: number; seq: number; total: number; count: number };

/** A tally view's fields, to compare. */
const plain = ({ total, count, disorder }: TallyOut): TallyOut => ({ total, count, disorder });

describe('kernels moving between nodes', { skip: missing }, () => {
  const server = natsServerForSuite();

  const node = (name: string, cluster: string, more: Partial<ClusterOptions> = {}): Promise<RingKernelRuntime> =>
    RingKernelRuntime.builder()
      .config({ workers: 1 })
      .cluster({ servers: server.url, node: name, cluster, heartbeatMs: 200, downAfterMs: 1000, ...more })
      .build();

  /**
   * A seeded stream of `count` one-way sends and calls (about one in eight) from `ref`, in bursts; `moves` run at
   * the given message numbers, each started without waiting (the stream goes on while the kernel moves) once the
   * one before it is done. At-most-once sends and calls travel in order on one connection: one sequence (sender 1).
   * At-least-once sends go through JetStream and calls do not, so calls may overtake sends: calls are sender 2.
   * Resolves with the values' sum and the next seq of each sender once every call is answered and every move done.
   */
  async function stream(
    ref: KernelRef<NumbersIn, TallyOut>,
    random: Random,
    count: number,
    moves: ReadonlyMap<number, () => Promise<unknown>>,
    durable: boolean,
  ): Promise<{ sum: number; calls: number; next: Record<number, number> }> {
    let sum = 0;
    let calls = 0;
    const next: Record<number, number> = { 1: 1, 2: 1 };
    const answers: Promise<TallyOut>[] = [];
    const sends: Promise<void>[] = [];
    let moving: Promise<unknown> = Promise.resolve();
    let n = 1;
    while (n <= count) {
      const burst = random.int(1, 40);
      for (let i = 0; i < burst && n <= count; i++, n++) {
        const move = moves.get(n);
        if (move !== undefined) {
          await moving;
          moving = move();
        }
        const value = random.int(1, 100);
        sum += value;
        const call = random.int(0, 7) === 0;
        const sender = call && durable ? 2 : 1;
        const seq = next[sender] ?? 1;
        next[sender] = seq + 1;
        const message = { sender, seq, value };
        if (call) {
          calls++;
          answers.push(ref.call(message, { timeout: 20_000 }));
        } else if (durable) sends.push(ref.send(message));
        else assert.equal(ref.trySend(message), true);
      }
      await sleep(random.int(0, 3));
    }
    await moving;
    await Promise.all(sends);
    for (const answer of await Promise.all(answers)) assert.equal(answer.disorder, 0, 'no call saw disorder');
    return { sum, calls, next };
  }

  for (const durable of [false, true]) {
    const delivery = durable ? 'at-least-once' : 'at-most-once';
    test(`${delivery}: a third node's sends and calls by name while the kernel moves A → B → A are each handled once, in order, its state carried`, async () => {
      const cluster = durable ? 'move-durable' : 'move';
      const more = durable ? { atLeastOnce: ['moving/**'] } : {};
      await using a = await node('ma', cluster, more);
      await using b = await node('mb', cluster, more);
      await using c = await node('mc', cluster, more);
      const letters: DeadLetter[] = [];
      for (const runtime of [a, b, c]) runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
      await a.launch(OrderedSum, 1, 1, { name: 'moving/sum', autoActivate: true });
      await until(() => c.cluster?.registry.get('moving/sum')?.node === 'ma');
      const ref = c.ref<NumbersIn, TallyOut>('moving/sum');
      const seed = TEST_SEED + (durable ? 1 : 0);
      const random = new Random(seed);
      const reports: { from: string; to: string; messagesCarried: number; pauseMs: number }[] = [];
      const count = 6000;
      const { sum, calls, next } = await stream(
        ref,
        random,
        count,
        new Map([
          [
            2000,
            () =>
              a
                .kernelMigrator()
                .moveToNode('moving/sum', 'mb')
                .then((report) => reports.push(report)),
          ],
          [
            4000,
            () =>
              b
                .kernelMigrator()
                .moveToNode('moving/sum', 'ma')
                .then((report) => reports.push(report)),
          ],
        ]),
        durable,
      );
      assert.deepEqual(
        reports.map((report) => [report.from, report.to]),
        [
          ['ma', 'mb'],
          ['mb', 'ma'],
        ],
      );
      assert.ok(calls > 0);
      // The moves ran under traffic: messages arrived while the kernel was held, and were handed on.
      console.log(`seed ${seed}: ${JSON.stringify(reports)}`);
      assert.ok(
        reports.some((report) => report.messagesCarried > 0),
        'messages were held during a move',
      );
      // The sender kept the same reference throughout; the name is listed on A again.
      assert.equal(c.ref('moving/sum'), ref);
      await until(() => c.cluster?.registry.get('moving/sum')?.node === 'ma');
      const last = durable ? 2 : 1;
      // At-most-once, the tally call follows the sends on one connection. At-least-once, a send resolves once
      // JetStream stored it, and a call (not through JetStream) may overtake the last ones: the tally is asked again
      // (each ask a message too, value 0) until every send is in, for up to 10 s.
      let asked = 0;
      const tallyNow = async (): Promise<TallyOut> => {
        asked++;
        const seq = next[last] as number;
        next[last] = seq + 1;
        return plain(await ref.call({ sender: last, seq, value: 0 }, { timeout: 10_000 }));
      };
      let tally = await tallyNow();
      const patience = performance.now() + 10_000;
      while (durable && tally.count < count + asked && performance.now() < patience) {
        await sleep(20);
        tally = await tallyNow();
      }
      assert.deepEqual(
        tally,
        { total: sum, count: count + asked, disorder: 0 },
        `seed ${seed}: every message handled once, in order, and the sum carried through both moves`,
      );
      assert.equal(c.cluster?.stats().lostByPeers, 0);
      assert.deepEqual(
        letters.map((letter) => `${letter.reason}: ${letter.error.message}`),
        [],
      );
      assert.equal(b.kernels().length, 0, 'nothing left running on B');
      assert.equal(a.kernels().length, 1);
    });
  }

  test('outputs no one received yet and the state move with the kernel; a local sender uses the name afterwards', async () => {
    await using a = await node('oa', 'move-out');
    await using b = await node('ob', 'move-out');
    const acc = await a.launch(Accumulator, 1, 1, { name: 'acc', autoActivate: true });
    for (let seq = 0; seq < 50; seq++) acc.trySend({ sender: 1, seq, value: 2 });
    await until(() => acc.metrics().messagesProcessed === 50);
    await until(() => b.cluster?.registry.get('acc') !== undefined);
    const report = await a.kernelMigrator().moveToNode('acc', 'ob');
    assert.equal(report.outputsCarried, 50);
    assert.ok(report.stateBytes > 0);
    assert.equal(acc.status, 'Terminated', 'the instance on A ended');
    // The name now reaches B from A; the outputs wait on B, in order, for remote receivers.
    await until(() => a.cluster?.registry.get('acc')?.node === 'ob');
    const remote = a.ref<NumbersIn, TotalOut>('acc');
    assert.notEqual(remote, acc);
    const outputs: number[] = [];
    for (let i = 0; i < 50; i++) outputs.push((await remote.receive(5000)).seq);
    assert.deepEqual(
      outputs,
      Array.from({ length: 50 }, (_, i) => i),
    );
    const answer = await remote.call({ sender: 1, seq: 50, value: 2 }, { timeout: 5000 });
    assert.deepEqual([answer.count, answer.total], [51, 102]);
  });

  test('a move that fails leaves the kernel running at its source with nothing lost, typed; bad targets are refused', async () => {
    await using a = await node('fa', 'move-fail');
    await using c = await node('fc', 'move-fail');
    const b = await startNodeProcess({ servers: server.url, node: 'fb', cluster: 'move-fail', kernels: [] });
    try {
      await a.launch(OrderedSum, 1, 1, { name: 'stays', autoActivate: true });
      await until(() => c.cluster?.registry.get('stays') !== undefined && a.cluster?.registry.isAlive('fb') === true);
      const migrator = a.kernelMigrator();
      await assert.rejects(migrator.moveToNode('stays', 'nowhere'), ClusterNodeUnknownError);
      await assert.rejects(migrator.moveToNode('stays', 'fa'), { code: ErrorCode.InvalidArgument });
      await assert.rejects(migrator.moveToNode('not-here', 'fb'), { code: ErrorCode.KernelNotFound });
      const ref = c.ref<NumbersIn, TallyOut>('stays');
      const random = new Random(TEST_SEED + 7);
      // The target cannot launch it (no such device there): refused at the transfer, rolled back.
      const refused = migrator.moveToNode('stays', 'fb', { launch: { device: 99 } });
      // The target frozen (SIGSTOP): its answer does not come within the timeout, rolled back.
      const frozen = refused
        .catch(() => undefined)
        .then(() => {
          b.child.kill('SIGSTOP');
          return migrator.moveToNode('stays', 'fb', { timeoutMs: 300 });
        });
      // Checked once the stream is done; handled now, so that neither is an unhandled rejection meanwhile.
      for (const attempt of [refused, frozen]) attempt.catch(() => undefined);
      const { sum } = await stream(ref, random, 3000, new Map(), false);
      for (const [attempt, phase] of [
        [refused, 'transfer'],
        [frozen, 'transfer'],
      ] as const) {
        await assert.rejects(attempt, (error: unknown) => {
          assert.ok(error instanceof MigrationError, String(error));
          assert.equal(error.code, ErrorCode.MigrationFailed);
          assert.equal(error.phase, phase);
          assert.equal(error.rolledBack, true);
          return true;
        });
      }
      b.child.kill('SIGCONT');
      const tally = plain(await ref.call({ sender: 1, seq: 3001, value: 0 }, { timeout: 10_000 }));
      assert.deepEqual(tally, { total: sum, count: 3001, disorder: 0 }, 'every message handled once, at A');
      assert.equal(c.cluster?.registry.get('stays')?.node, 'fa');
      assert.equal(a.kernels().length, 1);
      // B, thawed, gives up the kernel it was asked to take (told to abort): the name stays A's alone.
      await sleep(1500);
      assert.equal(c.cluster?.registry.get('stays')?.node, 'fa');
      // Every call is answered by A's kernel (were B serving the name too, about half would go to B's copy).
      for (let seq = 3002; seq < 3022; seq++) {
        assert.equal((await ref.call({ sender: 1, seq, value: 1 }, { timeout: 10_000 })).count, seq);
      }
    } finally {
      b.child.kill('SIGCONT');
      await b.stop();
    }
  });
});
