import { InvalidArgumentError } from '../../errors/argument-errors.js';
import { ErrorNumber, errorCodeOf } from '../../errors/codes.js';
import type { MalformedFrameError } from '../../errors/frame-errors.js';
import { WebGpuError } from '../../errors/webgpu-errors.js';
import type { DeviceBatchMetrics } from '../../kernel/device-batch-metrics.js';
import type { Envelope } from '../../wire/envelope.js';
import { DEFAULT_SPIN, waitUntil, waitUntilAsync } from '../../wire/eventcount.js';
import { FrameConsumer } from '../../wire/frame-consumer.js';
import { FrameFlags } from '../../wire/frame-header.js';
import { FrameProducer } from '../../wire/frame-producer.js';
import type { FrameRingMemory } from '../../wire/frame-ring.js';
import type { HybridLogicalClock } from '../../wire/hlc.js';
import type { MessageCodec } from '../../wire/message-schema.js';
import { RingSignalOffset } from '../../wire/ring-signal.js';
import type {
  BatchDeadLetter,
  BatchDone,
  BatchEngineOptions,
  BatchEngineStats,
  BatchStopMode,
} from './batch-engine-contract.js';
import { checkBatchEngineOptions } from './batch-engine-options.js';
import { fillBatch } from './batch-fill.js';
import { discardedLetter, malformedLetter, slotLetter, uncapturedKind } from './batch-reports.js';
import {
  type BatchDispatch,
  createBatchSlot,
  destroyBatchSlot,
  encodeBatch,
  type Slot,
  STATUS_BYTES,
  Usage,
} from './batch-slot.js';
import { BatchSpanWriter } from './batch-span-writer.js';
import { ErrorResponse, errorBody, NO_RESPONSE, typed } from './output-codecs.js';
import {
  type CompiledWgslKernel,
  compileWgslKernel,
  MESSAGE_DESCRIPTOR_WORDS,
  OUTPUT_STATUS_WORDS,
} from './wgsl-program.js';

/** GPUMapMode.READ (a WebGPU spec constant; the binding's globals are not installed). */
const MAP_READ = 1;

const DATA_SEQ = RingSignalOffset.DATA_SEQ >> 2;
const CONSUMER_SLEEPING = RingSignalOffset.CONSUMER_SLEEPING >> 2;
/**
 * After a batch that answered a call, how long the engine sleeps on its input ring's futex before it parks on the
 * event loop, ms: a caller that calls again sends within it, and a futex wakes at once where a park waits for the
 * thread's event loop to turn (a wake-up of ~0.05–0.15 ms on a busy machine).
 */
const NEXT_CALL_WAIT_MS = 0.3;
/** The engines running on this thread: a futex wait blocks them all, so it is taken only while none has a batch in flight. */
const running = new Set<{ readonly idle: boolean }>();

/**
 * Runs one WebGPU kernel as a resident actor on a device: its pipeline, state buffer and batch buffers are made
 * once, at {@link WebGpuBatchEngine.create}; then the engine drains the kernel's input ring in batches (one shader
 * invocation per message), with up to `inFlight` batches submitted at once, and writes each batch's outputs to the
 * output ring in input order. Batches size themselves: with nothing in flight the engine submits whatever has
 * arrived (latency), while batches are in flight it waits for more to gather (throughput).
 *
 * Data plane: rings and GPU buffers only — one readback Promise per batch, none per message. A handler's error code
 * fails its message alone (a `handler-error` dead letter, an error response to a call). Every readback is settled
 * before {@link WebGpuBatchEngine.stop} returns, so the thread may end (a worker ended with a pending `mapAsync`
 * takes the process down).
 */
export class WebGpuBatchEngine {
  readonly #device: GPUDevice;
  readonly #kernelId: string;
  #consumer: FrameConsumer;
  /** Every input: the kernel's own ring first, then kernel-to-kernel links. */
  readonly #inputs: FrameConsumer[];
  #nextInput = 0;
  #producer: FrameProducer;
  readonly #inputMemory: FrameRingMemory;
  readonly #inputSignal: Int32Array;
  readonly #outputMemory: FrameRingMemory;
  readonly #links: { readonly producer: FrameProducer; readonly types: ReadonlySet<number> | undefined }[] = [];
  readonly #stateMirror: Uint8Array;
  #roomWaitSince: number | undefined;
  readonly #producerClock: { clock?: HybridLogicalClock };
  readonly #onBatch: ((batch: BatchDone) => void) | undefined;
  readonly #metrics: DeviceBatchMetrics | undefined;
  readonly #tracer: BatchSpanWriter | undefined;
  readonly #state: GPUBuffer | undefined;
  /** How each batch is dispatched and read back. */
  readonly #dispatch: BatchDispatch;
  readonly #stateBytes: number;
  readonly #workgroupSize: number;
  readonly #maxBatch: number;
  readonly #outWords: number;
  readonly #dataCapacity: number;
  readonly #maxPayload: number;
  readonly #free: Slot[] = [];
  readonly #busy: Slot[] = [];
  readonly #all: Slot[] = [];
  readonly #envelope: Envelope;
  readonly #errorEnvelope: Envelope;
  readonly #onDeadLetter: ((letter: BatchDeadLetter) => void) | undefined;
  readonly #onFailure: ((error: WebGpuError) => void) | undefined;
  #running: Promise<void> | undefined;
  #paused = false;
  #stopMode: BatchStopMode | undefined;
  #failure: WebGpuError | undefined;
  #wake: AbortController | undefined;
  #batches = 0;
  #messages = 0;
  #failed = 0;
  #discarded = 0;
  #lastBatch = 0;
  #largestBatch = 0;
  #uploadMs = 0;
  #gpuMs = 0;
  #outputMs = 0;
  #destroyed = false;
  /** The last batch answered a call from the host: another may follow at once. */
  #answeredCall = false;

  private constructor(options: BatchEngineOptions, compiled: CompiledWgslKernel) {
    const { device, program } = options;
    this.#device = device;
    this.#kernelId = program.kernelId;
    this.#onDeadLetter = options.onDeadLetter;
    this.#onFailure = options.onFailure;
    this.#consumer = new FrameConsumer(options.input, { onMalformed: this.#onMalformed });
    this.#inputs = [this.#consumer];
    this.#inputMemory = options.input;
    this.#inputSignal = new Int32Array(options.input.signal);
    this.#outputMemory = options.output;
    this.#onBatch = options.onBatch;
    this.#metrics = options.metrics;
    this.#tracer = options.telemetry === undefined ? undefined : new BatchSpanWriter(options.telemetry);
    this.#producerClock = options.clock === undefined ? {} : { clock: options.clock };
    this.#producer = new FrameProducer(options.output, { deferWake: true, ...this.#producerClock });
    const sourceId = options.sourceId ?? 0;
    this.#envelope = { correlationId: 0, source: sourceId, flags: FrameFlags.RESPONSE };
    this.#errorEnvelope = { correlationId: 0, source: sourceId, flags: FrameFlags.RESPONSE | FrameFlags.ERROR };
    this.#maxBatch = options.maxBatch ?? 4096;
    this.#workgroupSize = program.workgroupSize;
    this.#outWords = Math.ceil((options.outputBytes ?? Math.min(256, options.output.maxPayloadSize)) / 4);
    this.#maxPayload = options.input.maxPayloadSize;
    // A batch's payload area holds maxBatch small messages or, at least, two of the largest.
    this.#dataCapacity = Math.max(
      Math.min(this.#maxBatch * 256, 16 << 20),
      2 * (Math.ceil(this.#maxPayload / 4) * 4 + 4),
    );
    this.#stateBytes = program.stateBytes;
    this.#stateMirror = new Uint8Array(program.stateBytes);
    let state: BatchDispatch['state'];
    if (program.stateBytes > 0) {
      const buffer = device.createBuffer({
        label: `${this.#kernelId} state`,
        size: program.stateBytes,
        usage: Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST,
      });
      const bindGroup = device.createBindGroup({
        layout: compiled.stateLayout as GPUBindGroupLayout,
        entries: [{ binding: 0, resource: { buffer } }],
      });
      this.#state = buffer;
      state = { buffer, bindGroup, at: this.#stateAt, bytes: program.stateBytes };
    }
    this.#dispatch = {
      pipeline: compiled.pipeline,
      workgroupSize: program.workgroupSize,
      outWords: this.#outWords,
      outputAt: this.#maxBatch * STATUS_BYTES,
      state,
    };
    const shape = {
      maxBatch: this.#maxBatch,
      outputBytes: this.#outWords * 4,
      dataCapacity: this.#dataCapacity,
      readbackBytes: this.#stateAt + this.#stateBytes,
      traced: this.#tracer !== undefined,
    };
    for (let i = 0; i < (options.inFlight ?? 4); i++) {
      const slot = createBatchSlot(device, compiled.batchLayout, { ...shape, label: `${this.#kernelId} batch ${i}` });
      this.#free.push(slot);
      this.#all.push(slot);
    }
    device.lost.then((info) => {
      if (!this.#destroyed) this.#fail(new WebGpuError('lost', 'running batches', `${info.reason}: ${info.message}`));
    });
    device.addEventListener('uncapturederror', this.#onUncapturedError);
  }

  /**
   * An error no scope caught, somewhere on the device: which kernel's work caused it cannot be told, and the device
   * is in a state nobody checked, so every kernel on it fails with it (the device thread lets the device go).
   */
  readonly #onUncapturedError = (event: Event): void => {
    if (this.#destroyed) return;
    const error = (event as GPUUncapturedErrorEvent).error;
    this.#fail(new WebGpuError(uncapturedKind(error), 'running batches', error.message));
  };

  /**
   * Compiles the kernel and makes its resident buffers.
   *
   * @throws {WgslCompileError} when the handler does not compile; {@link InvalidArgumentError} on options out of
   * range.
   */
  static async create(options: BatchEngineOptions): Promise<WebGpuBatchEngine> {
    checkBatchEngineOptions(options);
    const compiled = await compileWgslKernel(options.device, options.program);
    return new WebGpuBatchEngine(options, compiled);
  }

  /** Where in a readback the state copy lies. */
  get #stateAt(): number {
    return this.#maxBatch * STATUS_BYTES + Math.max(4, this.#maxBatch * this.#outWords * 4);
  }

  /**
   * Since when (`performance.now()`) a batch's outputs have been waiting for room in a full output ring, or
   * undefined: a batch that waits on a consumer that does not read cannot finish until it does.
   */
  get roomWaitSince(): number | undefined {
    return this.#roomWaitSince;
  }

  /** Resolves once no batch is in flight (at once when none is; when the engine fails or ends too). */
  settled(): Promise<void> {
    if (this.#busy.length === 0 || this.#failure !== undefined || this.#destroyed) return Promise.resolve();
    return new Promise((resolve) => this.#settledWaiters.push(resolve));
  }

  #wakeSettled(): void {
    const waiters = this.#settledWaiters.splice(0);
    for (const resolve of waiters) resolve();
  }

  /** Counters, for metrics. */
  get stats(): BatchEngineStats {
    return {
      batches: this.#batches,
      messages: this.#messages,
      failed: this.#failed,
      discarded: this.#discarded,
      inFlight: this.#busy.length,
      lastBatchSize: this.#lastBatch,
      largestBatch: this.#largestBatch,
      uploadMs: this.#uploadMs,
      gpuMs: this.#gpuMs,
      outputMs: this.#outputMs,
    };
  }

  /** Where the engine has read its input ring to (the next frame it will take). */
  get inputCursor(): number {
    return this.#consumer.cursor;
  }

  /** Starts draining the input ring. */
  start(): void {
    if (this.#running !== undefined) throw new Error(`kernel '${this.#kernelId}': the batch engine runs already`);
    if (this.#destroyed) throw new Error(`kernel '${this.#kernelId}': the batch engine was disposed`);
    // The rings' ends are taken now, not at create: a migration's new instance is made while the old one still
    // reads and writes them, and must start from their indices as they are when it takes over.
    this.#consumer = new FrameConsumer(this.#inputMemory, { onMalformed: this.#onMalformed });
    this.#inputs[0] = this.#consumer;
    this.#producer = new FrameProducer(this.#outputMemory, { deferWake: true, ...this.#producerClock });
    this.#running = this.#run();
  }

  /** Frees the buffers of an engine that never started (a launch rolled back). */
  dispose(): void {
    if (this.#running !== undefined) throw new Error(`kernel '${this.#kernelId}': a started engine ends with stop()`);
    this.#destroy();
  }

  /** Stops taking input (deactivate): batches in flight finish and their outputs are written; state stays. */
  pause(): void {
    this.#paused = true;
    this.#interrupt();
  }

  /** Takes input again after {@link WebGpuBatchEngine.pause}. */
  resume(): void {
    this.#paused = false;
    this.#interrupt();
  }

  /**
   * Ends the engine: `drain` handles every frame already in the input rings first; `discard` dead-letters them
   * (`discarded-on-terminate`); `keep` leaves them in the rings (a restart's next instance takes them). Either way
   * batches in flight are finished and read back (no readback is left
   * pending), then the engine's buffers are destroyed. Resolves when all of that is done; rejects with the failure
   * if the device failed.
   */
  async stop(mode: BatchStopMode): Promise<void> {
    this.#stopMode ??= mode;
    if (mode === 'discard') this.#stopMode = 'discard';
    this.#paused = false;
    this.#interrupt();
    try {
      await (this.#running ?? Promise.resolve());
    } finally {
      await this.#settleReadbacks();
      this.#destroy();
    }
  }

  /**
   * Reads the state buffer back. The copy is queued after every batch submitted so far and before any later one,
   * so it is the state at a batch boundary.
   */
  async checkpoint(): Promise<Uint8Array> {
    if (this.#state === undefined) return new Uint8Array(0);
    const readback = this.#device.createBuffer({ size: this.#stateBytes, usage: Usage.MAP_READ | Usage.COPY_DST });
    try {
      const encoder = this.#device.createCommandEncoder();
      encoder.copyBufferToBuffer(this.#state, 0, readback, 0, this.#stateBytes);
      this.#device.queue.submit([encoder.finish()]);
      await readback.mapAsync(MAP_READ);
      return new Uint8Array(readback.getMappedRange().slice(0));
    } finally {
      readback.destroy();
    }
  }

  /** Overwrites the state buffer (before the next batch is submitted). */
  restore(bytes: Uint8Array): void {
    if (bytes.length !== this.#stateBytes) {
      throw new InvalidArgumentError(
        'restore',
        `kernel '${this.#kernelId}': restore needs ${this.#stateBytes} bytes of state, got ${bytes.length}`,
      );
    }
    this.#stateMirror.set(bytes);
    if (this.#state !== undefined) this.#device.queue.writeBuffer(this.#state, 0, bytes);
  }

  /**
   * The state as the last finished batch left it, at once (each batch reads the state back with its outputs).
   * With the kernel's own input ring held at its first unfinished frame, that is the state matching what the ring
   * still holds: the pair is an exact checkpoint.
   */
  stateSnapshot(): Uint8Array {
    return this.#stateMirror.slice();
  }

  /** Also takes input from this ring (another kernel produces into it). */
  linkIn(memory: FrameRingMemory): void {
    this.#inputs.push(new FrameConsumer(memory, { onMalformed: this.#onMalformed }));
    this.#interrupt();
  }

  /**
   * Sends outputs of these types (all when undefined) to this ring instead of the host, ringing `wake` (the
   * consumer's own input doorbell) after each batch. Answers to the host's calls still go to the host.
   */
  linkOut(memory: FrameRingMemory, wake: SharedArrayBuffer, types: readonly number[] | undefined): void {
    this.#links.push({
      producer: new FrameProducer(memory, { alsoWake: wake, deferWake: true, ...this.#producerClock }),
      types: types === undefined ? undefined : new Set(types),
    });
  }

  #interrupt(): void {
    this.#wake?.abort();
    this.#consumer.interrupt();
  }

  /** Wakes the loop to look at its state (a lifecycle change made by its owner). */
  kick(): void {
    this.#interrupt();
  }

  async #run(): Promise<void> {
    // A pending Atomics.waitAsync or readback does not keep a thread's event loop alive: hold a ref'd handle.
    const alive = setInterval(() => {}, 1 << 30);
    running.add(this);
    try {
      await this.#loop();
    } finally {
      running.delete(this);
      clearInterval(alive);
    }
  }

  async #loop(): Promise<void> {
    while (this.#failure === undefined) {
      const stopping = this.#stopMode;
      if (stopping === 'discard') {
        this.#discardQueued();
        break;
      }
      if (stopping === 'keep') break;
      const takeInput = !this.#paused;
      const hasData = takeInput && this.#hasInput();
      if (hasData && this.#free.length > 0 && (this.#busy.length === 0 || this.#worthSubmitting())) {
        this.#submit();
        continue;
      }
      if (this.#busy.length > 0) {
        await this.#completeHead();
        continue;
      }
      if (hasData) continue;
      if (stopping === 'drain' && !this.#paused) break;
      if (this.#answeredCall && !this.#paused && this.#threadIdle()) {
        this.#answeredCall = false;
        this.#prepareSingle();
        if (waitUntil(this.#inputSignal, DATA_SEQ, CONSUMER_SLEEPING, this.#anyInput, NEXT_CALL_WAIT_MS, 0)) continue;
      }
      const wake = new AbortController();
      this.#wake = wake;
      if (this.#paused) {
        // Deactivated: frames may wait in the ring; sleep until resumed or stopped, not until data.
        await new Promise((resolve) => wake.signal.addEventListener('abort', resolve, { once: true }));
      } else {
        // Park on the own input ring's doorbell, which every kernel-to-kernel producer into this kernel also rings.
        await waitUntilAsync(
          this.#inputSignal,
          DATA_SEQ,
          CONSUMER_SLEEPING,
          this.#anyInput,
          Number.POSITIVE_INFINITY,
          DEFAULT_SPIN,
          wake.signal,
        ).catch(() => false);
      }
      this.#wake = undefined;
    }
    while (this.#busy.length > 0 && this.#failure === undefined) await this.#completeHead();
    if (this.#failure !== undefined) throw this.#failure;
  }

  readonly #anyInput = (): boolean => this.#hasInput();

  /** No engine of this thread has a batch in flight (their readbacks would wait behind a blocking wait). */
  #threadIdle(): boolean {
    for (const engine of running) if (!engine.idle) return false;
    return true;
  }

  /** Whether no batch of this engine is in flight. */
  get idle(): boolean {
    return this.#busy.length === 0;
  }

  #hasInput(): boolean {
    for (const input of this.#inputs) if (input.hasData()) return true;
    return false;
  }

  /** With batches in flight, a new one is submitted only when enough has gathered to be worth a dispatch. */
  #worthSubmitting(): boolean {
    const wanted = Math.min(this.#dataCapacity, this.#lastBatchBytes) / 2;
    for (const input of this.#inputs) if (input.availableReadBytes() >= wanted) return true;
    return false;
  }

  /** The next input with frames, round robin from after the last one used (the kernel's own ring first). */
  #pickInput(): number {
    const n = this.#inputs.length;
    for (let k = 0; k < n; k++) {
      const index = (this.#nextInput + k) % n;
      if ((this.#inputs[index] as FrameConsumer).hasData()) {
        this.#nextInput = (index + 1) % n;
        return index;
      }
    }
    return 0;
  }

  #lastBatchBytes = 0;
  readonly #settledWaiters: (() => void)[] = [];

  #submit(): void {
    const started = performance.now();
    const slot = this.#free.pop() as Slot;
    const source = this.#pickInput();
    const input = this.#inputs[source] as FrameConsumer;
    slot.source = source;
    slot.startCursor = input.cursor;
    const { count, bytes, frameBytes } = fillBatch(slot, input, {
      max: this.#maxBatch,
      limit: this.#dataCapacity - Math.ceil(this.#maxPayload / 4) * 4,
      // The kernel's own ring keeps its published read index at the first frame not yet answered: a checkpoint's
      // queue (and a failed kernel's salvage) then starts exactly where the state's batches end.
      hold: source === 0 && !input.holding,
      tracer: this.#tracer,
    });
    if (count === 0) {
      this.#free.push(slot);
      return;
    }
    slot.count = count;
    slot.dataBytes = bytes;
    this.#lastBatchBytes = frameBytes;
    const queue = this.#device.queue;
    this.#writeHeader(slot, count);
    queue.writeBuffer(slot.messages, 0, slot.descriptors, 0, count * MESSAGE_DESCRIPTOR_WORDS);
    if (bytes > 0) queue.writeBuffer(slot.input, 0, slot.data, 0, bytes);
    const ahead = count === 1 ? slot.single : undefined;
    slot.single = undefined;
    queue.submit([ahead ?? encodeBatch(this.#device, slot, this.#dispatch, count)]);
    slot.submittedAt = performance.now();
    slot.mapped = slot.readback.mapAsync(MAP_READ, 0, this.#stateAt + this.#stateBytes);
    // The readback promise is awaited in order by #completeHead; a rejection there fails the kernel.
    slot.mapped.catch(() => {});
    this.#busy.push(slot);
    this.#batches++;
    this.#lastBatch = count;
    if (count > this.#largestBatch) this.#largestBatch = count;
    this.#uploadMs += slot.submittedAt - started;
    this.#metrics?.submitted(count, (slot.submittedAt - started) * 1e6, this.#busy.length);
  }

  /** Writes the slot's uniform header for a batch of `count` (queued: it lands before the next submit). */
  #writeHeader(slot: Slot, count: number): void {
    if (slot.headerCount === count) return;
    this.#device.queue.writeBuffer(slot.uniform, 0, new Uint32Array([count, this.#outWords, 0, 0]));
    slot.headerCount = count;
  }

  /**
   * While waiting for the next call: the slot the next batch takes gets its one-message batch encoded, and its
   * header written, ahead, so a call's batch is only uploaded and submitted.
   */
  #prepareSingle(): void {
    const next = this.#free[this.#free.length - 1];
    if (next === undefined || next.single !== undefined) return;
    this.#writeHeader(next, 1);
    next.single = encodeBatch(this.#device, next, this.#dispatch, 1);
  }

  async #completeHead(): Promise<void> {
    const slot = this.#busy[0] as Slot;
    try {
      await slot.mapped;
    } catch (error) {
      slot.mapped = undefined;
      this.#fail(new WebGpuError('lost', 'reading a batch back', (error as Error).message));
      return;
    }
    slot.mapped = undefined;
    const read = performance.now();
    this.#gpuMs += read - slot.submittedAt;
    const outputAt = this.#maxBatch * STATUS_BYTES;
    const range = slot.readback.getMappedRange(0, this.#stateAt + this.#stateBytes);
    let counts = { processed: 0, failed: 0, written: 0 };
    try {
      counts = await this.#writeOutputs(
        slot,
        new Uint32Array(range, 0, slot.count * OUTPUT_STATUS_WORDS),
        new Uint8Array(range, outputAt),
      );
      if (this.#stateBytes > 0 && counts.written === slot.count) {
        this.#stateMirror.set(new Uint8Array(range, this.#stateAt, this.#stateBytes));
      }
    } finally {
      slot.readback.unmap();
      this.#busy.shift();
      this.#free.push(slot);
      const written = performance.now();
      this.#outputMs += written - read;
      this.#metrics?.completed((read - slot.submittedAt) * 1e6, (written - read) * 1e6, this.#busy.length);
    }
    if (counts.written < slot.count) {
      this.#cutShort(slot, counts);
      return;
    }
    // The hold moves to the next unfinished batch of the kernel's own ring, or goes.
    const next = this.#busy.find((pending) => pending.source === 0);
    if (slot.source === 0) {
      if (next === undefined) this.#consumer.releaseHeld();
      else this.#consumer.holdAt(next.startCursor);
    }
    this.#onBatch?.({
      received: slot.count,
      processed: counts.processed,
      failed: counts.failed,
      handledCursor: next === undefined ? this.#consumer.cursor : next.startCursor,
      inFlight: this.#busy.length,
    });
    if (this.#busy.length === 0) this.#wakeSettled();
  }

  /**
   * The engine failed while a batch's outputs were written: the frames answered so far are handled, the rest stay
   * in the ring for the host (dead letters, or a supervised restart's next instance), each message once.
   */
  #cutShort(slot: Slot, counts: { processed: number; failed: number; written: number }): void {
    const { written } = counts;
    const handledCursor = written > 0 ? (slot.frameEnds[written - 1] as number) : slot.startCursor;
    if (slot.source === 0) this.#consumer.holdAt(handledCursor);
    this.#onBatch?.({
      received: written,
      processed: counts.processed,
      failed: counts.failed,
      handledCursor,
      inFlight: this.#busy.length,
    });
  }

  async #writeOutputs(
    slot: Slot,
    statuses: Uint32Array,
    outputs: Uint8Array,
  ): Promise<{ processed: number; failed: number; written: number }> {
    const outBytes = this.#outWords * 4;
    const producer = this.#producer;
    const fromHost = slot.source === 0;
    let processed = 0;
    let failed = 0;
    let written = 0;
    for (let i = 0; i < slot.count; i++) {
      // The device went while the outputs were written (they waited for room): its readback is unmapped under us,
      // so the rest of the batch is not answered here; it stays in the ring, after the frames that were.
      if (this.#lost(statuses)) break;
      const s = i * OUTPUT_STATUS_WORDS;
      let error = statuses[s] as number;
      const size = statuses[s + 1] as number;
      const typeId = statuses[s + 2] as number;
      const emit = statuses[s + 3] as number;
      const d = i * MESSAGE_DESCRIPTOR_WORDS;
      const flags = slot.descriptors[d + 2] as number;
      const messageId = slot.messageIds[i] as number;
      if (error === 0 && emit !== 0 && (size > outBytes || size > producer.maxPayloadSize)) {
        error = ErrorNumber.FrameTooLarge;
      }
      const request = fromHost && (flags & FrameFlags.REQUEST) !== 0;
      if (request) this.#answeredCall = true;
      const traced = slot.anySampled && slot.sampled[i] === 1;
      if (traced) this.#tracer?.begin(slot, i, this.#envelope, this.#errorEnvelope);
      if (error !== 0) {
        this.#failed++;
        failed++;
        const code = errorCodeOf(error);
        const message = `kernel '${this.#kernelId}': the WGSL handler returned ${code ?? 'error'} (${error})`;
        this.#onDeadLetter?.(slotLetter(slot, i, 'handler-error', error, message));
        const answered =
          !request ||
          (await this.#write(
            producer,
            ErrorResponse,
            errorBody('WgslHandlerError', message, code ?? error),
            messageId,
            true,
          ));
        // Its dead letter went out already (and answers a call): the message is done even if the reply is not.
        written++;
        if (!answered) break;
        if (traced) this.#tracer?.end(slot, i, error, this.#envelope, this.#errorEnvelope);
        continue;
      }
      let delivered = true;
      if (emit !== 0) {
        const payload = outputs.subarray(i * outBytes, i * outBytes + size);
        const codec = typed(typeId);
        // Answers to the host's calls go home; other outputs to the links that take their type, else home.
        let routed = false;
        if (!request) {
          for (const link of this.#links) {
            if (link.types !== undefined && !link.types.has(typeId)) continue;
            routed = true;
            const wrote = this.#output(link.producer, codec, payload, messageId, false);
            delivered = delivered && (wrote === true || (await wrote));
          }
        }
        if (!routed) {
          const wrote = this.#output(producer, codec, payload, messageId, false);
          delivered = wrote === true || (await wrote);
        }
      } else if (request) {
        const wrote = this.#output(producer, ErrorResponse, NO_RESPONSE, messageId, true);
        delivered = wrote === true || (await wrote);
      }
      // Failed before its output was written: it stays in the input ring, after the frames that were answered.
      if (!delivered) break;
      this.#messages++;
      processed++;
      if (traced) this.#tracer?.end(slot, i, 0, this.#envelope, this.#errorEnvelope);
      written++;
    }
    producer.wakeConsumer();
    for (const link of this.#links) link.producer.wakeConsumer();
    return { processed, failed, written };
  }

  /** Whether a batch's mapped readback went with its device (a lost device unmaps it: its views read as empty). */
  #lost(statuses: Uint32Array): boolean {
    if (statuses.length > 0 && this.#failure === undefined) return false;
    this.#fail(this.#failure ?? new WebGpuError('lost', 'writing a batch back', 'its readback was unmapped'));
    return true;
  }

  /**
   * Writes one output frame, waiting for room in the output ring (backpressure reaches the input ring). False when
   * the engine failed before it was written (the frame then stays in the input ring for the host).
   */
  /**
   * Writes one output frame: at once when the ring has room (no Promise: the common case, per message), else
   * through {@link #write}, which waits for room.
   */
  #output(
    producer: FrameProducer,
    codec: MessageCodec<Uint8Array, unknown>,
    payload: Uint8Array,
    correlationId: number,
    error: boolean,
  ): true | Promise<boolean> {
    if (this.#failure === undefined) {
      const envelope = error ? this.#errorEnvelope : this.#envelope;
      envelope.correlationId = correlationId;
      if (producer.tryWrite(codec, payload, envelope)) return true;
    }
    return this.#write(producer, codec, payload, correlationId, error);
  }

  async #write(
    producer: FrameProducer,
    codec: MessageCodec<Uint8Array, unknown>,
    payload: Uint8Array,
    correlationId: number,
    error: boolean,
  ): Promise<boolean> {
    const envelope = error ? this.#errorEnvelope : this.#envelope;
    let bytes = payload;
    try {
      while (this.#failure === undefined) {
        envelope.correlationId = correlationId;
        if (producer.tryWrite(codec, bytes, envelope)) return true;
        // Waiting (rare: the ring is full), on a copy: a device lost meanwhile unmaps the readback it lies in.
        if (bytes === payload) bytes = payload.slice();
        this.#roomWaitSince ??= performance.now();
        producer.wakeConsumer();
        await producer.waitForSpaceAsync(((payload.length + 7) & ~7) + 128, 50);
      }
      return false;
    } finally {
      this.#roomWaitSince = undefined;
    }
  }

  /** Dead-letters every frame still queued in the kernel's inputs (a terminate with discard). */
  #discardQueued(): void {
    this.#inputs.forEach((input, index) => {
      input.drain((frame) => {
        this.#discarded++;
        this.#onDeadLetter?.(discardedLetter(frame, index === 0, this.#kernelId));
      });
    });
  }

  /** A malformed frame in an input ring: counted failed, dead-lettered. */
  readonly #onMalformed = (error: MalformedFrameError): void => {
    this.#failed++;
    this.#onDeadLetter?.(malformedLetter(error));
  };

  #fail(error: WebGpuError): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#wakeSettled();
    this.#interrupt();
    this.#onFailure?.(error);
  }

  /** Waits for every readback still pending to settle, whatever happened before. */
  async #settleReadbacks(): Promise<void> {
    for (const slot of this.#all) {
      if (slot.mapped !== undefined) await slot.mapped.catch(() => {});
      slot.mapped = undefined;
    }
  }

  #destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#wakeSettled();
    this.#metrics?.idle();
    this.#device.removeEventListener('uncapturederror', this.#onUncapturedError);
    for (const slot of this.#all) destroyBatchSlot(slot);
    this.#state?.destroy();
  }
}
