/**
 * The executor shell every backend runs under (src/executor): one attach step with one typed failure, command
 * dispatch, the one drain rule, the dormant RESTORE / START / DISCARD protocol and the exit report. The shell is
 * driven here over a real MessageChannel and a real ControlBlock; the backend is a recording stand-in for a
 * device's executor (the CPU and CUDA executors run under the same shell in the runtime tests).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { attachFailureError } from '../src/executor/attach-failure.js';
import {
  attachKernel,
  type ExecutorBackend,
  type ExecutorShell,
  type RunningKernel,
} from '../src/executor/executor-shell.js';
import type { AttachTask, ControlCommand, TerminationMode, WorkerReport } from '../src/executor/protocol.js';
import {
  ControlBlock,
  CudaError,
  createFrameRing,
  defineKernel,
  KernelFailedError,
  KernelStatus,
  RingKernelRuntime,
  StateSnapshotError,
} from '../src/internal.js';
import { LATENCY_HISTOGRAM_BYTES } from '../src/kernel/latency-histogram.js';
import type { LifecycleInspection } from '../src/kernel/lifecycle-inspection.js';
import { Numbers, Total } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';

const FIXTURE_MODULE = new URL('./fixtures/kernels.js', import.meta.url).href;
/** The fixture module's sink kernel, as the host names it. */
const sink = { id: 'test.sink', moduleUrl: FIXTURE_MODULE };

/** An attach task for the fixture module's sink kernel, and the host's end of its control port. */
function taskFor(options: { dormant?: boolean; restoreState?: Uint8Array; kernelId?: string } = {}): {
  task: AttachTask;
  host: MessagePort;
  control: ControlBlock;
} {
  const { port1, port2 } = new MessageChannel();
  const control = ControlBlock.create(7);
  const controlBlock = control.buffer;
  const task: AttachTask = {
    kernelId: options.kernelId ?? 'test.sink',
    moduleUrl: FIXTURE_MODULE,
    instanceId: 7,
    controlBlock,
    histogram: new SharedArrayBuffer(LATENCY_HISTOGRAM_BYTES),
    input: createFrameRing({ capacityBytes: 4096, maxPayloadSize: 64 }),
    output: createFrameRing({ capacityBytes: 4096, maxPayloadSize: 64 }),
    port: port2,
    enableTelemetry: false,
    failOnHandlerError: false,
    dormant: options.dormant === true,
    restoreState: options.restoreState,
  };
  return { task, host: port1, control };
}

/** A backend whose kernels record what the shell asked of them. */
class RecordingBackend implements ExecutorBackend {
  readonly calls: string[] = [];
  shell: ExecutorShell | undefined;
  fail: { at: 'prepare' | 'restore' | 'start' | 'link'; error: Error } | undefined;
  prepare(_definition: unknown, shell: ExecutorShell) {
    this.shell = shell;
    this.calls.push('prepare');
    if (this.fail?.at === 'prepare') throw this.fail.error;
    const calls = this.calls;
    const running: RunningKernel = {
      snapshot: () => Uint8Array.of(1, 2, 3),
      abort: () => calls.push('abort'),
      linkIn: () => {
        if (this.fail?.at === 'link') throw this.fail.error;
        calls.push('linkIn');
      },
      linkOut: () => calls.push('linkOut'),
      terminating: (mode: TerminationMode) => calls.push(`terminating:${mode}`),
      kick: () => calls.push('kick'),
    };
    return {
      restore: (bytes: Uint8Array) => {
        calls.push(`restore:${bytes.length}`);
        if (this.fail?.at === 'restore') throw this.fail.error;
      },
      start: () => {
        calls.push('start');
        if (this.fail?.at === 'start') throw this.fail.error;
        shell.launched();
        return running;
      },
      discard: () => calls.push('discard'),
    };
  }
  failureDetail(error: unknown) {
    return error instanceof CudaError ? { operation: error.operation, cudaResult: error.cudaResult } : {};
  }
}

/** Sends a command and collects the reports until (and with) the one that `done` accepts. */
async function exchange(
  host: MessagePort,
  command: ControlCommand,
  done: (report: WorkerReport) => boolean = (report) => report.type === 'reply',
): Promise<WorkerReport[]> {
  const reports: WorkerReport[] = [];
  const finished = new Promise<void>((resolve) => {
    const onReport = (report: WorkerReport): void => {
      reports.push(report);
      if (done(report)) {
        host.off('message', onReport);
        resolve();
      }
    };
    host.on('message', onReport);
  });
  host.postMessage(command);
  await finished;
  return reports;
}

// First: the in-process attaches below mark this thread a kernel worker, where no runtime may be built.
describe('executor shell: in the runtime', () => {
  let runtime: RingKernelRuntime | undefined;
  after(() => runtime?.shutdown());

  it('fails a CPU launch whose module does not define the kernel with KernelFailedError (RK_KERNEL_FAILED)', async () => {
    // Defined here, but said to live in the fixture module, which the worker imports and does not find it in.
    const Elsewhere = defineKernel({
      id: 'test.executor-shell.elsewhere',
      input: Numbers,
      output: Total,
      module: FIXTURE_MODULE,
      cpu: () => undefined,
    });
    runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
    await assert.rejects(runtime.launch(Elsewhere, 1, 1, { autoActivate: false }), (error: unknown) => {
      assert.ok(error instanceof KernelFailedError, `a KernelFailedError, not ${String(error)}`);
      assert.equal(error.code, 'RK_KERNEL_FAILED');
      assert.match(error.message, /test\.executor-shell\.elsewhere/);
      assert.match(error.message, /its worker could not launch it/);
      return true;
    });
    assert.equal(runtime.kernels().length, 0);
  });
});

describe('executor shell: attach', () => {
  it('loads, prepares, restores and starts a kernel, then dispatches commands to it', async () => {
    const backend = new RecordingBackend();
    const { task, host, control } = taskFor({ restoreState: Uint8Array.of(9, 9) });
    const attached = await attachKernel(task, backend);
    assert.equal(attached.failure, undefined);
    assert.deepEqual(backend.calls, ['prepare', 'restore:2', 'start']);
    assert.equal(control.status, KernelStatus.Launched);

    assert.deepEqual(await exchange(host, { seq: 1, command: 'ACTIVATE' }), [{ type: 'reply', seq: 1, ok: true }]);
    assert.equal(control.status, KernelStatus.Active);
    // A state that does not take the command is refused, naming both states, and the kernel is not kicked.
    assert.deepEqual(await exchange(host, { seq: 2, command: 'ACTIVATE' }), [
      { type: 'reply', seq: 2, ok: false, state: 'Active', target: 'Active' },
    ]);
    const snapshot = await exchange(host, { seq: 3, command: 'SNAPSHOT' }, (report) => report.type === 'snapshot');
    assert.deepEqual(snapshot, [{ type: 'snapshot', seq: 3, bytes: Uint8Array.of(1, 2, 3) }]);
    const memory = createFrameRing({ capacityBytes: 1024, maxPayloadSize: 16 });
    assert.deepEqual(await exchange(host, { seq: 4, command: 'LINK_IN', memory }), [
      { type: 'reply', seq: 4, ok: true },
    ]);
    assert.deepEqual(await exchange(host, { seq: 5, command: 'ABORT' }), [{ type: 'reply', seq: 5, ok: true }]);
    assert.deepEqual(backend.calls.slice(3), ['kick', 'linkIn', 'kick', 'abort', 'kick']);

    const exited = once(host, 'message');
    backend.shell?.exit('termination was forced');
    assert.deepEqual((await exited)[0], { type: 'exit', status: 'Failed', reason: 'termination was forced' });
    assert.equal(control.hasTerminated, true);
    assert.equal(control.status, KernelStatus.Failed);
    host.close();
  });

  it('activates at launch (autoActivate) by one LAUNCHED event: Created → Launched → Active in one macrostep', async () => {
    const backend = new RecordingBackend();
    const { task, host, control } = taskFor();
    const inspected: LifecycleInspection[] = [];
    host.on('message', (report: WorkerReport) => {
      if (report.type === 'inspect') inspected.push(report.event);
    });
    after(() => host.close());
    const attached = await attachKernel({ ...task, activate: true, inspect: true }, backend);
    assert.equal(attached.failure, undefined);
    assert.equal(control.status, KernelStatus.Active);
    assert.equal(control.isActive, true);
    assert.equal(backend.shell?.state, 'Active');
    await eventually(() => assert.ok(inspected.some((event) => event.snapshot?.value === 'Active')));
    // One event took it there: no ACTIVATE was sent, and its microsteps went through Launched.
    const events = inspected.filter((event) => event.type === '@xstate.event').map((event) => event.event?.type);
    assert.deepEqual(
      events.filter((type) => !type?.startsWith('xstate.')),
      ['LAUNCHED'],
    );
    const steps = inspected.filter((event) => event.type === '@xstate.microstep').map((e) => e.snapshot?.value);
    assert.deepEqual(steps, ['Launched', 'Active']);
    // Active from the start, it takes commands as any Active kernel does.
    const replies = (await exchange(host, { seq: 1, command: 'DEACTIVATE' })).filter((r) => r.type === 'reply');
    assert.deepEqual(replies, [{ type: 'reply', seq: 1, ok: true }]);
    assert.equal(control.status, KernelStatus.Deactivated);
    backend.shell?.exit();
    host.close();
  });

  it('launches without activating when the launch did not ask (autoActivate: false): Launched, waiting', async () => {
    const backend = new RecordingBackend();
    const { task, host, control } = taskFor();
    after(() => host.close());
    const attached = await attachKernel({ ...task, activate: false }, backend);
    assert.equal(attached.failure, undefined);
    assert.equal(control.status, KernelStatus.Launched);
    assert.equal(control.isActive, false);
    assert.deepEqual(await exchange(host, { seq: 1, command: 'ACTIVATE' }), [{ type: 'reply', seq: 1, ok: true }]);
    assert.equal(control.status, KernelStatus.Active);
    backend.shell?.exit();
    host.close();
  });

  it('applies one drain rule: keep wins over drain, else drain or discard as asked', async () => {
    const cases = [
      { drain: true, keep: false, mode: 'drain', contextDrain: true },
      { drain: false, keep: false, mode: 'discard', contextDrain: false },
      { drain: true, keep: true, mode: 'keep', contextDrain: false },
      { drain: false, keep: true, mode: 'keep', contextDrain: false },
    ] as const;
    for (const { drain, keep, mode, contextDrain } of cases) {
      const backend = new RecordingBackend();
      const { task, host } = taskFor();
      await attachKernel(task, backend);
      await exchange(host, { seq: 1, command: 'ACTIVATE' });
      assert.deepEqual(await exchange(host, { seq: 2, command: 'TERMINATE', drain, keep }), [
        { type: 'reply', seq: 2, ok: true },
      ]);
      assert.ok(backend.calls.includes(`terminating:${mode}`), `${JSON.stringify({ drain, keep })} → ${mode}`);
      assert.equal(backend.shell?.state, 'Terminating');
      assert.equal(backend.shell?.draining, contextDrain);
      const exited = once(host, 'message');
      backend.shell?.exit();
      assert.deepEqual((await exited)[0], { type: 'exit', status: 'Terminated' });
      assert.equal(backend.shell?.state, 'Terminated');
      host.close();
    }
  });

  it('refuses a link the backend cannot take, and the kernel goes on', async () => {
    const backend = new RecordingBackend();
    backend.fail = { at: 'link', error: new RangeError('a CUDA kernel takes at most 8 links') };
    const { task, host } = taskFor();
    await attachKernel(task, backend);
    const memory = createFrameRing({ capacityBytes: 1024, maxPayloadSize: 16 });
    assert.deepEqual(await exchange(host, { seq: 1, command: 'LINK_IN', memory }), [
      { type: 'reply', seq: 1, ok: false, state: 'linked', target: 'linked' },
    ]);
    assert.deepEqual(await exchange(host, { seq: 2, command: 'ACTIVATE' }), [{ type: 'reply', seq: 2, ok: true }]);
    host.close();
  });

  it('fails typed at each stage, with the port closed, for the host to rebuild its error', async () => {
    const load = taskFor({ kernelId: 'test.executor-shell.nowhere' });
    const loadFailure = (await attachKernel(load.task, new RecordingBackend())).failure;
    assert.equal(loadFailure?.stage, 'load');
    await once(load.host, 'close');
    const loadError = attachFailureError(
      loadFailure ?? assert.fail(),
      { id: 'test.executor-shell.nowhere', moduleUrl: FIXTURE_MODULE },
      'n',
      'its worker',
    );
    assert.ok(loadError instanceof KernelFailedError);
    assert.match(loadError.message, /its worker could not launch it: .*no kernel is defined under this id/);

    const prepare = new RecordingBackend();
    prepare.fail = { at: 'prepare', error: new CudaError('cuMemAlloc', 2, 'CUDA_ERROR_OUT_OF_MEMORY') };
    const prepared = taskFor();
    const prepareFailure = (await attachKernel(prepared.task, prepare)).failure;
    assert.equal(prepareFailure?.stage, 'prepare');
    assert.equal(prepareFailure?.operation, 'cuMemAlloc');
    const prepareError = attachFailureError(prepareFailure ?? assert.fail(), sink, 'sink', 'the device');
    assert.ok(prepareError instanceof CudaError);
    assert.equal(prepareError.cudaResult, 2);

    const restore = new RecordingBackend();
    restore.fail = { at: 'restore', error: new RangeError('state of the wrong size') };
    const restoring = taskFor({ restoreState: Uint8Array.of(1) });
    const restoreFailure = (await attachKernel(restoring.task, restore)).failure;
    assert.equal(restoreFailure?.stage, 'restore');
    assert.deepEqual(restore.calls, ['prepare', 'restore:1', 'discard']);
    const restoreError = attachFailureError(restoreFailure ?? assert.fail(), sink, 'sink-2', 'its worker');
    assert.ok(restoreError instanceof StateSnapshotError);
    assert.equal(restoreError.step, 'restore');
    assert.equal(restoreError.kernel, 'sink-2');
    assert.match(restoreError.message, /state of the wrong size/);

    const start = new RecordingBackend();
    start.fail = { at: 'start', error: new Error('launch refused') };
    const starting = taskFor();
    const startFailure = (await attachKernel(starting.task, start)).failure;
    assert.equal(startFailure?.stage, 'start');
    assert.deepEqual(start.calls, ['prepare', 'start', 'discard']);
  });
});

describe('executor shell: a dormant instance (migration)', () => {
  it('restores on RESTORE, reports a restore that throws, and takes over on START', async () => {
    const backend = new RecordingBackend();
    const { task, host, control } = taskFor({ dormant: true });
    const attached = await attachKernel(task, backend);
    assert.equal(attached.failure, undefined);
    assert.deepEqual(backend.calls, ['prepare']);
    // Dormant: the ControlBlock is still the old instance's.
    assert.equal(control.status, KernelStatus.Created);
    backend.fail = { at: 'restore', error: new RangeError('the restore hook refused') };
    const refused = await exchange(
      host,
      { seq: 0, command: 'RESTORE', bytes: Uint8Array.of(4) },
      (report) => report.type === 'restored',
    );
    assert.equal(refused.length, 1);
    const [report] = refused;
    assert.ok(report?.type === 'restored' && report.error !== undefined);
    assert.equal(report.error.name, 'RangeError');
    assert.equal(report.error.message, 'the restore hook refused');
    backend.fail = undefined;
    const restored = await exchange(
      host,
      { seq: 0, command: 'RESTORE', bytes: Uint8Array.of(4, 5) },
      (report) => report.type === 'restored',
    );
    assert.deepEqual(restored, [{ type: 'restored', seq: 0 }]);
    assert.deepEqual(await exchange(host, { seq: 1, command: 'START' }), [{ type: 'reply', seq: 1, ok: true }]);
    assert.deepEqual(backend.calls, ['prepare', 'restore:1', 'restore:2', 'start']);
    assert.equal(control.status, KernelStatus.Launched);
    assert.deepEqual(await exchange(host, { seq: 2, command: 'ACTIVATE' }), [{ type: 'reply', seq: 2, ok: true }]);
    host.close();
  });

  it('reports a START that fails as an exit and a refusal, instead of taking the worker down', async () => {
    const backend = new RecordingBackend();
    backend.fail = { at: 'start', error: new TypeError("kernel 'x' has no cpu handler") };
    const { task, host, control } = taskFor({ dormant: true });
    await attachKernel(task, backend);
    const reports = await exchange(host, { seq: 1, command: 'START' });
    assert.deepEqual(reports, [
      { type: 'exit', status: 'Failed', reason: "kernel 'x' has no cpu handler" },
      { type: 'reply', seq: 1, ok: false, state: 'Created', target: 'Launched' },
    ]);
    assert.deepEqual(backend.calls, ['prepare', 'start', 'discard']);
    // It never took over: the ControlBlock stays the old instance's.
    assert.equal(control.hasTerminated, false);
    await once(host, 'close');
  });

  it('lets go of what it prepared on DISCARD', async () => {
    const backend = new RecordingBackend();
    const { task, host } = taskFor({ dormant: true });
    await attachKernel(task, backend);
    const closed = once(host, 'close');
    // A port that listens is ref'd: it keeps the loop alive until the other end's close arrives.
    const unexpected: WorkerReport[] = [];
    host.on('message', (report: WorkerReport) => unexpected.push(report));
    host.postMessage({ seq: 0, command: 'DISCARD' } satisfies ControlCommand);
    await closed;
    assert.deepEqual(backend.calls, ['prepare', 'discard']);
    assert.deepEqual(unexpected, [], 'a discarded instance reports nothing');
  });
});
