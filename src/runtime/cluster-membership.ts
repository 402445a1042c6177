import type { ClusterNode } from '../cluster/cluster-node.js';
import type { ClusterOptions } from '../cluster/cluster-options.js';
import type { ClusterRuntimePort, HostedKernel, KernelRef } from '../cluster/cluster-ports.js';
import { InvalidArgumentError } from '../errors/argument-errors.js';
import { KernelNotFoundError } from '../errors/runtime-errors.js';
import type { AnyKernelDefinition, KernelDefinition } from '../kernel/kernel-definition.js';
import type { KernelHandle } from './kernel-handle.js';
import type { LaunchOptions } from './kernel-launcher.js';

/** A kernel launched or ended, as the cluster node serves and registers kernels. */
type KernelEvent = { type: 'launched' | 'ended'; kernel: HostedKernel };

/** What the runtime's cluster membership needs of the runtime: what the node needs, and a launch here. */
export interface MembershipHost extends Omit<ClusterRuntimePort, 'watchKernels' | 'localKernel' | 'movable'> {
  /** The live kernel launched here under `name`, if any. */
  localKernel(name: string): KernelHandle | undefined;
  /** Launches a kernel on this node, whatever the cluster's placement. */
  launchHere(kernel: string | AnyKernelDefinition, options: LaunchOptions): Promise<KernelHandle>;
}

/**
 * The runtime as a node of a cluster (`builder().cluster()` or `joinCluster`): the join, which kernel a name
 * reaches (the local handle, else a reference to it on its node), launches placed on other nodes, and the kernel
 * events the node serves from. Loads the cluster (and the NATS client) only when it joins.
 */
export class ClusterMembership {
  readonly #host: MembershipHost;
  #node: ClusterNode | undefined;
  /** Told when a kernel is launched or has ended (the cluster node serves and registers them). */
  readonly #watchers = new Set<(event: KernelEvent) => void>();

  constructor(host: MembershipHost) {
    this.#host = host;
  }

  /** The node, once joined. */
  get node(): ClusterNode | undefined {
    return this.#node;
  }

  /** A kernel was launched here, or has ended here. */
  kernelEvent(type: KernelEvent['type'], kernel: HostedKernel): void {
    for (const watcher of this.#watchers) watcher({ type, kernel });
  }

  /** Joins the cluster (see `RingKernelRuntime.joinCluster`). */
  async join(options: ClusterOptions): Promise<ClusterNode> {
    if (this.#node !== undefined) {
      throw new InvalidArgumentError('options', `already a node of cluster '${this.#node.cluster}'`);
    }
    const { ClusterNode } = await import('../cluster/cluster-node.js');
    const host = this.#host;
    const port: ClusterRuntimePort = {
      backend: host.backend,
      localKernel: (name) => host.localKernel(name),
      localKernels: () => host.localKernels(),
      watchKernels: (listener) => {
        this.#watchers.add(listener);
        return () => this.#watchers.delete(listener);
      },
      deadLetter: (letter) => host.deadLetter(letter),
      launch: (kernelId, placed) => host.launch(kernelId, placed),
      movable: (name) => host.localKernel(name)?.migration,
    };
    this.#node = await ClusterNode.join(port, options);
    return this.#node;
  }

  /** The kernel named `name`, wherever it runs (see `RingKernelRuntime.ref`). */
  ref<InIn, OutView>(name: string): KernelRef<InIn, OutView> {
    const local = this.#host.localKernel(name);
    if (local !== undefined) return local as unknown as KernelRef<InIn, OutView>;
    if (this.#node === undefined) throw new KernelNotFoundError(name, 'no live kernel is launched under this name');
    return this.#node.kernel<InIn, OutView>(name);
  }

  /** A launch with `options.node`: here when the cluster places it here, else on that node. */
  async launchOn<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    { node, ...options }: LaunchOptions & { node?: unknown },
  ): Promise<KernelHandle<InIn, OutView> | KernelRef<InIn, OutView>> {
    if (this.#node === undefined) {
      throw new InvalidArgumentError(
        'options.node',
        'options.node places a launch on a node of a cluster, and this runtime is not a node of one (builder().cluster({...}))',
      );
    }
    const target = this.#node.placement(node);
    const definition = kernel as string | AnyKernelDefinition;
    if (target === this.#node.node) {
      return (await this.#host.launchHere(definition, options)) as unknown as KernelHandle<InIn, OutView>;
    }
    return this.#node.launchOn<InIn, OutView>(target, definition, options);
  }

  /** Leaves the cluster, if a node of one: other nodes stop sending here. */
  async leave(): Promise<void> {
    await this.#node?.leave().catch(() => undefined);
  }
}
