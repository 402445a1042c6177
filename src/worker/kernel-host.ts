/**
 * The Piscina task module that hosts kernels: the CPU backend's executor. `attach` loads the kernel's defining
 * module, starts its lifecycle actor and consumer loop, and returns at once: the kernel stays resident in this
 * worker, driven by its rings and its control port, while Piscina sees an idle worker (so a forgotten runtime does
 * not keep the process alive). The user writes no worker code.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { controlLine } from '../executor/control-line.js';
import { attachKernel, type ExecutorBackend } from '../executor/executor-shell.js';
import type { AttachBatch, AttachBatchResult } from '../executor/protocol.js';
import { restoreState } from '../kernel/state-codec.js';
import { HostedKernel } from './hosted-kernel.js';

/**
 * A CPU kernel is prepared by nothing but its definition: its loop is built over the rings only when it starts
 * (a consumer reads the ring's read index when made, and a migration's new instance must not, while the old one
 * still owns the rings). A checkpoint's state is decoded up front, so `init()` never runs for a restored kernel.
 */
const cpuExecutor: ExecutorBackend = {
  prepare(definition, shell) {
    let restored: { readonly state: unknown } | undefined;
    return {
      restore(bytes) {
        restored = { state: restoreState(definition, bytes) };
      },
      start: () => new HostedKernel(definition, shell, restored).start(),
      discard() {},
    };
  },
};

/**
 * Piscina task: attaches the batch's kernels to this worker and returns once each is resident (status Launched),
 * or why it is not, in the batch's order — with the host's end of this worker's control line, the first time.
 */
export default async function attach(batch: AttachBatch): Promise<AttachBatchResult> {
  const results = await Promise.all(batch.attach.map((task) => attachKernel(task, cpuExecutor)));
  const line = controlLine().takeHostEnd();
  if (line === undefined) return { results };
  // The line's end is transferred to the host, not cloned (Piscina's transferable protocol).
  const result: AttachBatchResult = { results, line };
  return move({ [transferableSymbol]: line, [valueSymbol]: result } as never) as unknown as AttachBatchResult;
}
