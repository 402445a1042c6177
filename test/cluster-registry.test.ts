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
import { ErrorCode, RingKernelRuntime } from '../src/index.js';
import { Accumulator } from './fixtures/kernels.js';
import { until, within } from './support/eventually.js';
import { deleteBucketWatchers, natsServerForSuite, natsServerMissing } from './support/nats-server.js';
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

/**
 * The bucket `kv` with a watch that can be made to end, as the client's does when its subscription closes or its
 * consumer cannot be made again: `end()` ends the watch open now, and the next watch waits until `reopen()`.
 */
function ending(kv: KV): { kv: KV; end(): void; reopen(): void } {
  let endOpen: (() => void) | undefined;
  let held: Promise<void> = Promise.resolve();
  let release: (() => void) | undefined;
  const watch = async (options: Parameters<KV['watch']>[0]) => {
    await held;
    const updates = await kv.watch(options);
    const updatesIterator = updates[Symbol.asyncIterator]();
    const ended = new Promise<IteratorResult<KvEntry>>((resolve) => {
      endOpen = () => {
        updates.stop();
        resolve({ done: true, value: undefined });
      };
    });
    return {
      stop: () => updates.stop(),
      [Symbol.asyncIterator]: () => ({
        next: () => Promise.race([updatesIterator.next(), ended]),
        return: async (): Promise<IteratorResult<KvEntry>> => {
          updates.stop();
          return { done: true, value: undefined };
        },
      }),
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
    end: () => {
      held = new Promise((resolve) => {
        release = resolve;
      });
      endOpen?.();
    },
    reopen: () => release?.(),
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

  test('a watch that ends is replaced: the bucket is read anew, and what changed meanwhile is given as events', async () => {
    const others = await connect({ servers: server.url });
    const own = await connect({ servers: server.url });
    try {
      const bucket = 'rk-ending';
      const written = await new Kvm(others).create(bucket, { history: 1 });
      const view = ending(await new Kvm(own).open(bucket));
      const registry = new ClusterRegistry(view.kv, { name: bucket, jsm: await jetstreamManager(own) }, 60_000);
      const entry = (name: string, status: ClusterKernelEntry['status'] = 'Active'): ClusterKernelEntry => ({
        name,
        kernelId: 'ending',
        node: 'far',
        backend: 'cpu',
        status,
        delivery: 'at-most-once',
      });
      const put = (listed: ClusterKernelEntry): Promise<number> =>
        written.put(`kernels.${nameToken(listed.name)}`, JSON.stringify(listed));
      const faults: { code: string; message: string }[] = [];
      registry.on('stale', (error) => faults.push({ code: error.code, message: error.message }));
      try {
        await registry.start();
        for (const name of ['end/a', 'end/b', 'end/c']) await put(entry(name));
        await until(() => registry.lookup('end/*').length === 3);
        const changes: string[] = [];
        registry.watch('end/*', (event) => changes.push(`${event.type} ${event.name} ${event.entry.status}`));
        view.end();
        // Before, the copy stayed as it was from here on, without a word.
        await until(() => faults.length === 1);
        // While it watches again: one entry removed, one changed, one added; one left as it was.
        await written.delete(`kernels.${nameToken('end/a')}`);
        await put(entry('end/b', 'Deactivated'));
        await put(entry('end/d'));
        view.reopen();
        await until(() => changes.length === 3);
        assert.deepEqual(changes.sort(), [
          'deregistered end/a Active',
          'registered end/d Active',
          'updated end/b Deactivated',
        ]);
        // And it follows the bucket from there.
        await put(entry('end/e'));
        await until(() => registry.get('end/e') !== undefined);
        assert.deepEqual(
          registry.lookup('end/*').map((listed) => `${listed.name} ${listed.status}`),
          ['end/b Deactivated', 'end/c Active', 'end/d Active', 'end/e Active'],
        );
        assert.equal(changes.length, 4, changes.join());
        assert.equal(registry.resyncs, 1);
        assert.deepEqual(faults, [
          {
            code: ErrorCode.ClusterRegistryStale,
            message: 'cluster registry rk-ending: its watch ended; reading it anew',
          },
        ]);
      } finally {
        registry.close();
      }
    } finally {
      await others.close();
      await own.close();
    }
  });

  test('a node whose registry watch dies (its consumer deleted) declares no live node down and follows the bucket again', async () => {
    const node = (name: string): Promise<RingKernelRuntime> =>
      RingKernelRuntime.builder()
        .config({ workers: 1 })
        .cluster({ servers: server.url, node: name, cluster: 'watch-lost', heartbeatMs: 200, downAfterMs: 1000 })
        .build();
    await using a = await node('wa');
    await using b = await node('wb');
    const cluster = a.cluster;
    assert.ok(cluster !== undefined);
    const kept = await b.launch(Accumulator, 1, 1, { name: 'watched/kept', autoActivate: true });
    const gone = await b.launch(Accumulator, 1, 1, { name: 'watched/gone', autoActivate: true });
    await until(() => cluster.registry.lookup('watched/*').length === 2);
    const downs: string[] = [];
    cluster.on('nodeDown', (down) => downs.push(down));
    const dropped: string[] = [];
    cluster.registry.watch('watched/kept', (event) => {
      if (event.type === 'deregistered') dropped.push(event.name);
    });
    const faults: { code: string; message: string }[] = [];
    cluster.on('registry', (error) => faults.push({ code: error.code, message: error.message }));
    // What a consumer lost to the server looks like to the client (an inactive one cleaned up after a long
    // disconnect, a JetStream restart that lost it): every watcher of the bucket's stream deleted under its node.
    const admin = await connect({ servers: server.url });
    try {
      const watchers = await deleteBucketWatchers(admin, cluster.subjects.bucket);
      assert.ok(watchers.length >= 2, `the two nodes' watchers: ${watchers.join()}`);
    } finally {
      await admin.close();
    }
    // Changes made after that reach A (before, its copy stayed as it was until the client's 60 s heartbeat check,
    // and A declared B down meanwhile: its heartbeats stopped arriving).
    await gone.terminate();
    // Listed and ended again before B's own copy follows the bucket: B removes the entry all the same (before, it
    // looked in its copy, found no entry there, and the entry stayed in the bucket for good).
    const brief = await b.launch(Accumulator, 1, 1, { name: 'watched/brief', autoActivate: true });
    await brief.terminate();
    const later = await b.launch(Accumulator, 1, 1, { name: 'watched/later', autoActivate: true });
    await until(
      () =>
        cluster.registry.get('watched/later')?.node === 'wb' &&
        cluster.registry.get('watched/gone') === undefined &&
        cluster.registry.get('watched/brief') === undefined,
      10_000,
    );
    assert.equal(await cluster.registry.current('watched/brief'), undefined, 'the bucket does not list it');
    // Still following: a further change arrives too, and a few heartbeats on B stays alive on A.
    await later.terminate();
    await until(() => cluster.registry.get('watched/later') === undefined, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(cluster.registry.get('watched/kept')?.node, 'wb');
    assert.equal(cluster.registry.isAlive('wb'), true);
    assert.deepEqual(downs, [], 'A declared no live node down');
    assert.deepEqual(dropped, [], "B's kernel was never dropped from A's copy");
    assert.ok((cluster.stats().registryResyncs ?? 0) >= 1, 'the lost watch is counted');
    assert.ok(faults.length >= 1 && faults.every((fault) => fault.code === ErrorCode.ClusterRegistryStale));
    assert.match(faults[0]?.message ?? '', /registry/);
    await kept.terminate();
  });

  test('kernels ended right after their launch are not left listed (seeded)', async () => {
    await using a = await RingKernelRuntime.builder()
      .config({ workers: 1 })
      .cluster({ servers: server.url, node: 'wc', cluster: 'brief', heartbeatMs: 200, downAfterMs: 1000 })
      .build();
    const registry = a.cluster?.registry;
    assert.ok(registry !== undefined);
    const random = new Random(TEST_SEED);
    const names: string[] = [];
    for (let round = 0; round < 20; round++) {
      const name = `brief/k${round}`;
      names.push(name);
      const kernel = await a.launch(Accumulator, 1, 1, { name, autoActivate: random.int(0, 1) === 0 });
      // Ended at once, or after a few ms: while its listing (a KV create) is still on its way, or after.
      if (random.int(0, 2) === 0) await new Promise((resolve) => setTimeout(resolve, random.int(0, 5)));
      await kernel.terminate();
    }
    // Before, a kernel whose end came before its listing was done stayed listed for good, naming nobody.
    await until(() => registry.lookup('brief/*').length === 0, 10_000);
    for (const name of names) assert.equal(await registry.current(name), undefined, `${name} is not in the bucket`);
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
