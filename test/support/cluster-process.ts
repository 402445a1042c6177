/** Test support: node processes of a cluster (test/fixtures/cluster-node.ts), started and stopped by a test. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('../fixtures/cluster-node.js', import.meta.url));

/** A node process. */
export interface NodeProcess {
  readonly node: string;
  readonly child: ChildProcess;
  /** What it printed so far. */
  output(): string;
  /** SIGTERM: it leaves the cluster and exits; resolves with its exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash; resolves when it is gone. */
  kill(): Promise<void>;
}

/** Starts a node process hosting `kernels` (definition id and name); resolves when it says it is ready. */
export async function startNodeProcess(spec: {
  readonly servers: string;
  readonly node: string;
  readonly cluster: string;
  readonly kernels: readonly { readonly id: string; readonly name: string }[];
  readonly atLeastOnce?: readonly string[];
  readonly failover?: readonly string[];
  readonly traceEndpoint?: string;
  readonly heartbeatMs?: number;
  readonly downAfterMs?: number;
}): Promise<NodeProcess> {
  const child = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, RK_CLUSTER_NODE: JSON.stringify(spec) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${spec.node} not ready within 20 s:\n${output}`)), 20_000);
    const onData = (): void => {
      if (output.includes(`ready ${spec.node}`)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node ${spec.node} exited with ${code}:\n${output}`));
    });
  });
  return {
    node: spec.node,
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
