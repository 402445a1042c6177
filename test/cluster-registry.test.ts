/**
 * The cluster registry over a real nats-server (started here on a free loopback port): what a node reads of the
 * registry's bucket when it joins a cluster whose other nodes are at work.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { type KV, type KvEntry, Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { type ClusterKernelEntry, ClusterRegistry } from '../src/cluster/cluster-registry.js';
import { nameToken } from '../src/cluster/cluster-subjects.js';
import { until, within } from './support/eventually.js';
import { natsServerForSuite, natsServerMissing } from './support/nats-server.js';
import { Random, TEST_SEED } from './support/random.js';

const STARTS = 40;

/**
 * The bucket `kv` as a registry on a busy node reads it: while `lag` is on, the watch's updates wait (as they do
 * behind a long task on the event loop) and everything else goes straight to the server.
 */
function lagging(kv: KV): { kv: KV; lag(on: boolean): void } {
  let lagging = false;
  let wake: (() => void) | undefined;
  const watch = async (options: Parameters<KV['watch']>[0]) => {
    const updates = await kv.watch(options);
    return {
      stop: () => updates.stop(),
      async *[Symbol.asyncIterator](): AsyncGenerator<KvEntry> {
        for await (const entry of updates) {
          while (lagging) await new Promise<void>((resolve) => (wake = resolve));
          yield entry;
        }
      },
    };
  };
  const proxy = new Proxy(kv, {
    get: (target, key) => {
      if (key === 'watch') return watch;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    kv: proxy,
    lag: (on) => {
      lagging = on;
      if (!on) wake?.();
    },
  };
}

describe('the cluster registry', { skip: natsServerMissing() }, () => {
  const server = natsServerForSuite();

  test('a registry starting while other nodes put and delete entries ends with the bucket as it is, and never waits for good (seeded)', async () => {
    const others = await connect({ servers: server.url });
    const joining = await connect({ servers: server.url });
    try {
      const bucket = 'rk-busy';
      const written = await new Kvm(others).create(bucket, { history: 1 });
      const kv = await new Kvm(joining).open(bucket);
      const jsm = await jetstreamManager(joining);
      const random = new Random(TEST_SEED);
      /** The kernels the bucket lists, as the other nodes wrote them. */
      const listed = new Map<string, ClusterKernelEntry>();
      // Other nodes at work: heartbeats, kernels listed and removed, nodes leaving (their heartbeat deleted), a few
      // ms apart. Deleted keys are what kept a join from ending: `kv.keys()` on nats-server 2.9 then waited for a
      // pending count that stayed above 0, or for an idle heartbeat that these writes never let come.
      let writing = true;
      const writes = (async () => {
        while (writing) {
          const slot = random.int(0, 5);
          const remove = random.int(0, 9) < 3;
          if (random.int(0, 1) === 0) {
            const node = `other-${slot}`;
            if (remove) await written.delete(`nodes.${node}`);
            else await written.put(`nodes.${node}`, JSON.stringify({ node, backend: 'cpu', kernels: 1, processed: 0 }));
          } else {
            const name = `busy/k${slot}`;
            if (remove) {
              await written.delete(`kernels.${nameToken(name)}`);
              listed.delete(name);
            } else {
              const entry: ClusterKernelEntry = {
                name,
                kernelId: 'busy',
                node: `other-${random.int(0, 5)}`,
                backend: 'cpu',
                status: 'Active',
                delivery: 'at-most-once',
              };
              await written.put(`kernels.${nameToken(name)}`, JSON.stringify(entry));
              listed.set(name, entry);
            }
          }
          await new Promise((resolve) => setTimeout(resolve, random.int(0, 3)));
        }
      })();
      try {
        for (let start = 0; start < STARTS; start++) {
          const registry = new ClusterRegistry(kv, { name: bucket, jsm }, 60_000);
          try {
            await within(registry.start(), 10_000, `registry start ${start} of ${STARTS} (seed ${TEST_SEED})`);
          } finally {
            registry.close();
          }
        }
      } finally {
        writing = false;
        await writes;
      }
      // What a start reads is the bucket's state: with the writes done, exactly the kernels listed last.
      const registry = new ClusterRegistry(kv, { name: bucket, jsm }, 60_000);
      try {
        await within(registry.start(), 10_000, 'the last registry start');
        assert.deepEqual(
          registry.lookup('**'),
          [...listed.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
        );
      } finally {
        registry.close();
      }
    } finally {
      await others.close();
      await joining.close();
    }
  });

  test('a node whose heartbeats this copy has not applied yet (its event loop busy) is not declared down: the bucket has the last word', async () => {
    const others = await connect({ servers: server.url });
    const busy = await connect({ servers: server.url });
    try {
      const bucket = 'rk-lagging';
      const written = await new Kvm(others).create(bucket, { history: 1 });
      const view = lagging(await new Kvm(busy).open(bucket));
      const registry = new ClusterRegistry(view.kv, { name: bucket, jsm: await jetstreamManager(busy) }, 400);
      try {
        await registry.start();
        const beat = () =>
          written.put('nodes.far', JSON.stringify({ node: 'far', backend: 'cpu', kernels: 1, processed: 0 }));
        const key = `kernels.${nameToken('lag/k')}`;
        const entry: ClusterKernelEntry = {
          name: 'lag/k',
          kernelId: 'lag',
          node: 'far',
          backend: 'cpu',
          status: 'Active',
          delivery: 'at-most-once',
        };
        await beat();
        await written.put(key, JSON.stringify(entry));
        await until(() => registry.isAlive('far') && registry.get('lag/k') !== undefined);
        // The node beats on; this copy applies none of it for longer than downAfterMs.
        view.lag(true);
        for (let i = 0; i < 6; i++) {
          await beat();
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(registry.isAlive('far'), false, 'the last beat applied here is older than downAfterMs');
        assert.deepEqual(await registry.sweep('near'), [], 'a node that beats is not declared down');
        assert.equal(registry.isAlive('far'), true);
        assert.equal((await written.get(key))?.operation, 'PUT', 'its kernel stays listed');
        view.lag(false);
        // A node that does stop beating is declared down, its kernels with it.
        await new Promise((resolve) => setTimeout(resolve, 600));
        assert.deepEqual(await registry.sweep('near'), ['far']);
        assert.equal((await written.get(key))?.operation, 'DEL');
        assert.equal(registry.isAlive('far'), false);
      } finally {
        registry.close();
      }
    } finally {
      await others.close();
      await busy.close();
    }
  });
});
