import type { BackendType } from '../backends/backend-type.js';
import { requireCudaDriver } from '../backends/cuda/driver.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';
import { MirrorDirection } from '../wire/mirror-layout.js';
import { RingOffset, RingSignalOffset } from '../wire/ring-signal.js';
import { DmaMirror, type MirrorChannelStats, type MirroredRing, type MirrorStats } from './dma-mirror.js';
import { loadMirrorLibrary } from './native-mirror-library.js';
import {
  checkTransferStrategy,
  detectTransferStrategy,
  type TransferStrategy,
  type TransferStrategyChoice,
} from './transfer-strategy.js';

/** What the DMA mirror moved for one kernel, per direction. */
export interface KernelTransferStats {
  /** Host → device: the input ring. */
  readonly input: MirrorChannelStats;
  /** Device → host: the output ring. */
  readonly output: MirrorChannelStats;
}

/** How one kernel's rings reach it. */
export interface KernelTransfer {
  /** The strategy in use (after any fallback). */
  readonly strategy: TransferStrategy;
  /** The rings the kernel's executor reads and writes: the host's own (`direct`) or the mirror's replicas. */
  readonly kernelInput: FrameRingMemory;
  readonly kernelOutput: FrameRingMemory;
  /**
   * Call after the host publishes on the input ring: kicks a sleeping mirror, or on CPU `dma`, when the kernel
   * sleeps too, carries the frame across itself ({@link KernelTransfer.serve}); undefined for `direct`.
   */
  readonly afterInputWrite: (() => void) | undefined;
  /**
   * `dma`: kicks the mirror thread should it sleep. For a host that stops carrying the rings itself (it parks) or
   * waits for room the mirror brings back: the thread must not sleep through that. Undefined for `direct`.
   */
  readonly wakeMirror: (() => void) | undefined;
  /** Call while spinning synchronously for output: wakes the kernel if it sleeps on input it has not seen. */
  readonly nudgeKernel: (() => void) | undefined;
  /**
   * CPU `dma`: carries the kernel's rings across on the calling thread, as the mirror thread would, and wakes a
   * kernel it finds parked ({@link DmaMirror.server}): for a host spinning for a response, so that the round trip
   * waits for neither the mirror thread nor an event-loop turn. Undefined for every other transfer.
   */
  readonly serve: (() => void) | undefined;
  /**
   * A CUDA kernel on `dma`: its rings' replicas in device memory, which the GPU reads and writes (the host rings
   * above are the mirror's other end).
   */
  readonly devicePointers?: CudaReplicaPointers | undefined;
  /** What the mirror moved (null for `direct`). */
  stats(): KernelTransferStats | null;
  /** Final copy, then the mirror lets go of the rings. Idempotent; nothing to do for `direct`. */
  release(): void;
  /**
   * A CUDA kernel on `dma` (its replicas are one device's memory): prepares its rings on another device for a
   * migration. Undefined for every other transfer.
   */
  readonly moveTo?: ((device: number) => PreparedTransferMove) | undefined;
  /**
   * A CPU kernel on `dma`: lets go of the replicas (if it has not) and attaches fresh ones, which start where the
   * host rings are (a supervisor's restart: the host resumes the input ring at the handled cursor in between).
   * Undefined for every other transfer.
   */
  readonly reopen?: (() => KernelTransfer) | undefined;
}

/** The device pointers of a CUDA kernel's ring replicas. */
export interface CudaReplicaPointers {
  readonly input: bigint;
  readonly output: bigint;
}

/**
 * A `dma` CUDA kernel's rings, prepared on its migration's target: replicas allocated there (the new instance
 * launches over them), not yet kept by the target's mirror.
 */
export interface PreparedTransferMove {
  /** The target's replicas, for the new instance's launch. */
  readonly devicePointers: CudaReplicaPointers;
  /**
   * The swap, once the old instance has stopped: the source's mirror carries its last outputs and read index home
   * and lets go; the target's mirror takes the replicas over from the host rings. Returns the new transfer.
   */
  commit(): KernelTransfer;
  /** The migration rolled back: the target's replicas are freed. Idempotent; nothing after a commit. */
  abort(): void;
}

let fallbackNoticeGiven = false;
const DATA_SEQ = RingSignalOffset.DATA_SEQ >> 2;
const CONSUMER_SLEEPING = RingSignalOffset.CONSUMER_SLEEPING >> 2;
const WRITE = RingOffset.WRITE_INDEX >> 2;
const READ = RingOffset.READ_INDEX >> 2;

/** Frames a host producer writes on CPU `dma` before it carries them across to the kernel's replica itself. */
const HOST_CARRY_BATCH = 64;

/**
 * CPU `dma`'s `afterInputWrite` and `wakeMirror`: the producing thread carries its own frames to the kernel's
 * replica (`serve`, one native call that copies everything pending and wakes a parked kernel), in batches:
 * - the first frame written in a turn of the event loop, and any frame that finds the kernel parked on an empty
 *   replica, at once (a send after a pause waits for nobody);
 * - then every {@link HOST_CARRY_BATCH} frames, and what is left at the end of the turn (a microtask).
 *
 * For the turn, the ring is flagged as carried by this thread (`carrying`): the mirror thread leaves it alone
 * and can sleep. Why: on a machine with as many cores as busy threads, a third thread copying beside the producer
 * and the kernel's worker takes a core they need — once kicked (a producer waiting for room kicks it) the mirror
 * stayed awake, copied the frames between two serves a few at a time and woke the kernel through the main
 * thread's callback for each little batch. Why not carry frame by frame: a native call per frame, and a kernel
 * woken per frame, cost more than the copy (a third of the rate, measured). The mirror thread still carries what
 * the host does not: outputs, and the room the kernel frees while the host waits for it between turns. A kick
 * asked for during a carried turn (`wakeMirror`) is made at the turn's end, once the ring is handed back.
 */
function hostCarrier(
  serve: () => void,
  carrying: (carrying: boolean) => void,
  kickMirror: () => void,
  kernelSignal: Int32Array,
  kernelIndices: Uint32Array,
): { readonly afterInputWrite: () => void; readonly wakeMirror: () => void } {
  let pending = 0;
  let turnOpen = false;
  let kickOwed = false;
  const endOfTurn = (): void => {
    turnOpen = false;
    if (pending > 0) {
      pending = 0;
      serve();
    }
    carrying(false);
    if (kickOwed) {
      kickOwed = false;
      kickMirror();
    }
  };
  return {
    afterInputWrite: () => {
      if (!turnOpen) {
        turnOpen = true;
        carrying(true);
        queueMicrotask(endOfTurn);
      } else if (
        ++pending < HOST_CARRY_BATCH &&
        // Parked on an empty replica: nothing else will bring it this frame soon. (A kernel just woken still shows
        // the flag, but not an empty replica: no second wake-up per frame.)
        (Atomics.load(kernelSignal, CONSUMER_SLEEPING) === 0 ||
          Atomics.load(kernelIndices, WRITE) !== Atomics.load(kernelIndices, READ))
      ) {
        return;
      }
      pending = 0;
      serve();
    },
    wakeMirror: () => {
      if (!turnOpen) {
        kickMirror();
        return;
      }
      // While this thread carries the ring the mirror would skip it: kick it once the ring is handed back, and
      // meanwhile carry now what the kernel has freed (a producer waiting for room may find it at once).
      kickOwed = true;
      pending = 0;
      serve();
    },
  };
}

/**
 * The runtime's side of the transfer strategies: which one a backend uses, and the one DMA mirror thread shared
 * by every kernel on `dma` (started at the first such launch). When the native library is missing or will not
 * load, the first `dma` launch says so in one line on stderr (once per process) and the kernel runs `direct`.
 *
 */
export class TransferBridge {
  /** What `detectTransferStrategy` says for this runtime's backend (the default of every launch). */
  readonly detected: TransferStrategyChoice;
  /** Why `dma` fell back to `direct`, once it has. */
  fallbackReason: string | undefined;
  readonly #backend: BackendType;
  readonly #pollIntervalUs: number;
  #mirror: DmaMirror | undefined;
  /** One CUDA mirror per device ordinal (its copy thread has that device's context current). */
  readonly #cudaMirrors = new Map<number, { readonly mirror: DmaMirror; readonly context: bigint }>();

  constructor(backend: BackendType, pollIntervalUs: number) {
    this.#backend = backend;
    this.#pollIntervalUs = pollIntervalUs;
    this.detected = detectTransferStrategy(backend);
  }

  /**
   * Sets up a kernel's rings for the requested (or detected) strategy.
   * @throws {TypeError | RangeError} for a strategy that is not one, or `mapped` off CUDA.
   */
  open(input: FrameRingMemory, output: FrameRingMemory, requested: unknown): KernelTransfer {
    const strategy = checkTransferStrategy(requested, this.#backend) ?? this.detected.strategy;
    // `mapped`: the device reads and writes the host's own rings (pinned by the CUDA device thread): no copy here.
    if (strategy === 'mapped') return { ...directTransfer(input, output), strategy: 'mapped' };
    const mirror = strategy === 'dma' ? this.#dmaMirror() : undefined;
    if (mirror === undefined) return directTransfer(input, output);
    const {
      input: mirroredInput,
      output: mirroredOutput,
      detach: release,
    } = attachRingPair(mirror, (ring, direction) => mirror.attach(ring, direction), input, output);
    const kernelSignal = new Int32Array(mirroredInput.device.signal);
    const kernelIndices = new Uint32Array(mirroredInput.device.ring, 0, 2);
    const serve = mirror.server(mirroredInput, mirroredOutput);
    const carrier = hostCarrier(
      serve,
      mirror.carrying(mirroredInput),
      mirror.afterHostWrite,
      kernelSignal,
      kernelIndices,
    );
    return {
      strategy: 'dma',
      kernelInput: mirroredInput.device,
      kernelOutput: mirroredOutput.device,
      afterInputWrite: carrier.afterInputWrite,
      wakeMirror: carrier.wakeMirror,
      serve,
      // The mirror wakes a kernel parked on its replica through the koffi callback, which runs on this thread's
      // event loop: while this thread spins synchronously for a response, it does the callback's job itself.
      nudgeKernel: () => {
        if (
          Atomics.load(kernelSignal, CONSUMER_SLEEPING) !== 0 &&
          Atomics.load(kernelIndices, WRITE) !== Atomics.load(kernelIndices, READ)
        ) {
          Atomics.notify(kernelSignal, DATA_SEQ);
        }
      },
      stats: () => ({ input: mirror.channelStats(mirroredInput), output: mirror.channelStats(mirroredOutput) }),
      release,
      reopen: () => {
        release();
        return this.open(input, output, 'dma');
      },
    };
  }

  /**
   * Sets up a CUDA kernel's rings: `mapped` (the device thread pins the host's rings; nothing here) or `dma`
   * (replicas in the device's memory, kept by a CUDA mirror thread with the driver's copies). Without the native
   * library, `dma` says so once and runs `mapped`.
   * @throws {CudaError} when device memory cannot be had.
   */
  openCuda(
    input: FrameRingMemory,
    output: FrameRingMemory,
    device: number,
    strategy: 'mapped' | 'dma',
  ): KernelTransfer {
    const mapped: KernelTransfer = { ...directTransfer(input, output), strategy: 'mapped' };
    if (strategy === 'mapped') return mapped;
    const load = loadMirrorLibrary();
    if (!load.available) {
      this.#noticeFallback(load.reason, 'mapped');
      return mapped;
    }
    const pointers = this.#allocateReplicas(device, input, output);
    try {
      return this.#attachReplicas(device, input, output, pointers);
    } catch (error) {
      this.#freeReplicas(device, pointers);
      throw error;
    }
  }

  /** The CUDA mirror of `device` (its copy thread has the device's context current), started on first use. */
  #cudaMirror(device: number): { readonly mirror: DmaMirror; readonly context: bigint } {
    let entry = this.#cudaMirrors.get(device);
    if (entry === undefined) {
      const driver = requireCudaDriver();
      const context = driver.primaryContextRetain(driver.device(device));
      entry = { mirror: DmaMirror.open(this.#pollIntervalUs, { libcuda: driver.path, context }), context };
      this.#cudaMirrors.set(device, entry);
    }
    return entry;
  }

  /** Device memory for the two rings' replicas on `device`, zeroed. @throws {CudaError} */
  #allocateReplicas(device: number, input: FrameRingMemory, output: FrameRingMemory): CudaReplicaPointers {
    const driver = requireCudaDriver();
    driver.setCurrentContext(this.#cudaMirror(device).context);
    const allocated: bigint[] = [];
    try {
      for (const ring of [input, output]) {
        const pointer = driver.memAlloc(ring.ring.byteLength);
        allocated.push(pointer);
        driver.memsetD8(pointer, 0, ring.ring.byteLength);
      }
    } catch (error) {
      for (const pointer of allocated) driver.memFree(pointer);
      throw error;
    }
    return { input: allocated[0] as bigint, output: allocated[1] as bigint };
  }

  #freeReplicas(device: number, pointers: CudaReplicaPointers): void {
    const driver = requireCudaDriver();
    driver.setCurrentContext(this.#cudaMirror(device).context);
    for (const pointer of [pointers.input, pointers.output]) {
      try {
        driver.memFree(pointer);
      } catch {
        // A lost device refuses every call; its memory goes with the process.
      }
    }
  }

  /**
   * Attaches replicas (allocated on `device`) to that device's mirror: the input replica starts where the host's
   * input ring is read to, so what is queued there is copied in; the output replica where the host's output ring
   * is written to.
   */
  #attachReplicas(
    device: number,
    input: FrameRingMemory,
    output: FrameRingMemory,
    pointers: CudaReplicaPointers,
  ): KernelTransfer {
    const { mirror } = this.#cudaMirror(device);
    const pair = attachRingPair(
      mirror,
      (ring, direction) =>
        mirror.attachDevice(
          ring,
          direction,
          direction === MirrorDirection.HOST_TO_DEVICE ? pointers.input : pointers.output,
        ),
      input,
      output,
    );
    const { input: mirroredInput, output: mirroredOutput } = pair;
    const release = (): void => {
      if (!pair.detach()) return;
      this.#freeReplicas(device, pointers);
    };
    return {
      strategy: 'dma',
      kernelInput: input,
      kernelOutput: output,
      devicePointers: pointers,
      afterInputWrite: mirror.afterHostWrite,
      wakeMirror: mirror.afterHostWrite,
      nudgeKernel: undefined,
      serve: undefined,
      stats: () => ({ input: mirror.channelStats(mirroredInput), output: mirror.channelStats(mirroredOutput) }),
      release,
      moveTo: (target) => {
        const moved = this.#allocateReplicas(target, input, output);
        let settled = false;
        return {
          devicePointers: moved,
          commit: () => {
            if (settled) throw new TypeError('this transfer move is settled already');
            settled = true;
            release();
            return this.#attachReplicas(target, input, output, moved);
          },
          abort: () => {
            if (settled) return;
            settled = true;
            this.#freeReplicas(target, moved);
          },
        };
      },
    };
  }

  /** The mirror thread's counters, or null when no kernel has used `dma`. */
  mirrorStats(): MirrorStats | null {
    return this.#mirror?.stats() ?? null;
  }

  /** Stops and joins the mirror thread (after every kernel has released its rings). */
  async close(): Promise<void> {
    await this.#mirror?.close();
    for (const [device, { mirror }] of this.#cudaMirrors) {
      await mirror.close();
      const driver = requireCudaDriver();
      driver.primaryContextRelease(driver.device(device));
    }
    this.#cudaMirrors.clear();
  }

  #noticeFallback(reason: string, instead: TransferStrategy): void {
    this.fallbackReason ??= reason;
    if (fallbackNoticeGiven) return;
    fallbackNoticeGiven = true;
    console.warn(
      `ringkernel: the native DMA mirror is unavailable, so kernels asking for 'dma' run '${instead}': ${reason}`,
    );
  }

  #dmaMirror(): DmaMirror | undefined {
    if (this.#mirror !== undefined && !this.#mirror.closed) return this.#mirror;
    if (this.fallbackReason !== undefined) return undefined;
    const load = loadMirrorLibrary();
    try {
      if (!load.available) throw new Error(load.reason);
      this.#mirror = DmaMirror.open(this.#pollIntervalUs);
      return this.#mirror;
    } catch (error) {
      this.#noticeFallback(error instanceof Error ? error.message : String(error), 'direct');
      return undefined;
    }
  }
}

/**
 * Attaches a kernel's input (host → device) and output (device → host) rings to a mirror: both, or neither.
 * `detach` lets go of both once (it returns false after the first time); its last pass carries the output
 * replica's remaining frames and the input's read index home.
 */
function attachRingPair(
  mirror: DmaMirror,
  attach: (ring: FrameRingMemory, direction: number) => MirroredRing,
  input: FrameRingMemory,
  output: FrameRingMemory,
): { readonly input: MirroredRing; readonly output: MirroredRing; readonly detach: () => boolean } {
  const mirroredInput = attach(input, MirrorDirection.HOST_TO_DEVICE);
  let mirroredOutput: MirroredRing;
  try {
    mirroredOutput = attach(output, MirrorDirection.DEVICE_TO_HOST);
  } catch (error) {
    mirror.detach(mirroredInput);
    throw error;
  }
  let attached = true;
  return {
    input: mirroredInput,
    output: mirroredOutput,
    detach: () => {
      if (!attached) return false;
      attached = false;
      mirror.detach(mirroredInput);
      mirror.detach(mirroredOutput);
      return true;
    },
  };
}

function directTransfer(input: FrameRingMemory, output: FrameRingMemory): KernelTransfer {
  return {
    strategy: 'direct',
    kernelInput: input,
    kernelOutput: output,
    afterInputWrite: undefined,
    wakeMirror: undefined,
    nudgeKernel: undefined,
    serve: undefined,
    stats: () => null,
    release: () => {},
  };
}
