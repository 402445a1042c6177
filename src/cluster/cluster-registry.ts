import { EventEmitter } from 'node:events';
import type { KV, KvEntry, KvWatchInclude } from '@nats-io/kv';

/** `KvWatchInclude.UpdatesOnly`, written out: this module loads before the NATS client is known to be installed. */
const UPDATES_ONLY: KvWatchInclude = 'updates';

import { ClusterRegistryStaleError } from '../errors/cluster-errors.js';
import type { KernelStatusName } from '../wire/kernel-status.js';
import { nameToken, tokenName } from './cluster-subjects.js';

/** A watch of the bucket, as `kv.watch` returns it. */
type BucketWatch = Awaited<ReturnType<KV['watch']>>;

/** The longest wait between two tries to watch the bucket again after its watch was lost. */
const MAX_RETRY_MS = 2000;

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
      ): Promise<{ state: { subjects?: Record<string, number>; last_seq?: number } }>;
    };
  };
}

/**
 * Every key the bucket holds an entry for (a delete marker included), as the stream's state lists them. Not
 * `kv.keys()`: it ends when a consumer's pending count reaches 0 or an idle heartbeat comes, and with other nodes
 * putting and deleting keys meanwhile it was seen never to end on nats-server 2.9 (their writes keep the consumer
 * from idling): a node's join hung.
 */
async function bucketKeys(bucket: BucketSubjects): Promise<{ keys: string[]; lastRevision: number }> {
  const prefix = `$KV.${bucket.name}.`;
  const info = await bucket.jsm.streams.info(`KV_${bucket.name}`, { subjects_filter: `${prefix}>` });
  return {
    keys: Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length)),
    lastRevision: info.state.last_seq ?? 0,
  };
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
 * and `nodeDown` is emitted. A watch that ends, fails, or stops delivering this node's own heartbeats is reported
 * (`stale`) and replaced: the bucket is read anew and the copy brought up to it, with the events a watch would have
 * given.
 *
 * @example
 * runtime.cluster.registry.lookup('sensors/**');  // [{ name, node, backend, status, delivery }]
 * runtime.cluster.registry.watch('sensors/*', (event) => console.log(event.type, event.name, event.entry.node));
 */
export class ClusterRegistry extends EventEmitter<{
  change: [ClusterRegistryEvent];
  nodeDown: [string];
  nodeUp: [string];
  stale: [ClusterRegistryStaleError];
}> {
  readonly #kv: KV;
  readonly #bucket: BucketSubjects;
  readonly #kernels = new Map<string, ClusterKernelEntry>();
  readonly #nodes = new Map<string, ClusterNodeEntry>();
  readonly #downAfterMs: number;
  /** Nodes that said they are leaving (their kernels go on purpose: no failover). */
  readonly #leaving = new Set<string>();
  /** The revision of the last entry applied per key: an older one arriving later (a read racing the watch) is not. */
  readonly #revisions = new Map<string, number>();
  /** The watch this copy follows; undefined while it is being replaced. */
  #watch: BucketWatch | undefined;
  /** The highest revision the watch delivered. */
  #followed = 0;
  /** This node's oldest heartbeat the watch has not delivered yet: its revision, and when the server acknowledged it. */
  #unseenBeat: { readonly revision: number; readonly at: number } | undefined;
  /** The revision of this node's latest heartbeat. */
  #lastBeat = 0;
  /** Times the watch was lost and the bucket read anew. */
  #resyncs = 0;
  /** Whether a lost watch is being replaced. */
  #resyncing = false;
  /** The wait before the next try to watch again, and what ends it early (close). */
  #retry: { readonly timer: NodeJS.Timeout; readonly wake: () => void } | undefined;
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
    await this.#follow(false);
  }

  /** Times this copy stopped following the bucket (its watch ended, failed or fell behind) and read it anew. */
  get resyncs(): number {
    return this.#resyncs;
  }

  /**
   * Watches the bucket, reads its current entries, then applies what the watch delivers until it ends. With
   * `reconcile` (a watch replaced), entries the copy holds that the bucket no longer does are removed too.
   */
  async #follow(reconcile: boolean): Promise<void> {
    // Updates from now on are queued by the watch while the current entries are read; replaying them in order
    // after that ends at the bucket's latest state whatever interleaved.
    const watch = await this.#kv.watch({ key: '>', include: UPDATES_ONLY });
    if (this.#closed) {
      watch.stop();
      return;
    }
    this.#watch = watch;
    try {
      const { keys, lastRevision } = await bucketKeys(this.#bucket);
      const listed = new Set<string>();
      for (const key of keys) {
        const entry = await this.#kv.get(key);
        if (entry === null) continue;
        if (entry.operation === 'PUT') listed.add(entry.key);
        this.#apply(entry, false);
      }
      if (reconcile) this.#forgetUnlisted(listed, lastRevision);
    } catch (error) {
      this.#watch = undefined;
      watch.stop();
      throw error;
    }
    // What this node wrote before is in what was just read.
    this.#unseenBeat = undefined;
    void this.#consume(watch);
  }

  /** Applies what `watch` delivers; when it ends or fails (not closed, not replaced), the watch is lost. */
  async #consume(watch: BucketWatch): Promise<void> {
    let failure: unknown;
    try {
      for await (const entry of watch) {
        if (this.#watch !== watch) return;
        this.#followed = Math.max(this.#followed, entry.revision);
        if (this.#unseenBeat !== undefined && entry.revision >= this.#unseenBeat.revision) this.#unseenBeat = undefined;
        this.#apply(entry, true);
      }
    } catch (error) {
      failure = error;
    }
    if (this.#watch !== watch) return;
    const detail = failure === undefined ? 'its watch ended' : `its watch failed (${(failure as Error).message})`;
    this.#lost(detail, failure);
  }

  /** The watch is lost: reported, counted, and replaced (a new watch and a fresh read), retried until closed. */
  #lost(detail: string, cause?: unknown): void {
    if (this.#closed || this.#resyncing) return;
    const watch = this.#watch;
    this.#watch = undefined;
    watch?.stop();
    this.#resyncs++;
    this.emit('stale', new ClusterRegistryStaleError(this.#bucket.name, detail, cause === undefined ? {} : { cause }));
    void this.#resync();
  }

  async #resync(): Promise<void> {
    this.#resyncing = true;
    this.#unseenBeat = undefined;
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        await this.#follow(true);
        break;
      } catch {
        // The server or JetStream is away: tried again, backing off, until it answers or the registry is closed.
        await new Promise<void>((wake) => {
          const timer = setTimeout(wake, Math.min(MAX_RETRY_MS, 50 * 2 ** attempt));
          this.#retry = { timer, wake };
        });
        this.#retry = undefined;
      }
    }
    this.#resyncing = false;
  }

  /**
   * After a fresh read: removes the kernels and nodes the copy holds that the bucket does not list, unless the copy
   * has them from a revision newer than the read (the old watch delivered them before it was replaced).
   */
  #forgetUnlisted(listed: ReadonlySet<string>, lastRevision: number): void {
    const newer = (key: string): boolean => (this.#revisions.get(key) ?? 0) > lastRevision;
    for (const [name, entry] of this.#kernels) {
      const key = KERNEL_PREFIX + nameToken(name);
      if (listed.has(key) || newer(key)) continue;
      this.#kernels.delete(name);
      this.emit('change', { type: 'deregistered', name, entry });
    }
    for (const node of this.#nodes.keys()) {
      const key = NODE_PREFIX + node;
      if (!listed.has(key) && !newer(key)) this.#nodes.delete(node);
    }
  }

  #apply(entry: KvEntry, isUpdate: boolean): void {
    if (entry.revision <= (this.#revisions.get(entry.key) ?? 0)) return;
    this.#revisions.set(entry.key, entry.revision);
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
        return;
      }
      const beat = entry.json<Omit<ClusterNodeEntry, 'seenAt'> & { leaving?: boolean }>();
      if (beat.leaving === true) this.#leaving.add(node);
      const fresh = !this.#nodes.has(node);
      // The first sight of a node dates from the entry's own write (server time), later beats from their arrival:
      // a stale entry left by a node that died before we joined is found stale at once. A beat newer than the one
      // this copy had (read after its watch was lost) is one the node made meanwhile: it counts as arrived now.
      const seenAt = isUpdate || !fresh ? Date.now() : Math.min(Date.now(), entry.created.getTime());
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

  /**
   * Removes a kernel's entry; with `revision`, only if the bucket still holds it at that revision (resolves false
   * when it changed meanwhile). @internal
   */
  async deregister(name: string, revision?: number): Promise<boolean> {
    if (revision === undefined) {
      await this.#kv.delete(KERNEL_PREFIX + nameToken(name));
      return true;
    }
    try {
      await this.#kv.delete(KERNEL_PREFIX + nameToken(name), { previousSeq: revision });
      return true;
    } catch {
      return false;
    }
  }

  /** Publishes a node's heartbeat. @internal */
  async beat(entry: Omit<ClusterNodeEntry, 'seenAt'> & { readonly leaving?: boolean }): Promise<void> {
    // A heartbeat the server stored more than downAfterMs ago, with a later one stored since, that the watch has not
    // delivered: the watch stopped delivering (its consumer lost), though the connection works.
    const unseen = this.#unseenBeat;
    if (unseen !== undefined && this.#lastBeat > unseen.revision && performance.now() - unseen.at > this.#downAfterMs) {
      this.#lost(`its watch did not deliver this node's heartbeat in ${this.#downAfterMs} ms`);
    }
    const revision = await this.#kv.put(NODE_PREFIX + entry.node, JSON.stringify(entry));
    this.#lastBeat = Math.max(this.#lastBeat, revision);
    if (this.#unseenBeat === undefined && revision > this.#followed && !this.#resyncing) {
      this.#unseenBeat = { revision, at: performance.now() };
    }
  }

  /**
   * Whether this copy is as current as this node's heartbeat before the latest: not, while the watch is being
   * replaced or lags by a heartbeat or more — then the other nodes' beats may be in the bucket and not here yet.
   */
  #current(): boolean {
    if (this.#resyncing) return false;
    return this.#unseenBeat === undefined || this.#unseenBeat.revision >= this.#lastBeat;
  }

  /** Removes a node's heartbeat (it leaves). @internal */
  async forgetNode(node: string): Promise<void> {
    await this.#kv.delete(NODE_PREFIX + node);
  }

  /**
   * Declares down every node whose heartbeat is older than `downAfterMs` (not `self`): removes its kernels and
   * its heartbeat from the bucket and emits `nodeDown`. Returns the nodes declared down (none while this copy lags
   * behind the bucket). @internal
   */
  async sweep(self: string): Promise<string[]> {
    // A copy that lags declares nobody down: the beats it misses would make live nodes look silent.
    if (!this.#current()) return [];
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
      if (beat !== null && beat.operation === 'PUT' && beat.revision > (this.#revisions.get(beat.key) ?? 0)) {
        this.#apply(beat, true);
        down.splice(down.indexOf(node), 1);
      }
    }
    for (const node of down) {
      this.#nodes.delete(node);
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
    this.#watch = undefined;
    if (this.#retry !== undefined) {
      clearTimeout(this.#retry.timer);
      this.#retry.wake();
    }
  }
}
