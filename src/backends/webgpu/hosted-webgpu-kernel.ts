import { ArgumentTypeError } from '../../errors/argument-errors.js';
import { ErrorCode, ErrorNumber } from '../../errors/codes.js';
import { serializeWebGpuError, type WebGpuError } from '../../errors/webgpu-errors.js';
import type { ExecutorShell, PreparedKernel, RunningKernel } from '../../executor/executor-shell.js';
import type { TerminationMode } from '../../executor/protocol.js';
import { DEVICE_BATCH_METRICS_BYTES, DeviceBatchMetrics } from '../../kernel/device-batch-metrics.js';
import type { AnyKernelDefinition } from '../../kernel/kernel-definition.js';
import { KERNEL_HISTOGRAMS_BYTES } from '../../kernel/latency-histogram.js';
import { FrameFlags } from '../../wire/frame-header.js';
import type { FrameRingMemory } from '../../wire/frame-ring.js';
import { HybridLogicalClock, wallClockUs } from '../../wire/hlc.js';
import type { MessageSchema } from '../../wire/message-schema.js';
import { WebGpuBatchEngine } from './batch-engine.js';
import type { BatchDeadLetter, BatchDone } from './batch-engine-contract.js';
import { buildWgslProgram } from './wgsl-program.js';

/** How often a snapshot looks whether the batches it waits for are stalled on a full output ring. */
const SNAPSHOT_POLL_MS = 20;
/** How long a batch may wait for output room before a snapshot gives up on it (outputs nobody reads). */
const OUTPUT_STALL_MS = 250;

/** A codec that is a `defineMessage` schema (its WGSL struct can be generated), not raw bytes. */
function isSchema(codec: unknown): codec is MessageSchema {
  return typeof codec === 'object' && codec !== null && Array.isArray((codec as MessageSchema).fields);
}

/**
 * One WebGPU kernel on its device thread, behind the executor shell: a {@link WebGpuBatchEngine} over the kernel's
 * rings, driven by the lifecycle (it takes input only while Active), reporting through the shell (ControlBlock
 * counters and heartbeat after each batch, dead letters, the exit).
 */
export class HostedWebGpuKernel implements RunningKernel {
  readonly #shell: ExecutorShell;
  readonly #engine: WebGpuBatchEngine;
  #mode: TerminationMode | undefined;
  #ending = false;
  #failure: string | undefined;
  /** The device error that failed the kernel, reported typed with its exit. */
  #deviceError: WebGpuError | undefined;

  private constructor(shell: ExecutorShell, engine: WebGpuBatchEngine) {
    this.#shell = shell;
    this.#engine = engine;
  }

  /**
   * Compiles the kernel on `device` and makes its resident buffers (its pipeline, state and batch buffers); nothing
   * touches the rings or the ControlBlock until `start`.
   *
   * @throws {WgslSchemaError} when a message schema has no WGSL struct; {@link WgslCompileError} when the handler
   * does not compile.
   */
  static async prepare(
    definition: AnyKernelDefinition,
    shell: ExecutorShell,
    device: GPUDevice,
  ): Promise<PreparedKernel> {
    const spec = definition.webgpu;
    if (spec === undefined) {
      throw new ArgumentTypeError('spec.webgpu', `kernel '${definition.id}' has no webgpu part to run on the device`);
    }
    const task = shell.task;
    const codecs = [definition.input, definition.output, ...(definition.emits ?? [])];
    const program = buildWgslProgram({
      kernelId: definition.id,
      source: spec.source,
      entry: spec.entry,
      workgroupSize: spec.workgroupSize,
      stateBytes: spec.stateBytes,
      stateType: spec.stateType,
      schemas: codecs.filter(isSchema),
    });
    const output: FrameRingMemory = task.output;
    const schemaSizes = codecs.filter(isSchema).map((schema) => schema.size);
    const outputBytes =
      spec.outputBytes ?? Math.min(output.maxPayloadSize, isSchema(definition.output) ? Math.max(...schemaSizes) : 256);
    let hosted: HostedWebGpuKernel | undefined;
    const engine = await WebGpuBatchEngine.create({
      device,
      program,
      input: task.input,
      output,
      outputBytes,
      maxBatch: spec.maxBatch,
      // The host made room for the batch metrics after the latency histograms (a WebGPU launch always does).
      metrics:
        task.histogram.byteLength >= (task.histogramOffset ?? 0) + KERNEL_HISTOGRAMS_BYTES + DEVICE_BATCH_METRICS_BYTES
          ? new DeviceBatchMetrics(task.histogram, (task.histogramOffset ?? 0) + KERNEL_HISTOGRAMS_BYTES)
          : undefined,
      sourceId: task.instanceId,
      clock: new HybridLogicalClock(task.instanceId),
      telemetry: task.tracing === undefined ? undefined : { ring: task.tracing.ring, kernel: task.instanceId },
      onDeadLetter: (letter) => {
        if (hosted !== undefined) hosted.#deadLetter(letter);
      },
      onBatch: (batch) => {
        if (hosted !== undefined) hosted.#batch(batch);
      },
      onFailure: (error) => {
        if (hosted !== undefined) hosted.#fail(error);
      },
    });
    return {
      restore: (bytes) => engine.restore(bytes),
      start: () => {
        hosted = new HostedWebGpuKernel(shell, engine);
        shell.launched();
        // Resident from here; batches flow only while the lifecycle is Active.
        engine.pause();
        engine.start();
        hosted.kick();
        return hosted;
      },
      discard: () => engine.dispose(),
    };
  }

  /**
   * Deactivated (a checkpoint's or a migration's quiesce), once the batches in flight are done: they would change
   * the state and move the input ring's handled cursor after the snapshot. Active, at once: the state of the last
   * finished batch, which matches the input ring held at the first unfinished frame.
   */
  async snapshot(): Promise<Uint8Array> {
    if (this.#shell.state !== 'Active') await this.#settledOrRefused();
    return this.#engine.stateSnapshot();
  }

  /**
   * Waits for the batches in flight, unless one of them waits for room in an output ring nobody reads: it would
   * finish only once its consumer reads, so the snapshot is refused (with what to do) rather than left pending.
   */
  async #settledOrRefused(): Promise<void> {
    let settled = false;
    const done = this.#engine.settled().then(() => {
      settled = true;
    });
    while (!settled) {
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, SNAPSHOT_POLL_MS))]);
      const since = this.#engine.roomWaitSince;
      if (!settled && since !== undefined && performance.now() - since >= OUTPUT_STALL_MS) {
        throw new Error(
          `a batch in flight has waited ${OUTPUT_STALL_MS} ms for room in a full output ring: read the kernel's outputs, then checkpoint again`,
        );
      }
    }
  }

  abort(): void {
    this.#failure ??= 'termination was forced';
    this.#end('discard');
  }

  linkIn(memory: FrameRingMemory): void {
    this.#engine.linkIn(memory);
  }

  linkOut(memory: FrameRingMemory, wake: SharedArrayBuffer, types: readonly number[] | undefined): void {
    this.#engine.linkOut(memory, wake, types);
  }

  terminating(mode: TerminationMode): void {
    this.#mode = mode;
  }

  kick(): void {
    const state = this.#shell.state;
    if (state === 'Active') this.#engine.resume();
    else if (state === 'Launched' || state === 'Deactivated') this.#engine.pause();
    else if (state === 'Terminating') this.#end(this.#mode ?? (this.#shell.draining ? 'drain' : 'discard'));
  }

  /** Stops the engine the way `mode` says (every readback settled), then reports the exit. Once. */
  #end(mode: TerminationMode): void {
    if (this.#ending) return;
    this.#ending = true;
    this.#engine.stop(mode).then(
      () => this.#exit(),
      (error: unknown) => {
        this.#failure ??= (error as Error).message;
        this.#exit();
      },
    );
  }

  #exit(): void {
    const control = this.#shell.control;
    control.setInFlight(0);
    if (this.#failure !== undefined) control.recordError(ErrorNumber.KernelFailed);
    const webgpu = this.#deviceError === undefined ? undefined : serializeWebGpuError(this.#deviceError);
    this.#shell.exit(this.#failure, undefined, webgpu);
  }

  #batch(batch: BatchDone): void {
    const control = this.#shell.control;
    control.addBatch(batch.received, batch.processed, batch.failed, 0);
    control.setHandledCursor(batch.handledCursor);
    control.setInFlight(batch.inFlight);
    control.beat(wallClockUs());
  }

  #deadLetter(letter: BatchDeadLetter): void {
    const control = this.#shell.control;
    if (letter.reason === 'discarded-on-terminate') control.addBatch(1, 0, 0, 1);
    if (letter.reason === 'handler-error') control.recordError(ErrorCode.HandlerFailed);
    const error = Object.assign(new Error(letter.message), {
      name: letter.reason === 'handler-error' ? 'WgslHandlerError' : 'WebGpuKernelError',
      code: letter.reason === 'handler-error' ? ErrorCode.HandlerFailed : undefined,
      errorNumber: letter.errorNumber,
    });
    // A letter answers a host call only when its frame was the host's request on the kernel's own ring.
    const request = letter.fromHost ? (letter.flags & FrameFlags.REQUEST) !== 0 : undefined;
    this.#shell.deadLetter(letter.reason, error, letter, request);
    if (letter.reason === 'handler-error' && this.#shell.task.failOnHandlerError) {
      // Let it crash: the message is a dead letter already; the batches in flight finish and the rest of the
      // queue stays in the ring for a supervisor's restart (or the host's dead letters).
      this.#failure ??= `the WGSL handler failed message ${letter.messageId}: ${letter.message}`;
      this.#end('keep');
    }
  }

  #fail(error: WebGpuError): void {
    this.#deviceError ??= error;
    this.#failure ??= error.message;
    this.#end('discard');
  }
}
