/**
 * ringkernel's cluster over NATS, for applications that opt into it (`ringkernel/cluster`): the cluster's
 * errors. The types of the node, the registry and remote references are in the main entry, whose signatures name
 * them. A runtime joins a cluster with `RingKernelRuntime.builder().cluster({ servers })`; it loads the optional
 * `@nats-io/*` packages lazily, so installing them is part of opting in.
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

export {
  ClusterAuthError,
  ClusterMessageLostError,
  ClusterNameUnknownError,
  ClusterNodeDownError,
  ClusterNodeUnknownError,
  ClusterPlacementError,
  ClusterRegistryStaleError,
  ClusterUnavailableError,
  ClusterUnreachableError,
} from './errors/cluster-errors.js';
