import { ErrorCode } from './codes.js';
import { RingKernelError } from './ringkernel-error.js';

/** No NATS server of the cluster answered: the node could not join, or lost its connection for good. */
export class ClusterUnreachableError extends RingKernelError {
  /** The servers that were tried. */
  readonly servers: readonly string[];

  constructor(servers: readonly string[], detail: string, options?: ErrorOptions) {
    super(ErrorCode.ClusterUnreachable, `cluster servers ${servers.join(', ')} unreachable: ${detail}`, options);
    this.servers = servers;
  }
}

/** The NATS server refused the node's credentials, or asked for credentials the node did not give. */
export class ClusterAuthError extends RingKernelError {
  readonly servers: readonly string[];

  constructor(servers: readonly string[], detail: string, options?: ErrorOptions) {
    super(ErrorCode.ClusterAuthFailed, `cluster servers ${servers.join(', ')} refused the node: ${detail}`, options);
    this.servers = servers;
  }
}

/** No node of the cluster hosts a kernel under the name (in this cluster's namespace). */
export class ClusterNameUnknownError extends RingKernelError {
  /** The name that was looked up. */
  readonly kernelName: string;
  /** The cluster it was looked up in. */
  readonly cluster: string;

  constructor(kernelName: string, cluster: string, detail = 'no node of the cluster hosts a kernel by this name') {
    super(ErrorCode.ClusterNameUnknown, `kernel '${kernelName}' in cluster '${cluster}': ${detail}`);
    this.kernelName = kernelName;
    this.cluster = cluster;
  }
}

/** The node hosting a kernel stopped answering while a request to it waited (it died, or left the cluster). */
export class ClusterNodeDownError extends RingKernelError {
  readonly kernelName: string;
  /** The node that was hosting the kernel, when known. */
  readonly node: string | undefined;

  constructor(kernelName: string, node: string | undefined, detail: string, options?: ErrorOptions) {
    super(
      ErrorCode.ClusterNodeDown,
      `kernel '${kernelName}'${node === undefined ? '' : ` on node '${node}'`}: ${detail}`,
      options,
    );
    this.kernelName = kernelName;
    this.node = node;
  }
}

/** The NATS client packages are not installed, so the runtime cannot join a cluster. */
export class ClusterUnavailableError extends RingKernelError {
  constructor(detail: string, options?: ErrorOptions) {
    super(
      ErrorCode.ClusterUnavailable,
      `cluster support needs the NATS client (npm install @nats-io/transport-node @nats-io/jetstream @nats-io/kv): ${detail}`,
      options,
    );
  }
}

/** Messages sent at-most-once to a remote kernel were lost on the way (the receiving node counted a gap). */
export class ClusterMessageLostError extends RingKernelError {
  readonly kernelName: string;
  /** How many messages were lost. */
  readonly lost: number;

  constructor(kernelName: string, lost: number, detail: string) {
    super(ErrorCode.ClusterMessageLost, `kernel '${kernelName}': ${lost} message(s) lost: ${detail}`);
    this.kernelName = kernelName;
    this.lost = lost;
  }
}

/** A launch named a node (`launch(k, { node })`) that is not a live node of the cluster. */
export class ClusterNodeUnknownError extends RingKernelError {
  /** The node the launch named. */
  readonly node: string;
  /** The live nodes of the cluster when it was looked up. */
  readonly liveNodes: readonly string[];

  constructor(node: string, cluster: string, liveNodes: readonly string[]) {
    super(
      ErrorCode.ClusterNodeUnknown,
      `node '${node}' is not a live node of cluster '${cluster}'; live nodes: ${liveNodes.length === 0 ? '(none)' : liveNodes.join(', ')}`,
    );
    this.node = node;
    this.liveNodes = liveNodes;
  }
}

/**
 * The node a launch was placed on could not launch the kernel: its module would not load there (not installed at
 * that path, or it fails to import), or the node's own launch refused it (`cause` carries that error and its code).
 */
export class ClusterPlacementError extends RingKernelError {
  /** The node the launch was placed on. */
  readonly node: string;
  /** The kernel definition's id. */
  readonly kernelId: string;

  constructor(node: string, kernelId: string, detail: string, options?: ErrorOptions) {
    super(ErrorCode.ClusterPlacementFailed, `node '${node}' could not launch kernel '${kernelId}': ${detail}`, options);
    this.node = node;
    this.kernelId = kernelId;
  }
}

/**
 * A node's copy of the cluster registry stopped following the registry's bucket: its watch ended or failed (a
 * consumer lost to a server restart or cleaned up while the node was away), or it fell behind the node's own
 * heartbeats. Reported (`runtime.cluster.on('registry', …)`, `stats().registryResyncs`), not thrown: the node reads
 * the bucket anew and watches it again.
 */
export class ClusterRegistryStaleError extends RingKernelError {
  /** The registry's bucket. */
  readonly bucket: string;

  constructor(bucket: string, detail: string, options?: ErrorOptions) {
    super(ErrorCode.ClusterRegistryStale, `cluster registry ${bucket}: ${detail}; reading it anew`, options);
    this.bucket = bucket;
  }
}
