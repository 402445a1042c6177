import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import { ClusterNodeUnknownError } from '../errors/cluster-errors.js';
import type { ClusterRegistry } from './cluster-registry.js';

/** `launch(k, { node: LEAST_LOADED })`: the live node hosting the fewest kernels. */
export const LEAST_LOADED = 'least-loaded';

/**
 * The options of a launch placed on another node: those that can travel as JSON (a checkpoint to restore cannot;
 * migrate a kernel with its state instead). The node launches with them as its own `launch` would.
 */
export interface PlacedLaunchOptions {
  readonly name: string;
  readonly gridSize?: number | readonly number[];
  readonly blockSize?: number | readonly number[];
  readonly queueCapacity?: number;
  readonly autoActivate?: boolean;
  readonly onFull?: 'wait' | 'reject';
  readonly drainOnTerminate?: boolean;
  readonly integrity?: boolean;
  readonly onHandlerError?: 'dead-letter' | 'fail';
  readonly transferStrategy?: string;
  readonly device?: number;
  readonly colocateWith?: string;
}

/** What a node asks another to launch: the kernel by definition id and module, with the launch's options. */
export interface PlacementRequest {
  readonly kernelId: string;
  /** The module that defines the kernel, imported by the node when it does not define the kernel yet. */
  readonly moduleUrl: string | undefined;
  readonly options: PlacedLaunchOptions;
}

/** A node's answer to a {@link PlacementRequest}: nothing once the kernel is launched and registered, or why not. */
export interface PlacementAnswer {
  readonly error?: { readonly name: string; readonly code: string | undefined; readonly message: string };
}

const TRAVELLING = [
  'gridSize',
  'blockSize',
  'queueCapacity',
  'autoActivate',
  'onFull',
  'drainOnTerminate',
  'integrity',
  'onHandlerError',
  'transferStrategy',
  'device',
  'colocateWith',
] as const;

/**
 * The options a placed launch sends its node, checked here: `name` is required (the kernel is reached by it), and
 * an option that cannot travel is refused by name.
 * @throws {ArgumentTypeError} without a name; {@link InvalidArgumentError} for `restore`.
 */
export function placedOptions(options: Readonly<Record<string, unknown>>): PlacedLaunchOptions {
  const name = options.name;
  if (typeof name !== 'string' || name.length === 0) {
    throw new ArgumentTypeError(
      'options.name',
      `options.name must be a non-empty string when options.node places the launch (the kernel is reached by it), got ${describeValue(name)}`,
    );
  }
  if (options.restore !== undefined) {
    throw new InvalidArgumentError(
      'options.restore',
      'options.restore cannot travel to another node with options.node: launch the restored kernel on this node',
    );
  }
  const placed: Record<string, unknown> = { name };
  for (const key of TRAVELLING) if (options[key] !== undefined) placed[key] = options[key];
  return placed as unknown as PlacedLaunchOptions;
}

/**
 * The node a launch with `{ node }` goes to: the named node when it is live, or for {@link LEAST_LOADED} the live
 * node with the least load — the kernels the registry lists on it (plus launches this node is still placing
 * there), then the input messages its heartbeat says are queued, then its name.
 * @throws {ArgumentTypeError} when `node` is not a non-empty string; {@link ClusterNodeUnknownError} when it names
 * no live node.
 */
export function chooseNode(
  node: unknown,
  self: string,
  registry: ClusterRegistry,
  cluster: string,
  placing: ReadonlyMap<string, number>,
): string {
  if (typeof node !== 'string' || node.length === 0) {
    throw new ArgumentTypeError(
      'options.node',
      `options.node must be a node's name or '${LEAST_LOADED}', got ${describeValue(node)}`,
    );
  }
  const live = registry.nodes().filter((entry) => !registry.hasLeft(entry.node));
  const names = new Set(live.map((entry) => entry.node));
  names.add(self);
  if (node !== LEAST_LOADED) {
    if (!names.has(node)) throw new ClusterNodeUnknownError(node, cluster, [...names].sort());
    return node;
  }
  const kernels = new Map<string, number>([...names].map((name) => [name, placing.get(name) ?? 0]));
  for (const entry of registry.lookup('**')) {
    const count = kernels.get(entry.node);
    if (count !== undefined) kernels.set(entry.node, count + 1);
  }
  const queued = new Map(live.map((entry) => [entry.node, entry.queued ?? 0]));
  const load = (name: string): readonly [number, number] => [kernels.get(name) ?? 0, queued.get(name) ?? 0];
  return [...names].sort((a, b) => {
    const [ka, qa] = load(a);
    const [kb, qb] = load(b);
    return ka - kb || qa - qb || (a < b ? -1 : a > b ? 1 : 0);
  })[0] as string;
}

/**
 * Runs `work` for a request from another node and answers it: `{}` once done, else the error's name, code and
 * message (a placement's or a move's answer). Never throws: an answer the connection cannot carry any more is
 * left to the asking node's timeout.
 */
export async function answerAfter(
  msg: { respond(data?: string): boolean },
  work: () => Promise<unknown>,
): Promise<void> {
  let answer: PlacementAnswer = {};
  try {
    await work();
  } catch (error) {
    const e = error as { name?: string; code?: string; message?: string };
    answer = { error: { name: e.name ?? 'Error', code: e.code, message: e.message ?? String(error) } };
  }
  try {
    msg.respond(JSON.stringify(answer));
  } catch {
    // The connection is closing: the asking node's request times out.
  }
}
