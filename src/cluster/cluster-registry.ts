import { EventEmitter } from 'node:events';
import type { KV, KvEntry, KvWatchInclude } from '@nats-io/kv';

/** `KvWatchInclude.UpdatesOnly`, written out: this module loads before the NATS client is known to be installed. */
const UPDATES_ONLY: KvWatchInclude = 'updates';

import type { KernelStatusName } from '../wire/kernel-status.js';
import { nameToken, tokenName } from './cluster-subjects.js';

/** How a kernel takes remote messages. */
export type Delivery = 'at-most-once' | 'at-least-once';

/** A kernel as the cluster registry lists it. */
export interface ClusterKernelEntry {
  /** The launch's name, cluster-wide. */
  readonly name: string;
  /** Its definition's id (a process that defines the kernel too gets its message types from there). */
  readonly kernelId: string;
  /** The module that defines it, which a node taking it over imports when it does not define it yet. */
  readonly moduleUrl?: string;
  /** The node hosting it. */
  readonly node: string;
  /** That node's backend. */
  readonly backend: string;
  /** Its lifecycle state as its node last published it. */
  readonly status: KernelStatusName;
  /** How it takes remote messages. */
  readonly delivery: Delivery;
}

/** A node as the cluster registry sees it. */
export interface ClusterNodeEntry {
  readonly node: string;
  readonly backend: string;
  /** Kernels it hosts. */
  readonly kernels: number;
  /** Messages its kernels handled so far. */
  readonly processed: number;
  /** Input messages waiting in its kernels' queues at its last heartbeat (a load placement weighs). */
  readonly queued?: number;
  /** When this node last heard its heartbeat (local clock, ms since the epoch). */
  readonly seenAt: number;
}

/** A change in the cluster registry. */
export interface ClusterRegistryEvent {
  readonly type: 'registered' | 'updated' | 'deregistered';
  readonly name: string;
  readonly entry: ClusterKernelEntry;
}

/**
 * The JetStream calls the registry lists its bucket's keys with: the stream's own list of subjects (one request,
 * paged by the client). @internal
 */
export interface BucketSubjects {
  /** The KV bucket's name (its stream is `KV_<name>`, its subjects `$KV.<name>.<key>`). */
  readonly name: string;
  readonly jsm: {
    readonly streams: {
      info(
        stream: string,
        query: { subjects_filter: string },
      ): Promise<{ state: { subjects?: Record<string, number> } }>;
    };
  };
}

/**
 * Every key the bucket holds an entry for (a delete marker included), as the stream's state lists them. Not
 * `kv.keys()`: it ends when a consumer's pending count reaches 0 or an idle heartbeat comes, and with other nodes
 * putting and deleting keys meanwhile it was seen never to end on nats-server 2.9 (their writes keep the consumer
 * from idling): a node's join hung.
 */
async function bucketKeys(bucket: BucketSubjects): Promise<string[]> {
  const prefix = `$KV.${bucket.name}.`;
  const info = await bucket.jsm.streams.info(`KV_${bucket.name}`, { subjects_filter: `${prefix}>` });
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
}

const KERNEL_PREFIX = 'kernels.';
const NODE_PREFIX = 'nodes.';

/** `*` matches one level of a `/`-separated name, `**` any number, anything else itself. */
export function patternToRegExp(pattern: string): RegExp {
  const parts = pattern.split('/').map((part) => {
    if (part === '**') return '.*';
    return part.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '[^/]*');
  });
  return new RegExp(`^${parts.join('/')}$`);
}

/**
 * The cluster-wide registry: every node's named kernels and every node's heartbeat, in one NATS KV bucket per
 * cluster, kept here as a local copy by a watch (so lookups cost no round trip). A node whose heartbeat is older
 * than `downAfterMs` is declared down: its kernels are removed from the bucket (by whichever node sees it first)
 * and `nodeDown` is emitted.
 *
 * @example
 * runtime.cluster.registry.lookup('sensors/**');  // [{ name, node, backend, status, delivery }]
 * runtime.cluster.registry.watch('sensors/*', (event) => console.log(event.type, event.name, event.entry.node));
 */
export class ClusterRegistry extends EventEmitter<{
  change: [ClusterRegistryEvent];
  nodeDown: [string];
  nodeUp: [string];
}> {
  readonly #kv: KV;
  readonly #bucket: BucketSubjects;
  readonly #kernels = new Map<string, ClusterKernelEntry>();
  readonly #nodes = new Map<string, ClusterNodeEntry>();
  /** The bucket revision of each node's heartbeat as last applied here. */
  readonly #beats = new Map<string, number>();
  readonly #downAfterMs: number;
  /** Nodes that said they are leaving (their kernels go on purpose: no failover). */
  readonly #leaving = new Set<string>();
  #watch: { stop(): void } | undefined;
  #closed = false;

  /** @internal — a node builds its registry when it joins. */
  constructor(kv: KV, bucket: BucketSubjects, downAfterMs: number) {
    super();
    this.#kv = kv;
    this.#bucket = bucket;
    this.#downAfterMs = downAfterMs;
  }

  /** Starts the watch; resolves when the bucket's current entries are in. @internal */
  async start(): Promise<void> {
    // Updates from now on are queued by the watch while the current entries are read; replaying them in order
    // after that ends at the bucket's latest state whatever interleaved.
    const iterator = await this.#kv.watch({ key: '>', include: UPDATES_ONLY });
    this.#watch = iterator;
    for (const key of await bucketKeys(this.#bucket)) {
      const entry = await this.#kv.get(key);
      if (entry !== null) this.#apply(entry, false);
    }
    void (async () => {
      for await (const entry of iterator) this.#apply(entry, true);
    })();
  }

  #apply(entry: KvEntry, isUpdate: boolean): void {
    const deleted = entry.operation !== 'PUT';
    if (entry.key.startsWith(KERNEL_PREFIX)) {
      const name = tokenName(entry.key.slice(KERNEL_PREFIX.length));
      const before = this.#kernels.get(name);
      if (deleted) {
        if (before === undefined) return;
        this.#kernels.delete(name);
        this.emit('change', { type: 'deregistered', name, entry: before });
        return;
      }
      const parsed = entry.json<ClusterKernelEntry>();
      this.#kernels.set(name, parsed);
      this.emit('change', { type: before === undefined ? 'registered' : 'updated', name, entry: parsed });
    } else if (entry.key.startsWith(NODE_PREFIX)) {
      const node = entry.key.slice(NODE_PREFIX.length);
      if (deleted) {
        this.#nodes.delete(node);
        this.#beats.delete(node);
        return;
      }
      if (entry.revision < (this.#beats.get(node) ?? 0)) return; // an older beat than one read from the bucket
      this.#beats.set(node, entry.revision);
      const beat = entry.json<Omit<ClusterNodeEntry, 'seenAt'> & { leaving?: boolean }>();
      if (beat.leaving === true) this.#leaving.add(node);
      const fresh = !this.#nodes.has(node);
      // The first sight of a node dates from the entry's own write (server time), later beats from their arrival:
      // a stale entry left by a node that died before we joined is found stale at once.
      const seenAt = isUpdate ? Date.now() : Math.min(Date.now(), entry.created.getTime());
      this.#nodes.set(node, { ...beat, seenAt });
      if (fresh) this.emit('nodeUp', node);
    }
  }

  /** The kernel registered under `name`, if any. */
  get(name: string): ClusterKernelEntry | undefined {
    return this.#kernels.get(name);
  }

  /** Kernels whose names match `pattern` (`*` one level, `**` any depth), sorted by name. */
  lookup(pattern: string): ClusterKernelEntry[] {
    const match = patternToRegExp(pattern);
    return [...this.#kernels.values()]
      .filter((entry) => match.test(entry.name))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Calls `listener` for each change to a kernel whose name matches `pattern`; returns the function that stops it. */
  watch(pattern: string, listener: (event: ClusterRegistryEvent) => void): () => void {
    const match = patternToRegExp(pattern);
    const onChange = (event: ClusterRegistryEvent): void => {
      if (match.test(event.name)) listener(event);
    };
    this.on('change', onChange);
    return () => this.off('change', onChange);
  }

  /** The nodes whose heartbeats are current. */
  nodes(): ClusterNodeEntry[] {
    const now = Date.now();
    return [...this.#nodes.values()].filter((node) => now - node.seenAt <= this.#downAfterMs);
  }

  /** Whether `node` heart-beats (false once it is declared down or has left). */
  isAlive(node: string): boolean {
    const entry = this.#nodes.get(node);
    return entry !== undefined && Date.now() - entry.seenAt <= this.#downAfterMs;
  }

  /** Whether `node` said it is leaving the cluster (its kernels end on purpose). */
  hasLeft(node: string): boolean {
    return this.#leaving.has(node);
  }

  /** Publishes a kernel's entry. @internal */
  async register(entry: ClusterKernelEntry): Promise<void> {
    await this.#kv.put(KERNEL_PREFIX + nameToken(entry.name), JSON.stringify(entry));
  }

  /**
   * Publishes a kernel's entry only if no node lists the name now (a create, atomic in KV): how one node, of
   * several that would, takes over a dead node's kernel. Resolves false when another got there first. @internal
   */
  async claim(entry: ClusterKernelEntry): Promise<boolean> {
    try {
      await this.#kv.create(KERNEL_PREFIX + nameToken(entry.name), JSON.stringify(entry));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Reads the bucket's entry of `name` now (not the local copy, which may lag): the entry and its revision, or
   * undefined when no node lists it. @internal
   */
  async current(name: string): Promise<{ entry: ClusterKernelEntry; revision: number } | undefined> {
    const found = await this.#kv.get(KERNEL_PREFIX + nameToken(name));
    if (found === null || found.operation !== 'PUT') return undefined;
    return { entry: found.json<ClusterKernelEntry>(), revision: found.revision };
  }

  /**
   * Replaces a kernel's entry only if the bucket still holds it at `revision` (a compare-and-swap): of a move's two
   * nodes, exactly one wins — the target taking the name, or the source keeping it. Resolves false when the entry
   * changed meanwhile. @internal
   */
  async swap(entry: ClusterKernelEntry, revision: number): Promise<boolean> {
    try {
      await this.#kv.update(KERNEL_PREFIX + nameToken(entry.name), JSON.stringify(entry), revision);
      return true;
    } catch {
      return false;
    }
  }

  /** Removes a kernel's entry. @internal */
  async deregister(name: string): Promise<void> {
    await this.#kv.delete(KERNEL_PREFIX + nameToken(name));
  }

  /** Publishes a node's heartbeat. @internal */
  async beat(entry: Omit<ClusterNodeEntry, 'seenAt'> & { readonly leaving?: boolean }): Promise<void> {
    await this.#kv.put(NODE_PREFIX + entry.node, JSON.stringify(entry));
  }

  /** Removes a node's heartbeat (it leaves). @internal */
  async forgetNode(node: string): Promise<void> {
    await this.#kv.delete(NODE_PREFIX + node);
  }

  /**
   * Declares down every node whose heartbeat is older than `downAfterMs` (not `self`): removes its kernels and
   * its heartbeat from the bucket and emits `nodeDown`. Returns the nodes declared down. @internal
   */
  async sweep(self: string): Promise<string[]> {
    const now = Date.now();
    const down: string[] = [];
    for (const node of this.#nodes.values()) {
      if (node.node !== self && now - node.seenAt > this.#downAfterMs) down.push(node.node);
    }
    // A kernel whose node has no heartbeat at all (it died before its first beat reached us) goes too.
    for (const entry of this.#kernels.values()) {
      if (entry.node !== self && !this.#nodes.has(entry.node) && !down.includes(entry.node)) down.push(entry.node);
    }
    for (const node of [...down]) {
      // This node's copy may lag (a busy event loop whose updates wait behind this timer): the bucket has the last
      // word. A heartbeat newer than the one applied here means the node is alive.
      const beat = await this.#kv.get(NODE_PREFIX + node).catch(() => null);
      if (beat !== null && beat.operation === 'PUT' && beat.revision > (this.#beats.get(node) ?? 0)) {
        this.#apply(beat, true);
        down.splice(down.indexOf(node), 1);
      }
    }
    for (const node of down) {
      this.#nodes.delete(node);
      this.#beats.delete(node);
      const kernels = [...this.#kernels.values()].filter((entry) => entry.node === node);
      await Promise.all(kernels.map((entry) => this.deregister(entry.name).catch(() => undefined)));
      await this.forgetNode(node).catch(() => undefined);
      this.emit('nodeDown', node);
    }
    return down;
  }

  /** Stops the watch. @internal */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.stop();
  }
}
