/**
 * A node declared down that comes back under the same name (its process paused past `downAfterMs`, then resumed),
 * over a real nats-server on loopback: the kernel another node restarted meanwhile keeps the name, and the
 * returning node's own instance ends — the kernel never runs twice, the registry lists it once.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { nameToken } from '../src/cluster/cluster-subjects.js';
import { type ClusterKernelEntry, type ClusterOptions, type DeadLetter, RingKernelRuntime } from '../src/index.js';
import { OrderedSum } from './fixtures/kernels.js';
import { startNodeProcess } from './support/cluster-process.js';
import { until, within } from './support/eventually.js';
import { deleteBucketWatchers, natsServerForSuite, natsServerMissing } from './support/nats-server.js';

const missing = natsServerMissing();

type NumbersIn = { sender: number; seq: number; value: number };
type TallyOut = { total: number; count: number; disorder: number };

describe('a node that comes back after it was declared down', { skip: missing }, () => {
  const server = natsServerForSuite();

  const node = (name: string, more: Partial<ClusterOptions> = {}): Promise<RingKernelRuntime> =>
    RingKernelRuntime.builder()
      .config({ workers: 1 })
      .cluster({ servers: server.url, node: name, cluster: 'rejoin', heartbeatMs: 200, downAfterMs: 1000, ...more })
      .build();

  test('a node process restarted before it was declared down lists what it hosts now, and nothing of its previous life', async () => {
    // This node declares nobody down within the test: the restart comes well inside its downAfterMs.
    await using c = await node('rc2', { downAfterMs: 60_000 });
    const first = await startNodeProcess({
      servers: server.url,
      node: 'rx2',
      cluster: 'rejoin',
      kernels: [
        { id: OrderedSum.id, name: 'restart/a' },
        { id: OrderedSum.id, name: 'restart/b' },
      ],
    });
    await until(() => c.cluster?.registry.lookup('restart/*').length === 2);
    await first.kill();
    const second = await startNodeProcess({
      servers: server.url,
      node: 'rx2',
      cluster: 'rejoin',
      kernels: [{ id: OrderedSum.id, name: 'restart/b' }],
    });
    try {
      // 'restart/a' was its previous incarnation's: nobody serves it now, so it is not listed (before, it stayed
      // listed under the node's name for good, since that name heart-beats again).
      await until(
        () => c.cluster?.registry.get('restart/a') === undefined && c.cluster?.registry.get('restart/b') !== undefined,
      );
      assert.deepEqual(
        c.cluster?.registry.lookup('restart/*').map((entry) => [entry.name, entry.node]),
        [['restart/b', 'rx2']],
      );
      const b = c.ref<NumbersIn, TallyOut>('restart/b');
      const tally = await b.call({ sender: 1, seq: 1, value: 5 }, { timeout: 10_000 });
      assert.deepEqual([tally.count, tally.total], [1, 5], 'the new incarnation answers, from its own start');
    } finally {
      await second.stop();
    }
  });

  test('its kernel, restarted elsewhere meanwhile, is not run twice: the returning instance ends and every message reaches the one listed', async () => {
    const x = await startNodeProcess({
      servers: server.url,
      node: 'rx',
      cluster: 'rejoin',
      kernels: [{ id: OrderedSum.id, name: 'rejoin/sum' }],
    });
    try {
      await using f = await node('rf', { failover: ['rejoin/**'] });
      await using c = await node('rc');
      const letters: DeadLetter[] = [];
      c.deadLetters.on('deadLetter', (letter) => letters.push(letter));
      await until(() => c.cluster?.registry.get('rejoin/sum')?.node === 'rx');
      const failedOver = new Promise((resolve) => f.cluster?.once('failover', resolve));
      // Paused past downAfterMs: declared down, and F restarts its kernel.
      x.child.kill('SIGSTOP');
      await failedOver;
      await until(() => c.cluster?.registry.get('rejoin/sum')?.node === 'rf');
      x.child.kill('SIGCONT');
      // Back: it heart-beats again, lists no kernel, and the name stays F's.
      await until(() => c.cluster?.registry.isAlive('rx') === true);
      await until(() => c.cluster?.registry.nodes().find((entry) => entry.node === 'rx')?.kernels === 0);
      await until(() => x.output().includes('"displaced":"rejoin/sum"'));
      assert.equal(c.cluster?.registry.get('rejoin/sum')?.node, 'rf');
      assert.deepEqual(
        c.cluster?.registry.lookup('rejoin/**').map((entry) => entry.node),
        ['rf'],
      );
      // Every message sent by name from now on reaches F's instance (none is taken by the returning one).
      const ref = c.ref<NumbersIn, TallyOut>('rejoin/sum');
      for (let seq = 1; seq <= 2000; seq++) ref.trySend({ sender: 1, seq, value: 1 });
      const tally = await ref.call({ sender: 1, seq: 2001, value: 1 }, { timeout: 10_000 });
      assert.deepEqual([tally.count, tally.total, tally.disorder], [2001, 2001, 0]);
      assert.equal(c.cluster?.stats().lostByPeers, 0);
      assert.deepEqual(letters, []);
      // And it stays that way over later heartbeats (the returning node does not list it again).
      await sleep(600);
      assert.deepEqual(
        c.cluster?.registry.lookup('rejoin/**').map((entry) => entry.node),
        ['rf'],
      );
    } finally {
      x.child.kill('SIGCONT');
      await x.stop();
    }
  });

  test('a node paused past downAfterMs, its kernel taken over by nobody, lists it again: callers by name reach the same instance', async () => {
    const x = await startNodeProcess({
      servers: server.url,
      node: 'ry',
      cluster: 'rejoin',
      kernels: [{ id: OrderedSum.id, name: 'paused/sum' }],
    });
    try {
      await using c = await node('rc3');
      const registry = c.cluster?.registry;
      assert.ok(registry !== undefined);
      await until(() => registry.get('paused/sum')?.node === 'ry');
      const ref = c.ref<NumbersIn, TallyOut>('paused/sum');
      const first = await ref.call({ sender: 1, seq: 1, value: 2 }, { timeout: 10_000 });
      assert.deepEqual([first.count, first.total], [1, 2]);
      const changes: string[] = [];
      registry.watch('paused/**', (event) => changes.push(`${event.type} ${event.entry.node}`));
      const down = new Promise<void>((resolve) =>
        c.cluster?.on('nodeDown', (gone) => {
          if (gone === 'ry') resolve();
        }),
      );
      // Its event loop stopped past downAfterMs (as a long synchronous import or a GC pause would): declared down.
      x.child.kill('SIGSTOP');
      await within(down, 10_000, 'ry declared down');
      await until(() => registry.get('paused/sum') === undefined);
      x.child.kill('SIGCONT');
      // Back: it heart-beats and lists its kernel again, and the reference made before reaches the same instance.
      await until(() => registry.get('paused/sum')?.node === 'ry' && registry.isAlive('ry'), 10_000);
      for (let seq = 2; seq <= 501; seq++) ref.trySend({ sender: 1, seq, value: 1 });
      const tally = await ref.call({ sender: 1, seq: 502, value: 1 }, { timeout: 10_000 });
      assert.deepEqual([tally.count, tally.total, tally.disorder], [502, 503, 0], 'its state carried on, nothing lost');
      assert.deepEqual(
        registry.lookup('paused/**').map((entry) => entry.node),
        ['ry'],
      );
      assert.deepEqual(changes, ['deregistered ry', 'registered ry']);
      assert.equal(c.cluster?.stats().lostByPeers, 0);
    } finally {
      x.child.kill('SIGCONT');
      await x.stop();
    }
  });

  test("a returning node whose copy does not show yet that another node took its kernel's name does not take it back", async () => {
    // Heartbeats two seconds apart: the steps below fit between two of them.
    await using x = await node('rz', { heartbeatMs: 2000, downAfterMs: 4000 });
    const cluster = x.cluster;
    assert.ok(cluster !== undefined);
    const kernel = await x.launch(OrderedSum, 1, 1, { name: 'taken/sum', autoActivate: true });
    await until(() => cluster.registry.get('taken/sum')?.node === 'rz');
    const key = `kernels.${nameToken('taken/sum')}`;
    const other = await connect({ servers: server.url });
    // Another node, 'rf2' (a plain client here), heart-beating.
    const kv = await new Kvm(other).open(cluster.subjects.bucket);
    const beat = (): Promise<unknown> =>
      kv.put('nodes.rf2', JSON.stringify({ node: 'rf2', backend: 'cpu', kernels: 1, processed: 0, queued: 0 }));
    const beating = setInterval(() => void beat().catch(() => undefined), 100);
    try {
      await until(() => cluster.registry.isAlive('rf2'));
      // Just after one of rz's heartbeats (once it is done with it), so that the next one comes after all of the
      // steps below.
      const beats = await kv.watch({ key: 'nodes.rz', include: 'updates' });
      for await (const _ of beats) break;
      await sleep(200);
      // rz declared down (its entry swept), and rz's copy sees that...
      await kv.delete(key);
      await until(() => cluster.registry.get('taken/sum') === undefined, 500);
      // ...but not yet that rf2 takes the name (its watch stops delivering: its consumer is lost).
      await deleteBucketWatchers(other, cluster.subjects.bucket);
      const taken: ClusterKernelEntry = {
        name: 'taken/sum',
        kernelId: OrderedSum.id,
        node: 'rf2',
        backend: 'cpu',
        status: 'Active',
        delivery: 'at-most-once',
      };
      await kv.create(key, JSON.stringify(taken));
      const displaced = new Promise((resolve) => cluster.once('displaced', resolve));
      // Before, rz's next heartbeat put its own entry back over rf2's (its copy listed nobody), and kept the name.
      await within(displaced, 20_000, 'rz ends its instance');
      assert.equal((await cluster.registry.current('taken/sum'))?.entry.node, 'rf2', "the name stays rf2's");
      await until(() => kernel.status === 'Terminated');
    } finally {
      clearInterval(beating);
      await other.close();
    }
  });

  test("a node whose copy does not show yet that another node took its kernel's name does not take it back with a new status", async () => {
    // Heartbeats two seconds apart: the steps below fit between two of them.
    await using x = await node('rs', { heartbeatMs: 2000, downAfterMs: 4000 });
    const cluster = x.cluster;
    assert.ok(cluster !== undefined);
    const kernel = await x.launch(OrderedSum, 1, 1, { name: 'status/sum', autoActivate: true });
    await until(() => cluster.registry.get('status/sum')?.status === 'Active');
    const key = `kernels.${nameToken('status/sum')}`;
    const other = await connect({ servers: server.url });
    const kv = await new Kvm(other).open(cluster.subjects.bucket);
    const beat = (): Promise<unknown> =>
      kv.put('nodes.rf3', JSON.stringify({ node: 'rf3', backend: 'cpu', kernels: 1, processed: 0, queued: 0 }));
    const beating = setInterval(() => void beat().catch(() => undefined), 100);
    try {
      await until(() => cluster.registry.isAlive('rf3'));
      const beats = await kv.watch({ key: 'nodes.rs', include: 'updates' });
      for await (const _ of beats) break;
      await sleep(200);
      // rs's copy stops following the bucket (its watch's consumer lost) while it still lists the kernel as its own...
      await deleteBucketWatchers(other, cluster.subjects.bucket);
      // ...and rf3 takes the name (rs declared down and swept, then rf3's claim), unseen by rs.
      const taken: ClusterKernelEntry = {
        name: 'status/sum',
        kernelId: OrderedSum.id,
        node: 'rf3',
        backend: 'cpu',
        status: 'Active',
        delivery: 'at-most-once',
      };
      await kv.delete(key);
      await kv.create(key, JSON.stringify(taken));
      // The kernel's status changes on rs: its next heartbeat publishes it.
      await kernel.deactivate();
      const displaced = new Promise((resolve) => cluster.once('displaced', resolve));
      // Before, that heartbeat put rs's entry over rf3's and rs kept the name.
      await within(displaced, 20_000, 'rs ends its instance');
      assert.equal((await cluster.registry.current('status/sum'))?.entry.node, 'rf3', "the name stays rf3's");
    } finally {
      clearInterval(beating);
      await other.close();
    }
  });
});
