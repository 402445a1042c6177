import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ArgumentTypeError } from '../errors/argument-errors.js';
import { DuplicateKernelError, KernelNotFoundError } from '../errors/runtime-errors.js';
import type { FrameView } from '../wire/frame-view.js';
import type { HybridLogicalClock } from '../wire/hlc.js';
import type { MessageCodec } from '../wire/message-schema.js';
import { type CudaKernelSpec, type ResolvedCudaKernelSpec, resolveCudaKernelSpec } from './cuda-kernel-spec.js';
import { type ResolvedWebGpuKernelSpec, resolveWebGpuKernelSpec, type WebGpuKernelSpec } from './webgpu-kernel-spec.js';

/**
 * What a CPU handler gets besides its message: who it is, its persistent state, a way to emit outputs, the
 * kernel's clock and the envelope of the message in hand.
 */
export interface KernelContext<OutIn, State> {
  /** The kernel's definition id. */
  readonly kernelId: string;
  /** The runtime's numeric id of this launched kernel (what frames carry as source/destination). */
  readonly instanceId: number;
  /** Per-kernel state: starts as `init()` returned, lives as long as the kernel. Replace or mutate it freely. */
  state: State;
  /**
   * Sends an output: to the kernels linked to this one (`runtime.connect`) that take its type, else to the host.
   * Never drops: when the output queue is full the message is held and the kernel stops taking input until it
   * has been written. Pass `as` to emit one of the spec's other output types (`emits`) instead: outputs are
   * routed by message type.
   */
  emit(message: OutIn): void;
  emit<T>(message: T, as: MessageCodec<T, unknown>): void;
  /** The kernel's hybrid logical clock, already advanced past the message in hand. */
  readonly clock: HybridLogicalClock;
  /** The envelope of the message in hand (ids, source, HLC, trace context). Valid only during the call. */
  readonly envelope: FrameView;
}

/**
 * A CPU kernel handler: ordinary TypeScript, called once per message with a zero-copy view of it. Whatever it
 * returns (other than `undefined`) is sent back as the response, correlated with the message — that is what
 * `handle.call` awaits.
 */
export type CpuHandler<InView, OutIn, State> = (
  message: InView,
  context: KernelContext<OutIn, State>,
) => OutIn | undefined;

/** What {@link defineKernel} takes. */
export interface KernelSpec<InIn, InView, OutIn, OutView, State> {
  /** The kernel's id, unique in the process: `runtime.launch(id, …)` uses it. */
  readonly id: string;
  /** The input message type (a `defineMessage` schema or `BytesMessage`). */
  readonly input: MessageCodec<InIn, InView>;
  /** The output message type. */
  readonly output: MessageCodec<OutIn, OutView>;
  /**
   * The CPU handler: what the kernel runs on the CPU backend (and on the CUDA backend when it has no `cuda`
   * part). Optional only for a kernel with a `cuda` part, which then runs on CUDA devices only.
   */
  readonly cpu?: CpuHandler<InView, OutIn, State>;
  /**
   * The kernel's CUDA device handler. On the CUDA backend the runtime compiles it into the persistent-kernel
   * template at launch (cached) and runs it resident on the GPU, over the same rings and lifecycle as a CPU kernel.
   */
  readonly cuda?: CudaKernelSpec;
  /**
   * The kernel's WebGPU device handler (WGSL). On the WebGPU backend the runtime compiles it at launch and runs it
   * resident on the device — its pipeline and state buffer made once — over the same rings and lifecycle as a CPU
   * kernel, one shader invocation per message of each batch.
   */
  readonly webgpu?: WebGpuKernelSpec;
  /**
   * Other message types the kernel may `emit` besides `output`. `runtime.connect(kernel, consumer)` routes each
   * output to the consumers that take its type; outputs of a type no link takes go to the host.
   */
  // biome-ignore lint/suspicious/noExplicitAny: a kernel may emit messages of any schema.
  readonly emits?: readonly MessageCodec<any, any>[];
  /** Creates the kernel's initial state, in its worker, at launch. Default: `undefined`. */
  readonly init?: () => State;
  /**
   * Turns the state into bytes for a checkpoint or a migration (`handle.checkpoint()`, `migrateKernel`). Default:
   * v8 structured serialization (`v8.serialize`), which handles plain objects, arrays, typed arrays, Maps, Sets,
   * Dates…; a state it cannot serialize (functions, class instances that must keep their prototype) needs this hook.
   */
  readonly snapshot?: (state: State) => Uint8Array;
  /** Rebuilds the state from `snapshot`'s bytes, in the new instance's worker. Default: `v8.deserialize`. */
  readonly restore?: (bytes: Uint8Array) => State;
  /**
   * The URL of the module that defines this kernel, which each worker imports to find it. Default: the module
   * that called `defineKernel` (read from the call stack). The module must be importable on its own, without
   * side effects such as starting a runtime: define kernels in modules of their own.
   */
  readonly module?: string | URL;
}

/** A defined kernel: its spec plus the module URL workers load it from. */
export interface KernelDefinition<InIn = unknown, InView = unknown, OutIn = unknown, OutView = unknown, State = unknown>
  extends Omit<KernelSpec<InIn, InView, OutIn, OutView, State>, 'module' | 'cuda' | 'webgpu'> {
  /** The CUDA part, checked, with its paths resolved. */
  readonly cuda?: ResolvedCudaKernelSpec;
  /** The WebGPU part, checked, its source read. */
  readonly webgpu?: ResolvedWebGpuKernelSpec;
  /** `file:` URL of the defining module. */
  readonly moduleUrl: string;
}

/**
 * The message a kernel takes, as `send` and `call` accept it: `InputOf<typeof Averager>`.
 *
 * @example
 * const reading: InputOf<typeof Averager> = { sensor: 1, celsius: 21.5 };
 */
// biome-ignore lint/suspicious/noExplicitAny: matches a definition of any message types.
export type InputOf<K> = K extends KernelDefinition<infer In, any, any, any, any> ? In : never;

/**
 * The output of a kernel as the host reads it (`receive`, `call`, `for await`, the `fromKernel` events): a
 * read-only view. `OutputOf<typeof Averager>`.
 */
// biome-ignore lint/suspicious/noExplicitAny: matches a definition of any message types.
export type OutputOf<K> = K extends KernelDefinition<any, any, any, infer OutView, any> ? OutView : never;

/** Any kernel definition, whatever its message types. */
// biome-ignore lint/suspicious/noExplicitAny: a registry holds definitions of every message type.
export type AnyKernelDefinition = KernelDefinition<any, any, any, any, any>;

const registry = new Map<string, AnyKernelDefinition>();
/** Set in the runtime's own worker threads, before they import a kernel's module. */
let kernelWorker = false;

/** Marks this thread as one of the runtime's kernel workers (kernel hosts call it before importing modules). */
export function enterKernelWorker(): void {
  kernelWorker = true;
}

/** Whether this thread is one of the runtime's kernel workers: building a runtime here would recurse. */
export function isKernelWorker(): boolean {
  return kernelWorker;
}

/**
 * Whether `moduleUrl` is the program's entry module (`node main.js`: main.js). Workers import a kernel's module
 * to find it; importing the entry would run the whole program again in every worker.
 */
export function isEntryModule(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (entry === undefined || !moduleUrl.startsWith('file:')) return false;
  // Asked at every launch: two realpath walks (an lstat per path component) each time would cost more than the
  // rest of a launch's host-side work. A module's path does not move while the process runs.
  const key = `${entry}\0${moduleUrl}`;
  let known = entryModuleAnswers.get(key);
  if (known === undefined) {
    try {
      known = realpathSync(fileURLToPath(moduleUrl)) === realpathSync(entry);
    } catch {
      known = false;
    }
    entryModuleAnswers.set(key, known);
  }
  return known;
}
/** {@link isEntryModule}'s answers, by entry and module URL (one per kernel module the process launches). */
const entryModuleAnswers = new Map<string, boolean>();
const ID = /^[A-Za-z0-9_.:/-]{1,200}$/;

function callerModuleUrl(): string {
  const own = import.meta.url;
  const stack = new Error().stack ?? '';
  for (const match of stack.matchAll(/(file:\/\/[^\s)]+?):\d+:\d+/g)) {
    const url = match[1] as string;
    if (url !== own) return url;
  }
  throw new ArgumentTypeError(
    'spec.module',
    'defineKernel could not tell which module called it; pass `module: import.meta.url`',
  );
}

/**
 * Defines a kernel. Call it at the top level of a module of its own and export the result; the runtime's
 * workers import that module to run the handler.
 *
 * @throws {ArgumentTypeError} (a `TypeError`, code RK_INVALID_ARGUMENT) on a malformed spec, naming the field. {@link DuplicateKernelError} when another module already defined the id.
 * @example
 * // kernels/averager.ts
 * export const Averager = defineKernel({
 *   id: 'averager',
 *   input: Reading,
 *   output: Average,
 *   init: () => ({ sum: 0, n: 0 }),
 *   cpu: (reading, ctx) => {
 *     ctx.state.sum += reading.value;
 *     ctx.state.n += 1;
 *     return { mean: ctx.state.sum / ctx.state.n };
 *   },
 * });
 */
export function defineKernel<InIn, InView, OutIn, OutView, State = undefined>(
  spec: KernelSpec<InIn, InView, OutIn, OutView, State>,
): KernelDefinition<InIn, InView, OutIn, OutView, State> {
  if (typeof spec !== 'object' || spec === null)
    throw new ArgumentTypeError('spec', 'defineKernel needs a spec object');
  if (typeof spec.id !== 'string' || !ID.test(spec.id)) {
    throw new ArgumentTypeError(
      'spec.id',
      `kernel id must be 1-200 characters of [A-Za-z0-9_.:/-], got ${JSON.stringify(spec.id)}`,
    );
  }
  for (const side of ['input', 'output'] as const) {
    const codec = spec[side];
    if (
      typeof codec !== 'object' ||
      codec === null ||
      typeof codec.typeId !== 'number' ||
      typeof codec.encodeInto !== 'function'
    ) {
      throw new ArgumentTypeError(
        `spec.${side}`,
        `kernel '${spec.id}': ${side} must be a message schema (defineMessage) or BytesMessage`,
      );
    }
  }
  if (spec.cpu === undefined ? spec.cuda === undefined && spec.webgpu === undefined : typeof spec.cpu !== 'function') {
    throw new ArgumentTypeError(
      'spec.cpu',
      `kernel '${spec.id}': cpu must be a handler function (it may be left out only with a cuda or webgpu part)`,
    );
  }
  const cuda = spec.cuda === undefined ? undefined : resolveCudaKernelSpec(spec.id, spec.cuda);
  const webgpu = spec.webgpu === undefined ? undefined : resolveWebGpuKernelSpec(spec.id, spec.webgpu);
  if (spec.emits !== undefined) {
    if (!Array.isArray(spec.emits))
      throw new ArgumentTypeError('spec.emits', `kernel '${spec.id}': emits must be an array of message schemas`);
    const typeIds = new Set([spec.output.typeId]);
    for (const codec of spec.emits) {
      if (typeof codec !== 'object' || codec === null || typeof codec.typeId !== 'number') {
        throw new ArgumentTypeError('spec.emits', `kernel '${spec.id}': emits must be an array of message schemas`);
      }
      if (typeIds.has(codec.typeId)) {
        throw new ArgumentTypeError(
          'spec.emits',
          `kernel '${spec.id}': emits lists type ${codec.name} twice (or the output type again)`,
        );
      }
      typeIds.add(codec.typeId);
    }
  }
  for (const hook of ['init', 'snapshot', 'restore'] as const) {
    if (spec[hook] !== undefined && typeof spec[hook] !== 'function') {
      throw new ArgumentTypeError(`spec.${hook}`, `kernel '${spec.id}': ${hook} must be a function`);
    }
  }
  const moduleUrl = spec.module === undefined ? callerModuleUrl() : new URL(String(spec.module)).href;
  const existing = registry.get(spec.id);
  if (existing !== undefined && existing.moduleUrl !== moduleUrl) {
    throw new DuplicateKernelError(spec.id, existing.moduleUrl, moduleUrl);
  }
  const { module: _module, cuda: _cuda, webgpu: _webgpu, ...rest } = spec;
  const definition = Object.freeze({
    ...rest,
    ...(cuda === undefined ? {} : { cuda: Object.freeze(cuda) }),
    ...(webgpu === undefined ? {} : { webgpu: Object.freeze(webgpu) }),
    moduleUrl,
  });
  registry.set(spec.id, definition);
  return definition;
}

/**
 * The kernel defined under `id` in this thread.
 * @throws {KernelNotFoundError} when none is.
 */
export function findKernel(id: string): AnyKernelDefinition {
  const definition = registry.get(id);
  if (definition === undefined) throw new KernelNotFoundError(id);
  return definition;
}
