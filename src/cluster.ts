/**
 * ringkernel's cluster over NATS, for applications that opt into it (`ringkernel/cluster`): the node, the
 * registry, remote references and the cluster's errors. A runtime joins a cluster with
 * `RingKernelRuntime.builder().cluster({ servers })`; it loads the optional `@nats-io/*` packages lazily, so
 * installing them is part of opting in.
 *
 * @example
 * ```ts
 * import { ClusterNodeDownError } from 'ringkernel/cluster';
 *
 * try {
 *   await runtime.ref('sensors/eu/avg').call({ value: 4 });
 * } catch (error) {
 *   if (error instanceof ClusterNodeDownError) console.warn('its node is down:', error.message);
 * }
 * ```
 *
 * @packageDocumentation
 */

export type { ClusterNode, ClusterNodeEvents, ClusterNodeStats } from './cluster/cluster-node.js';
export type { ClusterOptions, ClusterTlsOptions } from './cluster/cluster-options.js';
export type { KernelRef, KernelRefMetrics } from './cluster/cluster-ports.js';
export type {
  ClusterKernelEntry,
  ClusterNodeEntry,
  ClusterRegistry,
  ClusterRegistryEvent,
  Delivery,
} from './cluster/cluster-registry.js';
export type { DeliveryNotice } from './cluster/kernel-host.js';
export type { BatchOptions, RemoteKernel, RemoteKernelStats } from './cluster/remote-kernel.js';
export {
  ClusterAuthError,
  ClusterMessageLostError,
  ClusterNameUnknownError,
  ClusterNodeDownError,
  ClusterNodeUnknownError,
  ClusterPlacementError,
  ClusterUnavailableError,
  ClusterUnreachableError,
} from './errors/cluster-errors.js';
