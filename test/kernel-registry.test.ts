import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type RegistryEvent, RingKernelRuntime } from '../src/internal.js';
import { Accumulator } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';

describe('KernelRegistry', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
  });
  after(() => runtime.shutdown());

  it('finds kernels by hierarchical name with * (one level) and ** (any depth), and watches changes', async () => {
    const names = [
      'sensors/eu/temperature',
      'sensors/eu/humidity',
      'sensors/us/temperature',
      'sensors/temperature',
      'alerts/eu',
    ];
    const events: RegistryEvent[] = [];
    const stop = runtime.registry.watch('sensors/*/temperature', (event) => {
      events.push(event);
    });
    const handles = await Promise.all(
      names.map((_, i) => runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: `reg-${i}` })),
    );
    for (const [i, name] of names.entries()) runtime.registry.register(name, handles[i] as (typeof handles)[number]);
    const found = (pattern: string) => runtime.registry.lookup(pattern).map((entry) => entry.name);
    assert.deepEqual(found('sensors/*/temperature'), ['sensors/eu/temperature', 'sensors/us/temperature']);
    assert.deepEqual(found('sensors/*'), ['sensors/temperature']);
    assert.deepEqual(found('sensors/**'), [
      'sensors/eu/humidity',
      'sensors/eu/temperature',
      'sensors/temperature',
      'sensors/us/temperature',
    ]);
    assert.deepEqual(found('**/temperature'), [
      'sensors/eu/temperature',
      'sensors/temperature',
      'sensors/us/temperature',
    ]);
    assert.deepEqual(found('**/eu/**'), ['alerts/eu', 'sensors/eu/humidity', 'sensors/eu/temperature']);
    assert.deepEqual(found('**'), [...names].sort());
    assert.deepEqual(found('nothing/*'), []);
    assert.equal(runtime.registry.get('alerts/eu'), handles[4]);
    assert.throws(
      () => runtime.registry.register('alerts/eu', handles[0] as (typeof handles)[number]),
      /is taken by kernel 'reg-4'/,
    );
    assert.throws(
      () => runtime.registry.register('bad//name', handles[0] as (typeof handles)[number]),
      /segment "" is not allowed/,
    );
    assert.throws(() => runtime.registry.lookup('a/b c'), /is not allowed/);
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.name}`),
      ['registered sensors/eu/temperature', 'registered sensors/us/temperature'],
    );
    // A kernel that terminates leaves the registry by itself.
    await handles[0]?.terminate();
    await eventually(() => assert.equal(runtime.registry.get('sensors/eu/temperature'), undefined));
    assert.deepEqual(events.at(-1), { type: 'deregistered', name: 'sensors/eu/temperature', handle: handles[0] });
    stop();
    assert.ok(runtime.registry.deregister('sensors/us/temperature'));
    assert.equal(events.length, 3, 'no events after unsubscribing');
    for (const handle of handles.slice(1)) await handle.terminate();
    assert.deepEqual(found('**'), []);
  });
});
