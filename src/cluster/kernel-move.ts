import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import { ClusterNodeDownError, ClusterPlacementError } from '../errors/cluster-errors.js';
import { MigrationError, type MigrationPhase } from '../errors/device-errors.js';
import { InvalidStateError, KernelNotFoundError } from '../errors/runtime-errors.js';
import { TimeoutError } from '../errors/value-errors.js';
import type { ClusterRuntimePort, HostedKernel } from './cluster-ports.js';
import type { ClusterKernelEntry, ClusterRegistry } from './cluster-registry.js';
import type { ClusterSubjects } from './cluster-subjects.js';
import { FrameBatchWriter, readFrameBatch } from './frame-batch.js';
import type { HeldMessage } from './hand-over.js';
import type { KernelHost } from './kernel-host.js';
import { answerAfter, type PlacedLaunchOptions, type PlacementAnswer } from './kernel-placement.js';

/** Options of a move to another node (`runtime.kernelMigrator().moveToNode`). */
export interface NodeMoveOptions {
  /**
   * Longest wait, ms, for each step: the kernel finishing what is already in its queue, its pause and checkpoint,
   * and each answer of the target node. Past it the move is given up and the kernel runs on at its source.
   * Default 10 000.
   */
  readonly timeoutMs?: number;
  /** Launch options for the kernel on the target (default: its queue capacity here). */
  readonly launch?: Omit<PlacedLaunchOptions, 'name' | 'autoActivate'>;
}

/** What a move to another node did. */
export interface NodeMoveReport {
  readonly kernel: string;
  readonly from: string;
  readonly to: string;
  /** The state's bytes (the kernel's `snapshot` hook, or v8 serialization). */
  readonly stateBytes: number;
  /** One-way batches and calls that arrived during the move, handed to the target and handled there. */
  readonly messagesCarried: number;
  /** Outputs no one had received yet, carried to the target (its `receive` returns them first). */
  readonly outputsCarried: number;
  /** How long the kernel handled nothing: from its pause here to the commit there, ms. */
  readonly pauseMs: number;
  /** Whether the kernel was active (it is active on the target too). */
  readonly wasActive: boolean;
}

/** What the move's source asks the target to launch, paused, before it lets the kernel go. */
interface MovePrepare {
  readonly step: 'prepare';
  readonly move: string;
  readonly kernelId: string;
  readonly moduleUrl: string | undefined;
  readonly options: PlacedLaunchOptions;
  readonly state: string;
  /** The registry entry's revision the target swaps (compare-and-swap) when it takes the name. */
  readonly revision: number;
  /** The source's timeout per step: the target gives the move up when no commit comes within twice that. */
  readonly timeoutMs: number;
}

/** The source let the kernel go: what it held, the ids it took, the outputs no one received. */
interface MoveCommit {
  readonly step: 'commit';
  readonly move: string;
  readonly held: readonly {
    kind: HeldMessage['kind'];
    data: string;
    headers: Record<string, string>;
    reply?: string;
  }[];
  readonly lastIds: Record<string, number>;
  readonly outputs: string;
}

/** A held message as it travels (its bytes in base64). */
type TravellingHeld = MoveCommit['held'][number];

/** A part of what the source held, sent ahead of the commit when it all would not fit one NATS message. */
interface MoveHeld {
  readonly step: 'held';
  readonly move: string;
  readonly held: readonly TravellingHeld[];
}

type MoveStep = MovePrepare | MoveHeld | MoveCommit | { readonly step: 'abort'; readonly move: string };

/** Bytes of held messages per part of a move's hand-over, at most (well under NATS's default 1 MB payload). */
const HELD_PART_BYTES = 256 * 1024;

/** `held` cut into parts of about {@link HELD_PART_BYTES} each, in order (at least one part, maybe empty). */
function inParts(held: readonly TravellingHeld[]): TravellingHeld[][] {
  const parts: TravellingHeld[][] = [[]];
  let bytes = 0;
  for (const message of held) {
    const size = message.data.length + 256;
    if (bytes + size > HELD_PART_BYTES && bytes > 0) {
      parts.push([]);
      bytes = 0;
    }
    parts[parts.length - 1]?.push(message);
    bytes += size;
  }
  return parts;
}

/** The kernel's side of the pause and checkpoint (a local handle's migration port). */
export interface MovableKernel {
  quiesce(): Promise<boolean>;
  snapshotState(): Promise<Uint8Array>;
  resumeAfterQuiesce(): Promise<void>;
}

/** What the moves need of their node. */
export interface MovePort {
  readonly node: string;
  readonly nc: NatsConnection;
  readonly subjects: ClusterSubjects;
  readonly registry: ClusterRegistry;
  readonly host: KernelHost;
  readonly runtime: ClusterRuntimePort;
  /** Whether the node is leaving the cluster. */
  leaving(): boolean;
  /** The entry this node lists a kernel under. */
  entryOf(kernel: HostedKernel): ClusterKernelEntry;
  /** The kernel's pause and checkpoint, when it is a live local kernel. */
  movable(name: string): MovableKernel | undefined;
  /** Launches a kernel here for the cluster (importing its module when needed), served as the node serves. */
  launchHere(
    kernelId: string,
    moduleUrl: string | undefined,
    options: PlacedLaunchOptions,
    state: Uint8Array,
  ): Promise<HostedKernel>;
  /** Stops the kernel's at-least-once inbox once what it wrote is handled; false past `timeoutMs`. */
  drainInbox(name: string, timeoutMs: number): Promise<boolean>;
  /** Starts the kernel's at-least-once inbox anew (its consumer remade: stream order), if it has one. */
  startInbox(kernel: HostedKernel): Promise<void>;
  /** This node lists `entry` now (arrived), or no longer lists `name` (moved away). */
  listed(name: string, entry: ClusterKernelEntry | undefined): void;
}

/** A kernel moving here. */
interface Arrival {
  readonly move: string;
  /** The registry entry's revision its commit swaps. */
  readonly revision: number;
  /** Gives the move up when no commit comes. */
  readonly timer: NodeJS.Timeout;
  /** Its launch is under way: a give-up meanwhile is done by the launch's end. */
  launching: boolean;
  abandoned: boolean;
  /** The parts of what the source held that came ahead of its commit. */
  readonly received: TravellingHeld[];
}

/** How long an arriving kernel waits for its source's commit before it gives the move up, ms (past the timeout). */
const COMMIT_GRACE_MS = 2000;

/**
 * Moves named kernels between nodes of the cluster, and takes kernels other nodes move here. A move, run by the
 * kernel's node: **hold** (one-way batches and calls for the kernel are kept in arrival order, not handled),
 * **drain** (the kernel finishes what its queue already holds; an at-least-once inbox acknowledges it), **checkpoint**
 * (paused between batches, its state taken, its unreceived outputs collected), **transfer** (the target launches the
 * kernel from the state, paused behind its own hold, and listens to the kernel's subjects in a queue group of its
 * own, so that from then on both nodes get every message), **swap** (the source stops listening — every message the
 * server sent it is taken — and hands what it held, with the last message id it took from each sender, to the
 * target; the target swaps the registry entry to itself at the revision the source read, then handles the source's
 * held messages and its own that are not copies of them, in order per sender), **resume** (the source's instance
 * ends). Senders address the kernel by name throughout: its subjects are the name's, and the registry entry flips.
 *
 * Nothing is lost or handled twice: before the swap a failure resumes the kernel at its source with what it held;
 * at the swap exactly one of the two nodes wins the registry entry's compare-and-swap, and the other gives the
 * kernel up. Messages sent while neither node listened (a swap given up after the source stopped listening) show as
 * gaps in their senders' ids at the source: counted as lost, dead-lettered and reported to the sender.
 */
export class KernelMoves {
  readonly #port: MovePort;
  readonly #subscription: Subscription;
  /** Kernels moving away from here: the node publishes nothing for them meanwhile. */
  readonly #leaving = new Set<string>();
  /** Kernels moving here, by name: the move's id, the entry revision to swap, and the timer that gives it up. */
  readonly #arriving = new Map<string, Arrival>();

  constructor(port: MovePort) {
    this.#port = port;
    this.#subscription = port.nc.subscribe(port.subjects.move(port.node), {
      callback: (error, msg) => {
        if (error === null) void this.#step(msg);
      },
    });
  }

  /** Whether `name` is moving away from this node or here (its entry is the move's to change). */
  moving(name: string): boolean {
    return this.#leaving.has(name) || this.#arriving.has(name);
  }

  /** The queue group an arriving kernel's subjects are taken in, if `name` is arriving. */
  arrivingGroup(name: string): string | undefined {
    const arriving = this.#arriving.get(name);
    return arriving === undefined ? undefined : `rk.${arriving.move}`;
  }

  /**
   * Moves the local kernel `name` to node `target`, with its state, what is queued for it and its unreceived
   * outputs; resolves once the target serves it and lists it.
   * @throws {KernelNotFoundError} when no live kernel by that name runs on this node; {@link InvalidArgumentError}
   * when `target` is this node; {@link InvalidStateError} when it is already moving, or not Launched, Active or
   * Deactivated. {@link MigrationError} when a step failed: `rolledBack` says whether it runs on here.
   */
  async move(name: string, target: string, options: NodeMoveOptions = {}): Promise<NodeMoveReport> {
    const port = this.#port;
    const kernel = port.runtime.localKernel(name);
    const movable = port.movable(name);
    if (kernel === undefined || movable === undefined) {
      throw new KernelNotFoundError(name, `no live kernel by this name runs on node '${port.node}'`);
    }
    if (target === port.node)
      throw new InvalidArgumentError('node', `kernel '${name}' already runs on node '${target}'`);
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0)) {
      throw new InvalidArgumentError(
        'options.timeoutMs',
        `options.timeoutMs must be a positive number of ms, got ${describeValue(timeoutMs)}`,
      );
    }
    const status = kernel.status;
    if (this.moving(name) || (status !== 'Launched' && status !== 'Active' && status !== 'Deactivated')) {
      throw new InvalidStateError(name, 'move', this.moving(name) ? 'Migrating' : status, 'Active');
    }
    this.#leaving.add(name);
    try {
      return await this.#moveAway(kernel, movable, target, timeoutMs, options.launch ?? {});
    } finally {
      this.#leaving.delete(name);
    }
  }

  async #moveAway(
    kernel: HostedKernel,
    movable: MovableKernel,
    target: string,
    timeoutMs: number,
    launch: NodeMoveOptions['launch'] & object,
  ): Promise<NodeMoveReport> {
    const port = this.#port;
    const name = kernel.name;
    const move = randomBytes(6).toString('hex');
    let phase: MigrationPhase = 'quiesce';
    const within = <T>(promise: Promise<T>, what: string): Promise<T> => deadline(promise, timeoutMs, what);
    let wasActive = false;
    let paused = performance.now();
    let prepared = false;
    const outputs = new FrameBatchWriter();
    let outputsCarried = 0;
    let stateBytes = 0;
    port.host.hold(name);
    try {
      const listed = await port.registry.current(name);
      if (listed?.entry.node !== port.node) {
        throw new InvalidStateError(name, 'move', 'Terminated', 'Active', `and is not listed on node '${port.node}'`);
      }
      // What is queued already is handled here; what arrives from now on is held and handed on.
      if (!(await port.drainInbox(name, timeoutMs))) {
        throw new TimeoutError(`the at-least-once inbox of kernel '${name}' to drain`, timeoutMs);
      }
      await untilDrained(port.host, kernel, timeoutMs);
      paused = performance.now();
      wasActive = await within(movable.quiesce(), `the pause of kernel '${name}'`);
      phase = 'checkpoint';
      const state = await within(movable.snapshotState(), `the checkpoint of kernel '${name}'`);
      stateBytes = state.byteLength;
      await port.nc.flush(); // the inbox's acknowledgements reach the server before the target consumes
      phase = 'transfer';
      const prepare: MovePrepare = {
        step: 'prepare',
        move,
        kernelId: kernel.kernelId,
        moduleUrl: port.entryOf(kernel).moduleUrl,
        options: {
          queueCapacity: kernel.metrics().inputQueueCapacity,
          ...launch,
          name,
          autoActivate: wasActive,
        },
        state: Buffer.from(state).toString('base64'),
        revision: listed.revision,
        timeoutMs,
      };
      prepared = true;
      await this.#ask(target, prepare, name, timeoutMs);
    } catch (error) {
      // Nothing handed on yet: the kernel resumes here with what was held, in order.
      if (prepared) this.#tell(target, { step: 'abort', move });
      port.host.release(name);
      const rolledBack = await this.#resume(kernel, movable, wasActive);
      throw new MigrationError(name, phase, error, rolledBack);
    }
    phase = 'swap';
    // Paused: no output comes after these. Taken now, once the target is there to answer them.
    for (let out = kernel.tryReceive(); out !== undefined; out = kernel.tryReceive()) {
      outputs.add(kernel.outputCodec, out, { messageId: ++outputsCarried });
    }
    // Every message the server sent here is taken, held: from now on only the target gets them.
    const { held, lastIds } = await port.host.letGo(name);
    const carried = outputs.take();
    // What was held goes in parts that each fit a NATS message, in order; the last part goes with the commit.
    const parts = inParts(held.map((h) => ({ ...h, data: Buffer.from(h.data).toString('base64') })));
    const last = parts.pop() ?? [];
    let failure: unknown;
    try {
      for (const part of parts) await this.#ask(target, { step: 'held', move, held: part }, name, timeoutMs);
      const outputsText = Buffer.from(carried).toString('base64');
      await this.#ask(target, { step: 'commit', move, held: last, lastIds, outputs: outputsText }, name, timeoutMs);
    } catch (error) {
      failure = error;
    }
    if (failure !== undefined) {
      // The commit's answer did not come: the registry says who has the kernel (one compare-and-swap wins).
      const listed = await port.registry.current(name).catch(() => undefined);
      const own = listed !== undefined && listed.entry.node === port.node;
      if (own && (await port.registry.swap(port.entryOf(kernel), listed.revision))) {
        this.#tell(target, { step: 'abort', move });
        port.host.serve(kernel, { group: `rk.${move}.back` });
        port.host.release(name, { held, lastIds, outputs: decodeOutputs(carried, kernel) });
        const rolledBack = await this.#resume(kernel, movable, wasActive);
        throw new MigrationError(name, phase, failure, rolledBack);
      }
      if (listed?.entry.node !== target) throw new MigrationError(name, phase, failure, false);
      // The target took the name: the move is done.
    }
    port.listed(name, undefined);
    await kernel.terminate();
    return {
      kernel: name,
      from: port.node,
      to: target,
      stateBytes,
      messagesCarried: held.length,
      outputsCarried,
      pauseMs: performance.now() - paused,
      wasActive,
    };
  }

  /** A move given up at its source: the kernel resumes and its inbox restarts. Whether it runs on. */
  async #resume(kernel: HostedKernel, movable: MovableKernel, wasActive: boolean): Promise<boolean> {
    try {
      if (wasActive) await movable.resumeAfterQuiesce();
      await this.#port.startInbox(kernel);
      return true;
    } catch {
      return false;
    }
  }

  /** Asks `node` a step of a move; rejects with why it could not, or with a timeout. */
  async #ask(node: string, step: MoveStep, name: string, timeoutMs: number): Promise<void> {
    let answer: PlacementAnswer;
    try {
      const reply = await this.#port.nc.request(this.#port.subjects.move(node), JSON.stringify(step), {
        timeout: timeoutMs,
      });
      answer = reply.json<PlacementAnswer>();
    } catch (error) {
      throw new ClusterNodeDownError(name, node, `no answer to the move's ${step.step} within ${timeoutMs} ms`, {
        cause: error,
      });
    }
    if (answer.error !== undefined) {
      const { code, message, name: errorName } = answer.error;
      throw new ClusterPlacementError(node, name, `${code ?? errorName}: ${message}`);
    }
  }

  #tell(node: string, step: MoveStep): void {
    try {
      this.#port.nc.publish(this.#port.subjects.move(node), JSON.stringify(step));
    } catch {
      // The connection is closing: the target gives the move up after its grace time.
    }
  }

  /** A step of a move another node runs, to here. */
  async #step(msg: { json<T>(): T; respond(data?: string): boolean }): Promise<void> {
    await answerAfter(msg, () => {
      const step = msg.json<MoveStep>();
      if (step.step === 'prepare') return this.#prepare(step);
      if (step.step === 'held') return this.#received(step);
      if (step.step === 'commit') return this.#commit(step);
      return this.#giveUp(step.move);
    });
  }

  async #prepare(step: MovePrepare): Promise<void> {
    const port = this.#port;
    const name = step.options.name;
    if (port.leaving()) throw new ClusterNodeDownError(name, port.node, 'the node is leaving the cluster');
    if (port.runtime.localKernel(name) !== undefined || this.#arriving.has(name)) {
      throw new InvalidStateError(name, 'move here', 'Active', 'Terminated', `and already runs on node '${port.node}'`);
    }
    const grace = 2 * step.timeoutMs + COMMIT_GRACE_MS;
    const timer = setTimeout(() => void this.#giveUp(step.move).catch(() => undefined), grace);
    timer.unref();
    const arrival: Arrival = {
      move: step.move,
      revision: step.revision,
      timer,
      launching: true,
      abandoned: false,
      received: [],
    };
    this.#arriving.set(name, arrival);
    try {
      await port.launchHere(step.kernelId, step.moduleUrl, step.options, Buffer.from(step.state, 'base64'));
      arrival.launching = false;
      // Given up while it launched (the source's abort came first): it ends here, its held copies with it.
      if (arrival.abandoned)
        throw new InvalidStateError(name, 'move here', 'Launched', 'Active', 'and the move was given up');
      await port.nc.flush(); // its subscriptions are the server's before the source lets go
    } catch (error) {
      arrival.launching = false;
      arrival.abandoned = false;
      await this.#giveUp(step.move);
      port.runtime
        .localKernel(name)
        ?.terminate()
        .catch(() => undefined);
      throw error;
    }
  }

  /** A part of what the source held, ahead of its commit. */
  async #received(step: MoveHeld): Promise<void> {
    const arriving = [...this.#arriving.values()].find((a) => a.move === step.move);
    if (arriving === undefined || arriving.launching) {
      throw new InvalidStateError(`move ${step.move}`, 'hand over', 'Terminated', 'Launched', 'and was given up here');
    }
    arriving.received.push(...step.held);
  }

  async #commit(step: MoveCommit): Promise<void> {
    const port = this.#port;
    const [name, arriving] = [...this.#arriving].find(([, a]) => a.move === step.move) ?? [];
    const kernel = name === undefined ? undefined : port.runtime.localKernel(name);
    if (name === undefined || arriving === undefined || kernel === undefined) {
      throw new InvalidStateError(`move ${step.move}`, 'commit', 'Terminated', 'Launched', 'and was given up here');
    }
    const entry = port.entryOf(kernel);
    if (!(await port.registry.swap(entry, arriving.revision))) {
      await this.#giveUp(step.move);
      throw new InvalidStateError(name, 'move here', 'Active', 'Launched', 'and its registry entry changed meanwhile');
    }
    clearTimeout(arriving.timer);
    this.#arriving.delete(name);
    port.listed(name, entry);
    port.host.release(name, {
      held: [...arriving.received, ...step.held].map((h) => ({ ...h, data: Buffer.from(h.data, 'base64') })),
      lastIds: step.lastIds,
      outputs: decodeOutputs(Buffer.from(step.outputs, 'base64'), kernel),
    });
    await port.startInbox(kernel);
  }

  /** The move `move` to here is given up: the kernel launched for it ends, and what was held here goes. */
  async #giveUp(move: string): Promise<void> {
    const found = [...this.#arriving].find(([, a]) => a.move === move);
    if (found === undefined) return;
    const [name, arriving] = found;
    if (arriving.launching) {
      arriving.abandoned = true;
      return;
    }
    clearTimeout(arriving.timer);
    this.#arriving.delete(name);
    await this.#port.host.giveUp(name);
    await this.#port.runtime.localKernel(name)?.terminate();
  }

  /** Stops taking moves (the node leaves): arriving kernels are given up. */
  async close(): Promise<void> {
    this.#subscription.unsubscribe();
    await Promise.allSettled([...this.#arriving.values()].map((arriving) => this.#giveUp(arriving.move)));
  }
}

/** Resolves once the kernel's queue is empty and no call or send through the host waits. */
async function untilDrained(host: KernelHost, kernel: HostedKernel, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!host.idle(kernel.name) || kernel.metrics().inputQueueDepth > 0) {
    if (performance.now() > end) throw new TimeoutError(`kernel '${kernel.name}' to finish its queue`, timeoutMs);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function deadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(what, timeoutMs)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

function decodeOutputs(bytes: Uint8Array, kernel: HostedKernel): unknown[] {
  const outputs: unknown[] = [];
  readFrameBatch(
    bytes,
    (frame) => outputs.push(frame.copy().decode(kernel.outputCodec)),
    () => undefined,
  );
  return outputs;
}
