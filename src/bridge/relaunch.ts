import type { KernelTransfer } from './transfer-bridge.js';

/**
 * Where a kernel can be relaunched — a supervisor's restart, the watchdog moving it off a stuck worker, a restart
 * off a lost CUDA device — as its transfer decides: a new instance must reach the same rings.
 */
export interface Relaunch {
  /** A restart at all (same device): its rings can be attached again. */
  readonly here: boolean;
  /** On another worker thread: the rings it reads are the host's own (or fresh replicas can be made of them). */
  readonly anotherWorker: boolean;
  /** On another device: nothing of its rings lives on the device it leaves. */
  readonly anotherDevice: boolean;
}

/**
 * The one rule for {@link Relaunch}, from a kernel's transfer.
 *
 * @example
 * if (!relaunchOf(handle.transfer).here) throw new TypeError('a restart cannot re-attach this kernel');
 */
export function relaunchOf(transfer: Pick<KernelTransfer, 'strategy' | 'devicePointers' | 'reopen'>): Relaunch {
  // A CUDA kernel on dma: its device replicas stay where they are, and a new instance resumes on them there.
  const replicasOnDevice = transfer.devicePointers !== undefined;
  // A CPU kernel on dma: a restart attaches fresh mirror replicas from where the host rings are.
  const freshReplicas = transfer.reopen !== undefined;
  const here = transfer.strategy === 'direct' || transfer.strategy === 'mapped' || replicasOnDevice || freshReplicas;
  return {
    here,
    anotherWorker: transfer.strategy === 'direct' || freshReplicas,
    anotherDevice: here && !replicasOnDevice,
  };
}
