import { InvalidArgumentError } from '../errors/argument-errors.js';
import { ErrorCode, type ErrorCodeString, errorNumberOf } from '../errors/codes.js';
import { KernelStatus, type KernelStatusCode } from './kernel-status.js';
import { defineStructLayout } from './struct-layout.js';

/**
 * Byte offsets of a kernel's ControlBlock: 128 bytes in a SharedArrayBuffer (and, for CUDA, in mapped device
 * memory). Every field has exactly one writer (see {@link CONTROL_BLOCK_LAYOUT}); readers load with acquire
 * semantics (`Atomics.load`), writers store with release semantics (`Atomics.store`). Nobody ever rewrites the
 * whole block: RingKernel's host does, and loses the device's concurrent updates.
 */
export const ControlBlockOffset = {
  STATUS: 0,
  IS_ACTIVE: 4,
  SHOULD_TERMINATE: 8,
  HAS_TERMINATED: 12,
  MESSAGES_RECEIVED: 16,
  MESSAGES_PROCESSED: 24,
  MESSAGES_FAILED: 32,
  MESSAGES_DROPPED: 40,
  HEARTBEAT_US: 48,
  HLC_PHYSICAL_US: 56,
  HLC_LOGICAL: 64,
  HLC_NODE: 68,
  MESSAGES_IN_FLIGHT: 72,
  LAST_ERROR_CODE: 76,
  ERROR_COUNT: 80,
  KERNEL_ID: 84,
  GENERATION: 88,
  LAYOUT_VERSION: 92,
  HANDLED_CURSOR: 96,
  DRAINING_INPUT: 100,
  TERMINATE_DISCARD: 104,
  PAUSE_REQUEST: 108,
  PAUSED: 112,
  INTEGRITY: 116,
  MESSAGES_FUSED: 120,
  SIZE: 128,
} as const;

/** `should_terminate`: finish the message in hand, then drain or discard the queue as the command says. */
export const TERMINATE_FINISH = 1;
/** `should_terminate`: forced — stop after the message in hand and discard the rest. */
export const TERMINATE_NOW = 2;

/** Written into `layout_version` by the host; a reader that finds another value refuses the block. */
export const CONTROL_BLOCK_VERSION = 1;

/** The ControlBlock layout table, from which the C header is generated. */
export const CONTROL_BLOCK_LAYOUT = defineStructLayout(
  'rk_control_block',
  'One per kernel. Each field has exactly one writer (named beside it); all access is atomic: acquire loads, release stores. Counters are u64 and only ever grow.',
  ControlBlockOffset.SIZE,
  [
    ['status', 'u32', ControlBlockOffset.STATUS, 'lifecycle', 'RK_STATUS_*: the lifecycle machine state.', A()],
    ['is_active', 'u32', ControlBlockOffset.IS_ACTIVE, 'lifecycle', '1 = consume input; 0 = paused.', A()],
    [
      'should_terminate',
      'u32',
      ControlBlockOffset.SHOULD_TERMINATE,
      'host',
      '0 = run; 1 = finish, then exit; 2 = exit now (forced).',
      A(),
    ],
    ['has_terminated', 'u32', ControlBlockOffset.HAS_TERMINATED, 'executor', '1 = the loop has exited.', A()],
    [
      'messages_received',
      'u64',
      ControlBlockOffset.MESSAGES_RECEIVED,
      'executor',
      'Frames taken off the input ring.',
      A(),
    ],
    ['messages_processed', 'u64', ControlBlockOffset.MESSAGES_PROCESSED, 'executor', 'Handled without error.', A()],
    ['messages_failed', 'u64', ControlBlockOffset.MESSAGES_FAILED, 'executor', 'Handler raised an error.', A()],
    ['messages_dropped', 'u64', ControlBlockOffset.MESSAGES_DROPPED, 'executor', 'Malformed or undeliverable.', A()],
    ['heartbeat_us', 'u64', ControlBlockOffset.HEARTBEAT_US, 'executor', 'Last sign of life, µs since the epoch.', A()],
    ['hlc_physical_us', 'u64', ControlBlockOffset.HLC_PHYSICAL_US, 'executor', "The kernel's HLC physical time.", A()],
    ['hlc_logical', 'u32', ControlBlockOffset.HLC_LOGICAL, 'executor', "The kernel's HLC logical counter.", A()],
    ['hlc_node', 'u32', ControlBlockOffset.HLC_NODE, 'host', 'HLC node id; set before the block is shared.'],
    ['messages_in_flight', 'u32', ControlBlockOffset.MESSAGES_IN_FLIGHT, 'executor', 'Taken, not finished.', A()],
    [
      'last_error_code',
      'u32',
      ControlBlockOffset.LAST_ERROR_CODE,
      'executor',
      'RK_E_* of the last error; 0 = none.',
      A(),
    ],
    ['error_count', 'u32', ControlBlockOffset.ERROR_COUNT, 'executor', 'Errors recorded so far.', A()],
    ['kernel_id', 'u32', ControlBlockOffset.KERNEL_ID, 'host', 'Numeric kernel id; set before sharing.'],
    ['generation', 'u32', ControlBlockOffset.GENERATION, 'host', 'Restarts so far; bumped between two executors.', A()],
    ['layout_version', 'u32', ControlBlockOffset.LAYOUT_VERSION, 'host', 'RK_CONTROL_BLOCK_VERSION.'],
    [
      'handled_cursor',
      'u32',
      ControlBlockOffset.HANDLED_CURSOR,
      'executor',
      'Input ring offset just past the last frame whose handler returned: where a host resumes if the executor dies mid-batch.',
      A(),
    ],
    [
      'draining_input',
      'u32',
      ControlBlockOffset.DRAINING_INPUT,
      'executor',
      "Which input a batch is draining: 0 = none, 1 = the own input ring, 2 + k = kernel-to-kernel link k. If the executor dies, the frame in hand is the one at that ring's handled cursor.",
      A(),
    ],
    [
      'terminate_discard',
      'u32',
      ControlBlockOffset.TERMINATE_DISCARD,
      'host',
      "With should_terminate = 1: 0 = handle the queued input before exiting; 1 = leave it in the ring (the host dead-letters it, or keeps it for the kernel's next instance). Written before should_terminate.",
      A(),
    ],
    [
      'pause_request',
      'u32',
      ControlBlockOffset.PAUSE_REQUEST,
      'host',
      "1 = stop between batches and say so in paused (a device executor's checkpoint); 0 = go on.",
      A(),
    ],
    [
      'paused',
      'u32',
      ControlBlockOffset.PAUSED,
      'executor',
      '1 while the executor honours pause_request: no batch in hand, the kernel state is at rest.',
      A(),
    ],
    [
      'integrity',
      'u32',
      ControlBlockOffset.INTEGRITY,
      'host',
      "1 = the kernel's rings require a CRC32-C on every frame: a device executor checks its inputs' and checksums its outputs. Set before launch.",
    ],
    [
      'messages_fused',
      'u64',
      ControlBlockOffset.MESSAGES_FUSED,
      'executor',
      'Of messages_received, those a producer kernel on the same worker thread had this kernel handle on its own turn (a fused kernel-to-kernel link).',
      A(),
    ],
  ],
);

function A(): { readonly atomic: true } {
  return { atomic: true };
}

const I32 = (offset: number): number => offset >> 2;
const I64 = (offset: number): number => offset >> 3;

/**
 * Typed, atomic access to one kernel's ControlBlock. Create one on each thread that touches the block; all of
 * them see the same SharedArrayBuffer. Methods are named for the field they touch; respect each field's writer.
 *
 * @example
 * const block = ControlBlock.create(7);          // host: kernel id 7
 * block.setStatus(KernelStatus.Active);          // lifecycle actor, in the worker
 * block.addProcessed(32);                        // executor, once per batch
 * block.messagesProcessed;                       // anyone: 32n
 */
export class ControlBlock {
  /** The shared memory; pass it to workers (it is shared, not copied). */
  readonly buffer: SharedArrayBuffer;
  readonly #i32: Int32Array;
  readonly #u64: BigUint64Array;

  /**
   * Wraps an existing block.
   * @throws {InvalidArgumentError} (a RangeError) when the buffer is too small or has another layout version.
   */
  constructor(buffer: SharedArrayBuffer, byteOffset = 0) {
    if (byteOffset % 8 !== 0)
      throw new InvalidArgumentError(
        'byteOffset',
        `ControlBlock byteOffset must be a multiple of 8, got ${byteOffset}`,
      );
    if (buffer.byteLength < byteOffset + ControlBlockOffset.SIZE) {
      throw new InvalidArgumentError(
        'buffer',
        `ControlBlock needs ${ControlBlockOffset.SIZE} bytes at offset ${byteOffset}, the buffer has ${buffer.byteLength}`,
      );
    }
    this.buffer = buffer;
    this.#i32 = new Int32Array(buffer, byteOffset, ControlBlockOffset.SIZE / 4);
    this.#u64 = new BigUint64Array(buffer, byteOffset, ControlBlockOffset.SIZE / 8);
    const version = Atomics.load(this.#i32, I32(ControlBlockOffset.LAYOUT_VERSION));
    if (version !== CONTROL_BLOCK_VERSION) {
      throw new InvalidArgumentError(
        'buffer',
        `ControlBlock buffer: layout version ${version} is not ${CONTROL_BLOCK_VERSION}`,
      );
    }
  }

  /**
   * Allocates and initialises a block (host side): status Created, paused, the given kernel id and HLC node.
   * `trailingBytes`: room after the block, in the same buffer, for the kernel's other small shared records (its
   * latency histograms, at `ControlBlockOffset.SIZE`) — one SharedArrayBuffer per kernel instead of one each,
   * which every thread that receives the kernel would deserialize and track.
   */
  static create(kernelId: number, hlcNode = kernelId, trailingBytes = 0): ControlBlock {
    const buffer = new SharedArrayBuffer(ControlBlockOffset.SIZE + trailingBytes);
    const i32 = new Int32Array(buffer);
    i32[I32(ControlBlockOffset.KERNEL_ID)] = kernelId | 0;
    i32[I32(ControlBlockOffset.HLC_NODE)] = hlcNode | 0;
    i32[I32(ControlBlockOffset.STATUS)] = KernelStatus.Created;
    // Release: everything above is visible to whoever sees the version word.
    Atomics.store(i32, I32(ControlBlockOffset.LAYOUT_VERSION), CONTROL_BLOCK_VERSION);
    return new ControlBlock(buffer);
  }

  #u32(offset: number): number {
    return Atomics.load(this.#i32, I32(offset)) >>> 0;
  }

  /** The lifecycle status word (acquire). */
  get status(): number {
    return this.#u32(ControlBlockOffset.STATUS);
  }
  /** Lifecycle actor: publishes a new status (release). */
  setStatus(status: KernelStatusCode): void {
    Atomics.store(this.#i32, I32(ControlBlockOffset.STATUS), status);
  }
  /** Whether the executor should consume input. */
  get isActive(): boolean {
    return this.#u32(ControlBlockOffset.IS_ACTIVE) !== 0;
  }
  /** Lifecycle actor: resume or pause consumption. */
  setActive(active: boolean): void {
    Atomics.store(this.#i32, I32(ControlBlockOffset.IS_ACTIVE), active ? 1 : 0);
  }
  /** Whether termination was requested. */
  get shouldTerminate(): boolean {
    return this.#u32(ControlBlockOffset.SHOULD_TERMINATE) !== 0;
  }
  /** The termination request: 0 none, {@link TERMINATE_FINISH} or {@link TERMINATE_NOW}. Read once per message. */
  get terminationRequest(): number {
    return this.#u32(ControlBlockOffset.SHOULD_TERMINATE);
  }
  /**
   * Host: requests termination. The executor checks the word between messages, so a request stops a batch in
   * progress: FINISH after the message in hand (then drain or discard as asked), NOW forced.
   */
  requestTermination(mode: typeof TERMINATE_FINISH | typeof TERMINATE_NOW = TERMINATE_FINISH, discard = false): void {
    // Discard first: an executor that sees the request (seq-cst store after this one) sees how to finish too. A
    // device executor decides alone (a CPU one also gets the TERMINATE command, which says the same).
    if (discard) Atomics.store(this.#i32, I32(ControlBlockOffset.TERMINATE_DISCARD), 1);
    Atomics.store(this.#i32, I32(ControlBlockOffset.SHOULD_TERMINATE), mode);
  }
  /**
   * Host side (the CUDA device thread): asks a device executor to stop between batches (`true`) or go on. The
   * executor answers in {@link ControlBlock.paused}; the kernel's device state is at rest while it is set.
   */
  requestPause(pause: boolean): void {
    Atomics.store(this.#i32, I32(ControlBlockOffset.PAUSE_REQUEST), pause ? 1 : 0);
  }
  /** Host, before launch: the kernel's rings require CRC32-C checksums (a device executor reads it). */
  setIntegrity(integrity: boolean): void {
    Atomics.store(this.#i32, I32(ControlBlockOffset.INTEGRITY), integrity ? 1 : 0);
  }
  /** Whether the executor honours a pause request (no batch in hand). */
  get paused(): boolean {
    return this.#u32(ControlBlockOffset.PAUSED) !== 0;
  }
  /** With a FINISH request: whether queued input is left for the host to dead-letter instead of handled. */
  get terminateDiscards(): boolean {
    return this.#u32(ControlBlockOffset.TERMINATE_DISCARD) !== 0;
  }
  /** Whether the executor loop has exited. */
  get hasTerminated(): boolean {
    return this.#u32(ControlBlockOffset.HAS_TERMINATED) !== 0;
  }
  /** Executor: the loop has exited. */
  markTerminated(): void {
    Atomics.store(this.#i32, I32(ControlBlockOffset.HAS_TERMINATED), 1);
  }
  /** Frames taken off the input ring. */
  get messagesReceived(): bigint {
    return Atomics.load(this.#u64, I64(ControlBlockOffset.MESSAGES_RECEIVED));
  }
  /** Messages handled without error. */
  get messagesProcessed(): bigint {
    return Atomics.load(this.#u64, I64(ControlBlockOffset.MESSAGES_PROCESSED));
  }
  /** Messages whose handler failed. */
  get messagesFailed(): bigint {
    return Atomics.load(this.#u64, I64(ControlBlockOffset.MESSAGES_FAILED));
  }
  /** Messages dropped as malformed or undeliverable (each also dead-lettered). */
  get messagesDropped(): bigint {
    return Atomics.load(this.#u64, I64(ControlBlockOffset.MESSAGES_DROPPED));
  }
  /**
   * Executor: adds one batch's counts. Called once per batch, not per message, so the atomics stay off the
   * per-message path.
   */
  addBatch(received: number, processed: number, failed: number, dropped: number): void {
    const u64 = this.#u64;
    if (received) Atomics.add(u64, I64(ControlBlockOffset.MESSAGES_RECEIVED), BigInt(received));
    if (processed) Atomics.add(u64, I64(ControlBlockOffset.MESSAGES_PROCESSED), BigInt(processed));
    if (failed) Atomics.add(u64, I64(ControlBlockOffset.MESSAGES_FAILED), BigInt(failed));
    if (dropped) Atomics.add(u64, I64(ControlBlockOffset.MESSAGES_DROPPED), BigInt(dropped));
  }
  /** Of {@link ControlBlock.messagesReceived}, those handed over on a fused link (see `messages_fused`). */
  get messagesFused(): bigint {
    return Atomics.load(this.#u64, I64(ControlBlockOffset.MESSAGES_FUSED));
  }
  /** Executor: counts messages handled on a fused link, once per batch. */
  addFused(count: number): void {
    if (count) Atomics.add(this.#u64, I64(ControlBlockOffset.MESSAGES_FUSED), BigInt(count));
  }
  /** Messages taken and not yet finished. */
  get messagesInFlight(): number {
    return this.#u32(ControlBlockOffset.MESSAGES_IN_FLIGHT);
  }
  /** Executor: how many messages it holds right now. */
  setInFlight(count: number): void {
    Atomics.store(this.#i32, I32(ControlBlockOffset.MESSAGES_IN_FLIGHT), count);
  }
  /** Last sign of life, µs since the epoch. */
  get heartbeatUs(): number {
    return Number(Atomics.load(this.#u64, I64(ControlBlockOffset.HEARTBEAT_US)));
  }
  /** Executor: records a heartbeat. */
  beat(nowUs: number): void {
    Atomics.store(this.#u64, I64(ControlBlockOffset.HEARTBEAT_US), BigInt(Math.trunc(nowUs)));
  }
  /** The numeric code of the last error (`RK_E_*`), 0 when none. */
  get lastErrorCode(): number {
    return this.#u32(ControlBlockOffset.LAST_ERROR_CODE);
  }
  /** Errors recorded so far. */
  get errorCount(): number {
    return this.#u32(ControlBlockOffset.ERROR_COUNT);
  }
  /** Executor: records an error by code. */
  recordError(code: ErrorCodeString | number): void {
    const errno = typeof code === 'number' ? code : errorNumberOf(code);
    Atomics.store(this.#i32, I32(ControlBlockOffset.LAST_ERROR_CODE), errno);
    Atomics.add(this.#i32, I32(ControlBlockOffset.ERROR_COUNT), 1);
  }
  /** The kernel's HLC as last published by the executor (the two words may be read a publish apart). */
  get hlc(): { physicalUs: number; logical: number; node: number } {
    return {
      physicalUs: Number(Atomics.load(this.#u64, I64(ControlBlockOffset.HLC_PHYSICAL_US))),
      logical: this.#u32(ControlBlockOffset.HLC_LOGICAL),
      node: this.#u32(ControlBlockOffset.HLC_NODE),
    };
  }
  /** Executor: publishes its HLC state. */
  publishHlc(physicalUs: number, logical: number): void {
    Atomics.store(this.#u64, I64(ControlBlockOffset.HLC_PHYSICAL_US), BigInt(physicalUs));
    Atomics.store(this.#i32, I32(ControlBlockOffset.HLC_LOGICAL), logical | 0);
  }
  /** The numeric kernel id. */
  get kernelId(): number {
    return this.#u32(ControlBlockOffset.KERNEL_ID);
  }
  /** Input ring offset just past the last frame whose handler returned. */
  get handledCursor(): number {
    return this.#u32(ControlBlockOffset.HANDLED_CURSOR);
  }
  /** Executor: a frame's handler returned; `cursor` is the ring offset just past it. One plain atomic store. */
  setHandledCursor(cursor: number): void {
    Atomics.store(this.#i32, I32(ControlBlockOffset.HANDLED_CURSOR), cursor);
  }
  /** Which input the executor's batch is draining: 0 none, 1 the own input, 2 + k link k. */
  get drainingInput(): number {
    return this.#u32(ControlBlockOffset.DRAINING_INPUT);
  }
  /**
   * Executor: marks the input a batch is about to drain (and 0 after it). Two stores per batch, so a host that
   * finds the executor dead knows which ring holds the frame whose handler was running.
   */
  setDrainingInput(input: number): void {
    Atomics.store(this.#i32, I32(ControlBlockOffset.DRAINING_INPUT), input);
  }
  /**
   * Host, only between two executors (the last one has exited or died, the next is not attached): readies the
   * block for a restarted kernel. Status back to Created, not active, no termination request, loop not exited,
   * nothing in flight or draining, and one more generation. Counters, errors, the handled cursor and the HLC
   * carry on: they describe the kernel across its restarts.
   */
  resetForRestart(countRestart = true): number {
    const i32 = this.#i32;
    Atomics.store(i32, I32(ControlBlockOffset.IS_ACTIVE), 0);
    Atomics.store(i32, I32(ControlBlockOffset.SHOULD_TERMINATE), 0);
    Atomics.store(i32, I32(ControlBlockOffset.TERMINATE_DISCARD), 0);
    Atomics.store(i32, I32(ControlBlockOffset.PAUSE_REQUEST), 0);
    Atomics.store(i32, I32(ControlBlockOffset.PAUSED), 0);
    Atomics.store(i32, I32(ControlBlockOffset.HAS_TERMINATED), 0);
    Atomics.store(i32, I32(ControlBlockOffset.MESSAGES_IN_FLIGHT), 0);
    Atomics.store(i32, I32(ControlBlockOffset.DRAINING_INPUT), 0);
    Atomics.store(i32, I32(ControlBlockOffset.STATUS), KernelStatus.Created);
    // A migration hands the block to a new instance too, but is not a restart.
    return countRestart ? this.bumpGeneration() : this.generation;
  }
  /** Restarts so far. */
  get generation(): number {
    return this.#u32(ControlBlockOffset.GENERATION);
  }
  /** Host, between two executors: counts a restart. */
  bumpGeneration(): number {
    return Atomics.add(this.#i32, I32(ControlBlockOffset.GENERATION), 1) + 1;
  }
}

/** Re-exported so callers recording ring errors need one import. */
export { ErrorCode };
