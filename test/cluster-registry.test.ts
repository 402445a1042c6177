/**
 * The cluster registry over a real nats-server (started here on a free loopback port): what a node reads of the
 * registry's bucket when it joins a cluster whose other nodes are at work.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { type ClusterKernelEntry, ClusterRegistry } from '../src/cluster/cluster-registry.js';
import { nameToken } from '../src/cluster/cluster-subjects.js';
import { within } from './support/eventually.js';
import { natsServerForSuite, natsServerMissing } from './support/nats-server.js';
import { Random, TEST_SEED } from './support/random.js';

const STARTS = 40;

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
});
