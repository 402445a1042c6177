/**
 * A node declared down that comes back under the same name (its process paused past `downAfterMs`, then resumed),
 * over a real nats-server on loopback: the kernel another node restarted meanwhile keeps the name, and the
 * returning node's own instance ends — the kernel never runs twice, the registry lists it once.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ClusterOptions, type DeadLetter, RingKernelRuntime } from '../src/index.js';
import { OrderedSum } from './fixtures/kernels.js';
import { startNodeProcess } from './support/cluster-process.js';
import { until } from './support/eventually.js';
import { natsServerForSuite, natsServerMissing } from './support/nats-server.js';

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
});
