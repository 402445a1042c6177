import { ErrorCode } from './codes.js';
import { RingKernelError } from './ringkernel-error.js';

/** No kernel is defined, or launched, under the id. */
export class KernelNotFoundError extends RingKernelError {
  /** The id that was looked up. */
  readonly kernelId: string;

  constructor(kernelId: string, detail = 'no kernel is defined under this id') {
    super(ErrorCode.KernelNotFound, `kernel '${kernelId}': ${detail}`);
    this.kernelId = kernelId;
  }
}

/** An operation that the kernel's lifecycle state does not allow, e.g. activating an Active kernel. */
export class InvalidStateError extends RingKernelError {
  readonly kernelId: string;
  /** The state the kernel is in. */
  readonly state: string;
  /** The state the operation needs or would lead to. */
  readonly target: string;
  /** The operation that was refused. */
  readonly operation: string;

  /**
   * @param explanation what the state means for the operation, and what to do, in the user's terms; without it
   * the message names the lifecycle transition that is not valid.
   */
  constructor(kernelId: string, operation: string, state: string, target: string, explanation?: string) {
    super(
      ErrorCode.InvalidState,
      `cannot ${operation} kernel '${kernelId}': it is ${state}, ${explanation ?? `and ${state} → ${target} is not a valid transition`}`,
    );
    this.kernelId = kernelId;
    this.operation = operation;
    this.state = state;
    this.target = target;
  }
}

/** The kernel's input queue is full and the send was told not to wait (`onFull: 'reject'`). Nothing was sent. */
export class QueueFullError extends RingKernelError {
  readonly kernelId: string;

  constructor(kernelId: string) {
    super(ErrorCode.QueueFull, `kernel '${kernelId}': input queue is full`);
    this.kernelId = kernelId;
  }
}

/** The backend asked for cannot run here; the message says why. */
export class BackendUnavailableError extends RingKernelError {
  readonly backend: string;

  constructor(backend: string, reason: string, options?: ErrorOptions) {
    super(ErrorCode.BackendUnavailable, `backend '${backend}' is not available: ${reason}`, options);
    this.backend = backend;
  }
}

/** The kernel failed; every pending receive, call and send on it rejects with this, `cause` saying why. */
export class KernelFailedError extends RingKernelError {
  readonly kernelId: string;

  constructor(kernelId: string, reason: string, options?: ErrorOptions) {
    super(ErrorCode.KernelFailed, `kernel '${kernelId}' failed: ${reason}`, options);
    this.kernelId = kernelId;
  }
}

/** The kernel's handler threw on a call's request; `remote` carries what the handler threw. */
export class HandlerFailedError extends RingKernelError {
  readonly kernelId: string;
  /** Name, message and stack of the error thrown in the worker. */
  readonly remote: { readonly name: string; readonly message: string; readonly stack?: string | undefined };

  constructor(kernelId: string, remote: HandlerFailedError['remote']) {
    super(ErrorCode.HandlerFailed, `kernel '${kernelId}' handler threw: ${remote.name}: ${remote.message}`);
    this.kernelId = kernelId;
    this.remote = remote;
  }
}

/** The runtime was shut down; nothing more can be launched or sent. */
export class RuntimeShutDownError extends RingKernelError {
  constructor(operation: string) {
    super(ErrorCode.RuntimeShutDown, `cannot ${operation}: the runtime has been shut down`);
  }
}

/** Two different kernel definitions claimed one id. */
export class DuplicateKernelError extends RingKernelError {
  readonly kernelId: string;

  constructor(kernelId: string, first: string, second: string) {
    super(ErrorCode.DuplicateKernel, `kernel '${kernelId}' is defined twice: in ${first} and in ${second}`);
    this.kernelId = kernelId;
  }
}

/** A circuit breaker refused an operation because it is open (or its half-open probes are all in use). */
export class CircuitOpenError extends RingKernelError {
  /** When the breaker will let a probe through, ms on the breaker's clock. */
  readonly retryAt: number;

  constructor(name: string, retryAt: number) {
    super(ErrorCode.CircuitOpen, `circuit '${name}' is open: refused without trying`);
    this.retryAt = retryAt;
  }
}

/**
 * A supervisor spent its restart budget: more than `maxRestarts` restarts within `windowMs`. It escalates to its
 * parent supervisor, or — at the top — gives its kernels up.
 */
export class RestartLimitError extends RingKernelError {
  /** The supervisor's name. */
  readonly supervisor: string;

  constructor(supervisor: string, maxRestarts: number, windowMs: number, cause: Error) {
    super(
      ErrorCode.RestartLimit,
      `supervisor '${supervisor}' spent its budget of ${maxRestarts} restarts within ${windowMs} ms (last failure: ${cause.message})`,
      { cause },
    );
    this.supervisor = supervisor;
  }
}

/**
 * The runtime refused new work: it has not been started yet, or it is draining (existing work completes, new work
 * is refused). A runtime that is shutting down or stopped refuses with {@link RuntimeShutDownError} instead.
 */
export class NotAcceptingWorkError extends RingKernelError {
  /** The runtime's lifecycle state. */
  readonly state: string;

  constructor(operation: string, state: string) {
    super(ErrorCode.NotAcceptingWork, `cannot ${operation}: the runtime is ${state} and accepts no new work`);
    this.state = state;
  }
}

/** Load shedding refused a message: its priority is below what the current degradation level admits. */
export class LoadShedError extends RingKernelError {
  /** The message's priority. */
  readonly priority: number;
  /** The lowest priority admitted at this level. */
  readonly minPriority: number;
  /** The degradation level. */
  readonly level: string;

  constructor(kernel: string, priority: number, minPriority: number, level: string) {
    super(
      ErrorCode.LoadShed,
      `message to kernel '${kernel}' shed: priority ${priority} is below ${minPriority}, the lowest admitted at degradation level ${level}`,
    );
    this.priority = priority;
    this.minPriority = minPriority;
    this.level = level;
  }
}

/**
 * The runtime's workers cannot load a kernel's module: it is the program's entry module, it builds a runtime when
 * imported, or Node cannot import it in a worker thread. The message says which, and what to do.
 */
export class KernelModuleError extends RingKernelError {
  /** The kernel, when known (a runtime built inside a worker does not know which kernel's module it is in). */
  readonly kernelId: string | undefined;
  /** The module's URL, when known. */
  readonly moduleUrl: string | undefined;

  constructor(kernel: { readonly id: string; readonly moduleUrl: string } | undefined, problem: string) {
    super(
      ErrorCode.KernelModule,
      kernel === undefined ? problem : `kernel '${kernel.id}' (module ${kernel.moduleUrl}): ${problem}`,
    );
    this.kernelId = kernel?.id;
    this.moduleUrl = kernel?.moduleUrl;
  }
}

/** Two kernels cannot be linked (`runtime.connect`): no type the producer outputs is the type the consumer takes. */
export class LinkTypeMismatchError extends RingKernelError {
  constructor(message: string) {
    super(ErrorCode.MessageTypeMismatch, message);
  }
}
