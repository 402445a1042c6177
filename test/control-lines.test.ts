/**
 * The CPU workers' control lines: one MessageChannel per worker thread carries every kernel's commands and reports,
 * each tagged with the kernel's key. Driven here through the runtime's worker pools over a real Piscina worker, real
 * ControlBlocks and rings: many kernels on one worker, a command to each reaches only it, a kernel's end frees its
 * entry, and the worker's death closes every kernel's port.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import type { ControlPort } from '../src/executor/control-line.js';
import type { AttachTask, WorkerReport } from '../src/executor/protocol.js';
import { ControlBlock, createFrameRing, KernelStatus } from '../src/internal.js';
import { KERNEL_HISTOGRAMS_BYTES } from '../src/kernel/latency-histogram.js';
import { ControlLines } from '../src/runtime/control-lines.js';
import { type KernelControl, WorkerPools } from '../src/runtime/worker-pools.js';
import { eventually } from './support/eventually.js';

const FIXTURE_MODULE = new URL('./fixtures/kernels.js', import.meta.url).href;

/** A seeded generator (mulberry32), so a failure replays. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Launched {
  readonly control: KernelControl;
  readonly block: ControlBlock;
  readonly reports: WorkerReport[];
  closed: boolean;
}

function attachSink(pools: WorkerPools<object>, instanceId: number): Promise<Launched> {
  const control = pools.openControl(false);
  const block = ControlBlock.create(instanceId);
  const task: AttachTask = {
    kernelId: 'test.sink',
    moduleUrl: FIXTURE_MODULE,
    instanceId,
    controlBlock: block.buffer,
    histogram: new SharedArrayBuffer(KERNEL_HISTOGRAMS_BYTES),
    input: createFrameRing({ capacityBytes: 4096, maxPayloadSize: 64 }),
    output: createFrameRing({ capacityBytes: 4096, maxPayloadSize: 64 }),
    port: control.executor,
    enableTelemetry: false,
    failOnHandlerError: false,
  };
  const launched: Launched = { control, block, reports: [], closed: false };
  const host: ControlPort = control.host;
  host.on('message', (report: WorkerReport) => launched.reports.push(report));
  host.on('close', () => {
    launched.closed = true;
  });
  host.unref();
  return pools.attach(task, false, 0, control).then((result) => {
    assert.equal(result.failure, undefined);
    return launched;
  });
}

describe('control lines: one per CPU worker, shared by its kernels', () => {
  it('carries each command to its kernel only, frees a kernel entry at its end, and closes all with the worker', async () => {
    const random = seeded(0x5eed17);
    const pools = new WorkerPools<object>(1 << 20, { oldMB: 0, youngMB: 0 });
    pools.addDevice(1);
    let destroyed = false;
    try {
      // Two waves: the first batch brings the worker's line to the host, the second binds to it.
      const first = await Promise.all(Array.from({ length: 40 }, (_, i) => attachSink(pools, i + 1)));
      const second = await Promise.all(Array.from({ length: 40 }, (_, i) => attachSink(pools, i + 41)));
      const kernels = [...first, ...second];
      assert.equal(pools.openControlPorts, 80);
      for (const kernel of kernels) assert.equal(kernel.block.status, KernelStatus.Launched);

      for (let round = 0; round < 5; round++) {
        // A seeded subset gets a command, each with a sequence number of its own.
        const commanded = new Map<Launched, number>();
        for (const [i, kernel] of kernels.entries()) {
          if (random() < 0.5) continue;
          const seq = round * 1000 + i + 1;
          const command = kernel.block.status === KernelStatus.Active ? 'DEACTIVATE' : 'ACTIVATE';
          commanded.set(kernel, seq);
          kernel.control.host.postMessage({ seq, command });
        }
        await eventually(() => {
          for (const kernel of commanded.keys()) assert.equal(kernel.reports.length, 1);
        });
        for (const kernel of kernels) {
          const seq = commanded.get(kernel);
          assert.deepEqual(kernel.reports, seq === undefined ? [] : [{ type: 'reply', seq, ok: true }]);
          kernel.reports.length = 0;
        }
      }

      // A seeded half terminates: each one's reply and exit come on its own port, which then closes.
      const ending = kernels.filter(() => random() < 0.5);
      for (const [i, kernel] of ending.entries()) {
        kernel.control.host.postMessage({ seq: 9000 + i, command: 'TERMINATE', drain: true, keep: false });
      }
      await eventually(() => {
        for (const kernel of ending) assert.equal(kernel.closed, true);
      });
      for (const [i, kernel] of ending.entries()) {
        assert.deepEqual(kernel.reports, [
          { type: 'reply', seq: 9000 + i, ok: true },
          { type: 'exit', status: 'Terminated' },
        ]);
        assert.equal(kernel.block.status, KernelStatus.Terminated);
      }
      const living = kernels.filter((kernel) => !ending.includes(kernel));
      assert.equal(pools.openControlPorts, living.length);
      for (const kernel of living) {
        assert.equal(kernel.closed, false);
        assert.deepEqual(kernel.reports, []);
      }

      // The worker goes: every kernel still on it sees its port close, and no entry is left.
      await pools.destroy();
      destroyed = true;
      await eventually(() => {
        for (const kernel of living) assert.equal(kernel.closed, true);
      });
      assert.equal(pools.openControlPorts, 0);
    } finally {
      if (!destroyed) await pools.destroy();
    }
  });

  it("keeps a kernel's reports that come before anyone listens, in order, and its close for the first to listen", async () => {
    // A kernel's first reports can reach the host before its attach result (another batch brought the line):
    // they wait for the handle's listener, as a MessagePort's messages wait until it is started.
    const lines = new ControlLines();
    const { port1: worker, port2: hostEnd } = new MessageChannel();
    const early = lines.open();
    const other = lines.open();
    lines.adopt(7, hostEnd);
    lines.bind(early, 7);
    lines.bind(other, 7);
    for (let seq = 1; seq <= 3; seq++)
      worker.postMessage({ kernel: early.key, message: { type: 'reply', seq, ok: true } });
    worker.postMessage({ kernel: early.key, closed: true });
    worker.postMessage({ kernel: other.key, message: { type: 'reply', seq: 9, ok: true } });
    const heardByOther: unknown[] = [];
    other.on('message', (message) => heardByOther.push(message));
    await eventually(() => assert.equal(heardByOther.length, 1));
    assert.equal(lines.size, 1); // the early one's entry went with its close
    const heard: unknown[] = [];
    let closed = 0;
    early.on('message', (message) => heard.push(message));
    early.on('close', () => closed++);
    await eventually(() => assert.equal(closed, 1));
    assert.deepEqual(
      heard.map((message) => (message as { seq: number }).seq),
      [1, 2, 3],
    );
    assert.deepEqual(heardByOther, [{ type: 'reply', seq: 9, ok: true }]);
    // The line's end going (its worker's death) closes every port still on it.
    let otherClosed = false;
    other.on('close', () => {
      otherClosed = true;
    });
    worker.close();
    await eventually(() => assert.equal(otherClosed, true));
    assert.equal(lines.size, 0);
  });
});
