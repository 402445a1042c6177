import type { PreparedTransferMove } from '../bridge/transfer-bridge.js';
import { StateSnapshotError } from '../errors/device-errors.js';
import { KernelFailedError } from '../errors/runtime-errors.js';
import type { ControlPort } from '../executor/control-line.js';
import type { WorkerReport } from '../executor/protocol.js';
import { FrameConsumer } from '../wire/frame-consumer.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';

/** A migration's new instance, attached dormant on its target device. */
export interface DormantInstance {
  readonly port: ControlPort;
  readonly threadId: number;
  readonly device: number;
  /** A `dma` CUDA kernel: its rings prepared on the target, taken over at the swap. */
  readonly transferMove?: PreparedTransferMove | undefined;
}

/**
 * The kernel's side of a migration's transfer and restore: hands `state` to the dormant instance (the buffer is
 * transferred, not copied); `restored` resolves once its worker has rebuilt the state, or rejects with
 * {@link StateSnapshotError} when the `restore` hook (or v8) could not, or {@link KernelFailedError} when the
 * target's worker died meanwhile (then `onWorkerExit`, so nothing is placed there again). A dormant instance in
 * `discarded` was dropped on purpose: its port's close is not a death.
 */
export function sendState(
  kernel: string,
  dormant: DormantInstance,
  state: Uint8Array,
  options: { readonly discarded: WeakSet<DormantInstance>; onWorkerExit(threadId: number): void },
): { restored: Promise<void> } {
  const restored = new Promise<void>((resolve, reject) => {
    // The target's worker died (a restore hook that kills it, say): the migration rolls back.
    const onClose = (): void => {
      if (options.discarded.has(dormant)) return; // closed on purpose: the migration rolled back
      options.onWorkerExit(dormant.threadId); // never place on it again
      reject(new KernelFailedError(kernel, 'the worker of its new instance exited during the restore'));
    };
    dormant.port.once('close', onClose);
    dormant.port.once('message', (report: WorkerReport) => {
      dormant.port.off('close', onClose);
      if (report.type !== 'restored') {
        reject(new KernelFailedError(kernel, `its new instance answered the restore with '${report.type}'`));
      } else if (report.error === undefined) {
        resolve();
      } else {
        reject(new StateSnapshotError(kernel, 'restore', `${report.error.name}: ${report.error.message}`));
      }
    });
  });
  restored.catch(() => {}); // a migration that rolls back first need not wait for it
  dormant.port.postMessage({ seq: 0, command: 'RESTORE', bytes: state }, [state.buffer as ArrayBuffer]);
  return { restored };
}

/** Drops a dormant instance that will not be used (a migration rolling back), and remembers it was on purpose. */
export function dropDormant(dormant: DormantInstance, discarded: WeakSet<DormantInstance>): void {
  discarded.add(dormant);
  dormant.transferMove?.abort();
  dormant.port.postMessage({ seq: 0, command: 'DISCARD' });
  dormant.port.close();
}

/** Frames (and their bytes) queued now in these rings: what a swap carries in place. */
export function queuedIn(rings: readonly FrameRingMemory[]): { frames: number; bytes: number } {
  let frames = 0;
  let bytes = 0;
  for (const memory of rings) {
    const reader = new FrameConsumer(memory); // reads indices only; never drained
    frames += reader.availableReadFrames();
    bytes += reader.availableReadBytes();
  }
  return { frames, bytes };
}
