/**
 * Where a cluster's traffic lives in NATS. Everything is namespaced by the cluster's name, so two clusters sharing
 * one NATS never see each other's kernels: subjects under `rk.<cluster>.`, the registry in the KV bucket
 * `rk-<cluster>`, at-least-once traffic in the JetStream stream `RK_<cluster>`.
 */
export interface ClusterSubjects {
  readonly cluster: string;
  /** The registry's KV bucket. */
  readonly bucket: string;
  /** The JetStream stream of the cluster's at-least-once traffic. */
  readonly stream: string;
  /** Every subject of the stream. */
  readonly streamSubjects: string;
  /** One-way frames to a kernel (at-most-once). */
  input(kernel: string): string;
  /** Calls to a kernel (request/reply). */
  call(kernel: string): string;
  /** Requests for a kernel's outputs (request/reply). */
  outputs(kernel: string): string;
  /** Status and metrics of a kernel (request/reply). */
  control(kernel: string): string;
  /** One-way frames to a kernel through JetStream (at-least-once). */
  durable(kernel: string): string;
  /** The durable consumer of a kernel's at-least-once traffic. */
  consumer(kernel: string): string;
  /** Notices from a node back to senders (refused or lost frames), per sending node. */
  notices(node: string): string;
  /** Where a node says that a kernel of its own has ended, and up to which message it took each sender's. */
  readonly ended: string;
  /** Launches placed on a node by another (request/reply). */
  place(node: string): string;
  /** The steps of kernels moving to a node from another (request/reply). */
  move(node: string): string;
}

/** Cluster names: what a KV bucket and a stream name may carry. */
export const CLUSTER_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** Node names: one subject token and a KV key part. */
export const NODE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A kernel name as one subject token and KV key part: letters, digits, `-`, `_` and `/` pass; every other byte is
 * `=` and two hex digits (`sensors/eu/avg` stays, `a.b` becomes `a=2eb`).
 */
export function nameToken(name: string): string {
  let out = '';
  for (const byte of new TextEncoder().encode(name)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_/-]/.test(c) ? c : `=${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The kernel name a {@link nameToken} stands for. */
export function tokenName(token: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '=') {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(token.charCodeAt(i));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** The subjects, bucket and stream of one cluster. */
export function clusterSubjects(cluster: string): ClusterSubjects {
  const base = `rk.${cluster}`;
  // A consumer name may not hold '/': it becomes '~' there (which nameToken never leaves as it is).
  const consumerToken = (kernel: string): string => nameToken(kernel).replaceAll('/', '~');
  return {
    cluster,
    bucket: `rk-${cluster}`,
    stream: `RK_${cluster}`,
    streamSubjects: `${base}.d.>`,
    input: (kernel) => `${base}.k.${nameToken(kernel)}.in`,
    call: (kernel) => `${base}.k.${nameToken(kernel)}.call`,
    outputs: (kernel) => `${base}.k.${nameToken(kernel)}.out`,
    control: (kernel) => `${base}.k.${nameToken(kernel)}.ctl`,
    durable: (kernel) => `${base}.d.${nameToken(kernel)}`,
    consumer: (kernel) => `k_${consumerToken(kernel)}`,
    notices: (node) => `${base}.n.${node}.notice`,
    ended: `${base}.ended`,
    place: (node) => `${base}.n.${node}.place`,
    move: (node) => `${base}.n.${node}.move`,
  };
}
