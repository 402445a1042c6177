/**
 * The Piscina task module that hosts kernels. `attach` loads the kernel's defining module, starts its lifecycle
 * actor and consumer loop, and returns at once: the kernel stays resident in this worker, driven by its rings and
 * its control port, while Piscina sees an idle worker (so a forgotten runtime does not keep the process alive).
 * The user writes no worker code.
 */
import { threadId } from 'node:worker_threads';
import { findKernel } from '../runtime/kernel-definition.js';
import { HostedKernel } from './hosted-kernel.js';
import type { AttachResult, AttachTask } from './protocol.js';

/** Piscina task: attaches one kernel to this worker and returns once it is resident (status Launched). */
export default async function attach(task: AttachTask): Promise<AttachResult> {
  await import(task.moduleUrl);
  const definition = findKernel(task.kernelId);
  if (definition.moduleUrl !== task.moduleUrl) {
    throw new TypeError(`kernel '${task.kernelId}' is defined in ${definition.moduleUrl}, not ${task.moduleUrl}`);
  }
  new HostedKernel(definition, task).start();
  return { threadId };
}
