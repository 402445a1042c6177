import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { copyQueuedFrames, preloadQueuedFrames } from '../src/devices/checkpoint.js';
import {
  createFrameRing,
  FrameConsumer,
  FrameProducer,
  LoadBalancingStrategy,
  PlacementError,
  RingKernelRuntime,
  StateSnapshotError,
} from '../src/internal.js';
import { Fussy, REFUSE_RESTORE, Unserializable } from './fixtures/device-kernels.js';
import { Accumulator, Numbers, Sink, Slow } from './fixtures/kernels.js';

const idle = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('virtual devices: topology', () => {
  it('split the workers into devices, each with its budget, every pair linked through host memory (measured)', async () => {
    await using runtime = await RingKernelRuntime.builder()
      .config({ workers: 5, devices: 4, deviceMemoryMB: 16 })
      .build();
    const { devices, links } = runtime.gpuTopology();
    assert.deepEqual(
      devices.map((device) => [device.id, device.name, device.kind, device.memoryMB, device.computeUnits]),
      [
        [0, 'cpu:0', 'cpu', 16, 2],
        [1, 'cpu:1', 'cpu', 16, 1],
        [2, 'cpu:2', 'cpu', 16, 1],
        [3, 'cpu:3', 'cpu', 16, 1],
      ],
    );
    const threads = devices.flatMap((device) => device.workerThreadIds);
    assert.equal(new Set(threads).size, 5, 'every worker thread belongs to exactly one device');
    assert.equal(links.length, 6, 'one link per pair');
    for (const link of links) {
      assert.equal(link.kind, 'host');
      assert.ok(link.from < link.to);
      assert.ok(link.bandwidthGBps > 0 && link.latencyUs > 0, 'measured, so positive');
    }
    // A kernel placed on a device runs on one of that device's workers.
    const sink = await runtime.launch(Sink, 1, 1, { autoActivate: false, device: 2 });
    assert.ok(devices[2]?.workerThreadIds.includes(sink.metrics().workerThreadId));
    assert.equal(sink.metrics().device, 2);
    await runtime.kernelMigrator().migrateKernel(sink, 2, 3);
    const text = await runtime.prometheusExporter().gather();
    assert.match(text, /^ringkernel_kernel_device\{kernel="test\.sink"\} 3$/m);
    assert.match(text, /^ringkernel_kernel_migrations_total\{kernel="test\.sink"\} 1$/m);
  });

  it('reject configurations with fewer workers than devices, and bad device options', async () => {
    assert.throws(
      () => RingKernelRuntime.builder().config({ workers: 2, devices: 3 }),
      new RangeError('config.workers (2) must be at least config.devices (3): each device needs a worker'),
    );
    assert.throws(
      () => RingKernelRuntime.builder().config({ devices: 0 }),
      new RangeError('config.devices must be an integer in [1, 64], got 0'),
    );
    await using runtime = await RingKernelRuntime.builder()
      .config({ workers: 2, devices: 2, deviceMemoryMB: 1 })
      .build();
    await assert.rejects(runtime.launch(Sink, 1, 1, { autoActivate: false, device: 2 }), PlacementError);
    // Two 8192-frame rings of 120-byte frames (≈ 2 MiB) do not fit a 1 MiB budget.
    await assert.rejects(
      runtime.launch(Sink, 1, 1, { autoActivate: false, device: 0, queueCapacity: 8192 }),
      (error) => {
        assert.ok(error instanceof PlacementError);
        assert.equal(error.code, 'RK_PLACEMENT_FAILED');
        return true;
      },
    );
  });
});

describe('MultiGpuCoordinator: each strategy on 4 virtual devices', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    // Device 0 has two workers, the others one each; 8 MiB of budget each.
    runtime = await RingKernelRuntime.builder().config({ workers: 5, devices: 4, deviceMemoryMB: 8 }).build();
    // Memory: device 0 holds a big kernel (16 384-frame rings ≈ 5 MiB), devices 1 and 3 a medium one each, device 2
    // two small ones — the most free memory, but the most kernels.
    await runtime.launch(Sink, 1, 1, { autoActivate: false, name: 'big', device: 0, queueCapacity: 16_384 });
    await runtime.launch(Sink, 1, 1, { autoActivate: false, name: 'medium-1', device: 1, queueCapacity: 4096 });
    await runtime.launch(Sink, 1, 1, { autoActivate: false, name: 'small-2a', device: 2, queueCapacity: 64 });
    await runtime.launch(Sink, 1, 1, { autoActivate: false, name: 'small-2b', device: 2, queueCapacity: 64 });
    await runtime.launch(Sink, 1, 1, { autoActivate: false, name: 'medium-3', device: 3, queueCapacity: 4096 });
  });
  after(() => runtime.shutdown());

  it('FirstAvailable: the lowest device with room', () => {
    const coordinator = runtime.multiGpuCoordinator();
    coordinator.setStrategy(LoadBalancingStrategy.FirstAvailable);
    assert.equal(coordinator.selectDevice(), 0);
    // Device 0 has ≈ 4.4 MiB left: a 5 MiB kernel goes to the next device with room.
    assert.equal(coordinator.selectDevice({ memoryBytes: 5 << 20 }), 1);
    assert.throws(() => coordinator.selectDevice({ memoryBytes: 9 << 20 }), PlacementError);
  });

  it('RoundRobin: each placement the next device, skipping those without room', () => {
    const coordinator = runtime.multiGpuCoordinator();
    coordinator.setStrategy(LoadBalancingStrategy.RoundRobin);
    const first = coordinator.selectDevice();
    const next = [1, 2, 3, 4, 5].map(() => coordinator.selectDevice());
    assert.deepEqual(
      next,
      [1, 2, 3, 0, 1].map((k) => (first + k) % 4),
    );
    const after = coordinator.selectDevice();
    // Device 0 cannot take 5 MiB: its turn passes to device 1.
    const skipping = [1, 2, 3, 4].map(() => coordinator.selectDevice({ memoryBytes: 5 << 20 }));
    const expected: number[] = [];
    for (let k = 0, cursor = (after + 1) % 4; k < 4; k++) {
      const device = cursor === 0 ? 1 : cursor;
      expected.push(device);
      cursor = (device + 1) % 4;
    }
    assert.deepEqual(skipping, expected);
  });

  it('MemoryBased: the device with the most free budget', () => {
    const coordinator = runtime.multiGpuCoordinator();
    coordinator.setStrategy(LoadBalancingStrategy.MemoryBased);
    const loads = coordinator.loads();
    const free = loads.map((load) => load.memoryBudgetBytes - load.memoryUsedBytes);
    assert.ok((free[2] as number) > (free[1] as number) && (free[2] as number) > (free[0] as number));
    assert.equal(coordinator.selectDevice(), 2);
  });

  it('ComputeCapability: the device with the most compute units; a minimum filters', () => {
    const coordinator = runtime.multiGpuCoordinator();
    coordinator.setStrategy(LoadBalancingStrategy.ComputeCapability);
    assert.equal(coordinator.selectDevice(), 0);
    assert.equal(coordinator.selectDevice({ minComputeUnits: 2 }), 0);
    assert.throws(() => coordinator.selectDevice({ minComputeUnits: 3 }), PlacementError);
  });

  it('a custom function picks among the candidates; a pick outside them is refused', () => {
    const coordinator = runtime.multiGpuCoordinator();
    coordinator.setStrategy((candidates) => Math.max(...candidates.map((load) => load.device.id)));
    assert.equal(coordinator.strategy, 'custom');
    assert.equal(coordinator.selectDevice(), 3);
    coordinator.setStrategy(() => 7);
    assert.throws(() => coordinator.selectDevice(), PlacementError);
    assert.throws(() => coordinator.setStrategy('Fastest' as LoadBalancingStrategy), TypeError);
  });

  it('co-location: the device of the named kernel, whatever the strategy', () => {
    const coordinator = runtime.multiGpuCoordinator();
    coordinator.setStrategy(LoadBalancingStrategy.FirstAvailable);
    assert.equal(coordinator.selectDevice({ colocateWith: 'medium-3' }), 3);
    assert.throws(() => coordinator.selectDevice({ colocateWith: 'medium-3', memoryBytes: 8 << 20 }), PlacementError);
  });

  it('LeastLoaded (the default): measured load — a busy device and a backed-up queue are avoided, then fewer kernels', async () => {
    const coordinator = runtime.multiGpuCoordinator();
    coordinator.setStrategy(LoadBalancingStrategy.LeastLoaded);
    // Device 3: a kernel kept busy (2 ms per message); device 1: 60 messages waiting for a kernel never activated.
    const busy = await runtime.launch(Slow, 1, 1, { name: 'busy', device: 3, queueCapacity: 512, autoActivate: true });
    const backlog = await runtime.launch(Sink, 1, 1, {
      autoActivate: false,
      name: 'backlog',
      device: 1,
      queueCapacity: 64,
    });
    for (let i = 0; i < 60; i++) backlog.trySend({ sender: 9, seq: i, value: 0 });
    for (let i = 0; i < 200; i++) busy.trySend({ sender: 9, seq: i, value: 2 });
    coordinator.loads(); // the utilization window starts here
    await idle(150);
    const loads = coordinator.loads();
    coordinator.loads();
    await idle(100);
    const chosen = coordinator.selectDevice();
    const byId = (id: number) => loads[id] as (typeof loads)[number];
    assert.ok(byId(3).utilization > 0.5, `device 3's worker is busy: ${byId(3).utilization}`);
    assert.ok(byId(1).queuedFrames >= 60, 'device 1 has a backlog');
    // Devices 0 (1 kernel, 2 workers) and 2 (2 kernels, 1 worker) are idle: device 0 has the fewer per worker.
    assert.equal(chosen, 0, JSON.stringify(loads.map((load) => [load.device.id, load.score])));
    // And a launch that names no device goes where the coordinator says.
    const placed = await runtime.launch(Sink, 1, 1, { autoActivate: false, name: 'placed', queueCapacity: 64 });
    assert.equal(placed.device, 0);
    assert.ok(coordinator.placements > 0);
    await busy.terminate({ drain: false });
  });
});

describe('checkpoints', () => {
  it('checkpoint a kernel with queued messages and restore it into a new launch: state and queue carried', async () => {
    await using runtime = await RingKernelRuntime.builder().config({ workers: 2, devices: 2 }).build();
    const acc = await runtime.launch(Accumulator, 1, 1, { name: 'original', device: 0, autoActivate: true });
    for (let i = 0; i < 5; i++) await acc.call({ sender: 1, seq: i, value: 10 });
    await acc.deactivate();
    for (let i = 5; i < 15; i++) await acc.send({ sender: 1, seq: i, value: 1 });
    const saved = await acc.checkpoint();
    assert.equal(saved.kernelId, Accumulator.id);
    assert.equal(saved.queued.frames, 10);
    assert.ok(saved.state.byteLength > 0);
    assert.equal(acc.status, 'Deactivated', 'a deactivated kernel stays so');
    const twin = await runtime.launch(Accumulator, 1, 1, {
      autoActivate: false,
      name: 'twin',
      device: 1,
      restore: saved,
    });
    await twin.activate();
    for (let i = 5; i < 15; i++) {
      const out = await twin.receive(5000);
      assert.deepEqual([out.seq, out.count, out.total], [i, i + 1, 50 + (i - 4)]);
    }
    // A call to the twin is numbered past the restored messages: its answer is not confused with theirs.
    const answer = await twin.call({ sender: 2, seq: 99, value: 100 });
    assert.deepEqual([answer.seq, answer.count, answer.total], [99, 16, 160]);
    // The original still has its own queue (the checkpoint copied it).
    await acc.activate();
    for (let i = 5; i < 15; i++) assert.equal((await acc.receive(5000)).seq, i);
    await assert.rejects(runtime.launch(Sink, 1, 1, { autoActivate: false, name: 'wrong', restore: saved }), TypeError);
    await assert.rejects(
      runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: 'checked', restore: saved, integrity: true }),
      /integrity/,
    );
    await assert.rejects(
      runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: 'cramped', restore: saved, queueCapacity: 4 }),
      RangeError,
    );
    const report = await runtime.shutdown();
    assert.equal(report.checkpoints, 1);
    assert.equal(report.migratedKernels, 0);
  });

  it('a checkpoint whose restore hook throws fails the launch with a typed error', async () => {
    await using runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    const fussy = await runtime.launch(Fussy, 1, 1, { autoActivate: true });
    await fussy.call({ sender: 1, seq: 0, value: REFUSE_RESTORE });
    const saved = await fussy.checkpoint();
    await assert.rejects(
      runtime.launch(Fussy, 1, 1, { autoActivate: false, name: 'fussy-2', restore: saved }),
      (error) => {
        assert.ok(error instanceof StateSnapshotError);
        assert.equal(error.step, 'restore');
        assert.match(error.message, /refuses to be restored/);
        return true;
      },
    );
    assert.throws(() => runtime.kernel('fussy-2'));
  });

  it('an unserializable state is a typed error, and the kernel runs on', async () => {
    await using runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    const handle = await runtime.launch(Unserializable, 1, 1, { autoActivate: true });
    await assert.rejects(handle.checkpoint(), (error) => {
      assert.ok(error instanceof StateSnapshotError);
      assert.equal(error.code, 'RK_STATE_SNAPSHOT_FAILED');
      assert.equal(error.step, 'snapshot');
      return true;
    });
    assert.equal(handle.status, 'Active');
    assert.equal((await handle.call({ sender: 1, seq: 0, value: 1.5 })).count, 1);
  });

  it('the shutdown report counts migrations (each with its checkpoint) and checkpoints', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 2, devices: 2 }).build();
    const acc = await runtime.launch(Accumulator, 1, 1, { device: 0, autoActivate: true });
    await acc.call({ sender: 1, seq: 0, value: 1 });
    // A call made just before the migration is answered by whichever instance handles it, exactly once.
    const during = acc.call({ sender: 1, seq: 100, value: 1 });
    await runtime.kernelMigrator().migrateKernel(acc, 0, 1);
    assert.equal((await during).count, 2);
    await runtime.kernelMigrator().migrateKernel(acc, 1, 0);
    await acc.checkpoint();
    assert.equal((await acc.call({ sender: 1, seq: 1, value: 1 })).count, 3);
    const report = await runtime.shutdown();
    assert.equal(report.migratedKernels, 2);
    assert.equal(report.checkpoints, 3);
  });
});

describe('queued-frame copies', () => {
  it('copy frames that wrap around the end of a ring, in order, and preload them into a fresh ring', () => {
    const memory = createFrameRing({ capacityBytes: 4096, maxPayloadSize: 64 });
    const producer = new FrameProducer(memory);
    const consumer = new FrameConsumer(memory);
    // Move the indices near the end, so the next frames wrap.
    let next = 0;
    while (producer.availableWriteBytes() > 600) producer.tryWrite(Numbers, { sender: 1, seq: next++, value: 0 });
    consumer.drain(() => {});
    const first = next;
    for (let i = 0; i < 30; i++) assert.ok(producer.tryWrite(Numbers, { sender: 1, seq: next++, value: i }));
    const copy = copyQueuedFrames(memory);
    assert.equal(copy.frames, 30);
    assert.equal(copy.maxMessageId, next, 'message ids are numbered from 1 by this producer');
    const fresh = createFrameRing({ capacityBytes: 4096, maxPayloadSize: 64 });
    preloadQueuedFrames(fresh, copy.bytes);
    const seqs: number[] = [];
    new FrameConsumer(fresh).drain((frame) => seqs.push(frame.decode(Numbers).seq));
    assert.deepEqual(
      seqs,
      Array.from({ length: 30 }, (_, i) => first + i),
    );
    assert.throws(() => preloadQueuedFrames(fresh, new Uint8Array(8192)), RangeError);
  });
});
