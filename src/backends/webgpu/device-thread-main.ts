import { parentPort } from 'node:worker_threads';
import { WebGpuError, WgslCompileError } from '../../errors/webgpu-errors.js';
import { type BatchDeadLetter, WebGpuBatchEngine } from './batch-engine.js';
import type {
  DeviceKernelLaunch,
  DeviceThreadCommand,
  DeviceThreadReport,
  SerializedDeviceError,
} from './device-thread-protocol.js';
import { openWebGpuDevice } from './webgpu-adapter.js';

/**
 * A WebGPU device thread: owns one GPUDevice and runs every kernel placed on it as a {@link WebGpuBatchEngine}.
 * Commands come from the host over the worker's port; kernels' messages never do (they use their rings). The
 * thread ends itself on `close`, after every engine has settled its readbacks and the device is destroyed: a worker
 * terminated with a readback pending would take the whole process down.
 */

const port = parentPort;
if (port === null) throw new Error('device-thread-main must run in a worker thread');

let device: GPUDevice | undefined;
const engines = new Map<string, WebGpuBatchEngine>();
const letters = new Map<string, DeviceThreadReport & { type: 'deadLetters' }>();
let flushQueued = false;

function post(report: DeviceThreadReport): void {
  port?.postMessage(report);
}

function serialize(error: unknown): SerializedDeviceError {
  const e = error as Error & { code?: string; kernelId?: string; kind?: string; operation?: string };
  return {
    name: e?.name ?? 'Error',
    code: e?.code,
    message: e?.message ?? String(error),
    kernelId: e?.kernelId,
    compilerMessages: error instanceof WgslCompileError ? error.messages : undefined,
    kind: error instanceof WebGpuError ? error.kind : undefined,
    operation: error instanceof WebGpuError ? error.operation : undefined,
  };
}

/** Dead letters leave in one message per kernel per turn of the event loop (a batch's worth), not one each. */
function queueLetter(kernelId: string, letter: BatchDeadLetter): void {
  let pending = letters.get(kernelId);
  if (pending === undefined) {
    pending = { type: 'deadLetters', kernelId, letters: [] };
    letters.set(kernelId, pending);
  }
  (pending.letters as unknown[]).push(letter);
  if (!flushQueued) {
    flushQueued = true;
    setImmediate(flushLetters);
  }
}

function flushLetters(): void {
  flushQueued = false;
  for (const report of letters.values()) post(report);
  letters.clear();
}

function engineOf(kernelId: string): WebGpuBatchEngine {
  const engine = engines.get(kernelId);
  if (engine === undefined) throw new Error(`no kernel '${kernelId}' on this device thread`);
  return engine;
}

async function launch(kernel: DeviceKernelLaunch): Promise<void> {
  if (device === undefined) throw new Error('the device thread has no device open');
  if (engines.has(kernel.kernelId)) throw new Error(`kernel '${kernel.kernelId}' runs on this device already`);
  const engine = await WebGpuBatchEngine.create({
    device,
    program: kernel.program,
    input: kernel.input,
    output: kernel.output,
    outputBytes: kernel.outputBytes,
    maxBatch: kernel.maxBatch,
    inFlight: kernel.inFlight,
    sourceId: kernel.sourceId,
    onDeadLetter: (letter) => queueLetter(kernel.kernelId, letter),
    onFailure: (error) => {
      flushLetters();
      post({ type: 'kernelFailed', kernelId: kernel.kernelId, error: serialize(error) });
    },
  });
  if (kernel.restoreState !== undefined) engine.restore(kernel.restoreState);
  engines.set(kernel.kernelId, engine);
  engine.start();
}

async function stop(kernelId: string, mode: 'drain' | 'discard'): Promise<void> {
  const engine = engineOf(kernelId);
  try {
    await engine.stop(mode);
  } finally {
    engines.delete(kernelId);
    flushLetters();
  }
}

async function close(mode: 'drain' | 'discard'): Promise<void> {
  const stopping = [...engines.keys()].map((kernelId) => stop(kernelId, mode).catch(() => {}));
  await Promise.all(stopping);
  device?.destroy();
  device = undefined;
}

async function execute(command: DeviceThreadCommand): Promise<unknown> {
  switch (command.type) {
    case 'open': {
      const opened = await openWebGpuDevice(command.adapter);
      device = opened.device;
      device.lost.then((info) => {
        if (device === undefined) return;
        for (const kernelId of engines.keys()) {
          post({
            type: 'kernelFailed',
            kernelId,
            error: serialize(new WebGpuError('lost', 'running batches', `${info.reason}: ${info.message}`)),
          });
        }
      });
      return opened.adapter;
    }
    case 'launch':
      return launch(command.kernel);
    case 'pause':
      return engineOf(command.kernelId).pause();
    case 'resume':
      return engineOf(command.kernelId).resume();
    case 'checkpoint':
      return engineOf(command.kernelId).checkpoint();
    case 'restore':
      return engineOf(command.kernelId).restore(command.state);
    case 'stats':
      return engineOf(command.kernelId).stats;
    case 'stop':
      return stop(command.kernelId, command.mode);
    case 'close':
      return close(command.mode);
  }
}

port.on('message', (command: DeviceThreadCommand) => {
  execute(command).then(
    (value) => {
      post({ type: 'reply', seq: command.seq, ok: true, value });
      // Closed: nothing is pending any more; let the thread's event loop end.
      if (command.type === 'close') port.close();
    },
    (error: unknown) => post({ type: 'reply', seq: command.seq, ok: false, error: serialize(error) }),
  );
});
