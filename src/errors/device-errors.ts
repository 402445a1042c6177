import { ErrorCode } from './codes.js';
import { RingKernelError } from './ringkernel-error.js';

/**
 * A kernel's state could not be checkpointed or restored: its `snapshot` / `restore` hook threw, or (with no hook)
 * the state is not structured-serializable (functions, class instances with private fields, sockets…).
 *
 * @example
 * try { await handle.checkpoint(); } catch (e) { if (e instanceof StateSnapshotError) giveTheKernelAHook(); }
 */
export class StateSnapshotError extends RingKernelError {
  /** The kernel's launch name. */
  readonly kernel: string;
  /** Whether taking the state (`snapshot`) or rebuilding it (`restore`) failed. */
  readonly step: 'snapshot' | 'restore';

  constructor(kernel: string, step: 'snapshot' | 'restore', reason: string) {
    super(ErrorCode.StateSnapshotFailed, `kernel '${kernel}': ${step} of its state failed: ${reason}`);
    this.kernel = kernel;
    this.step = step;
  }
}

/**
 * The phases of a migration, in order. `prepare` (the target instance attached, dormant) comes before the kernel
 * pauses. Failures up to the start of `swap` roll back; the rest of `swap` and `resume` are past the commit point.
 */
export type MigrationPhase = 'prepare' | 'quiesce' | 'checkpoint' | 'transfer' | 'restore' | 'swap' | 'resume';

/**
 * A migration failed in `phase` and was rolled back: the new instance was discarded and the kernel runs on at its
 * source device with its state and queue, re-activated if it was active. `cause` is the failure.
 *
 * @example
 * try { await migrator.migrateKernel('scorer', 0, 2); } catch (e) { if (e instanceof MigrationError) log(e.phase); }
 */
export class MigrationError extends RingKernelError {
  readonly kernel: string;
  readonly phase: MigrationPhase;
  /** Whether the kernel is back to running at its source (false only when the source itself failed meanwhile). */
  readonly rolledBack: boolean;

  constructor(kernel: string, phase: MigrationPhase, cause: unknown, rolledBack: boolean) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      ErrorCode.MigrationFailed,
      `migration of kernel '${kernel}' failed in phase ${phase}${rolledBack ? ' and was rolled back' : ''}: ${reason}`,
      { cause },
    );
    this.kernel = kernel;
    this.phase = phase;
    this.rolledBack = rolledBack;
  }
}

/**
 * No device satisfies a placement: an unknown device id, or none with the memory or compute units asked for.
 *
 * @example
 * try { await runtime.launch('big', 1, 1, { device: 7 }); } catch (e) { if (e instanceof PlacementError) … }
 */
export class PlacementError extends RingKernelError {
  constructor(reason: string) {
    super(ErrorCode.PlacementFailed, `no device for the placement: ${reason}`);
  }
}
