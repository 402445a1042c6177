import { hostname } from 'node:os';
import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';
import { CLUSTER_NAME, NODE_NAME } from './cluster-subjects.js';
import type { BatchOptions } from './remote-kernel.js';

/** TLS to the NATS servers (PEM file paths, as the NATS client takes them). */
export interface ClusterTlsOptions {
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** How a runtime joins a cluster: `RingKernelRuntime.builder().cluster({...})`. */
export interface ClusterOptions {
  /** NATS server URLs (`nats://host:4222`); one is enough, the client learns the rest of a NATS cluster. */
  readonly servers: string | readonly string[];
  /** This node's name, unique in the cluster (letters, digits, `-`, `_`). Default: `<hostname>-<pid>`. */
  readonly node?: string;
  /**
   * The cluster's name: subjects, registry bucket and stream are namespaced by it, so two clusters sharing one
   * NATS do not see each other's kernels. Default `'default'`.
   */
  readonly cluster?: string;
  /** User and password, when the server asks for them. */
  readonly user?: string;
  readonly pass?: string;
  /** A token, when the server asks for one. */
  readonly token?: string;
  /** An NKey seed (`SU…`), for servers configured with NKey users. */
  readonly nkeySeed?: string;
  /** A `.creds` file's text (JWT and NKey seed), for decentralized auth. */
  readonly creds?: string;
  /** TLS to the servers. `true`: TLS with the system's roots. */
  readonly tls?: true | ClusterTlsOptions;
  /** How often the node publishes its heartbeat, ms. Default 1000. */
  readonly heartbeatMs?: number;
  /** A node whose heartbeat is older than this is declared down and its kernels removed, ms. Default 3000. */
  readonly downAfterMs?: number;
  /** How long joining waits for a server, ms. Default 5000. */
  readonly connectTimeoutMs?: number;
  /** How one-way frames are coalesced into NATS messages. */
  readonly batch?: BatchOptions;
  /**
   * Names (patterns: `*` one level, `**` any depth) of this node's kernels that take remote messages at-least-once:
   * through a JetStream stream, acknowledged once handled, `Nats-Msg-Id` dedupe. Others are at-most-once (core
   * NATS; losses counted). Default: none.
   */
  readonly atLeastOnce?: readonly string[];
  /**
   * Names (patterns) of kernels this node restarts when the node hosting them is declared down, provided this
   * process defines their kernel (its module is imported): the first node to claim a name launches it, activated,
   * and with at-least-once delivery resumes its stream where the dead node stopped. Default: none.
   */
  readonly failover?: readonly string[];
  /** How long a sender retries an at-least-once batch while the servers are away, ms. Default 60 000. */
  readonly retryForMs?: number;
  /**
   * How long `launch(k, { node })` waits for the chosen node to launch and register the kernel, ms: past it the
   * launch rejects with `ClusterNodeDownError`. Default 30 000.
   */
  readonly placementTimeoutMs?: number;
}

/** {@link ClusterOptions} checked, with defaults. */
export interface ResolvedClusterOptions extends Omit<ClusterOptions, 'servers' | 'batch'> {
  readonly servers: readonly string[];
  readonly node: string;
  readonly cluster: string;
  readonly heartbeatMs: number;
  readonly downAfterMs: number;
  readonly connectTimeoutMs: number;
  readonly batch: Required<BatchOptions>;
  readonly retryForMs: number;
  readonly placementTimeoutMs: number;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(
      `options.${name}`,
      `cluster options: ${name} must be a positive number, got ${String(value)}`,
    );
  }
  return value;
}

function optionalString(name: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
    throw new ArgumentTypeError(`options.${name}`, `cluster options: ${name} must be a non-empty string`);
  }
}

/** Validates cluster options up front, each with an exact message. */
export function resolveClusterOptions(options: ClusterOptions): ResolvedClusterOptions {
  if (typeof options !== 'object' || options === null)
    throw new ArgumentTypeError('options', 'cluster options must be an object');
  const servers = typeof options.servers === 'string' ? [options.servers] : options.servers;
  if (!Array.isArray(servers) || servers.length === 0 || !servers.every((s) => typeof s === 'string' && s !== '')) {
    throw new ArgumentTypeError(
      'options.servers',
      'cluster options: servers must be a URL or a non-empty array of URLs',
    );
  }
  const node =
    options.node ??
    `${hostname()
      .replace(/[^A-Za-z0-9_-]/g, '-')
      .slice(0, 40)}-${process.pid}`;
  if (typeof node !== 'string' || !NODE_NAME.test(node)) {
    throw new ArgumentTypeError(
      'options.node',
      `cluster options: node must be 1–64 letters, digits, '-' or '_', got ${JSON.stringify(node)}`,
    );
  }
  const cluster = options.cluster ?? 'default';
  if (typeof cluster !== 'string' || !CLUSTER_NAME.test(cluster)) {
    throw new ArgumentTypeError(
      'options.cluster',
      `cluster options: cluster must be 1–64 letters, digits, '-' or '_', got ${JSON.stringify(cluster)}`,
    );
  }
  for (const key of ['user', 'pass', 'token', 'nkeySeed', 'creds'] as const) optionalString(key, options[key]);
  if ((options.user === undefined) !== (options.pass === undefined)) {
    throw new ArgumentTypeError('options.pass', 'cluster options: user and pass go together');
  }
  const heartbeatMs = positive('heartbeatMs', options.heartbeatMs, 1000);
  const downAfterMs = positive('downAfterMs', options.downAfterMs, 3000);
  if (downAfterMs < 2 * heartbeatMs) {
    throw new InvalidArgumentError(
      'options.downAfterMs',
      `cluster options: downAfterMs (${downAfterMs}) must be at least twice heartbeatMs (${heartbeatMs}), or live nodes are declared down`,
    );
  }
  for (const key of ['atLeastOnce', 'failover'] as const) {
    const patterns = options[key] ?? [];
    if (!Array.isArray(patterns) || !patterns.every((p) => typeof p === 'string' && p !== '')) {
      throw new ArgumentTypeError(`options.${key}`, `cluster options: ${key} must be an array of kernel name patterns`);
    }
  }
  const batch = options.batch ?? {};
  const maxFrames = positive('batch.maxFrames', batch.maxFrames, 64);
  if (!Number.isInteger(maxFrames))
    throw new InvalidArgumentError('options.batch.maxFrames', 'cluster options: batch.maxFrames must be an integer');
  return {
    ...options,
    servers,
    node,
    cluster,
    heartbeatMs,
    downAfterMs,
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 5000),
    retryForMs: positive('retryForMs', options.retryForMs, 60_000),
    placementTimeoutMs: positive('placementTimeoutMs', options.placementTimeoutMs, 30_000),
    batch: {
      maxFrames,
      maxBytes: positive('batch.maxBytes', batch.maxBytes, 65_536),
      lingerUs:
        batch.lingerUs === undefined || batch.lingerUs === 0 ? 0 : positive('batch.lingerUs', batch.lingerUs, 0),
    },
  };
}
