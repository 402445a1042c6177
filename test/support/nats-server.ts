/**
 * Test support: a real nats-server (JetStream on, a temporary store, a free loopback port) per test file, started
 * and stopped by the test. The binary is the one `scripts/fetch-nats-server.sh` unpacked into .nats/, or
 * RINGKERNEL_NATS_SERVER, or one on PATH; without any, cluster tests skip and say how to get one.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

const FETCHED = fileURLToPath(new URL('../../../.nats/nats-server', import.meta.url));

/** The nats-server binary to run, or undefined when there is none. */
export function natsServerBinary(): string | undefined {
  const named = process.env.RINGKERNEL_NATS_SERVER;
  if (named !== undefined && named !== '') return existsSync(named) ? named : undefined;
  if (existsSync(FETCHED)) return FETCHED;
  const onPath = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  return onPath.error === undefined && onPath.status === 0 ? 'nats-server' : undefined;
}

/** Why the cluster tests cannot run here, or undefined when they can. */
export function natsServerMissing(): string | undefined {
  if (natsServerBinary() !== undefined) return undefined;
  return 'skipped: no nats-server (run scripts/fetch-nats-server.sh, or apt-get install nats-server)';
}

/** A free loopback TCP port (bound and released: the server binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Reuse this port (a restart). Default: a free one. */
  readonly port?: number;
  /** Reuse this store directory (a restart keeps JetStream's data). Default: a new temporary one. */
  readonly storeDir?: string;
  /** A configuration file's text (authorization blocks, say), passed with `-c`. */
  readonly config?: string;
}

/** A running nats-server. */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Stops the server (SIGTERM, then SIGKILL after 3 s); keeps the store. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store. */
  restart(): Promise<void>;
  /** Stops it and removes its store. */
  close(): Promise<void>;
}

/** Starts a nats-server with JetStream on 127.0.0.1; resolves when it accepts clients. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = natsServerBinary();
  if (binary === undefined) throw new Error(natsServerMissing());
  const port = options.port ?? (await freePort());
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), 'rk-nats-'));
  const args = ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port)];
  if (options.config !== undefined) {
    const file = join(storeDir, 'server.conf');
    writeFileSync(file, options.config);
    args.push('-c', file);
  }
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const started = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = started;
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start within 10 s:\n${log}`)), 10_000);
      started.stderr?.on('data', (chunk: Buffer) => {
        log += chunk.toString();
        if (log.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      started.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited with ${code}:\n${log}`));
      });
    });
    started.stderr?.resume();
  };
  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGTERM');
    const timer = setTimeout(() => running.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    stop,
    restart: async () => {
      await stop();
      await launch();
    },
    close: async () => {
      await stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/**
 * The suite's nats-server: started before the `describe` block it is called in, closed after it. The object it
 * returns stands for the server once started (reading it before then throws).
 */
export function natsServerForSuite(options: NatsServerOptions = {}): NatsServer {
  let server: NatsServer | undefined;
  const started = (): NatsServer => {
    if (server === undefined) throw new Error('the suite’s nats-server is not started yet (read it inside a test)');
    return server;
  };
  before(async () => {
    server = await startNatsServer(options);
  });
  after(async () => {
    await server?.close();
  });
  return {
    get url() {
      return started().url;
    },
    get port() {
      return started().port;
    },
    get storeDir() {
      return started().storeDir;
    },
    stop: () => started().stop(),
    restart: () => started().restart(),
    close: () => started().close(),
  };
}

/**
 * Deletes every consumer of a KV bucket's stream (`bucket`, the bucket's name), as the server does with one it lost
 * (an inactive one cleaned up, a JetStream restart): the watches of the bucket stop delivering under their nodes.
 * Returns the consumers' names.
 */
export async function deleteBucketWatchers(nc: NatsConnection, bucket: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const stream = `KV_${bucket}`;
  const watchers: string[] = [];
  for await (const consumer of jsm.consumers.list(stream)) watchers.push(consumer.config.name ?? consumer.name);
  // (One that went by itself between the list and its delete is gone as wanted.)
  for (const name of watchers) await jsm.consumers.delete(stream, name).catch(() => false);
  return watchers;
}
