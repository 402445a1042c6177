import type { BackendType } from '../backends/backend-type.js';
import { STICKY_CU_RESULTS } from '../backends/cuda/cu-result.js';
import { nativeBackendOf, type ResolvedWebGpuOptions } from '../backends/webgpu/webgpu-adapter.js';
import type { KernelTransfer, TransferBridge } from '../bridge/transfer-bridge.js';
import type { TransferStrategy } from '../bridge/transfer-strategy.js';
import { type KernelCheckpoint, preloadQueuedFrames } from '../devices/checkpoint.js';
import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import { ErrorNumber } from '../errors/codes.js';
import { CudaError } from '../errors/cuda-errors.js';
import {
  BackendUnavailableError,
  InvalidStateError,
  KernelModuleError,
  RuntimeShutDownError,
} from '../errors/runtime-errors.js';
import { attachFailureError } from '../executor/attach-failure.js';
import { type AttachFailure, type AttachResult, type AttachTask, ERROR_REPLY_MAX_BYTES } from '../executor/protocol.js';
import { DEVICE_BATCH_METRICS_BYTES, DeviceBatchMetrics } from '../kernel/device-batch-metrics.js';
import { findKernel, isEntryModule, type KernelDefinition } from '../kernel/kernel-definition.js';
import { KERNEL_HISTOGRAMS_BYTES, LATENCY_HISTOGRAM_BYTES, LatencyHistogram } from '../kernel/latency-histogram.js';
import type { LifecycleInspector } from '../operations/lifecycle-inspector.js';
import type { MemoryAllocation } from '../operations/memory-dashboard.js';
import type { RuntimeTracing } from '../telemetry/runtime-tracing.js';
import { LifecycleTransition } from '../telemetry/span-record.js';
import { ControlBlock, ControlBlockOffset } from '../wire/control-block.js';
import { alignedFrameSize, FrameHeader } from '../wire/frame-header.js';
import { createFrameRing, type FrameRingMemory } from '../wire/frame-ring.js';
import { FrameRingPool } from '../wire/frame-ring-pool.js';
import type { MessageCodec } from '../wire/message-schema.js';
import { fixRingAllocation } from '../wire/ring-allocation.js';
import type { RuntimeConfig } from './config.js';
import type { DeadLetterStream } from './dead-letters.js';
import type { DeviceRegistry } from './device-registry.js';
import { KernelHandle } from './kernel-handle.js';
import type { Dim3 } from './kernel-handle-options.js';
import type { RuntimeLogger } from './logger.js';
import type { KernelControl, WorkerPools } from './worker-pools.js';

/** Options of `RingKernelRuntime.launch`. */
export interface LaunchOptions {
  /**
   * GPU backends: the launch's grid size (blocks), when `launch(kernel, options)` is called without the
   * positional sizes. Default 1. CPU kernels ignore it.
   */
  readonly gridSize?: Dim3;
  /** GPU backends: the launch's block size, as the positional form takes it. Default 1. CPU kernels ignore it. */
  readonly blockSize?: Dim3;
  /** The launch's name, for the runtime's by-name methods. Default: the kernel id. Unique among live kernels. */
  readonly name?: string;
  /** Frames each of the kernel's queues holds. Default: `config.defaultQueueCapacity`. */
  readonly queueCapacity?: number;
  /**
   * Activate right after launch. Default true: the kernel takes input as soon as `launch` resolves, as a
   * `fromKernel` actor's kernel does. Pass false for a kernel that is resident but idle (Launched) until
   * `activate()` — e.g. to connect it to others before it consumes.
   */
  readonly autoActivate?: boolean;
  /** What `send` does when the input queue is full. Default `'wait'`. */
  readonly onFull?: 'wait' | 'reject';
  /** Handle what is still queued on terminate (true, default) or dead-letter it (false). */
  readonly drainOnTerminate?: boolean;
  /** Checksum every frame (CRC32-C) on both queues. Default false. */
  readonly integrity?: boolean;
  /**
   * What a handler that throws does to its kernel. `'dead-letter'` (default): the message is dead-lettered (and a
   * call answered with the error) and the kernel goes on. `'fail'`: the same, then the kernel fails — let it
   * crash, for a supervisor to restart with fresh state.
   */
  readonly onHandlerError?: 'dead-letter' | 'fail';
  /**
   * How the kernel's rings reach it: `direct`, `dma` (the native mirror thread) or `mapped` (reserved for CUDA).
   * Default: the runtime's `transferStrategy`, detected for the backend. When `dma` is asked for and the
   * native library is missing, ringkernel says so once on stderr and the kernel runs `direct` (see its metrics).
   */
  readonly transferStrategy?: TransferStrategy;
  /**
   * The device to place the kernel on (`0 … config.devices − 1`). Default: the runtime's
   * {@link MultiGpuCoordinator} picks one (its strategy, default LeastLoaded; see `colocateWith`).
   */
  readonly device?: number;
  /** Place the kernel on the device of this live kernel (when no `device` is given). */
  readonly colocateWith?: string;
  /**
   * Start from a checkpoint (`handle.checkpoint()` of a kernel of the same definition): its state instead of
   * `init()`, and the messages it had queued, first in the new input queue, in order. The queue must hold them
   * (`RangeError` otherwise) and match the checkpoint's `integrity` (`TypeError`).
   */
  readonly restore?: KernelCheckpoint;
}

/** The bytes a ring takes (its data and its doorbell). */
/** Whether launch's second argument is its options object (not a grid size: a number or an array). */
function isLaunchOptions(value: Dim3 | LaunchOptions): value is LaunchOptions {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The bytes a ring takes (its data and its doorbell). */
export function ringBytes(memory: FrameRingMemory): number {
  return memory.ring.byteLength + memory.signal.byteLength;
}

/** The kernel and options of a launch, checked before anything is looked up or allocated. */
function checkLaunchArguments(kernel: unknown, options: unknown): void {
  if (typeof kernel !== 'string') {
    const definition = kernel as { id?: unknown; moduleUrl?: unknown } | null;
    if (typeof definition !== 'object' || definition === null || typeof definition.moduleUrl !== 'string') {
      throw new ArgumentTypeError(
        'kernel',
        `kernel must be a kernel id or what defineKernel returned, got ${describeValue(kernel)}`,
      );
    }
  }
  if (typeof options !== 'object' || options === null) {
    throw new ArgumentTypeError('options', `options must be an object, got ${describeValue(options)}`);
  }
  const { onFull, autoActivate, drainOnTerminate, integrity } = options as LaunchOptions;
  if (onFull !== undefined && onFull !== 'wait' && onFull !== 'reject') {
    throw new InvalidArgumentError(
      'options.onFull',
      `options.onFull must be 'wait' or 'reject', got ${describeValue(onFull)}`,
    );
  }
  for (const [key, value] of Object.entries({ autoActivate, drainOnTerminate, integrity })) {
    if (value !== undefined && typeof value !== 'boolean') {
      throw new ArgumentTypeError(`options.${key}`, `options.${key} must be a boolean, got ${describeValue(value)}`);
    }
  }
}

function dim3(name: string, value: Dim3): readonly [number, number, number] {
  if (typeof value !== 'number' && !Array.isArray(value)) {
    throw new ArgumentTypeError(
      name,
      `${name} must be a number or an array of up to three, got ${describeValue(value)}`,
    );
  }
  const parts = typeof value === 'number' ? [value] : [...value];
  const dims = [parts[0] ?? 1, parts[1] ?? 1, parts[2] ?? 1] as const;
  if (parts.length > 3 || !dims.every((d) => Number.isInteger(d) && d >= 1 && d <= 2 ** 31 - 1)) {
    throw new InvalidArgumentError(
      name,
      `${name} must be a positive integer or up to three of them, got ${JSON.stringify(value)}`,
    );
  }
  return dims;
}

/** What the launcher needs of the runtime: its settings and parts, and where a kernel's life is recorded. */
export interface LaunchHost {
  readonly config: RuntimeConfig;
  readonly backend: BackendType;
  /** The adapters the WebGPU device thread opens its devices on (WebGPU backend). */
  readonly webgpu: ResolvedWebGpuOptions;
  readonly log: RuntimeLogger;
  readonly tracing: RuntimeTracing | undefined;
  /** Where the kernels' lifecycle inspection events go (the runtime's `inspect` option). */
  readonly inspector: LifecycleInspector | undefined;
  readonly deadLetters: DeadLetterStream;
  readonly bridge: TransferBridge;
  readonly workers: WorkerPools<KernelHandle>;
  readonly devices: DeviceRegistry;
  /** Shutdown has begun: no restarts. */
  readonly shuttingDown: boolean;
  /** @throws unless the runtime takes new work. */
  checkAccepting(operation: string): void;
  /** The live kernel launched under `name`, if any. */
  liveKernel(name: string): KernelHandle | undefined;
  /** The live node of the runtime's cluster that lists a kernel under `name`, when it is another node. */
  nameHeldElsewhere(name: string): { readonly node: string; readonly status: string } | undefined;
  /** A kernel is launched and resident on `threadId`: it joins the runtime (admission, memory, by-name lookup). */
  joined(handle: KernelHandle, threadId: number, allocations: readonly MemoryAllocation[]): void;
  /** A kernel has ended (terminated or failed for good). */
  ended(handle: KernelHandle): void;
  /** A supervised kernel's instance failed; its supervisor decides. */
  interrupted(handle: KernelHandle): void;
  /**
   * A forced termination found `handle`'s handler stuck: its worker thread is replaced (not while shutting down:
   * the pool goes then). `salvaged` settles once that worker has gone and the kernel's queue is dead-lettered.
   */
  stuck(handle: KernelHandle, salvaged: Promise<void>): void;
  /** A kernel's new instance runs on `threadId` (a supervisor's restart). */
  restarted(handle: KernelHandle, threadId: number): void;
  /** A checkpoint of a kernel was taken. */
  checkpointed(): void;
}

/**
 * Launches kernels for a runtime: validates the launch, allocates the ControlBlock and rings, opens the transfer,
 * places the kernel, attaches it through the executor shell (a worker, or the CUDA device thread) and builds its
 * handle, wired for restarts and migrations. Also relaunches a supervised kernel's instance.
 */
export class KernelLauncher {
  readonly #host: LaunchHost;
  /** Names whose launch is in progress. */
  readonly #launching = new Set<string>();
  /** Kernels' rings by size, recycled when a kernel ends: churn reuses memory instead of allocating anew. */
  readonly #ringPool = new FrameRingPool();
  #nextInstanceId = 1;

  constructor(host: LaunchHost) {
    // Before the first ring: rings are fresh mappings whatever the process freed before (see fixRingAllocation).
    fixRingAllocation();
    this.#host = host;
  }

  /** Launches a kernel (see `RingKernelRuntime.launch`). */
  async launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    sizesOrOptions: Dim3 | LaunchOptions = 1,
    positionalBlockSize: Dim3 = 1,
    positionalOptions: LaunchOptions = {},
  ): Promise<KernelHandle<InIn, OutView>> {
    // launch(kernel, options) — the sizes, which only GPU backends use, inside the options — or the positional
    // launch(kernel, gridSize, blockSize, options).
    const byOptions = isLaunchOptions(sizesOrOptions);
    const options: LaunchOptions = byOptions ? sizesOrOptions : positionalOptions;
    const gridSize: Dim3 = byOptions ? (options.gridSize ?? 1) : sizesOrOptions;
    const blockSize: Dim3 = byOptions ? (options.blockSize ?? 1) : positionalBlockSize;
    const host = this.#host;
    host.checkAccepting('launch');
    checkLaunchArguments(kernel, options);
    const definition = typeof kernel === 'string' ? findKernel(kernel) : kernel;
    if (isEntryModule(definition.moduleUrl)) {
      throw new KernelModuleError(
        { id: definition.id, moduleUrl: definition.moduleUrl },
        "it is the program's entry module. Workers import a kernel's module to find the kernel, so each would run the whole program again. Move the kernel into a module of its own (for example kernels/" +
          `${definition.id}.js), export it, and import it from here; a bundled app bundles that module as an entry of its own and passes its URL as the kernel's \`module\``,
      );
    }
    const name = options.name ?? definition.id;
    if (typeof name !== 'string' || name.length === 0) {
      throw new ArgumentTypeError(
        'options.name',
        `options.name must be a non-empty string, got ${describeValue(name)}`,
      );
    }
    const existing = host.liveKernel(name);
    const taken = (state: string): InvalidStateError =>
      new InvalidStateError(
        name,
        'launch',
        state,
        'Launched',
        `and the name '${name}' is taken while it lives: pass { name } to launch another instance of kernel '${definition.id}'`,
      );
    if (existing !== undefined) throw taken(existing.status);
    // Names are the cluster's: another node's live kernel keeps its name (senders there address it by that name).
    const elsewhere = host.nameHeldElsewhere(name);
    if (elsewhere !== undefined) {
      throw new InvalidStateError(
        name,
        'launch',
        elsewhere.status,
        'Launched',
        `and the name '${name}' is taken by a kernel on node '${elsewhere.node}' of the cluster: pass another { name }`,
      );
    }
    if (this.#launching.has(name)) throw taken('Created');
    const grid = dim3('gridSize', gridSize);
    const block = dim3('blockSize', blockSize);
    const capacity = options.queueCapacity ?? host.config.defaultQueueCapacity;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 20) {
      throw new InvalidArgumentError(
        'options.queueCapacity',
        `options.queueCapacity must be an integer in [1, 1048576], got ${describeValue(capacity)}`,
      );
    }
    const integrity = options.integrity ?? false;
    const onHandlerError = options.onHandlerError ?? 'dead-letter';
    if (onHandlerError !== 'dead-letter' && onHandlerError !== 'fail') {
      throw new InvalidArgumentError(
        'options.onHandlerError',
        `options.onHandlerError must be 'dead-letter' or 'fail', got ${JSON.stringify(onHandlerError)}`,
      );
    }
    const failOnHandlerError = onHandlerError === 'fail';
    const restore = options.restore;
    if (restore !== undefined && restore.kernelId !== definition.id) {
      throw new ArgumentTypeError(
        'options.restore',
        `options.restore is a checkpoint of kernel '${restore.kernelId}', not '${definition.id}'`,
      );
    }
    if (restore !== undefined && restore.queued.frames > 0 && restore.queued.integrity !== integrity) {
      throw new ArgumentTypeError(
        'options.restore',
        `options.restore carries frames from a ring ${restore.queued.integrity ? 'with' : 'without'} integrity checksums: launch with integrity: ${restore.queued.integrity}`,
      );
    }
    // On the CUDA backend a kernel with a cuda part runs on its GPU; every other kernel runs on CPU workers.
    const onCuda = host.backend === 'cuda' && definition.cuda !== undefined;
    // On the WebGPU backend a kernel with a webgpu part runs on the device thread; the others on CPU workers.
    const onWebGpu = host.backend === 'webgpu' && definition.webgpu !== undefined;
    if (!onCuda && !onWebGpu && definition.cpu === undefined) {
      const has = definition.cuda !== undefined ? 'CUDA' : 'WebGPU';
      throw new BackendUnavailableError(
        has === 'CUDA' ? 'cuda' : 'webgpu',
        `kernel '${definition.id}' has only a ${has} handler, and this runtime's backend is ${host.backend}`,
      );
    }
    if (onWebGpu && options.transferStrategy !== undefined && options.transferStrategy !== 'direct') {
      throw new InvalidArgumentError(
        'options.transferStrategy',
        `options.transferStrategy: WebGPU kernels take 'direct' (the device thread reads the rings in place), got ${JSON.stringify(options.transferStrategy)}`,
      );
    }
    const outputBytes = onWebGpu ? definition.webgpu?.outputBytes : undefined;
    if (outputBytes !== undefined) {
      const limit = this.#maxPayloadSize([definition.output, ...(definition.emits ?? [])], ERROR_REPLY_MAX_BYTES);
      if (outputBytes > limit) {
        throw new InvalidArgumentError(
          'spec.webgpu.outputBytes',
          `kernel '${definition.id}': webgpu.outputBytes must be at most ${limit} (the output ring's largest payload), got ${outputBytes}`,
        );
      }
    }
    if (onCuda) {
      if (
        options.transferStrategy !== undefined &&
        options.transferStrategy !== 'mapped' &&
        options.transferStrategy !== 'dma'
      ) {
        throw new InvalidArgumentError(
          'options.transferStrategy',
          `options.transferStrategy: CUDA kernels take 'mapped' (rings pinned and mapped into the device) or 'dma' (replicas in device memory, copied by the mirror thread), got ${JSON.stringify(options.transferStrategy)}`,
        );
      }
    }
    const instanceId = this.#nextInstanceId++;
    // The latency histograms follow the ControlBlock in its buffer (one SharedArrayBuffer for both); a WebGPU
    // kernel's batch metrics follow them: the device thread records, the exporter reads.
    const control = ControlBlock.create(
      instanceId,
      instanceId,
      KERNEL_HISTOGRAMS_BYTES + (onWebGpu ? DEVICE_BATCH_METRICS_BYTES : 0),
    );
    const histogram = control.buffer;
    const histogramOffset = ControlBlockOffset.SIZE;
    // A device executor learns from the block that its rings require checksums (a CPU worker from the rings).
    control.setIntegrity(integrity);
    const input = this.ring(definition.input, capacity, integrity, 0, this.#ringPool);
    const output = this.ring(
      [definition.output, ...(definition.emits ?? [])],
      capacity,
      integrity,
      ERROR_REPLY_MAX_BYTES,
      this.#ringPool,
    );
    // Its queued messages go first into the new input ring, before anyone can send (RangeError if they don't fit).
    if (restore !== undefined) preloadQueuedFrames(input, restore.queued.bytes);
    const kernelBytes = control.buffer.byteLength + ringBytes(input) + ringBytes(output);
    const device = host.devices.place(options, kernelBytes, onCuda);
    if (!onCuda && host.backend === 'cuda' && options.transferStrategy === 'mapped') {
      throw new InvalidArgumentError(
        'options.transferStrategy',
        `options.transferStrategy 'mapped' is for CUDA kernels; kernel '${definition.id}' runs on CPU workers ('direct' or 'dma')`,
      );
    }
    // A CPU kernel on the CUDA backend reads its rings in place, as on the CPU backend.
    const transfer = onCuda
      ? this.#openCudaTransfer(input, output, device, options.transferStrategy === 'dma' ? 'dma' : 'mapped')
      : host.bridge.open(input, output, options.transferStrategy ?? (host.backend === 'cuda' ? 'direct' : undefined));
    // The instance's control port: a share of its worker's control line (CPU), a MessagePort (device threads).
    const openControl = (): KernelControl => host.workers.openControl(onCuda || onWebGpu);
    const firstControl = openControl();
    const tracing = host.tracing;
    const inspector = host.inspector;
    const launchSpan = tracing?.host.beginLifecycle();
    // autoActivate: the attach activates the kernel too (one round trip less); its span covers the attach.
    const autoActivate = options.autoActivate ?? true;
    const activateSpan = autoActivate ? tracing?.host.beginLifecycle() : undefined;
    const telemetry = tracing?.attachKernel(instanceId, name, definition.id);
    // Reserve the name before the first await, so two concurrent launches cannot both take it.
    this.#launching.add(name);
    let attached: AttachResult;
    const task = (
      port: KernelControl,
      on: number,
      state?: Uint8Array,
      dormant = false,
      // The rings as they are now: a restarted dma kernel has fresh replicas, a migrated CUDA one its target's.
      rings: Pick<KernelTransfer, 'kernelInput' | 'kernelOutput' | 'devicePointers'> = transfer,
    ): AttachTask => ({
      kernelId: definition.id,
      moduleUrl: definition.moduleUrl,
      instanceId,
      controlBlock: control.buffer,
      histogram,
      histogramOffset,
      // The rings the worker reads: the host's own (direct), or the mirror's replicas (dma).
      input: rings.kernelInput,
      output: rings.kernelOutput,
      port: port.executor,
      enableTelemetry: host.config.enableTelemetry,
      failOnHandlerError,
      // The kernel's telemetry ring outlives its instances: a restarted instance writes to the same one.
      tracing: telemetry,
      device: on,
      restoreState: state,
      dormant,
      inspect: host.inspector !== undefined,
      ...(onWebGpu
        ? { webgpu: { allowFallback: host.webgpu.allowFallback, nativeBackend: nativeBackendOf(host.webgpu, on) } }
        : {}),
      ...(onCuda
        ? {
            cuda: {
              gridSize: grid[0],
              blockSize: block[0],
              pollIntervalUs: host.config.bridgePollInterval,
              devicePointers: rings.devicePointers,
            },
          }
        : {}),
    });
    try {
      attached = await this.#attach(
        { ...task(firstControl, device, restore?.state), activate: autoActivate },
        onCuda,
        device,
        firstControl,
      );
      if (attached.failure !== undefined) throw this.#attachError(attached.failure, definition, name, onCuda);
      const how = attached.cuda;
      if (how !== undefined) {
        host.log.debug(`kernel '${name}': CUDA image ${how.key} from ${how.cached ? 'the cache' : how.compiler}`);
      }
    } catch (error) {
      firstControl.host.close();
      transfer.release();
      if (launchSpan !== undefined) {
        tracing?.host.endLifecycle(launchSpan, LifecycleTransition.LAUNCH, instanceId, ErrorNumber.KernelFailed);
      }
      tracing?.detachKernel(instanceId);
      throw error;
    } finally {
      this.#launching.delete(name);
    }
    const handle = new KernelHandle<InIn, OutView>({
      name,
      definition,
      instanceId,
      control,
      histogram: new LatencyHistogram(histogram, histogramOffset),
      hopHistogram: new LatencyHistogram(histogram, histogramOffset + LATENCY_HISTOGRAM_BYTES),
      deviceBatches: onWebGpu
        ? new DeviceBatchMetrics(histogram, histogramOffset + KERNEL_HISTOGRAMS_BYTES)
        : undefined,
      input,
      output,
      transfer,
      port: firstControl.host,
      threadId: attached.threadId,
      gridSize: grid,
      blockSize: block,
      onFull: options.onFull ?? 'wait',
      queueCapacity: capacity,
      drainOnTerminate: options.drainOnTerminate ?? true,
      terminationTimeout: host.config.terminationTimeout,
      onDeadLetter: (letter) => host.deadLetters.publish(letter),
      onExit: (exited) => host.ended(exited),
      onWorkerExit: (threadId) => host.workers.markDead(threadId),
      onInterrupted: (interrupted) => host.interrupted(interrupted),
      onStuckTermination: (stuck, salvaged) => host.stuck(stuck, salvaged),
      onDeviceLost: (lost, cudaErrorName) => host.devices.markLost(lost, cudaErrorName),
      onInspect: inspector === undefined ? undefined : (event) => inspector.forward(name, instanceId, event),
      reattach: (restarted, next) =>
        this.#reattach(
          restarted,
          definition,
          // A migrated dma kernel's replicas are on its new device: the handle's transfer has them.
          (on) => task(next, on, undefined, false, restarted.transfer),
          next,
        ),
      openControl,
      failOnHandlerError,
      tracer: tracing?.host,
      device,
      firstMessageId: (restore?.queued.maxMessageId ?? 0) + 1,
      attachDormant: async (moving, next, on, devicePointers) => {
        const rings = devicePointers === undefined ? moving.transfer : { ...moving.transfer, devicePointers };
        const dormant = await this.#attach(task(next, on, undefined, true, rings), onCuda, on, next);
        if (dormant.failure !== undefined) throw this.#attachError(dormant.failure, definition, name, onCuda);
        return dormant.threadId;
      },
      onCheckpoint: () => host.checkpointed(),
      releaseRings: (endedInput, endedOutput) => {
        this.#ringPool.release(endedInput);
        this.#ringPool.release(endedOutput);
      },
    });
    if (launchSpan !== undefined) tracing?.host.endLifecycle(launchSpan, LifecycleTransition.LAUNCH, instanceId, 0);
    host.joined(handle as KernelHandle, attached.threadId, [
      { kind: 'control-block', owner: name, bytes: control.buffer.byteLength },
      { kind: 'ring', owner: name, bytes: ringBytes(input) + ringBytes(output) },
    ]);
    const on = host.devices.count > 1 ? ` of device ${device}` : '';
    host.log.debug(`launched kernel '${name}' (${definition.id}) on worker ${attached.threadId}${on}`);
    if (autoActivate) {
      // Active already (its ControlBlock says so), unless its state did not take the activation: then ask.
      if (handle.status !== 'Active') await handle.activate();
      else {
        handle.activatedAtLaunch();
        if (activateSpan !== undefined) {
          tracing?.host.endLifecycle(activateSpan, LifecycleTransition.ACTIVATE, instanceId, 0);
        }
      }
    }
    return handle;
  }

  /**
   * A ring sized for `capacity` frames of the codec's message (fixed schemas) or of modest raw payloads (bytes,
   * up to `defaultMessageSize`), plus room for one frame of `reserve` bytes (an output ring's error reply).
   */
  ring(
    codec: MessageCodec<unknown, unknown> | readonly MessageCodec<unknown, unknown>[],
    capacity: number,
    integrity: boolean,
    reserve: number,
    pool?: FrameRingPool,
  ) {
    const fixed = fixedSizeOf(codec);
    const maxPayloadSize = this.#maxPayloadSize(codec, reserve);
    if (fixed !== undefined) {
      const capacityBytes = capacity * alignedFrameSize(fixed) + (reserve > fixed ? alignedFrameSize(reserve) : 0) + 8;
      return pool === undefined
        ? createFrameRing({ capacityBytes, maxPayloadSize, integrity })
        : pool.acquire({ capacityBytes, maxPayloadSize, integrity });
    }
    // Raw bytes: room for `capacity` modest frames, and never less than two of the largest.
    const capacityBytes = Math.max(capacity * alignedFrameSize(64), 2 * alignedFrameSize(maxPayloadSize) + 8);
    return pool === undefined
      ? createFrameRing({ capacityBytes, maxPayloadSize, integrity })
      : pool.acquire({ capacityBytes, maxPayloadSize, integrity });
  }

  /** The largest payload a ring for `codec` (and a frame of `reserve` bytes) takes. */
  #maxPayloadSize(
    codec: MessageCodec<unknown, unknown> | readonly MessageCodec<unknown, unknown>[],
    reserve: number,
  ): number {
    const fixed = fixedSizeOf(codec);
    return fixed === undefined ? this.#host.config.defaultMessageSize - FrameHeader.SIZE : Math.max(fixed, reserve);
  }

  /** Lets the pooled rings of ended kernels go (the runtime is shutting down). */
  releasePooledRings(): void {
    this.#ringPool.clear();
  }

  /**
   * A supervisor restarts a kernel: a new instance on the least loaded live worker. A CUDA kernel whose device was
   * lost goes to another device (`mapped`: its rings are host memory, so any device can map them); a `dma` kernel
   * cannot (its ring replicas were on the lost device).
   */
  async #reattach(
    handle: KernelHandle,
    definition: { readonly id: string; readonly moduleUrl: string },
    task: (device: number) => AttachTask,
    control: KernelControl,
  ): Promise<{ threadId: number; device: number }> {
    const host = this.#host;
    if (host.shuttingDown) throw new RuntimeShutDownError('restart');
    let device = handle.device;
    const onCuda = task(device).cuda !== undefined;
    if (onCuda && host.devices.isLost(device)) {
      // The kernel's actual transfer decides (a dma launch without the native mirror runs mapped).
      if (!handle.relaunch.anotherDevice) {
        throw host.devices.lostError(device, `kernel '${handle.name}' uses dma, whose ring replicas were there`);
      }
      device = host.devices.place({}, 0, true);
      host.log.warn(`kernel '${handle.name}': its CUDA device ${handle.device} is lost; restarting it on ${device}`);
    }
    const restartSpan = host.tracing?.host.beginLifecycle();
    // A CUDA kernel is relaunched by the CUDA device thread, over the same rings and ControlBlock.
    const attached = await this.#attach(task(device), onCuda, device, control);
    if (attached.failure !== undefined) throw this.#attachError(attached.failure, definition, handle.name, onCuda);
    const { threadId } = attached;
    if (restartSpan !== undefined) {
      host.tracing?.host.endLifecycle(restartSpan, LifecycleTransition.RESTART, handle.instanceId, 0);
    }
    host.restarted(handle, threadId);
    host.log.info(`kernel '${handle.name}' restarted on worker ${threadId} (restart ${handle.restarts})`);
    return { threadId, device };
  }

  /** Attaches a kernel's instance on its worker; a WebGPU one tells which adapter its device is on. */
  async #attach(task: AttachTask, onCuda: boolean, device: number, control: KernelControl): Promise<AttachResult> {
    const attached = await this.#host.workers.attach(task, onCuda, device, control);
    if (attached.webgpu !== undefined) this.#host.devices.attachedWebGpu(device, attached.webgpu.adapter);
    return attached;
  }

  /** A CUDA kernel's rings; replicas on a device that turns out lost (`dma`) fail with CudaDeviceLostError. */
  #openCudaTransfer(
    input: FrameRingMemory,
    output: FrameRingMemory,
    device: number,
    strategy: 'mapped' | 'dma',
  ): KernelTransfer {
    try {
      return this.#host.bridge.openCuda(input, output, device, strategy);
    } catch (error) {
      if (!(error instanceof CudaError) || !STICKY_CU_RESULTS.has(error.cudaResult)) throw error;
      this.#host.devices.markLost(device, error.cudaErrorName);
      throw this.#host.devices.lostError(device, 'its ring replicas could not be allocated there');
    }
  }

  /** An attach's failure as its typed error; a lost device is remembered. */
  #attachError(
    failure: AttachFailure,
    kernel: { readonly id: string; readonly moduleUrl: string },
    name: string,
    onCuda: boolean,
  ): Error {
    if (failure.deviceLost !== undefined)
      this.#host.devices.markLost(failure.deviceLost.device, failure.deviceLost.cudaErrorName);
    return attachFailureError(failure, kernel, name, onCuda ? 'the CUDA device thread' : 'its worker');
  }
}

/** The largest size of fixed-size codecs (a kernel that emits several types needs room for each), or undefined. */
function fixedSizeOf(
  codec: MessageCodec<unknown, unknown> | readonly MessageCodec<unknown, unknown>[],
): number | undefined {
  const sizes = (Array.isArray(codec) ? codec : [codec]).map((c) => (c as { size?: unknown }).size);
  return sizes.every((size) => typeof size === 'number') ? Math.max(...(sizes as number[])) : undefined;
}
