import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { ConnectionOptions, NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  ClusterAuthError,
  ClusterMessageLostError,
  ClusterNameUnknownError,
  ClusterNodeDownError,
  ClusterPlacementError,
  type ClusterRegistryStaleError,
  ClusterUnreachableError,
} from '../errors/cluster-errors.js';
import { RingKernelError } from '../errors/ringkernel-error.js';
import { type AnyKernelDefinition, findKernel } from '../kernel/kernel-definition.js';
import { BytesMessage, type MessageCodec } from '../wire/message-schema.js';
import { type ClusterOptions, type ResolvedClusterOptions, resolveClusterOptions } from './cluster-options.js';
import type { ClusterRuntimePort, HostedKernel, KernelRef } from './cluster-ports.js';
import { type ClusterKernelEntry, ClusterRegistry, type Delivery, patternToRegExp } from './cluster-registry.js';
import { type ClusterSubjects, clusterSubjects } from './cluster-subjects.js';
import { DurableInbox, ensureStream } from './durable-delivery.js';
import { type DeliveryNotice, type KernelEndedNotice, KernelHost, type KernelHostStats } from './kernel-host.js';
import { KernelMoves, type NodeMoveOptions, type NodeMoveReport } from './kernel-move.js';
import {
  answerAfter,
  chooseNode,
  type PlacedLaunchOptions,
  type PlacementAnswer,
  type PlacementRequest,
  placedOptions,
} from './kernel-placement.js';
import { loadNats, type NatsModules } from './nats-modules.js';
import { RemoteKernel, type RemoteKernelContext } from './remote-kernel.js';

/** What {@link ClusterNode.stats} reports. */
export interface ClusterNodeStats extends KernelHostStats {
  /** Messages this node sent other nodes' kernels that they reported lost (at-most-once). */
  readonly lostByPeers: number;
  /** Messages this node sent that other nodes refused or found malformed. */
  readonly refusedByPeers: number;
  /** Messages that could not be handed to NATS at all. */
  readonly undeliverable: number;
  /** Times the connection was re-established after a loss. */
  readonly reconnects: number;
  /** Times this node's copy of the registry stopped following the bucket and was read anew (see `registry` events). */
  readonly registryResyncs: number;
}

/** Events of a {@link ClusterNode}. */
export interface ClusterNodeEvents {
  /** Another node stopped heart-beating and was declared down (its kernels were removed from the registry). */
  nodeDown: [string];
  /** Another node's first heartbeat arrived. */
  nodeUp: [string];
  /** Another node reported messages from this one lost, refused or malformed. */
  notice: [DeliveryNotice];
  /**
   * This node was declared down while away (a pause, a cut-off connection) and another node took a kernel's name
   * meanwhile (a failover): the instance here was ended, so that the kernel does not run twice.
   */
  displaced: [{ readonly name: string; readonly by: string }];
  /** This node restarted a kernel of a node that went down (`failover`); or could not (the error). */
  failover: [{ readonly name: string; readonly from: string; readonly error?: Error }];
  /** The connection to NATS was lost (the client reconnects by itself) or came back. */
  connection: ['disconnected' | 'reconnected'];
  /**
   * This node's copy of the registry stopped following the bucket (its watch ended or failed, or stopped delivering
   * this node's own heartbeats): it is read anew and watched again. Meanwhile the node declares no other node down.
   */
  registry: [ClusterRegistryStaleError];
}

/**
 * A runtime's membership of a cluster: its NATS connection, the cluster-wide registry, the host that serves its
 * named kernels to other nodes, and references to other nodes' kernels. Built by
 * `RingKernelRuntime.builder().cluster({...})`; reached as `runtime.cluster`.
 *
 * @example
 * const runtime = await RingKernelRuntime.builder().cluster({ servers: 'nats://127.0.0.1:4222', node: 'a' }).build();
 * const avg = runtime.ref('sensors/eu/avg');   // local or on another node: same API
 * const total = await avg.call({ sensor: 1, value: 20 });
 */
export class ClusterNode extends EventEmitter<ClusterNodeEvents> {
  /** This node's name. */
  readonly node: string;
  /** The cluster's name. */
  readonly cluster: string;
  /** Every node's named kernels and heartbeats. */
  readonly registry: ClusterRegistry;
  readonly #options: ResolvedClusterOptions;
  readonly #nc: NatsConnection;
  readonly #subjects: ClusterSubjects;
  readonly #runtime: ClusterRuntimePort;
  readonly #host: KernelHost;
  /** Kernels moving to and from this node. */
  readonly #moves: KernelMoves;
  readonly #remotes = new Map<string, RemoteKernel>();
  readonly #remoteContext: RemoteKernelContext;
  readonly #nats: NatsModules;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  /** Names whose remote traffic goes through JetStream (at-least-once). */
  readonly #atLeastOnce: readonly RegExp[];
  /** Names this node restarts when their node goes down. */
  readonly #failover: readonly RegExp[];
  /** The at-least-once inboxes of this node's kernels. */
  readonly #inboxes = new Map<string, DurableInbox>();
  /** Entries this node published for its kernels, as published (re-published when their status changes). */
  readonly #published = new Map<string, ClusterKernelEntry>();
  #stopWatching: (() => void) | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #notices: Subscription | undefined;
  #endings: Subscription | undefined;
  #placements: Subscription | undefined;
  /** Launches this node is placing on other nodes and has not yet seen registered, per node (placement's load). */
  readonly #placing = new Map<string, number>();
  /** Names this node is taking over from a dead node: their durable consumers are made anew (see DurableInbox). */
  readonly #takingOver = new Set<string>();
  #left: Promise<void> | undefined;
  /** When this node's last heartbeat ran (performance.now()). */
  #lastTick = performance.now();
  #undeliverable = 0;
  #reconnects = 0;

  private constructor(
    options: ResolvedClusterOptions,
    nats: NatsModules,
    nc: NatsConnection,
    registry: ClusterRegistry,
    runtime: ClusterRuntimePort,
    js: JetStreamClient,
    jsm: JetStreamManager,
  ) {
    super();
    this.#nats = nats;
    this.#js = js;
    this.#jsm = jsm;
    this.#atLeastOnce = (options.atLeastOnce ?? []).map(patternToRegExp);
    this.#failover = (options.failover ?? []).map(patternToRegExp);
    this.node = options.node;
    this.cluster = options.cluster;
    this.#options = options;
    this.#nc = nc;
    this.registry = registry;
    this.#runtime = runtime;
    this.#subjects = clusterSubjects(options.cluster);
    this.#host = new KernelHost(nc, this.#subjects, runtime, options.node);
    this.#moves = this.#movesOf(nc, runtime);
    this.#remoteContext = {
      nc,
      subjects: this.#subjects,
      registry,
      sender: `${options.node}#${randomBytes(4).toString('hex')}`,
      headers: () => nats.transport.headers(),
      batch: options.batch,
      js,
      retryForMs: options.retryForMs,
      undeliverable: (kernel, error, typeId, payload) => {
        this.#undeliverable++;
        runtime.deadLetter({
          kernel,
          reason: 'undeliverable',
          error: { name: error.name, message: error.message, code: (error as { code?: string }).code },
          messageId: 0,
          correlationId: 0,
          typeId,
          payload,
          at: new Date(),
        });
      },
    };
  }

  /**
   * Connects to NATS and joins the cluster: the registry is loaded, the runtime's named kernels are served and
   * registered, and the heartbeat starts. @internal — use the builder's `.cluster()`.
   * @throws {ClusterUnreachableError} when no server answers; {@link ClusterAuthError} when the server refuses
   * the credentials; {@link ClusterUnavailableError} when the NATS client is not installed.
   */
  static async join(runtime: ClusterRuntimePort, options: ClusterOptions): Promise<ClusterNode> {
    const resolved = resolveClusterOptions(options);
    const nats = await loadNats();
    const nc = await connect(nats, resolved);
    try {
      const subjects = clusterSubjects(resolved.cluster);
      const kv = await new nats.kv.Kvm(nc).create(subjects.bucket, { history: 1 });
      const jsm = await nats.jetstream.jetstreamManager(nc);
      const registry = new ClusterRegistry(kv, { name: subjects.bucket, jsm }, resolved.downAfterMs);
      await registry.start();
      await ensureStream(nats, jsm, subjects);
      const node = new ClusterNode(resolved, nats, nc, registry, runtime, nats.jetstream.jetstream(nc), jsm);
      await node.#start();
      return node;
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw error;
    }
  }

  #movesOf(nc: NatsConnection, runtime: ClusterRuntimePort): KernelMoves {
    return new KernelMoves({
      node: this.node,
      nc,
      subjects: this.#subjects,
      registry: this.registry,
      host: this.#host,
      runtime,
      leaving: () => this.#left !== undefined,
      entryOf: (kernel) => this.#entryOf(kernel),
      movable: (name) => runtime.movable(name),
      launchHere: (kernelId, moduleUrl, options, state) =>
        this.#launchHere({ kernelId, moduleUrl, options }, { kernelId, name: options.name, state }),
      drainInbox: async (name, timeoutMs) => {
        const inbox = this.#inboxes.get(name);
        this.#inboxes.delete(name);
        return inbox === undefined || (await inbox.drain(timeoutMs));
      },
      startInbox: async (kernel) => {
        if (this.#deliveryOf(kernel.name) !== 'at-least-once' || this.#inboxes.has(kernel.name)) return;
        const inbox = new DurableInbox(kernel, (data, headers) =>
          this.#host.deliverDurable(kernel.name, data, headers),
        );
        this.#inboxes.set(kernel.name, inbox);
        // Remade: the batches the other node took and did not acknowledge come first, in stream order.
        await inbox.start(this.#nats, this.#js, this.#jsm, this.#subjects, true);
      },
      listed: (name, entry) => {
        if (entry === undefined) this.#published.delete(name);
        else this.#published.set(name, entry);
      },
    });
  }

  async #start(): Promise<void> {
    this.registry.on('nodeDown', (node) => this.emit('nodeDown', node));
    this.registry.on('nodeUp', (node) => this.emit('nodeUp', node));
    this.registry.on('stale', (error) => this.emit('registry', error));
    if (this.#failover.length > 0) {
      // A kernel whose entry went while its node is silent was swept with that node: restart it here, if no other
      // node claims it first.
      this.registry.on('change', (event) => {
        const from = event.entry.node;
        if (event.type !== 'deregistered' || from === this.node) return;
        if (!this.#failover.some((pattern) => pattern.test(event.name))) return;
        if (!this.registry.hasLeft(from) && !this.registry.isAlive(from)) {
          void this.#takeOver(event.entry);
          return;
        }
        // Another node swept it a moment before this one's clock says so: look again after two heartbeats.
        setTimeout(() => {
          if (this.registry.hasLeft(from) || this.registry.isAlive(from) || this.registry.get(event.name)) return;
          void this.#takeOver(event.entry);
        }, 2 * this.#options.heartbeatMs).unref();
      });
    }
    this.#endings = this.#subscribeNotices(this.#subjects.ended, (notice: KernelEndedNotice) =>
      this.#kernelEnded(notice),
    );
    this.#notices = this.#subscribeNotices(this.#subjects.notices(this.node), (notice: DeliveryNotice) =>
      this.#noticed(notice),
    );
    this.#placements = this.#nc.subscribe(this.#subjects.place(this.node), {
      callback: (error, msg) => {
        if (error === null) void this.#placed(msg);
      },
    });
    void this.#watchConnection();
    await this.#beat();
    // Entries under this node's name that it does not host are a previous incarnation's (the process restarted
    // before the cluster declared it down): nobody serves them now, so they go.
    for (const entry of this.registry.lookup('**')) {
      if (entry.node !== this.node || this.#runtime.localKernel(entry.name) !== undefined) continue;
      await this.registry.deregister(entry.name).catch(() => undefined);
    }
    for (const kernel of this.#runtime.localKernels()) await this.#serve(kernel);
    this.#stopWatching = this.#runtime.watchKernels((event) => {
      if (event.type === 'launched') void this.#serve(event.kernel).catch(() => undefined);
      else void this.#unserve(event.kernel.name).catch(() => undefined);
    });
    this.#heartbeat = setInterval(() => void this.#tick().catch(() => undefined), this.#options.heartbeatMs);
    this.#heartbeat.unref();
  }

  async #watchConnection(): Promise<void> {
    for await (const status of this.#nc.status()) {
      if (status.type === 'disconnect') this.emit('connection', 'disconnected');
      else if (status.type === 'reconnect') {
        this.#reconnects++;
        this.emit('connection', 'reconnected');
        // Our entries may have been swept while we were away: publish them again.
        void this.#tick().catch(() => undefined);
      }
    }
  }

  /** Subscribes to JSON notices on `subject`; a message that is not one is ignored. */
  #subscribeNotices<T>(subject: string, handle: (notice: T) => void): Subscription {
    return this.#nc.subscribe(subject, {
      callback: (error, msg) => {
        if (error !== null) return;
        try {
          handle(msg.json<T>());
        } catch {
          // not a notice: ignored
        }
      },
    });
  }

  /** A kernel this node sends to ended on its node: what this node sent after the last it took is lost. */
  #kernelEnded(notice: KernelEndedNotice): void {
    const remote = this.#remotes.get(notice.kernel);
    if (remote === undefined || notice.node === this.node) return;
    const lost = remote.ended(notice.node, notice.lastIds[this.#remoteContext.sender] ?? 0);
    if (lost === 0) return;
    const error = new ClusterMessageLostError(
      notice.kernel,
      lost,
      `${lost} message(s) sent after the kernel ended on node ${notice.node} reached nobody (at-most-once delivery)`,
    );
    // Counted and dead-lettered as a loss the receiving node reported.
    this.#noticed({
      kernel: notice.kernel,
      reason: 'message-lost',
      count: lost,
      error: { name: error.name, code: error.code, message: error.message },
    });
  }

  #noticed(notice: DeliveryNotice): void {
    this.#remotes.get(notice.kernel)?.noticed(notice.reason, notice.count);
    this.#runtime.deadLetter({
      kernel: notice.kernel,
      reason: notice.reason === 'refused' ? 'queue-full' : notice.reason,
      error: notice.error,
      messageId: 0,
      correlationId: 0,
      typeId: 0,
      payload: new Uint8Array(0),
      at: new Date(),
    });
    this.emit('notice', notice);
  }

  async #takeOver(lost: ClusterKernelEntry): Promise<void> {
    if (this.#left !== undefined || this.#runtime.localKernel(lost.name) !== undefined) return;
    const claimed = await this.registry.claim({
      ...lost,
      node: this.node,
      backend: this.#runtime.backend,
      status: 'Launched',
    });
    if (!claimed) return;
    this.#takingOver.add(lost.name);
    try {
      await this.#launchHere({
        kernelId: lost.kernelId,
        moduleUrl: lost.moduleUrl,
        options: { name: lost.name, autoActivate: true },
      });
      this.emit('failover', { name: lost.name, from: lost.node });
    } catch (error) {
      this.#takingOver.delete(lost.name);
      await this.registry.deregister(lost.name).catch(() => undefined);
      this.emit('failover', { name: lost.name, from: lost.node, error: error as Error });
    }
  }

  /**
   * Launches a kernel here for the cluster — a failover, or a launch another node placed here — importing the
   * module that defines it when this process does not define it yet; resolves once it is served and registered.
   */
  async #launchHere(
    request: PlacementRequest,
    restore?: { kernelId: string; name: string; state: Uint8Array },
  ): Promise<HostedKernel> {
    if (definitionOf(request.kernelId) === undefined && request.moduleUrl !== undefined) {
      await import(request.moduleUrl);
    }
    const options =
      restore === undefined
        ? request.options
        : { ...request.options, restore: { ...restore, takenAt: new Date(), queued: NOTHING_QUEUED } };
    const kernel = await this.#runtime.launch(request.kernelId, options);
    await this.#serve(kernel);
    return kernel;
  }

  /** Another node placed a launch here: launch it and answer once it is registered, or answer why not. */
  async #placed(msg: { json<T>(): T; respond(data?: string): boolean }): Promise<void> {
    await answerAfter(msg, async () => {
      if (this.#left !== undefined) throw new ClusterNodeDownError('', this.node, 'the node is leaving the cluster');
      await this.#launchHere(msg.json<PlacementRequest>());
    });
  }

  #entryOf(kernel: HostedKernel): ClusterKernelEntry {
    const moduleUrl = definitionOf(kernel.kernelId)?.moduleUrl;
    return {
      name: kernel.name,
      kernelId: kernel.kernelId,
      ...(moduleUrl === undefined ? {} : { moduleUrl }),
      node: this.node,
      backend: this.#runtime.backend,
      status: kernel.status,
      delivery: this.#deliveryOf(kernel.name),
    };
  }

  #deliveryOf(name: string): Delivery {
    return this.#atLeastOnce.some((pattern) => pattern.test(name)) ? 'at-least-once' : 'at-most-once';
  }

  async #serve(kernel: HostedKernel): Promise<void> {
    // A kernel moving here is served behind a hold, and listed when its move commits.
    const group = this.#moves.arrivingGroup(kernel.name);
    if (group !== undefined) return this.#host.serve(kernel, { group });
    // A failover's name was claimed for this node before its launch.
    const claimed = this.#takingOver.has(kernel.name);
    this.#host.serve(kernel);
    if (this.#deliveryOf(kernel.name) === 'at-least-once' && !this.#inboxes.has(kernel.name)) {
      const inbox = new DurableInbox(kernel, (data, headers) => this.#host.deliverDurable(kernel.name, data, headers));
      this.#inboxes.set(kernel.name, inbox);
      await inbox.start(this.#nats, this.#js, this.#jsm, this.#subjects, this.#takingOver.delete(kernel.name));
    }
    const entry = this.#entryOf(kernel);
    // A name is the cluster's: claimed atomically unless this node lists it already, so a launch racing another
    // node's under the same name never overwrites that node's listing (the loser stays local, unlisted until the
    // name is free: see #tick).
    const listed = this.registry.get(kernel.name);
    if (!claimed && listed?.node !== this.node) {
      if (!(await this.registry.claim(entry))) return;
    } else {
      await this.registry.register(entry);
    }
    this.#published.set(kernel.name, entry);
    // Ended while it was being listed (a terminate right after the launch: its end was handled before the listing
    // was done, and found nothing to remove): the entry goes now, or it would name a kernel nobody serves.
    if (this.#runtime.localKernel(kernel.name) === undefined) await this.#unserve(kernel.name);
  }

  async #unserve(name: string): Promise<void> {
    await this.#inboxes.get(name)?.close();
    this.#inboxes.delete(name);
    this.#host.unserve(name);
    if (!this.#published.delete(name)) return;
    // The bucket's entry, not the local copy: a copy that lags (its watch being replaced) may not list yet a kernel
    // this node listed a moment ago, and the entry would stay when the kernel is gone. Removed only at the revision
    // read, so that a name another node has taken meanwhile stays its.
    const listed = await this.registry.current(name).catch(() => undefined);
    if (listed?.entry.node === this.node) await this.registry.deregister(name, listed.revision);
  }

  async #beat(leaving = false): Promise<void> {
    let processed = 0;
    let queued = 0;
    const kernels = this.#runtime.localKernels();
    for (const kernel of kernels) {
      processed += kernel.counters().processed;
      queued += kernel.metrics().inputQueueDepth;
    }
    await this.registry.beat({
      node: this.node,
      backend: this.#runtime.backend,
      kernels: this.#published.size,
      processed,
      queued,
      ...(leaving ? { leaving } : {}),
    });
  }

  /** One heartbeat: beat, re-publish entries that changed or were swept, declare silent nodes down. */
  async #tick(): Promise<void> {
    if (this.#left !== undefined) return;
    // A heartbeat this late means this process was away (paused, starved): its view of the other nodes' heartbeats
    // is as old, so it declares nobody down on this one (they are seen again as their beats come in).
    const now = performance.now();
    const away = now - this.#lastTick > this.#options.downAfterMs;
    this.#lastTick = now;
    await this.#beat();
    for (const [name, published] of this.#published) {
      const kernel = this.#runtime.localKernel(name);
      // A moving kernel's entry is the move's to change (it swaps it at the revision it read).
      if (kernel === undefined || this.#moves.moving(name)) continue;
      const entry = this.#entryOf(kernel);
      const listed = this.registry.get(name);
      // Listed by another node: it took the name over while this one was declared down. That node keeps it, and
      // the instance here ends — else both would take the name's messages (its subjects are the name's).
      if (listed !== undefined && listed.node !== this.node) {
        await this.#displaced(kernel, listed.node);
        continue;
      }
      if (listed === undefined) {
        // Swept while this node was away (declared down): listed again only if no node took the name meanwhile —
        // a create, atomic, since this copy may not show that node's entry yet (a put would take the name from it).
        // If one did, a later heartbeat finds its entry here and this instance ends.
        if (await this.registry.claim(entry)) this.#published.set(name, entry);
      } else if (entry.status !== published.status) {
        // A new status replaces the entry only while it is still this node's in the bucket (a compare-and-swap):
        // this copy may lag behind another node taking the name, which a put would take back from it.
        const current = await this.registry.current(name);
        if (current?.entry.node === this.node && (await this.registry.swap(entry, current.revision))) {
          this.#published.set(name, entry);
        }
      }
    }
    if (!away) await this.registry.sweep(this.node);
    // A kernel whose name another node listed when it was served (a launch racing that node's, or the entry of a
    // dead node not swept yet) is listed here once the name is free.
    for (const kernel of this.#runtime.localKernels()) {
      if (this.#published.has(kernel.name) || this.registry.get(kernel.name) !== undefined) continue;
      if (this.#moves.moving(kernel.name)) continue;
      const entry = this.#entryOf(kernel);
      if (await this.registry.claim(entry)) this.#published.set(kernel.name, entry);
    }
  }

  /** Ends this node's instance of a kernel whose name another node took over while this one was away. */
  async #displaced(kernel: HostedKernel, by: string): Promise<void> {
    this.#published.delete(kernel.name);
    // Its subjects are let go first (senders told what it took), then the instance ends: what it still queued is
    // dead-lettered there (discarded on terminate), and at-least-once batches it did not acknowledge go to `by`.
    await this.#unserve(kernel.name);
    await kernel.terminate().catch(() => undefined);
    this.emit('displaced', { name: kernel.name, by });
  }

  /**
   * The kernel named `name`, wherever it runs: this runtime's own handle when it is local (straight into its
   * ring), else a {@link RemoteKernel}. The message types come from the kernel's definition when this process
   * defines it (or from `definition`), else raw bytes.
   * @throws {ClusterNameUnknownError} when no node of the cluster hosts a kernel by that name.
   */
  kernel<InIn = unknown, OutView = unknown>(name: string, definition?: AnyKernelDefinition): KernelRef<InIn, OutView> {
    const local = this.#runtime.localKernel(name);
    if (local !== undefined) return local as unknown as KernelRef<InIn, OutView>;
    const entry = this.registry.get(name);
    if (entry === undefined) throw new ClusterNameUnknownError(name, this.cluster);
    let remote = this.#remotes.get(name);
    if (remote === undefined) {
      const found = definition ?? definitionOf(entry.kernelId);
      const input = (found?.input ?? BytesMessage) as MessageCodec<unknown, unknown>;
      const output = (found?.output ?? BytesMessage) as MessageCodec<unknown, unknown>;
      remote = new RemoteKernel(name, input, output, this.#remoteContext);
      this.#remotes.set(name, remote);
    }
    return remote as unknown as KernelRef<InIn, OutView>;
  }

  /**
   * The node a launch with `options.node` goes to: that node when it is live, or for `'least-loaded'` the live
   * node (this one included) that lists the fewest kernels, then has the fewest queued input messages. @internal —
   * `runtime.launch(k, { node })` asks.
   * @throws {ClusterNodeUnknownError} when `node` names no live node of the cluster.
   */
  placement(node: unknown): string {
    return chooseNode(node, this.node, this.registry, this.cluster, this.#placing);
  }

  /**
   * Launches a kernel on another node (see `runtime.launch(k, { node })`): that node imports the kernel's module
   * when it does not define the kernel yet, launches it and registers it; resolves with a reference once this node
   * sees it registered there. @internal
   * @throws {ClusterPlacementError} when that node cannot launch it (`cause`: its error, with its code);
   * {@link ClusterNodeDownError} when the node does not answer within `timeoutMs`.
   */
  async launchOn<InIn = unknown, OutView = unknown>(
    node: string,
    kernel: string | AnyKernelDefinition,
    options: Readonly<Record<string, unknown>>,
    timeoutMs = this.#options.placementTimeoutMs,
  ): Promise<KernelRef<InIn, OutView>> {
    const launch: PlacedLaunchOptions = placedOptions(options);
    const definition = typeof kernel === 'string' ? definitionOf(kernel) : kernel;
    const kernelId = typeof kernel === 'string' ? kernel : kernel.id;
    const request: PlacementRequest = { kernelId, moduleUrl: definition?.moduleUrl, options: launch };
    const started = performance.now();
    this.#placing.set(node, (this.#placing.get(node) ?? 0) + 1);
    try {
      let answer: PlacementAnswer;
      try {
        const reply = await this.#nc.request(this.#subjects.place(node), JSON.stringify(request), {
          timeout: timeoutMs,
        });
        answer = reply.json<PlacementAnswer>();
      } catch (error) {
        throw new ClusterNodeDownError(launch.name, node, `no answer to the launch placed there`, { cause: error });
      }
      if (answer.error !== undefined) {
        const { code, message, name } = answer.error;
        const cause = code?.startsWith('RK_') ? new RingKernelError(code as never, message) : new Error(message);
        cause.name = name;
        throw new ClusterPlacementError(node, kernelId, `${code === undefined ? name : code}: ${message}`, { cause });
      }
      await this.#registeredOn(launch.name, node, Math.max(0, timeoutMs - (performance.now() - started)));
      return this.kernel<InIn, OutView>(launch.name, definition);
    } finally {
      const left = (this.#placing.get(node) ?? 1) - 1;
      if (left === 0) this.#placing.delete(node);
      else this.#placing.set(node, left);
    }
  }

  /** Resolves once this node's copy of the registry lists `name` on `node`. */
  #registeredOn(name: string, node: string, timeoutMs: number): Promise<void> {
    if (this.registry.get(name)?.node === node) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(new ClusterNodeDownError(name, node, `launched there, but not registered within ${timeoutMs} ms`));
      }, timeoutMs);
      const stop = this.registry.watch(name, (event) => {
        if (event.type === 'deregistered' || event.entry.node !== node || event.name !== name) return;
        clearTimeout(timer);
        stop();
        resolve();
      });
    });
  }

  /**
   * The entry of a live kernel another node lists under `name` (a launch here under that name is refused), unless
   * the kernel is moving here from that node. @internal
   */
  holderElsewhere(name: string): ClusterKernelEntry | undefined {
    const entry = this.registry.get(name);
    if (entry === undefined || entry.node === this.node || this.#moves.arrivingGroup(name) !== undefined)
      return undefined;
    return this.registry.isAlive(entry.node) ? entry : undefined;
  }

  /**
   * Moves the local kernel `name` to node `node` (or `'least-loaded'`), with its state, the messages queued for it
   * and its unreceived outputs; senders keep addressing it by name. See `KernelMigrator.moveToNode`. @internal
   * @throws {ClusterNodeUnknownError} when `node` is no live node; see {@link KernelMoves.move} for the rest.
   */
  moveKernel(name: string, node: string, options?: NodeMoveOptions): Promise<NodeMoveReport> {
    try {
      return this.#moves.move(name, this.placement(node), options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** What this node served, sent and was told. */
  stats(): ClusterNodeStats {
    let lostByPeers = 0;
    let refusedByPeers = 0;
    for (const remote of this.#remotes.values()) {
      const stats = remote.stats();
      lostByPeers += stats.lost;
      refusedByPeers += stats.refused;
    }
    return {
      ...this.#host.stats(),
      lostByPeers,
      refusedByPeers,
      undeliverable: this.#undeliverable,
      reconnects: this.#reconnects,
      registryResyncs: this.registry.resyncs,
    };
  }

  /** The NATS connection (for tools and benchmarks that publish beside the node). @internal */
  get connection(): NatsConnection {
    return this.#nc;
  }

  /** The cluster's subjects. @internal */
  get subjects(): ClusterSubjects {
    return this.#subjects;
  }

  /**
   * Leaves the cluster: stops serving, removes this node's kernels and heartbeat from the registry, flushes what
   * is still batched and closes the connection. Idempotent; the runtime's shutdown calls it.
   */
  leave(): Promise<void> {
    this.#left ??= (async () => {
      if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
      this.#stopWatching?.();
      // Said first, so that no node restarts the kernels that end now.
      await this.#beat(true).catch(() => undefined);
      await Promise.all([...this.#remotes.values()].map((remote) => remote.settled()));
      await this.#moves.close();
      await Promise.all([...this.#inboxes.values()].map((inbox) => inbox.close()));
      this.#inboxes.clear();
      this.#host.close();
      if (!this.#nc.isClosed()) {
        await Promise.allSettled([...this.#published.keys()].map((name) => this.registry.deregister(name)));
        await this.registry.forgetNode(this.node).catch(() => undefined);
      }
      this.#published.clear();
      this.registry.close();
      this.#notices?.unsubscribe();
      this.#endings?.unsubscribe();
      this.#placements?.unsubscribe();
      await this.#nc.drain().catch(() => this.#nc.close());
    })();
    return this.#left;
  }
}

/** A moved kernel's checkpoint carries no frames: what was queued is handled at the source or held and handed on. */
const NOTHING_QUEUED = Object.freeze({ frames: 0, bytes: new Uint8Array(0), maxMessageId: 0, integrity: false });

function definitionOf(kernelId: string | undefined): AnyKernelDefinition | undefined {
  if (kernelId === undefined) return undefined;
  try {
    return findKernel(kernelId);
  } catch {
    return undefined;
  }
}

async function connect(nats: NatsModules, options: ResolvedClusterOptions): Promise<NatsConnection> {
  const { transport } = nats;
  const connection: ConnectionOptions & { tls?: unknown } = {
    servers: [...options.servers],
    name: options.node,
    timeout: options.connectTimeoutMs,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 5000,
    maxPingOut: 2,
  };
  if (options.user !== undefined) {
    connection.user = options.user;
    if (options.pass !== undefined) connection.pass = options.pass;
  }
  if (options.token !== undefined) connection.token = options.token;
  if (options.nkeySeed !== undefined) {
    connection.authenticator = transport.nkeyAuthenticator(new TextEncoder().encode(options.nkeySeed));
  }
  if (options.creds !== undefined) {
    connection.authenticator = transport.credsAuthenticator(new TextEncoder().encode(options.creds));
  }
  if (options.tls !== undefined) connection.tls = options.tls === true ? {} : { ...options.tls };
  try {
    return await transport.connect(connection);
  } catch (error) {
    const e = error as { name?: string; message?: string; code?: string };
    const text = `${e.name ?? ''} ${e.message ?? ''} ${e.code ?? ''}`;
    if (/Authorization|Authentication|auth/i.test(text)) {
      throw new ClusterAuthError(options.servers, e.message ?? String(error), { cause: error });
    }
    throw new ClusterUnreachableError(options.servers, e.message ?? String(error), { cause: error });
  }
}
