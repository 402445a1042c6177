import { BackendUnavailableError } from '../errors/runtime-errors.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';
import { MirrorChannelOffset, MirrorStateOffset } from '../wire/mirror-layout.js';
import { RingOffset, RingSignalOffset } from '../wire/ring-signal.js';
import { loadMirrorLibrary, type MirrorLibrary } from './native-mirror-library.js';

/** A ring the mirror keeps a device replica of. */
export interface MirroredRing {
  /** {@link MirrorDirection}: input rings go host → device, output rings device → host. */
  readonly direction: number;
  /** The host's ring (the handle's end). */
  readonly host: FrameRingMemory;
  /** The device replica (the kernel's end): same size, same offsets, its own doorbell. */
  readonly device: FrameRingMemory;
}

/** What the mirror moved on one ring. */
export interface MirrorChannelStats {
  /** Bytes copied, frame padding included. */
  readonly bytes: number;
  readonly frames: number;
  /** Copy batches (one per pass that found new bytes). */
  readonly batches: number;
  /** Time spent copying, ns. */
  readonly copyNs: number;
  /** Bytes waiting at the source when the last batch started, and the largest such lag. */
  readonly lagBytes: number;
  readonly maxLagBytes: number;
  /** Times a JS waiter of this ring had to be woken (through the callback, or by the thread serving the ring). */
  readonly wakeRequests: number;
  /** Of the batches, those a host thread made itself while it waited on the ring ({@link DmaMirror.server}). */
  readonly servedBatches: number;
  /** Passes of the mirror thread that left the ring alone because a host thread carried it ({@link DmaMirror.carrying}). */
  readonly carriedSkips: number;
}

/** The mirror thread as a whole. */
export interface MirrorStats {
  /** Passes over the channel table. */
  readonly passes: number;
  /** Times it slept, idle. */
  readonly sleeps: number;
  /** Wake-up callbacks into JavaScript (each notifies every waiter that needed it). */
  readonly wakeCalls: number;
  /** Rings mirrored now. */
  readonly channels: number;
  /** Whether the thread sleeps right now. */
  readonly sleeping: boolean;
}

/** How long an idle mirror keeps scanning before it sleeps, µs (a host producer can kick it; a worker cannot). */
const MIRROR_SPIN_US = 50;
/** How long a synchronous close (at process exit) waits for the waker thread to return, ms. */
const EXIT_WAIT_MS = 100;

const SLEEPING = MirrorStateOffset.SLEEPING >> 2;
const DATA_SEQ = RingSignalOffset.DATA_SEQ >> 2;
const SPACE_SEQ = RingSignalOffset.SPACE_SEQ >> 2;
const WAKE_SEQ = MirrorChannelOffset.WAKE_SEQ >> 2;
const HOST_CARRIES = MirrorChannelOffset.HOST_CARRIES >> 2;
const CARRIED_SKIPS = MirrorChannelOffset.CARRIED_SKIPS >> 2;
/** rk_mirror_serve's result bits (RK_SERVE_WAKE, RK_SERVE_BUSY). */
const SERVE_WAKE = 2;
const SERVE_BUSY = 4;

/** A CUDA mirror's device: the driver library the runtime loaded and the device's primary context. */
export interface CudaMirrorDevice {
  readonly libcuda: string;
  readonly context: bigint;
}

/** One attached ring, with the views the wake callback notifies through. */
interface Channel extends MirroredRing {
  readonly id: number;
  /** The stats block: shared with the mirror thread, kept referenced until it is detached. */
  readonly block: SharedArrayBuffer;
  readonly words: Int32Array;
  readonly counters: BigUint64Array;
  readonly hostSignal: Int32Array;
  readonly deviceSignal: Int32Array;
  lastWakeSeq: number;
  /** Cleared by detach: a server made earlier must not step the id, which a later attach may reuse. */
  attached: boolean;
}

/**
 * The native DMA mirror: one C thread per runtime that serves every kernel on the `dma` strategy (the seed's
 * `RingBufferBridge` transfer loop). For each mirrored ring it copies newly published bytes to the replica and
 * publishes its write index, and mirrors the consumer's read index back, so both ends see an ordinary ringbuf.js
 * ring (native/src/mirror.c has the memory-ordering contract).
 *
 * On the CPU device a host thread can also carry a kernel's rings across itself ({@link DmaMirror.server}): after
 * it writes, and while it spins for an answer; each ring's try-lock keeps one stepper at a time.
 *
 * Wake-ups cross the boundary by two one-way paths, because C futexes and V8's `Atomics.wait` do not see each
 * other: a host producer that publishes while the mirror sleeps kicks it ({@link DmaMirror.afterHostWrite}, one
 * koffi call); when the mirror publishes to a ring whose JS consumer (or producer waiting for room) has parked,
 * it bumps the doorbell's seq and its waker thread calls a koffi-registered callback on this thread, which
 * `Atomics.notify`s the parked waiters. Worker-produced output cannot kick the mirror: an idle mirror spins
 * {@link MIRROR_SPIN_US} µs, then sleeps `bridgePollInterval` µs at a time (10 ms after 200 ms of silence).
 *
 * Lifetime: every SharedArrayBuffer the thread touches stays referenced here until {@link DmaMirror.detach} (or
 * {@link DmaMirror.close}) has returned, and by then the thread has let go of it. `close()` stops and joins both
 * threads; a process that never calls it still exits: an `exit` hook stops the threads synchronously. A worker
 * thread terminated from outside runs no JavaScript, so the library's Node-API env cleanup hook stops its copy
 * threads instead, before the worker's memory is freed (native/src/node_hook.c).
 *
 * @example
 * const mirror = DmaMirror.open(100); // MirrorDirection from '../wire/mirror-layout.js'
 * const input = mirror.attach(hostInput, MirrorDirection.HOST_TO_DEVICE); // the kernel reads input.device
 * // after each frame the host writes: mirror.afterHostWrite();
 * await mirror.close();
 */
export class DmaMirror {
  /** Whether the replicas are CUDA device memory ({@link DmaMirror.attachDevice}) rather than SharedArrayBuffers. */
  readonly cuda: boolean;
  readonly #lib: MirrorLibrary;
  readonly #pointer: bigint;
  readonly #state: SharedArrayBuffer;
  readonly #stateWords: Int32Array;
  readonly #stateCounters: BigUint64Array;
  readonly #callback: bigint;
  readonly #channels = new Map<MirroredRing, Channel>();
  #closing: Promise<void> | undefined;
  #closed = false;
  readonly #onExit = (): void => this.#closeAtExit();

  /**
   * Starts a mirror thread (and its waker).
   * @throws {BackendUnavailableError} when the native library cannot be loaded or the thread cannot start.
   */
  static open(pollIntervalUs: number, cuda?: CudaMirrorDevice): DmaMirror {
    const load = loadMirrorLibrary();
    if (!load.available) throw new BackendUnavailableError('dma', load.reason);
    return new DmaMirror(load.library, pollIntervalUs, cuda);
  }

  private constructor(lib: MirrorLibrary, pollIntervalUs: number, cuda: CudaMirrorDevice | undefined) {
    this.#lib = lib;
    this.cuda = cuda !== undefined;
    this.#state = new SharedArrayBuffer(MirrorStateOffset.SIZE);
    this.#stateWords = new Int32Array(this.#state);
    this.#stateCounters = new BigUint64Array(this.#state);
    this.#callback = lib.koffi.register(() => this.#wakeWaiters(), lib.wakeCallbackType);
    const state = new Uint8Array(this.#state);
    const pointer = (
      cuda === undefined
        ? lib.create('cpu', pollIntervalUs, MIRROR_SPIN_US, this.#callback, state)
        : lib.createCuda(cuda.libcuda, cuda.context, pollIntervalUs, MIRROR_SPIN_US, this.#callback, state)
    ) as bigint | null;
    if (pointer === null || pointer === 0n) {
      lib.koffi.unregister(this.#callback);
      throw new BackendUnavailableError('dma', 'the native mirror thread could not be started');
    }
    this.#pointer = pointer;
    process.on('exit', this.#onExit);
  }

  /** Whether the mirror thread sleeps (or is about to): one atomic load. */
  get sleeping(): boolean {
    return Atomics.load(this.#stateWords, SLEEPING) !== 0;
  }

  /**
   * Call after the host published a frame on an input ring: wakes the mirror if it sleeps (one atomic load when
   * it does not). Eventcount pairing: the host's seq_cst publish, then this load; the mirror's seq_cst "sleeping"
   * store, then its re-scan.
   */
  readonly afterHostWrite = (): void => {
    if (Atomics.load(this.#stateWords, SLEEPING) !== 0) this.#lib.kick(this.#pointer);
  };

  /**
   * Starts mirroring a ring: allocates its device replica (same size, zeroed, its own doorbell) and registers
   * both with the mirror thread.
   * @throws {BackendUnavailableError} when the mirror is closed or the native side refuses the ring.
   */
  attach(host: FrameRingMemory, direction: number): MirroredRing {
    // A CUDA mirror's copy operations take device pointers: a SharedArrayBuffer replica is not one.
    if (this.cuda) throw new BackendUnavailableError('dma', 'a CUDA mirror takes device replicas (attachDevice)');
    const device: FrameRingMemory = Object.freeze({
      ring: new SharedArrayBuffer(host.ring.byteLength),
      signal: new SharedArrayBuffer(RingSignalOffset.SIZE),
      maxPayloadSize: host.maxPayloadSize,
      integrity: host.integrity,
    });
    return this.#register(
      host,
      device,
      direction,
      (block) =>
        this.#lib.attach(
          this.#pointer,
          direction,
          new Uint8Array(host.ring),
          new Uint8Array(device.ring),
          host.ring.byteLength - RingOffset.DATA,
          new Uint8Array(host.signal),
          new Uint8Array(device.signal),
          new Uint8Array(block),
        ) as number,
    );
  }

  /** Hands a channel to the mirror thread (`attach` makes the native call) and keeps its views for the waker. */
  #register(
    host: FrameRingMemory,
    device: FrameRingMemory,
    direction: number,
    attach: (block: SharedArrayBuffer) => number,
  ): MirroredRing {
    if (this.#closed || this.#closing !== undefined) throw new BackendUnavailableError('dma', 'the mirror is closed');
    const block = new SharedArrayBuffer(MirrorChannelOffset.SIZE);
    const words = new Int32Array(block);
    words[MirrorChannelOffset.DIRECTION >> 2] = direction;
    const id = attach(block);
    if (id < 0) throw new BackendUnavailableError('dma', 'the native mirror refused the ring');
    const ring: MirroredRing = Object.freeze({ direction, host, device });
    this.#channels.set(ring, {
      ...ring,
      id,
      block,
      words,
      counters: new BigUint64Array(block),
      hostSignal: new Int32Array(host.signal),
      deviceSignal: new Int32Array(device.signal),
      lastWakeSeq: 0,
      attached: true,
    });
    return ring;
  }

  /**
   * Starts mirroring a ring into CUDA device memory (a CUDA mirror): `device` is a zeroed allocation of the host
   * ring's size, which the kernel on the GPU reads (input) or writes (output). The caller's thread has the mirror's
   * context current. The returned ring's `device` is a stand-in with the host's sizes: only the GPU touches the
   * replica, through `devicePointer`.
   * @throws {BackendUnavailableError} when the mirror is closed, not a CUDA mirror, or the native side refuses.
   */
  attachDevice(host: FrameRingMemory, direction: number, devicePointer: bigint): MirroredRing {
    if (!this.cuda) throw new BackendUnavailableError('dma', 'attachDevice needs a CUDA mirror');
    // Nobody parks on a GPU ring's doorbell (the kernel polls): a private one satisfies the channel's shape.
    const device: FrameRingMemory = Object.freeze({
      ring: new SharedArrayBuffer(8),
      signal: new SharedArrayBuffer(RingSignalOffset.SIZE),
      maxPayloadSize: host.maxPayloadSize,
      integrity: host.integrity,
    });
    return this.#register(
      host,
      device,
      direction,
      (block) =>
        this.#lib.attachDevicePointer(
          this.#pointer,
          direction,
          new Uint8Array(host.ring),
          devicePointer,
          host.ring.byteLength - RingOffset.DATA,
          new Uint8Array(host.signal),
          new Uint8Array(device.signal),
          new Uint8Array(block),
        ) as number,
    );
  }

  /**
   * A function that carries a kernel's two rings across on this thread, as the copy thread would, for a host that
   * has just written to them or waits on them (a call's response). The copy thread then need not be scheduled (on
   * a loaded machine it waits behind the kernel's own worker) nor kicked awake, and a kernel the step finds parked
   * is notified here and now rather than through the waker thread and this thread's event loop. Each call is one
   * native call (tens of ns) that steps each ring once; a ring the copy thread is stepping right now is left to it
   * (and the thread kicked, should it be about to sleep). Does nothing once a ring is detached or the mirror
   * closed; a CUDA mirror's only kicks its thread (its copies need that thread's device context).
   */
  server(input: MirroredRing, output: MirroredRing): () => void {
    const first = this.#channels.get(input);
    const second = this.#channels.get(output);
    if (first === undefined || second === undefined) throw new BackendUnavailableError('dma', 'the ring is detached');
    if (this.cuda) return this.afterHostWrite;
    const lib = this.#lib;
    const pointer = this.#pointer;
    return () => {
      if (!first.attached || !second.attached || this.#closed) return;
      const result = lib.serve(pointer, first.id, second.id) as number;
      if (result === 0) return;
      if ((result & SERVE_WAKE) !== 0) {
        this.#notify(first);
        this.#notify(second);
      }
      if ((result & SERVE_BUSY) !== 0) this.afterHostWrite();
    };
  }

  /**
   * A switch for a host thread that carries `ring` across itself for a while (with {@link DmaMirror.server}):
   * `true` makes the mirror thread leave the ring alone, so it can sleep instead of copying beside that thread;
   * `false` hands the ring back. The caller serves the ring at least once after `true` and before `false`, and
   * after `false` calls {@link DmaMirror.afterHostWrite} if it leaves the mirror work on the ring (room to carry
   * back to a producer that waits for it): that seq_cst store of the flag, then the load of the sleeping flag,
   * pair with the mirror's "sleeping, then re-scan" (rk_mirror_channel.host_carries has the contract).
   */
  carrying(ring: MirroredRing): (carrying: boolean) => void {
    const channel = this.#channels.get(ring);
    if (channel === undefined) throw new BackendUnavailableError('dma', 'the ring is detached');
    const words = channel.words;
    return (carrying) => {
      Atomics.store(words, HOST_CARRIES, carrying ? 1 : 0);
    };
  }

  /** Driver copies the CUDA mirrors of this process could not make (0 on a healthy device). */
  cudaCopyFailures(): number {
    return this.#lib.cudaCopyFailures() as number;
  }

  /**
   * Copies what is left on the ring one last time (an exited kernel's last outputs reach the host) and stops
   * mirroring it. When it returns the thread no longer touches the ring's memory. Idempotent.
   */
  detach(ring: MirroredRing): void {
    const channel = this.#channels.get(ring);
    if (channel === undefined) return;
    if (!this.#closed) this.#lib.detach(this.#pointer, channel.id);
    channel.attached = false;
    this.#channels.delete(ring);
    // The final copy may have published to a parked host consumer: tell it now rather than through the waker.
    this.#notify(channel);
  }

  /** What the mirror moved on one ring (zeros once detached). */
  channelStats(ring: MirroredRing): MirrorChannelStats {
    const channel = this.#channels.get(ring);
    if (channel === undefined) {
      return {
        bytes: 0,
        frames: 0,
        batches: 0,
        copyNs: 0,
        lagBytes: 0,
        maxLagBytes: 0,
        wakeRequests: 0,
        servedBatches: 0,
        carriedSkips: 0,
      };
    }
    const { counters, words } = channel;
    return {
      bytes: Number(Atomics.load(counters, MirrorChannelOffset.BYTES >> 3)),
      frames: Number(Atomics.load(counters, MirrorChannelOffset.FRAMES >> 3)),
      batches: Number(Atomics.load(counters, MirrorChannelOffset.BATCHES >> 3)),
      copyNs: Number(Atomics.load(counters, MirrorChannelOffset.COPY_NS >> 3)),
      lagBytes: Atomics.load(words, MirrorChannelOffset.LAG_BYTES >> 2) >>> 0,
      maxLagBytes: Atomics.load(words, MirrorChannelOffset.MAX_LAG_BYTES >> 2) >>> 0,
      wakeRequests: Atomics.load(words, WAKE_SEQ) >>> 0,
      servedBatches: Number(Atomics.load(counters, MirrorChannelOffset.SERVED_BATCHES >> 3)),
      carriedSkips: Atomics.load(words, CARRIED_SKIPS) >>> 0,
    };
  }

  /** The mirror thread's own counters. */
  stats(): MirrorStats {
    const counters = this.#stateCounters;
    return {
      passes: Number(Atomics.load(counters, MirrorStateOffset.PASSES >> 3)),
      sleeps: Number(Atomics.load(counters, MirrorStateOffset.SLEEPS >> 3)),
      wakeCalls: Number(Atomics.load(counters, MirrorStateOffset.WAKE_CALLS >> 3)),
      channels: Atomics.load(this.#stateWords, MirrorStateOffset.CHANNELS >> 2),
      sleeping: Atomics.load(this.#stateWords, SLEEPING) !== 0,
    };
  }

  /** Whether {@link DmaMirror.close} has finished (or the process is exiting). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Detaches every ring (with its final copy), stops and joins the copy thread, then lets the event loop run
   * until the waker thread has returned (it may be inside the callback, which needs this thread), joins it and
   * frees the mirror. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#closed) return;
      for (const ring of [...this.#channels.keys()]) this.detach(ring);
      this.#lib.stop(this.#pointer);
      // A pending timer is a ref'd handle: the process stays up while a callback can still arrive.
      while (this.#lib.wakerExited(this.#pointer) === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      this.#release();
    })();
    return this.#closing;
  }

  #release(): void {
    this.#closed = true;
    this.#lib.destroy(this.#pointer);
    this.#lib.koffi.unregister(this.#callback);
    this.#channels.clear();
    process.off('exit', this.#onExit);
  }

  /**
   * The process is exiting and nobody closed the mirror: stop the copy thread synchronously (it never waits for
   * JavaScript), give the waker a moment, and free everything if it returned. A waker stuck inside a callback
   * that can no longer run is left to the process's end, with the mirror's memory (never freed under it).
   */
  #closeAtExit(): void {
    if (this.#closed) return;
    this.#lib.stop(this.#pointer);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    const deadline = performance.now() + EXIT_WAIT_MS;
    while (this.#lib.wakerExited(this.#pointer) === 0 && performance.now() < deadline) Atomics.wait(pause, 0, 0, 1);
    if (this.#lib.wakerExited(this.#pointer) !== 0) this.#release();
    else this.#closed = true;
  }

  /** The koffi callback, on this thread: notifies the waiters of every ring whose wake seq moved. */
  #wakeWaiters(): void {
    for (const channel of this.#channels.values()) {
      const seq = Atomics.load(channel.words, WAKE_SEQ);
      if (seq === channel.lastWakeSeq) continue;
      channel.lastWakeSeq = seq;
      this.#notify(channel);
    }
  }

  #notify(channel: Channel): void {
    // The mirror already bumped the seqs; notify ends parks that began before the bump.
    Atomics.notify(channel.deviceSignal, DATA_SEQ);
    Atomics.notify(channel.deviceSignal, SPACE_SEQ);
    Atomics.notify(channel.hostSignal, DATA_SEQ);
    Atomics.notify(channel.hostSignal, SPACE_SEQ);
  }
}
