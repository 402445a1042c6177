import { ClusterUnavailableError } from '../errors/cluster-errors.js';

/** The NATS client modules a cluster node uses, loaded only when a runtime joins a cluster. */
export interface NatsModules {
  readonly transport: typeof import('@nats-io/transport-node');
  readonly jetstream: typeof import('@nats-io/jetstream');
  readonly kv: typeof import('@nats-io/kv');
}

let loaded: Promise<NatsModules> | undefined;

/**
 * Loads the NATS client (`@nats-io/transport-node`, `@nats-io/jetstream`, `@nats-io/kv`: optional peer
 * dependencies, so a runtime that never joins a cluster does not need them installed).
 * @throws {ClusterUnavailableError} when they are not installed.
 */
export function loadNats(): Promise<NatsModules> {
  loaded ??= (async () => {
    try {
      const [transport, jetstream, kv] = await Promise.all([
        import('@nats-io/transport-node'),
        import('@nats-io/jetstream'),
        import('@nats-io/kv'),
      ]);
      return { transport, jetstream, kv };
    } catch (error) {
      loaded = undefined;
      throw new ClusterUnavailableError((error as Error).message, { cause: error });
    }
  })();
  return loaded;
}
