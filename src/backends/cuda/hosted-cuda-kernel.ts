import { ArgumentTypeError, InvalidArgumentError } from '../../errors/argument-errors.js';
import { ErrorCode, ErrorNumber, errorCodeOf } from '../../errors/codes.js';
import { CudaCompileError, CudaDeviceLostError, CudaError } from '../../errors/cuda-errors.js';
import type { ExecutorShell, RunningKernel } from '../../executor/executor-shell.js';
import { type AttachFailure, type AttachTask, serializeError, type TerminationMode } from '../../executor/protocol.js';
import type { AnyKernelDefinition } from '../../kernel/kernel-definition.js';
import { telemetryRingEpoch } from '../../telemetry/telemetry-ring.js';
import { type ControlBlock, TERMINATE_FINISH, TERMINATE_NOW } from '../../wire/control-block.js';
import { wake } from '../../wire/eventcount.js';
import { FrameConsumer } from '../../wire/frame-consumer.js';
import { alignedFrameSize, FrameHeader } from '../../wire/frame-header.js';
import { createFrameRing, type FrameRingMemory } from '../../wire/frame-ring.js';
import { LinkTableOffset, MAX_KERNEL_LINKS } from '../../wire/link-table.js';
import { RingOffset, RingSignalOffset } from '../../wire/ring-signal.js';
import { RouteTableOffset } from '../../wire/route-table.js';
import { STICKY_CU_RESULTS } from './cu-result.js';
import type { CudaDriver } from './driver.js';
import { type CompiledCudaKernel, compileCudaKernel } from './kernel-compiler.js';
import type { PinnedHostMemory } from './pinned-host-memory.js';

const DATA_SEQ = RingSignalOffset.DATA_SEQ >> 2;
/** Why a forced termination ends the kernel Failed (the CPU backend's words). */
const FORCED = 'termination was forced';
const CONSUMER_SLEEPING = RingSignalOffset.CONSUMER_SLEEPING >> 2;
const WRITE = RingOffset.WRITE_INDEX >> 2;
const READ = RingOffset.READ_INDEX >> 2;
const SPACE_SEQ = RingSignalOffset.SPACE_SEQ >> 2;
const PRODUCER_SLEEPING = RingSignalOffset.PRODUCER_SLEEPING >> 2;

/** The dead-letter ring's size, bytes (at least two of the largest input frames). */
const DEAD_LETTER_RING_BYTES = 64 * 1024;
/** How long a checkpoint waits for the device loop to pause between batches, ms. */
const PAUSE_TIMEOUT_MS = 5_000;
/** How often, ms, the device thread asks the driver whether a kernel's launch is still running. */
const STREAM_CHECK_MS = 5;
/** sizeof(rk_frame_slot) in native/cuda/persistent_kernel.cu (static-asserted there). */
const FRAME_SLOT_BYTES = 48;
/** rk_persistent_scratch_bytes in persistent_kernel.cu: the plan, then a slot and two frame copies per entry. */
export function persistentScratchBytes(maxFrameLength: number, batchMax: number): number {
  return 64 + batchMax * (FRAME_SLOT_BYTES + 2 * ((maxFrameLength + 7) & ~7));
}

/** Threads per block when neither the kernel's spec nor the launch says: a GPU warp multiple / one CPU thread. */
const DEFAULT_BLOCK_SIZE = { gpu: 128, emulated: 1 } as const;
const DEFAULT_BATCH_MAX = 64;

/** The frame errors whose frames the device sends back whole (it knows their extent), as `RK_E_*` numbers. */
const RETURNED_FRAME_ERRORS: ReadonlySet<number> = new Set([
  ErrorNumber.FrameBadMagic,
  ErrorNumber.FrameBadVersion,
  ErrorNumber.FramePayloadSizeMismatch,
  ErrorNumber.FrameBadChecksum,
]);

/** The device a CUDA kernel runs on, as the device thread's service sees it. */
export interface CudaDeviceSlot {
  readonly driver: CudaDriver;
  readonly pinned: PinnedHostMemory;
  /** The device's ordinal and its primary context, current on this thread while the kernel's calls run. */
  readonly ordinal: number;
  readonly context: bigint;
  /** `sm_90` for a GPU; undefined for the emulated device (its kernels are host builds). */
  readonly arch: string | undefined;
  readonly cooperativeLaunch: boolean;
  /**
   * The sticky CUDA error that lost the device, once a kernel on it faulted (every kernel of the device fails with
   * it, and nothing more is launched there), else undefined.
   */
  lost: string | undefined;
}

/** What the CUDA attach task carries besides the CPU one (its launch shape; for `dma`, the device replicas). */
export type CudaAttachOptions = NonNullable<AttachTask['cuda']>;

/** What a CUDA attach threw, as the typed details the host rebuilds its error class from. */
export function cudaFailureDetail(error: unknown): Partial<AttachFailure> {
  if (error instanceof CudaDeviceLostError) {
    return { deviceLost: { device: error.device, cudaErrorName: error.cudaErrorName } };
  }
  if (error instanceof CudaCompileError) return { compiler: error.compiler, log: error.log };
  if (error instanceof CudaError) {
    return { operation: error.operation, cudaResult: error.cudaResult, cudaErrorName: error.cudaErrorName };
  }
  return {};
}

/**
 * One CUDA kernel, resident on its device: the persistent-kernel template compiled with the kernel's handler,
 * launched once over the kernel's own SharedArrayBuffer rings and ControlBlock, pinned and mapped into the device
 * (`mapped`: zero copy, the GPU polls the host's input ring and writes the host's output ring in place).
 *
 * The lifecycle actor is the CPU backend's machine, run here on the device thread: its ControlBlock mirror sets
 * `is_active`, which the device loop obeys (paused, not exited). This object also stands in for the GPU where
 * the GPU cannot act on the host: it rings the host's output doorbell when the device has written outputs, and
 * the input ring's room doorbell when the device has taken input (a GPU cannot `Atomics.notify`), turns the device's failure counters into dead letters, and after the device loop has
 * exited dead-letters the input a non-draining termination leaves behind.
 */
export class HostedCudaKernel implements RunningKernel {
  readonly #definition: AnyKernelDefinition;
  readonly #task: AttachTask;
  readonly #shell: ExecutorShell;
  readonly #control: ControlBlock;
  readonly #slot: CudaDeviceSlot;
  readonly #outputIndex: Uint32Array;
  readonly #outputSignal: Int32Array;
  readonly #inputIndex: Uint32Array;
  readonly #inputSignal: Int32Array;
  #lastInputRead = 0;
  readonly #views: Uint8Array[] = [];
  /** The compile: which compiler, from the cache or not. */
  readonly compiled: CompiledCudaKernel;
  #module = 0n;
  #scratch = 0n;
  /** The kernel's device state (`cuda.stateBytes`; 0n when it has none). */
  #state = 0n;
  readonly #stateBytes: number;
  #stream = 0n;
  #lastOutputWrite = 0;
  /** The rk_link_table this instance's device loop reads (pinned, mapped). */
  readonly #linkTable = new SharedArrayBuffer(LinkTableOffset.SIZE);
  /** The rk_route_table this instance's device loop writes outputs by (pinned, mapped). */
  readonly #routeTable = new SharedArrayBuffer(RouteTableOffset.SIZE);
  /**
   * The messages the device's handler failed, sent back whole (DEAD_LETTER frames); this thread consumes it and
   * posts each as a dead letter with its payload.
   */
  readonly #deadLetterRing: FrameRingMemory;
  readonly #deadLetters: FrameConsumer;
  /** Each output link ring: its write index and its consumer's doorbell (the pump rings it for the device). */
  readonly #routeRings: { readonly indices: Uint32Array; readonly wake: Int32Array; lastWrite: number }[] = [];
  /** Each link ring: its read index and doorbell (the pump rings the producer's room doorbell for the device). */
  readonly #linkRings: { readonly indices: Uint32Array; readonly signal: Int32Array; lastRead: number }[] = [];
  #lastStreamCheck = 0;
  #seenFailed = 0n;
  #seenDropped = 0n;
  /**
   * Frames the device would not handle and sent back whole (bad magic, version, size or checksum) whose drops
   * the device's counter has not shown yet: each pairs with one count, which then needs no payload-less letter.
   */
  #returnedUnmatched = 0n;
  /**
   * Why the kernel is failing on purpose: its handler failed and it was launched with `onHandlerError: 'fail'`.
   * The device loop is told to stop between batches, leaving the queue for a restart (or the host's salvage).
   */
  #failing: string | undefined;
  /** Set once the device loop has been told to stop after the message in hand, not to drain. */
  #discardLeftovers: string | undefined;
  #exited = false;
  /** Called once the kernel has left the device (the service stops polling it). */
  onExit: (() => void) | undefined;

  /**
   * Compiles (or takes from the cache), loads, pins and allocates — but does not launch ({@link launch}) and does
   * not touch the ControlBlock or the rings' words: a migration's new instance is built while the old one still
   * owns them. @throws {CudaCompileError | CudaError} having released whatever it had taken.
   */
  constructor(definition: AnyKernelDefinition, shell: ExecutorShell, slot: CudaDeviceSlot, options: CudaAttachOptions) {
    const task = shell.task;
    this.#definition = definition;
    this.#task = task;
    this.#shell = shell;
    this.#slot = slot;
    this.#control = shell.control;
    this.#outputIndex = new Uint32Array(task.output.ring, 0, 2);
    this.#outputSignal = new Int32Array(task.output.signal);
    this.#lastOutputWrite = Atomics.load(this.#outputIndex, WRITE);
    this.#inputIndex = new Uint32Array(task.input.ring, 0, 2);
    this.#inputSignal = new Int32Array(task.input.signal);
    this.#lastInputRead = Atomics.load(this.#inputIndex, READ);
    this.#stateBytes = definition.cuda?.stateBytes ?? 0;
    const deadLetterPayload = task.input.maxPayloadSize;
    this.#deadLetterRing = createFrameRing({
      capacityBytes: Math.max(DEAD_LETTER_RING_BYTES, 2 * alignedFrameSize(deadLetterPayload) + 8),
      maxPayloadSize: deadLetterPayload,
      integrity: task.input.integrity,
    });
    this.#deadLetters = new FrameConsumer(this.#deadLetterRing, { spin: 0 });
    const driver = slot.driver;
    this.compiled = compileCudaKernel(
      definition,
      slot.arch === undefined ? { kind: 'emulated' } : { kind: 'ptx', arch: slot.arch },
    );
    try {
      driver.setCurrentContext(slot.context);
      this.#module = driver.moduleLoadData(this.compiled.image);
      const fn = driver.moduleGetFunction(this.#module, 'rk_persistent_kernel');
      const pin = (buffer: SharedArrayBuffer): bigint => {
        const view = new Uint8Array(buffer);
        const pointer = slot.pinned.pin(view);
        this.#views.push(view);
        return pointer;
      };
      const control = pin(task.controlBlock);
      const input = options.devicePointers?.input ?? pin(task.input.ring);
      const output = options.devicePointers?.output ?? pin(task.output.ring);
      const telemetry = task.tracing === undefined ? 0n : pin(task.tracing.ring);
      // This instance's kernel-to-kernel inputs: empty until LINK_IN fills entries (the loop reads count each round).
      const links = pin(this.#linkTable);
      // And its kernel-to-kernel outputs: empty until LINK_OUT fills entries. Its dead-letter ring, fixed.
      const routes = pin(this.#routeTable);
      const routeTable = new DataView(this.#routeTable);
      routeTable.setBigUint64(RouteTableOffset.DEAD_LETTERS, pin(this.#deadLetterRing.ring), true);
      routeTable.setUint32(RouteTableOffset.DEAD_LETTER_STORAGE, this.#deadLetterRing.ring.byteLength - 8, true);
      const maxFrameLength = FrameHeader.SIZE + Math.max(task.input.maxPayloadSize, task.output.maxPayloadSize);
      const spec = definition.cuda;
      const batchMax = spec?.batchMax ?? DEFAULT_BATCH_MAX;
      const scratchBytes = persistentScratchBytes(maxFrameLength, batchMax);
      this.#scratch = driver.memAlloc(scratchBytes);
      this.#stream = driver.streamCreate();
      // The template expects zeroed scratch (its plan starts empty).
      driver.memsetD8(this.#scratch, 0, scratchBytes);
      if (this.#stateBytes > 0) {
        this.#state = driver.memAlloc(this.#stateBytes);
        driver.memsetD8(this.#state, 0, this.#stateBytes);
      }
      const blockSize =
        options.blockSize > 1
          ? options.blockSize
          : (spec?.blockSize ?? (slot.arch === undefined ? DEFAULT_BLOCK_SIZE.emulated : DEFAULT_BLOCK_SIZE.gpu));
      const gridSize = options.gridSize;
      // Several blocks synchronise grid-wide, which needs every block co-resident: a cooperative launch.
      const cooperative = gridSize > 1;
      if (cooperative && !slot.cooperativeLaunch) {
        throw new CudaError('cuLaunchCooperativeKernel', 801, 'CUDA_ERROR_NOT_SUPPORTED');
      }
      // %globaltimer is the driver's Unix-time clock in ns (the emulated device reads CLOCK_REALTIME): no offset
      // to Unix ns; span times are ns since the telemetry ring's epoch.
      const epochMs = task.tracing === undefined ? 0 : telemetryRingEpoch(task.tracing.ring);
      this.#launchWith = () =>
        driver.launchKernel(
          fn,
          { grid: [gridSize, 1, 1], block: [blockSize, 1, 1], stream: this.#stream, cooperative },
          [
            { type: 'pointer', value: control },
            { type: 'pointer', value: input },
            { type: 'u32', value: task.input.ring.byteLength - 8 },
            { type: 'pointer', value: output },
            { type: 'u32', value: task.output.ring.byteLength - 8 },
            { type: 'pointer', value: telemetry },
            { type: 'pointer', value: this.#scratch },
            { type: 'u32', value: maxFrameLength },
            { type: 'u32', value: batchMax },
            { type: 'i64', value: 0n },
            { type: 'i64', value: -BigInt(Math.round(epochMs)) * 1_000_000n },
            { type: 'pointer', value: this.#state },
            { type: 'pointer', value: links },
            { type: 'pointer', value: routes },
          ],
        );
    } catch (error) {
      this.release();
      throw error;
    }
  }

  /** Launches the persistent loop (set up by the constructor). */
  #launchWith: (() => void) | undefined;

  /**
   * Starts the lifecycle (Launched) and the persistent loop, resuming the rings where they stand: from here on
   * the kernel owns its rings and ControlBlock.
   */
  launch(): this {
    this.#lastOutputWrite = Atomics.load(this.#outputIndex, WRITE);
    this.#lastInputRead = Atomics.load(this.#inputIndex, READ);
    // The counters carry on across a kernel's instances (restarts, migrations): only what this one adds is new.
    this.#seenFailed = this.#control.messagesFailed;
    this.#seenDropped = this.#control.messagesDropped;
    this.#slot.driver.setCurrentContext(this.#slot.context);
    this.#shell.launched();
    (this.#launchWith as () => void)();
    return this;
  }

  /** Fills the device state from a checkpoint's bytes (a restore at launch, or a migration's RESTORE). */
  restoreState(bytes: Uint8Array): void {
    if (bytes.byteLength !== this.#stateBytes) {
      throw new ArgumentTypeError(
        'bytes',
        `kernel '${this.#definition.id}': the checkpoint's state is ${bytes.byteLength} bytes, its cuda.stateBytes is ${this.#stateBytes}`,
      );
    }
    if (this.#stateBytes === 0) return;
    this.#slot.driver.setCurrentContext(this.#slot.context);
    this.#slot.driver.memcpyHtoD(this.#state, bytes);
  }

  snapshot(): Uint8Array {
    return this.#snapshot();
  }

  abort(): void {
    this.#stopNow(FORCED);
  }

  linkIn(memory: FrameRingMemory): void {
    this.#linkIn(memory);
  }

  linkOut(memory: FrameRingMemory, wake: SharedArrayBuffer, types: readonly number[] | undefined): void {
    this.#linkOut(memory, wake, types);
  }

  /**
   * Terminating leaves is_active 0; the device loop drains anyway once should_terminate is 1 (the host has set
   * it), or stops after the batch in hand at 2 — a termination without draining, which leaves the queue to be
   * dead-lettered here (the host set terminate_discard with the request).
   */
  terminating(mode: TerminationMode): void {
    if (mode === 'discard') this.#discardLeftovers ??= 'the kernel terminated without draining';
  }

  /** The device thread's pump looks at the kernel on its own schedule: nothing is parked on a command. */
  kick(): void {}

  /**
   * Adds a kernel-to-kernel input ring: pinned and mapped with its doorbell, entered in the link table, then
   * published by the table's count (release: the entry's words are visible to a device loop that sees the count).
   */
  #linkIn(memory: FrameRingMemory): void {
    const table = new DataView(this.#linkTable);
    const words = new Uint32Array(this.#linkTable);
    const index = Atomics.load(words, LinkTableOffset.COUNT >> 2);
    if (index >= MAX_KERNEL_LINKS)
      throw new InvalidArgumentError('index', `a CUDA kernel takes at most ${MAX_KERNEL_LINKS} links`);
    const ring = new Uint8Array(memory.ring);
    const signal = new Uint8Array(memory.signal);
    const ringPointer = this.#slot.pinned.pin(ring);
    this.#views.push(ring);
    const signalPointer = this.#slot.pinned.pin(signal);
    this.#views.push(signal);
    table.setBigUint64(LinkTableOffset.RING + 8 * index, ringPointer, true);
    table.setBigUint64(LinkTableOffset.SIGNAL + 8 * index, signalPointer, true);
    table.setUint32(LinkTableOffset.STORAGE + 4 * index, memory.ring.byteLength - 8, true);
    const indices = new Uint32Array(memory.ring, 0, 2);
    this.#linkRings.push({ indices, signal: new Int32Array(memory.signal), lastRead: Atomics.load(indices, READ) });
    Atomics.store(words, LinkTableOffset.COUNT >> 2, index + 1);
  }

  /**
   * Adds a kernel-to-kernel output ring: pinned and mapped, entered in the route table for one message type (or
   * all), then published by the table's count. The consumer's doorbell (`wake`) is rung by the pump for the device.
   */
  #linkOut(memory: FrameRingMemory, wake: SharedArrayBuffer, types: readonly number[] | undefined): void {
    const table = new DataView(this.#routeTable);
    const words = new Uint32Array(this.#routeTable);
    const index = Atomics.load(words, RouteTableOffset.COUNT >> 2);
    if (index >= MAX_KERNEL_LINKS)
      throw new InvalidArgumentError('index', `a CUDA kernel takes at most ${MAX_KERNEL_LINKS} output links`);
    if (types !== undefined && types.length !== 1)
      throw new InvalidArgumentError('types', 'a CUDA output link takes one message type');
    const ring = new Uint8Array(memory.ring);
    const ringPointer = this.#slot.pinned.pin(ring);
    this.#views.push(ring);
    table.setBigUint64(RouteTableOffset.RING + 8 * index, ringPointer, true);
    table.setUint32(RouteTableOffset.STORAGE + 4 * index, memory.ring.byteLength - 8, true);
    table.setUint32(RouteTableOffset.TYPE_ID + 4 * index, types?.[0] ?? 0, true);
    const indices = new Uint32Array(memory.ring, 0, 2);
    this.#routeRings.push({ indices, wake: new Int32Array(wake), lastWrite: Atomics.load(indices, WRITE) });
    Atomics.store(words, RouteTableOffset.COUNT >> 2, index + 1);
  }

  /**
   * The kernel's device state, copied back between two batches: the device loop is asked to pause
   * (`pause_request`), and once it says it has (`paused`, with every state write before it visible) the bytes
   * are copied and the loop goes on. A loop stuck in a handler is not waited for past {@link PAUSE_TIMEOUT_MS}.
   */
  #snapshot(): Uint8Array {
    const bytes = new Uint8Array(this.#stateBytes);
    if (this.#stateBytes === 0) return bytes;
    const control = this.#control;
    const running = !control.hasTerminated;
    if (running) {
      control.requestPause(true);
      const deadline = performance.now() + PAUSE_TIMEOUT_MS;
      const nap = new Int32Array(new SharedArrayBuffer(4));
      while (!control.paused && !control.hasTerminated) {
        if (performance.now() > deadline) {
          control.requestPause(false);
          throw new Error(
            `the CUDA kernel did not pause within ${PAUSE_TIMEOUT_MS} ms (a handler that never returns?)`,
          );
        }
        Atomics.wait(nap, 0, 0, 0.05);
      }
    }
    try {
      this.#slot.driver.setCurrentContext(this.#slot.context);
      this.#slot.driver.memcpyDtoH(bytes, this.#state);
    } finally {
      if (running) control.requestPause(false);
    }
    return bytes;
  }

  /** Tells the device loop to exit after the batch in hand; what is left is dead-lettered once it has. */
  #stopNow(why: string): void {
    this.#discardLeftovers ??= why;
    this.#control.requestTermination(TERMINATE_NOW);
  }

  /**
   * One look at the kernel, from the device thread's pump: ring the host's output doorbell if the device wrote,
   * report new device failures, and finish the kernel once the device loop has exited. Returns whether anything
   * happened (the pump stays awake while kernels are busy).
   */
  poll(): boolean {
    if (this.#exited) return false;
    let active = false;
    // Acquire: the frames the device published before this index are visible to whoever we wake.
    const write = Atomics.load(this.#outputIndex, WRITE);
    if (write !== this.#lastOutputWrite) {
      this.#lastOutputWrite = write;
      wake(this.#outputSignal, DATA_SEQ, CONSUMER_SLEEPING);
      active = true;
    }
    // The device freed input room: a host sender parked on a full queue may go on.
    const read = Atomics.load(this.#inputIndex, READ);
    if (read !== this.#lastInputRead) {
      this.#lastInputRead = read;
      wake(this.#inputSignal, SPACE_SEQ, PRODUCER_SLEEPING);
      active = true;
    }
    // The device wrote into a kernel-to-kernel output: its consumer (parked on its own input doorbell) may go on.
    for (const route of this.#routeRings) {
      const routeWrite = Atomics.load(route.indices, WRITE);
      if (routeWrite === route.lastWrite) continue;
      route.lastWrite = routeWrite;
      wake(route.wake, DATA_SEQ, CONSUMER_SLEEPING);
      active = true;
    }
    // Likewise for kernel-to-kernel producers parked on a full link ring.
    for (const link of this.#linkRings) {
      const linkRead = Atomics.load(link.indices, READ);
      if (linkRead === link.lastRead) continue;
      link.lastRead = linkRead;
      wake(link.signal, SPACE_SEQ, PRODUCER_SLEEPING);
      active = true;
    }
    if (this.#deadLetters.hasData()) {
      this.#drainDeadLetters();
      active = true;
    }
    this.#reportDeviceFailures();
    // A launch that ended without has_terminated faulted on the device (a trap, an illegal address): the stream
    // says so. Asked every few ms, not every poll: a driver call costs more than the ring checks above.
    const now = performance.now();
    if (now - this.#lastStreamCheck >= STREAM_CHECK_MS && !this.#control.hasTerminated) {
      this.#lastStreamCheck = now;
      let ended: boolean;
      try {
        this.#slot.driver.setCurrentContext(this.#slot.context);
        ended = this.#slot.driver.streamQuery(this.#stream);
      } catch {
        ended = true;
      }
      if (ended && !this.#control.hasTerminated) {
        this.#finish();
        return true;
      }
    }
    if (this.#control.hasTerminated) {
      // The host sets should_terminate right after posting its TERMINATE: the device may see the word and exit
      // before the command reaches this thread. Finish once the command has come, with the state it sets.
      const stopping =
        this.#shell.state === 'Terminating' || this.#discardLeftovers !== undefined || this.#failing !== undefined;
      if (!stopping && this.#control.terminationRequest !== 0) return active;
      this.#finish();
      return true;
    }
    return active;
  }

  /**
   * Posts what the device sent back whole as dead letters with their payloads: messages its handler failed, and
   * frames it would not handle (the frame errors).
   */
  #drainDeadLetters(): void {
    this.#deadLetters.drain((frame) => {
      const returned = RETURNED_FRAME_ERRORS.has(frame.errorCode);
      if (returned) this.#returnedUnmatched++;
      this.#reportDeviceLetter(
        returned ? 'malformed-frame' : 'handler-error',
        frame.errorCode,
        returned ? 'the CUDA kernel would not handle this frame' : 'the CUDA handler failed this message',
        frame,
      );
    });
  }

  /**
   * One dead letter for what the device failed: `frame` is what it sent back whole (without one, only the device's
   * counter said so, and the letter has no payload).
   */
  #reportDeviceLetter(
    reason: 'malformed-frame' | 'handler-error',
    errorNumber: number,
    what: string,
    frame?: { messageId: number; correlationId: number; typeId: number; payload: Uint8Array },
  ): void {
    const code = errorCodeOf(errorNumber);
    const error = Object.assign(new Error(`${what}: error ${errorNumber}${code === undefined ? '' : ` (${code})`}`), {
      name: reason === 'handler-error' ? 'CudaHandlerError' : 'CudaFrameError',
      code: reason === 'handler-error' ? ErrorCode.HandlerFailed : (code ?? ErrorCode.KernelFailed),
    });
    this.#shell.deadLetter(reason, error, {
      messageId: frame?.messageId ?? 0,
      correlationId: frame?.correlationId ?? 0,
      typeId: frame?.typeId ?? this.#definition.input.typeId,
      payload: frame?.payload.slice() ?? new Uint8Array(0),
    });
  }

  /** The device counts what its handler failed or dropped; the host's dead-letter stream gets one letter each. */
  #reportDeviceFailures(): void {
    const failed = this.#control.messagesFailed;
    const dropped = this.#control.messagesDropped;
    if (failed === this.#seenFailed && dropped === this.#seenDropped) return;
    // The device puts a returned frame on the dead-letter ring before it publishes the count that covers it: with
    // the count read, the frame is there to drain (so each count finds its frame and is not reported twice).
    if (dropped !== this.#seenDropped) this.#drainDeadLetters();
    const code = this.#control.lastErrorCode;
    // A failed message comes back whole on the output ring (a DEAD_LETTER frame the host turns into the letter);
    // here it only fails the kernel, when it was launched to fail on handler errors.
    if (failed > this.#seenFailed && this.#task.failOnHandlerError && this.#failing === undefined) {
      this.#failing = `its handler failed: the CUDA handler returned error ${code}`;
      this.#control.requestTermination(TERMINATE_FINISH, true);
    }
    const counted = dropped - this.#seenDropped;
    // biome-ignore lint/complexity/useMathMinMax: bigints (Math.min takes numbers only)
    const returned = counted < this.#returnedUnmatched ? counted : this.#returnedUnmatched;
    this.#returnedUnmatched -= returned;
    const newlyDropped = counted - returned;
    this.#seenFailed = failed;
    this.#seenDropped = dropped;
    for (let i = 0n; i < newlyDropped; i++) {
      // A frame the device could not delimit (a bad length: the ring after it is dropped too), a returned frame
      // for which the dead-letter ring had no room, or an output it could not deliver: only counted on the
      // device, so the letter says what happened, without a payload.
      this.#reportDeviceLetter('malformed-frame', code, 'the CUDA kernel dropped a frame');
    }
  }

  /** The device loop has exited: wait for the launch to retire, free, dead-letter leftovers, report the exit. */
  #finish(): void {
    this.#exited = true;
    let failure: string | undefined;
    let deviceLost: string | undefined;
    try {
      this.#slot.driver.setCurrentContext(this.#slot.context);
      this.#slot.driver.streamSynchronize(this.#stream);
    } catch (error) {
      failure = `the CUDA launch ended with ${serializeError(error).message}`;
      // A fault's error is sticky: the device's context is poisoned, for this kernel and every other one on it.
      if (error instanceof CudaError && STICKY_CU_RESULTS.has(error.cudaResult)) {
        this.#slot.lost ??= error.cudaErrorName;
        deviceLost = this.#slot.lost;
      }
    }
    this.#drainDeadLetters();
    if (this.#discardLeftovers !== undefined) {
      this.#discardPending(this.#discardLeftovers);
      // Forced, as on the CPU backend: the kernel ends Failed.
      if (failure === undefined && this.#discardLeftovers === FORCED) failure = FORCED;
    }
    failure ??= this.#failing;
    if (failure === undefined && this.#shell.state !== 'Terminating') {
      failure = `the CUDA kernel exited on its own (last error ${this.#control.lastErrorCode})`;
    }
    // A kernel that failed on the device leaves its batch in hand and its queue unhandled (the device releases
    // input only after handling it, and its handled cursor after publishing the batch's outputs): the host
    // dead-letters them from that cursor once it has the exit report, or keeps them for a restart.
    this.#reportDeviceFailures();
    this.release();
    // The device's own failure is recorded nowhere else (a CPU kernel's handler error was, as it happened).
    if (failure !== undefined) this.#control.recordError(ErrorNumber.KernelFailed);
    this.#shell.exit(failure, deviceLost);
    this.onExit?.();
  }

  /** What the device never took: dead letters (the device has exited, so the host reads the ring now). */
  #discardPending(why: string): void {
    let count = 0;
    const input = new FrameConsumer(this.#task.input, { spin: 0 });
    input.drain((frame) => {
      count++;
      this.#shell.deadLetter('discarded-on-terminate', new Error(why), {
        messageId: frame.messageId,
        correlationId: frame.correlationId,
        typeId: frame.typeId,
        payload: frame.payload.slice(),
      });
    });
    // The device has exited: the host side is now the only writer of the counters and the handled cursor (a host
    // that salvages the queue after a failed exit starts past what was reported here).
    if (count > 0) this.#control.addBatch(count, 0, 0, count);
    this.#control.setHandledCursor(input.cursor);
    this.#seenDropped = this.#control.messagesDropped;
  }

  /** Frees the device resources and unpins the buffers. Safe on a partly built kernel, and twice. */
  release(): void {
    const driver = this.#slot.driver;
    const quietly = (fn: () => void): void => {
      try {
        fn();
      } catch {
        // Freeing after a device fault fails too; the context is torn down with the runtime.
      }
    };
    if (this.#stream !== 0n) quietly(() => driver.streamDestroy(this.#stream));
    if (this.#scratch !== 0n) quietly(() => driver.memFree(this.#scratch));
    if (this.#state !== 0n) quietly(() => driver.memFree(this.#state));
    if (this.#module !== 0n) quietly(() => driver.moduleUnload(this.#module));
    for (const view of this.#views.splice(0)) quietly(() => this.#slot.pinned.unpin(view));
    this.#stream = 0n;
    this.#scratch = 0n;
    this.#state = 0n;
    this.#module = 0n;
  }
}
