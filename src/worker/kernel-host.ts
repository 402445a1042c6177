/**
 * The Piscina task module that hosts kernels. `attach` loads the kernel's defining module, starts its lifecycle
 * actor and consumer loop, and returns at once: the kernel stays resident in this worker, driven by its rings and
 * its control port, while Piscina sees an idle worker (so a forgotten runtime does not keep the process alive).
 * The user writes no worker code.
 */
import { threadId } from 'node:worker_threads';
import { loadKernel } from '../executor/kernel-module.js';
import {
  type AttachResult,
  type AttachTask,
  type ControlCommand,
  serializeError,
  type WorkerReport,
} from '../executor/protocol.js';
import { restoreState } from '../kernel/state-codec.js';
import { HostedKernel } from './hosted-kernel.js';

/** Piscina task: attaches one kernel to this worker and returns once it is resident (status Launched). */
export default async function attach(task: AttachTask): Promise<AttachResult> {
  const definition = await loadKernel(task.kernelId, task.moduleUrl);
  // A restore that throws fails the task: the host learns it before anything was handed over.
  let restored = task.restoreState === undefined ? undefined : { state: restoreState(definition, task.restoreState) };
  if (!task.dormant) {
    new HostedKernel(definition, task, restored).start();
    return { threadId };
  }
  // A migration's new instance: the old one still owns the rings and the ControlBlock. Nothing is built over them
  // (a consumer reads the ring's read index when made) until the host says START, after the old one has left.
  const port = task.port;
  const onCommand = (command: ControlCommand): void => {
    if (command.command === 'RESTORE') {
      let report: WorkerReport = { type: 'restored', seq: command.seq };
      try {
        restored = { state: restoreState(definition, command.bytes) };
      } catch (error) {
        report = { type: 'restored', seq: command.seq, error: serializeError(error) };
      }
      port.postMessage(report);
    } else if (command.command === 'DISCARD') {
      port.off('message', onCommand);
      port.close();
    } else if (command.command === 'START') {
      port.off('message', onCommand);
      new HostedKernel(definition, task, restored).start();
      port.postMessage({ type: 'reply', seq: command.seq, ok: true } satisfies WorkerReport);
    }
  };
  port.on('message', onCommand);
  return { threadId };
}
