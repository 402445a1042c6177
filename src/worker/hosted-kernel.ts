import { ArgumentTypeError } from '../errors/argument-errors.js';
import { ErrorCode, ErrorNumber } from '../errors/codes.js';
import type { MalformedFrameError } from '../errors/frame-errors.js';
import type { ExecutorShell, RunningKernel } from '../executor/executor-shell.js';
import {
  type AttachTask,
  type DeadLetterReason,
  ERROR_REPLY_MAX_BYTES,
  ERROR_REPLY_TYPE_ID,
  serializeError,
  type TerminationMode,
} from '../executor/protocol.js';
import type { AnyKernelDefinition, KernelContext } from '../kernel/kernel-definition.js';
import { LATENCY_HISTOGRAM_BYTES, LatencyHistogram } from '../kernel/latency-histogram.js';
import { snapshotState } from '../kernel/state-codec.js';
import { KernelSpanWriter } from '../telemetry/kernel-span-writer.js';
import { type ControlBlock, TERMINATE_FINISH, TERMINATE_NOW } from '../wire/control-block.js';
import type { Envelope } from '../wire/envelope.js';
import { spinFor, waitUntilAsync } from '../wire/eventcount.js';
import { FrameConsumer } from '../wire/frame-consumer.js';
import { alignedFrameSize, FrameFlags } from '../wire/frame-header.js';
import { FrameProducer } from '../wire/frame-producer.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';
import type { FrameView } from '../wire/frame-view.js';
import { HybridLogicalClock, wallClockUs } from '../wire/hlc.js';
import { BytesMessage, type MessageCodec } from '../wire/message-schema.js';
import { RingSignalOffset } from '../wire/ring-signal.js';
import { type FusedLinkConsumer, linkConsumer, registerLinkConsumer, unregisterLinkConsumer } from './fused-links.js';

/** Frames handled per batch before the kernel yields its worker to other kernels and to control messages. */
const BATCH = 256;
/**
 * How long a kernel that just ran out of input spins for more before parking, in ms. Long enough to bridge a
 * caller's turnaround between calls (parking costs a futex wake-up, 10–50 µs); short, because other kernels
 * share this worker's event loop.
 */
const SPIN_MS = 0.05;
/** Handler latency is timed on one message in this many (timing costs two clock reads). */
const SAMPLE_EVERY = 8;

const ErrorReply: MessageCodec<Uint8Array, Uint8Array> = {
  ...BytesMessage,
  name: 'error-reply',
  typeId: ERROR_REPLY_TYPE_ID,
};
const encoder = new TextEncoder();

const NO_RESPONSE = encoder.encode(
  JSON.stringify({ name: 'NoResponse', message: 'the handler returned nothing, so the call has no response' }),
);

/** The error a handler threw, as JSON of at most {@link ERROR_REPLY_MAX_BYTES}: the stack goes first, then text. */
function errorReplyBody(error: unknown): Uint8Array {
  const { name, message, code, stack } = serializeError(error);
  for (const candidate of [
    { name, message, code, stack },
    { name, message, code },
  ]) {
    const body = encoder.encode(JSON.stringify(candidate));
    if (body.length <= ERROR_REPLY_MAX_BYTES) return body;
  }
  return encoder.encode(
    JSON.stringify({ name: name.slice(0, 64), message: message.slice(0, ERROR_REPLY_MAX_BYTES / 4), code }),
  );
}
const DATA_SEQ = RingSignalOffset.DATA_SEQ >> 2;
const CONSUMER_SLEEPING = RingSignalOffset.CONSUMER_SLEEPING >> 2;
const HANDLED_CURSOR = RingSignalOffset.HANDLED_CURSOR >> 2;
const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** An output the ring had no room for, encoded and held in order until it does. */
interface HeldOutput {
  readonly target: FrameProducer;
  readonly codec: MessageCodec<Uint8Array, unknown>;
  readonly bytes: Uint8Array;
  readonly envelope: Envelope;
}

/** A kernel-to-kernel output: a ring into another kernel, the message types routed to it, and the link's id. */
interface OutputLink {
  readonly producer: FrameProducer;
  readonly types: ReadonlySet<number> | undefined;
  readonly link: number | undefined;
}

/**
 * One kernel, resident in a worker: its lifecycle actor, its consumer loop and its handler. The loop drains the
 * input ring in batches, calls the handler once per frame with a zero-copy view, publishes counters once per
 * batch, and parks with `Atomics.waitAsync` when idle (no CPU, no timer wake-ups). Many HostedKernels share a
 * worker; each yields the event loop after every full batch.
 */
export class HostedKernel implements RunningKernel, FusedLinkConsumer {
  readonly #definition: AnyKernelDefinition;
  readonly #handler: NonNullable<AnyKernelDefinition['cpu']>;
  readonly #task: AttachTask;
  readonly #shell: ExecutorShell;
  readonly #control: ControlBlock;
  readonly #histogram: LatencyHistogram;
  /** Kernel-to-kernel hops into this kernel: sender's batch stamp to this batch, sampled with the handler's. */
  readonly #hops: LatencyHistogram;
  readonly #input: FrameConsumer;
  readonly #inputSignal: Int32Array;
  readonly #output: FrameProducer;
  readonly #clock: HybridLogicalClock;
  readonly #context: KernelContext<unknown, unknown>;
  readonly #held: HeldOutput[] = [];
  /** Every ring this kernel consumes: its own input first, then kernel-to-kernel links, drained in turn. */
  readonly #inputs: FrameConsumer[] = [];
  readonly #links: OutputLink[] = [];
  /** The index in {@link HostedKernel.#inputs} of each kernel-to-kernel link this kernel consumes, by link id. */
  readonly #linkIndex = new Map<number, number>();
  /** Handling frames now (a batch of its own loop, or a fused one): a producer on this thread must not nest one. */
  #busy = false;
  /** A fused batch (run on a producer's turn) failed outside any handler: the kernel's own loop fails with it. */
  #fusedFailure: { readonly error: unknown } | undefined;
  /** Which input the next batch starts with (fair merging of fan-in). */
  #nextInput = 0;
  /** Set by a control command, so a park ends and the loop looks at the new state. */
  #kicked = false;
  readonly #anyInput = (): boolean => {
    if (this.#kicked) return true;
    for (const input of this.#inputs) if (input.hasData()) return true;
    return false;
  };
  /** The handled-cursor word of each input ring's doorbell, index for index with {@link HostedKernel.#inputs}. */
  readonly #handledCursors: Int32Array[] = [];
  /** The link ring being drained and its handled-cursor word (set before each link's share of a batch). */
  #linkInput: FrameConsumer | undefined;
  #linkCursor: Int32Array;
  /** Handles a frame from a kernel-to-kernel link, then records how far that link's handling got. */
  readonly #onLinkFrame = (frame: FrameView): boolean => {
    this.#handle(frame);
    const input = this.#linkInput as FrameConsumer;
    const cursor = input.cursor;
    if (this.#held.length > 0) {
      input.holdCurrentFrame();
      this.#heldCursor = { word: this.#linkCursor, cursor, input };
      return false;
    }
    // Release store, read by a host that takes the ring over if this worker dies (see RingSignal HANDLED_CURSOR).
    Atomics.store(this.#linkCursor, HANDLED_CURSOR, cursor);
    return this.#batchGoesOn();
  };
  /**
   * A frame counts as handled once its outputs are in their rings, not while they are held for room: if the
   * worker died meanwhile, the next instance handles the frame again rather than its outputs being lost. So the
   * batch stops at the first frame whose output is held, and its cursor is stored when the held outputs are out.
   */
  #heldCursor:
    | { readonly word: Int32Array | undefined; readonly cursor: number; readonly input: FrameConsumer }
    | undefined;
  /** The error of a handler that threw when the kernel fails on handler errors; ends the kernel's loop. */
  #crash: { readonly error: unknown } | undefined;
  /** A TERMINATE that leaves queued input in the rings for the kernel's next instance (a supervisor restart). */
  #keepQueued = false;
  readonly #telemetry: boolean;
  /** Processing spans of sampled messages; undefined when tracing is off (one check per message). */
  readonly #spans: KernelSpanWriter | undefined;
  #wakeControl: (() => void) | undefined;
  #aborted = false;
  #received = 0;
  /** Of the frames received since the last publish, those a fused link's producer had this kernel handle. */
  #fusedFrames = 0;
  #processed = 0;
  #failed = 0;
  #dropped = 0;
  #sample = 0;
  /** Handles one frame; ends the batch early (false) once the host has asked the kernel to stop. */
  readonly #onFrame = (frame: FrameView): boolean => {
    this.#handle(frame);
    if (this.#held.length > 0) {
      this.#input.holdCurrentFrame();
      this.#heldCursor = { word: undefined, cursor: this.#input.cursor, input: this.#input };
      return false;
    }
    // Where a host would resume if this worker died before the batch's read index is published.
    this.#control.setHandledCursor(this.#input.cursor);
    return this.#batchGoesOn();
  };

  /** False once the host has asked the kernel to stop (between messages, so a batch in progress ends early). */
  #batchGoesOn(): boolean {
    if (this.#crash !== undefined) return false;
    const request = this.#control.terminationRequest;
    return request === 0 || (request === TERMINATE_FINISH && this.#draining);
  }
  #draining = false;
  /** Wall clock (µs) read once per batch: the HLC merges with it instead of reading the clock per message. */
  #batchWallUs = wallClockUs();
  #lastBeatUs = 0;
  readonly #replyEnvelope: Envelope = { correlationId: 0, source: 0, flags: FrameFlags.RESPONSE };

  /** `restored`: the state a checkpoint carried, used instead of the definition's `init()`. */
  constructor(definition: AnyKernelDefinition, shell: ExecutorShell, restored?: { readonly state: unknown }) {
    this.#definition = definition;
    if (definition.cpu === undefined) {
      // The runtime places CUDA-only kernels on CUDA devices; reaching here is a placement bug, said plainly.
      throw new TypeError(`kernel '${definition.id}' has no cpu handler, so a CPU worker cannot host it`);
    }
    this.#handler = definition.cpu;
    const task = shell.task;
    this.#task = task;
    this.#shell = shell;
    this.#control = shell.control;
    const histograms = task.histogramOffset ?? 0;
    this.#histogram = new LatencyHistogram(task.histogram, histograms);
    this.#hops = new LatencyHistogram(task.histogram, histograms + LATENCY_HISTOGRAM_BYTES);
    this.#telemetry = task.enableTelemetry;
    this.#spans = task.tracing === undefined ? undefined : new KernelSpanWriter(task.tracing, task.instanceId);
    // Outputs are stamped with the wall clock read once per batch (like receives), not once per frame: the HLC
    // stays monotone and causal (its logical counter orders a batch), and the clock read leaves the hot path.
    this.#clock = new HybridLogicalClock(task.instanceId, { now: () => this.#batchWallUs });
    this.#input = new FrameConsumer(task.input, { spin: 0, onMalformed: (error) => this.#malformed(error) });
    this.#output = new FrameProducer(task.output, { clock: this.#clock, spin: 2048, deferWake: true });
    this.#inputs.push(this.#input);
    this.#inputSignal = new Int32Array(task.input.signal);
    this.#handledCursors.push(this.#inputSignal);
    // Set before each link's share of a batch; a kernel without links never reads it (no buffer of its own).
    this.#linkCursor = this.#inputSignal;
    this.#replyEnvelope.source = task.instanceId;
    const kernel = this;
    this.#context = {
      kernelId: definition.id,
      instanceId: task.instanceId,
      state: restored === undefined ? definition.init?.() : restored.state,
      clock: this.#clock,
      envelope: undefined as unknown as FrameView,
      emit(message: unknown, as?: MessageCodec<unknown, unknown>): void {
        kernel.#emit(message, 0, 0, false, as === undefined ? definition.output : kernel.#emittable(as));
      },
    };
  }

  /** Starts the lifecycle (Created → Launched) and the consumer loop. */
  start(): this {
    this.#shell.launched();
    this.#control.beat(wallClockUs());
    void this.#run();
    return this;
  }

  snapshot(): Uint8Array {
    return snapshotState(this.#definition, this.#context.state);
  }

  abort(): void {
    this.#aborted = true;
  }

  linkIn(memory: FrameRingMemory, link: number | undefined): void {
    this.#inputs.push(new FrameConsumer(memory, { spin: 0, onMalformed: (error) => this.#malformed(error) }));
    this.#handledCursors.push(new Int32Array(memory.signal));
    if (link === undefined) return;
    this.#linkIndex.set(link, this.#inputs.length - 1);
    registerLinkConsumer(link, this);
  }

  linkOut(
    memory: FrameRingMemory,
    wake: SharedArrayBuffer,
    types: readonly number[] | undefined,
    link: number | undefined,
  ): void {
    const producer = new FrameProducer(memory, { clock: this.#clock, spin: 2048, alsoWake: wake, deferWake: true });
    this.#links.push({ producer, types: types === undefined ? undefined : new Set(types), link });
  }

  /**
   * A fused link: its producer, on this thread, has just written into link `link`'s ring and has this kernel
   * handle what is queued there now, on its turn, as one batch of this kernel's own (handled cursors, counters,
   * spans, dead letters as ever). Unless this kernel cannot take input now (not active, stopping, its outputs held
   * for room, in a batch already): then its own loop takes the frames, as on any link.
   */
  drainLink(link: number): boolean {
    const index = this.#linkIndex.get(link);
    if (index === undefined) return false;
    const input = this.#inputs[index] as FrameConsumer;
    if (
      this.#busy ||
      this.#held.length > 0 ||
      this.#crash !== undefined ||
      this.#fusedFailure !== undefined ||
      this.#aborted ||
      this.#control.terminationRequest !== 0 ||
      this.#shell.state !== 'Active'
    ) {
      return !input.hasData();
    }
    this.#batchWallUs = wallClockUs();
    const control = this.#control;
    this.#busy = true;
    control.setDrainingInput(index + 1);
    this.#linkInput = input;
    this.#linkCursor = this.#handledCursors[index] as Int32Array;
    try {
      this.#fusedFrames += input.drain(this.#onLinkFrame, BATCH);
    } catch (error) {
      // Not the producer's failure: this kernel's loop fails with it, as if its own batch had thrown.
      this.#fusedFailure = { error };
    } finally {
      control.setDrainingInput(0);
      this.#busy = false;
    }
    this.#publish();
    // Its handler failed the kernel, its outputs wait for room, or it is to stop: its own loop must look now.
    if (this.#fusedFailure !== undefined || this.#held.length > 0 || !this.#batchGoesOn()) this.kick();
    return !input.hasData();
  }

  terminating(mode: TerminationMode): void {
    this.#keepQueued = mode === 'keep';
  }

  /** Whatever the loop is parked on, make it look at the new state. */
  kick(): void {
    this.#kicked = true;
    this.#input.interrupt();
    this.#wakeControl?.();
  }

  /**
   * The handler that failed the kernel had its outputs held for room (a linked kernel's full ring, say). Its
   * message is a dead letter already, so the frame counts as handled: the next instance must not handle it again
   * (a second dead letter, a second crash). Its held outputs will never be written: those it emitted before it
   * threw are dead letters; its error reply is not, since the message's own dead letter answers the waiting call
   * and reports the failure.
   */
  #settleCrashedFrame(): void {
    const pending = this.#heldCursor;
    if (pending === undefined) return;
    this.#heldCursor = undefined;
    for (const held of this.#held.splice(0)) {
      if (held.codec.typeId === ERROR_REPLY_TYPE_ID) continue;
      this.#heldLetter(held, new Error('the kernel failed on its handler error before this output had room'));
    }
    if (pending.word === undefined) this.#control.setHandledCursor(pending.cursor);
    else Atomics.store(pending.word, HANDLED_CURSOR, pending.cursor);
    pending.input.releaseHeld();
  }

  async #run(): Promise<void> {
    let reason: string | undefined;
    try {
      for (;;) {
        // A command's kick has done its job once the loop is back here to look at the state.
        this.#kicked = false;
        const state = this.#shell.state;
        if (this.#fusedFailure !== undefined) throw this.#fusedFailure.error;
        if (this.#crash !== undefined) {
          reason = `its handler failed: ${serializeError(this.#crash.error).message}`;
          this.#settleCrashedFrame();
          break;
        }
        if (this.#aborted) {
          this.#discardPending('termination was forced');
          reason = 'termination was forced';
          break;
        }
        if (state === 'Terminating') {
          await this.#finish();
          break;
        }
        if (state === 'Failed' || state === 'Terminated') break;
        if (this.#control.terminationRequest === TERMINATE_NOW) {
          this.#aborted = true;
          continue;
        }
        if (state === 'Active' && this.#control.terminationRequest === 0) {
          if (!this.#flushHeld()) {
            await this.#waitForHeldRoom();
            continue;
          }
          const handled = this.#drainInputs();
          this.#publish();
          if (handled >= BATCH) await yieldTurn();
          else if (handled === 0 && !(this.#justHandled && this.#spinForData())) await this.#park();
          this.#justHandled = handled > 0;
          continue;
        }
        // Launched or Deactivated (or a termination request whose command is on its way): input waits in its
        // ring, in order, until the next command.
        await new Promise<void>((resolve) => {
          this.#wakeControl = resolve;
        });
        this.#wakeControl = undefined;
      }
    } catch (error) {
      reason = `kernel loop failed: ${serializeError(error).message}`;
    }
    // No producer on this thread hands this instance frames any more (a next one registers again).
    for (const link of this.#linkIndex.keys()) unregisterLinkConsumer(link, this);
    this.#lastBeatUs = 0;
    this.#publish();
    this.#control.setInFlight(0);
    this.#shell.exit(reason);
  }

  /** Terminating: handle (drain) or dead-letter what is queued, then Terminated. */
  async #finish(): Promise<void> {
    const drain = this.#shell.draining;
    this.#draining = drain;
    if (this.#keepQueued) {
      // A restart: the queued input stays for the next instance; outputs already made must still go out.
      while (!this.#flushHeld()) {
        if (this.#aborted || this.#control.terminationRequest === TERMINATE_NOW) {
          this.#discardPending('termination was forced');
          throw new Error('termination was forced');
        }
        await this.#waitForHeldRoom();
      }
    } else if (!drain) {
      this.#discardPending('the kernel terminated without draining');
    } else {
      for (;;) {
        if (this.#aborted || this.#control.terminationRequest === TERMINATE_NOW) {
          this.#discardPending('termination was forced');
          throw new Error('termination was forced');
        }
        if (!this.#flushHeld()) {
          await this.#waitForHeldRoom();
          continue;
        }
        const handled = this.#drainInputs();
        this.#publish();
        if (this.#crash !== undefined) throw this.#crash.error;
        if (handled === 0 && this.#held.length === 0) break;
        await yieldTurn();
      }
    }
    this.#shell.drained();
  }

  /**
   * Whether the loop's last look at its inputs found frames. Only a kernel that has just handled some spins for
   * more before it parks: one that found none (just activated, or woken by a command) parks at once, so bringing
   * up thousands of kernels does not cost a spin each on their worker.
   */
  #justHandled = false;

  /**
   * Spins briefly, synchronously, for the next frame: a busy kernel then goes on without a Promise or an event
   * loop turn. Only then does it park (the consumer itself does not spin again).
   */
  #spinForData(): boolean {
    return spinFor(this.#anyInput, SPIN_MS);
  }

  /**
   * One batch over every input ring, starting with a different one each time (fair fan-in): up to BATCH frames
   * shared between them. Returns how many frames were handled.
   */
  #drainInputs(): number {
    this.#busy = true;
    try {
      return this.#drainEachInput();
    } finally {
      this.#busy = false;
    }
  }

  #drainEachInput(): number {
    const inputs = this.#inputs;
    const count = inputs.length;
    const control = this.#control;
    if (count === 1) {
      control.setDrainingInput(1);
      const handled = this.#input.drain(this.#onFrame, BATCH);
      control.setDrainingInput(0);
      return handled;
    }
    const share = Math.ceil(BATCH / count);
    const first = this.#nextInput;
    this.#nextInput = (first + 1) % count;
    let handled = 0;
    for (let k = 0; k < count; k++) {
      const index = (first + k) % count;
      const input = inputs[index] as FrameConsumer;
      control.setDrainingInput(index + 1);
      if (index === 0) {
        handled += input.drain(this.#onFrame, share);
      } else {
        this.#linkInput = input;
        this.#linkCursor = this.#handledCursors[index] as Int32Array;
        handled += input.drain(this.#onLinkFrame, share);
      }
      // An output is waiting for room (take no more input), or the kernel is stopping.
      if (this.#held.length > 0 || !this.#batchGoesOn()) break;
    }
    control.setDrainingInput(0);
    return handled;
  }

  /** Parks on the own input ring's doorbell, which every link producer also rings; a command ends it too. */
  async #park(): Promise<void> {
    this.#kicked = false;
    const signal = this.#inputSignal;
    // No keep-alive timer per parked kernel: the pool's task port holds a kernel worker's event loop.
    await waitUntilAsync(
      signal,
      DATA_SEQ,
      CONSUMER_SLEEPING,
      this.#anyInput,
      Number.POSITIVE_INFINITY,
      0,
      undefined,
      false,
    );
    // The batch wall clock went stale while parked.
    this.#batchWallUs = wallClockUs();
  }

  async #waitForHeldRoom(): Promise<void> {
    const head = this.#held[0];
    if (head !== undefined) await head.target.waitForSpaceAsync(alignedFrameSize(head.bytes.length), 50);
  }

  #discardPending(why: string): void {
    // The frame whose outputs were held is discarded with them: its room goes back to the producer.
    this.#heldCursor?.input.releaseHeld();
    this.#heldCursor = undefined;
    // Outputs still held for a full ring will never be written now: they are dead letters too.
    for (const held of this.#held.splice(0)) {
      this.#heldLetter(held, new Error(`${why}: an output of this kernel could not be delivered`));
    }
    for (const input of this.#inputs) {
      input.drain((frame) => {
        this.#received++;
        this.#dropped++;
        this.#deadLetter('discarded-on-terminate', frame, new Error(why));
      });
    }
    // Reported: a host that salvages the queue after a failed exit starts past them.
    this.#control.setHandledCursor(this.#input.cursor);
    this.#publish();
  }

  #handle(frame: FrameView): void {
    this.#received++;
    const sample = this.#telemetry && ++this.#sample === SAMPLE_EVERY;
    const started = sample ? performance.now() : 0;
    // Sampled (tracing on and the frame's sampled flag set): outputs written meanwhile carry this span's context.
    const spans = this.#spans;
    const traced = spans?.begin(frame, this.#replyEnvelope) === true;
    let errorNumber = 0;
    try {
      this.#clock.receive(frame.hlcPhysicalUs, frame.hlcLogical, this.#batchWallUs);
      const message = frame.decode(this.#definition.input);
      const context = this.#context as { envelope: FrameView };
      context.envelope = frame;
      const result = this.#handler(message, this.#context);
      if (traced) spans?.stop();
      if (result !== undefined) {
        this.#emit(result, frame.messageId, FrameFlags.RESPONSE, (frame.flags & FrameFlags.REQUEST) !== 0);
      } else if (frame.flags & FrameFlags.REQUEST) {
        // A call waits for an answer that will never come: say so now rather than at the caller's timeout.
        this.#write(ErrorReply, NO_RESPONSE, frame.messageId, FrameFlags.RESPONSE | FrameFlags.ERROR);
      }
      this.#processed++;
    } catch (error) {
      this.#failed++;
      errorNumber = ErrorNumber.HandlerFailed;
      this.#control.recordError(ErrorCode.HandlerFailed);
      this.#deadLetter('handler-error', frame, error);
      // Let it crash: the message is a dead letter already; the kernel stops after it, for a supervisor to restart.
      if (this.#task.failOnHandlerError) this.#crash ??= { error };
      if (frame.flags & FrameFlags.REQUEST) {
        // The caller is waiting: answer with the error, cut to fit the output ring's room for error replies.
        this.#write(ErrorReply, errorReplyBody(error), frame.messageId, FrameFlags.RESPONSE | FrameFlags.ERROR);
      }
    }
    if (traced) spans?.end(frame, this.#replyEnvelope, errorNumber);
    if (sample) {
      this.#sample = 0;
      this.#histogram.record((performance.now() - started) * 1e6);
      // From another kernel (source ≠ host): its batch stamped the frame's HLC time, this batch's wall clock took
      // it; µs resolution, no extra clock read.
      if (frame.source !== 0) this.#hops.record(Math.max(0, this.#batchWallUs - frame.hlcPhysicalUs) * 1000);
    }
  }

  /**
   * An output of the handler. Answers to a call go back to the host, whoever else is linked; other outputs go to
   * the kernel-to-kernel links whose types match (every one of them: fan-out), or to the host when none does.
   */
  /** A codec the handler may emit with: the output type or one of `emits`. */
  #emittable(codec: MessageCodec<unknown, unknown>): MessageCodec<unknown, unknown> {
    if (codec === this.#definition.output || this.#definition.emits?.includes(codec)) return codec;
    throw new ArgumentTypeError(
      'as',
      `kernel '${this.#definition.id}' cannot emit ${codec?.name}: it is neither its output type nor listed in emits`,
    );
  }

  #emit(
    message: unknown,
    correlationId: number,
    flags: number,
    toHost = false,
    codec: MessageCodec<unknown, unknown> = this.#definition.output,
  ): void {
    if (!toHost && this.#links.length > 0) {
      let routed = false;
      for (const link of this.#links) {
        if (link.types !== undefined && !link.types.has(codec.typeId)) continue;
        routed = true;
        this.#writeTo(link.producer, codec, message, correlationId, flags);
      }
      if (routed) return;
    }
    this.#writeTo(this.#output, codec, message, correlationId, flags);
  }

  #write(codec: MessageCodec<unknown, unknown>, message: unknown, correlationId: number, flags: number): void {
    this.#writeTo(this.#output, codec, message, correlationId, flags);
  }

  #writeTo(
    target: FrameProducer,
    codec: MessageCodec<unknown, unknown>,
    message: unknown,
    correlationId: number,
    flags: number,
  ): void {
    const envelope = this.#replyEnvelope;
    envelope.correlationId = correlationId;
    envelope.flags = flags;
    // A fused link's full ring is not drained here, inside this kernel's batch: the output is held and the batch
    // ends, and the consumer takes the queue after it (#wakeConsumers). So only one kernel of a worker is ever
    // inside a batch, which a worker's death (the frame in hand) and a stuck handler's recovery rely on.
    if (this.#held.length === 0 && target.tryWrite(codec, message, envelope)) return;
    // No room (or older outputs still waiting): hold an encoded copy, in order; the loop stops taking input
    // until the held outputs are written. Nothing is dropped; backpressure reaches whoever feeds this kernel.
    const size = codec.encodedSize(message);
    const bytes = new Uint8Array(size);
    codec.encodeInto(new DataView(bytes.buffer), bytes, 0, message);
    this.#held.push({
      target,
      codec: { ...BytesMessage, name: codec.name, typeId: codec.typeId },
      bytes,
      envelope: {
        correlationId,
        source: this.#task.instanceId,
        flags,
        // The trace context is the handler's scratch: keep a copy for the held frame.
        traceId: envelope.traceId?.slice(),
        spanId: envelope.spanId?.slice(),
        traceFlags: envelope.traceFlags ?? 0,
      },
    });
  }

  /** Writes held outputs while there is room; true when none are left. */
  /** Wakes the consumers of this kernel's outputs (the host, linked kernels) that sleep: once per batch. */
  #wakeConsumers(): void {
    this.#output.wakeConsumer();
    const links = this.#links;
    if (links.length === 0) return;
    // Busy meanwhile: a cycle of fused links leads back here, where this kernel takes no batch (its loop will).
    const busy = this.#busy;
    this.#busy = true;
    try {
      for (const link of links) {
        // A consumer on this thread handles the batch now (a fused link); its own loop is woken only if it did not.
        const id = link.link;
        const consumer = id === undefined ? undefined : linkConsumer(id);
        if (consumer?.drainLink(id as number) === true) link.producer.consumerCaughtUp();
        else link.producer.wakeConsumer();
      }
    } finally {
      this.#busy = busy;
    }
  }

  #flushHeld(): boolean {
    const held = this.#held;
    while (held.length > 0) {
      const next = held[0] as HeldOutput;
      if (!next.target.tryWrite(next.codec, next.bytes, next.envelope)) {
        this.#wakeConsumers(); // what did go out must be read for room to come
        return false;
      }
      held.shift();
    }
    const pending = this.#heldCursor;
    if (pending !== undefined) {
      // Its outputs are out: the frame that made them is handled now, and its room the producer's again.
      this.#heldCursor = undefined;
      if (pending.word === undefined) this.#control.setHandledCursor(pending.cursor);
      else Atomics.store(pending.word, HANDLED_CURSOR, pending.cursor);
      pending.input.releaseHeld();
    }
    return true;
  }

  /**
   * After each batch: publishes the batch's counters, and — at most once a millisecond, since each costs BigInt
   * conversions — the heartbeat and the HLC. Also reads the wall clock the next batch stamps its messages with.
   */
  #publish(): void {
    this.#wakeConsumers();
    const control = this.#control;
    control.addBatch(this.#received, this.#processed, this.#failed, this.#dropped);
    control.addFused(this.#fusedFrames);
    this.#received = this.#processed = this.#failed = this.#dropped = this.#fusedFrames = 0;
    const now = wallClockUs();
    this.#batchWallUs = now;
    if (now - this.#lastBeatUs >= 1000) {
      this.#lastBeatUs = now;
      control.beat(now);
      control.publishHlc(this.#clock.physicalUs, this.#clock.logical);
    }
  }

  #malformed(error: MalformedFrameError): void {
    this.#dropped++;
    this.#control.recordError(error.code);
    this.#shell.deadLetter('malformed-frame', error, {
      messageId: 0,
      correlationId: 0,
      typeId: 0,
      payload: error.bytes,
    });
  }

  /** An output that was held for room and will never be written. */
  #heldLetter(held: HeldOutput, error: Error): void {
    this.#shell.deadLetter('discarded-on-terminate', error, {
      messageId: 0,
      correlationId: held.envelope.correlationId ?? 0,
      typeId: held.codec.typeId,
      payload: held.bytes,
    });
  }

  #deadLetter(reason: DeadLetterReason, frame: FrameView, error: unknown): void {
    // Only the host's calls are requests (kernel-to-kernel frames never are, and their ids are another
    // producer's): the host answers the call by this letter.
    this.#shell.deadLetter(
      reason,
      error,
      {
        messageId: frame.messageId,
        correlationId: frame.correlationId,
        typeId: frame.typeId,
        payload: frame.payload.slice(),
      },
      (frame.flags & FrameFlags.REQUEST) !== 0,
    );
  }
}
