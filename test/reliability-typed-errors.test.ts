import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AnyKernelDefinition,
  defineKernel,
  ErrorCode,
  type KernelHandle,
  RingKernelError,
  RingKernelRuntime,
} from '../src/internal.js';
import { BytesEcho, Done, InitThrows, SlowSink, Work } from './fixtures/reliability-kernels.js';

/** One misuse of the API, and the argument (or the words) its error must name. */
interface Probe {
  readonly what: string;
  readonly names: string;
  readonly run: () => unknown;
}

/** Every error the library raises carries an RK_* code, is a RingKernelError, and names what was wrong. */
async function expectTyped(probe: Probe): Promise<void> {
  let caught: unknown;
  try {
    await probe.run();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught !== undefined, `${probe.what}: no error`);
  const error = caught as Error & { code?: unknown };
  assert.ok(error instanceof Error, `${probe.what}: ${String(caught)}`);
  assert.match(String(error.code), /^RK_[A-Z_]+$/, `${probe.what}: ${error.name}: ${error.message} has no RK_ code`);
  assert.ok(caught instanceof RingKernelError, `${probe.what}: not a RingKernelError`);
  assert.ok(error.message.includes(probe.names), `${probe.what}: '${error.message}' does not name ${probe.names}`);
  if (error.code === ErrorCode.InvalidArgument) {
    assert.ok(error instanceof TypeError || error instanceof RangeError, `${probe.what}: a TypeError or RangeError`);
  }
}

describe('reliability: API misuse raises typed errors that name what was wrong', () => {
  it('builder, config, launch, handle, connect, supervisor, defineKernel and message probes', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      const sink = (await runtime.launch(SlowSink, 1, 1, {
        name: 'probe-sink',
        autoActivate: true,
      })) as unknown as KernelHandle<{ seq: number; micros: number }, unknown>;
      const echo = (await runtime.launch(BytesEcho, 1, 1, { autoActivate: true })) as unknown as KernelHandle<
        unknown,
        unknown
      >;
      const launch = runtime.launch.bind(runtime) as (...args: unknown[]) => Promise<unknown>;
      const builder = () => RingKernelRuntime.builder();
      // A kernel whose module is not there, and one whose module does not define it.
      const missingModule = defineKernel({
        id: 'test.reliability.missing-module',
        input: Work,
        output: Done,
        cpu: (work) => ({ seq: work.seq }),
        module: new URL('./fixtures/no-such-module.js', import.meta.url),
      });
      const undefinedThere = defineKernel({
        id: 'test.reliability.not-defined-there',
        input: Work,
        output: Done,
        cpu: (work) => ({ seq: work.seq }),
        module: new URL('./fixtures/reliability-kernels.js', import.meta.url),
      });
      const probes: Probe[] = [
        { what: 'launch(null)', names: 'kernel', run: () => launch(null) },
        { what: 'launch(undefined)', names: 'kernel', run: () => launch(undefined) },
        { what: 'launch(42)', names: 'kernel', run: () => launch(42) },
        { what: 'launch of an unknown id', names: 'no.such.kernel', run: () => launch('no.such.kernel') },
        { what: 'gridSize 0', names: 'gridSize', run: () => launch(SlowSink, 0) },
        { what: "gridSize 'big'", names: 'gridSize', run: () => launch(SlowSink, 'big') },
        { what: 'blockSize 1.5', names: 'blockSize', run: () => launch(SlowSink, 1, 1.5) },
        { what: 'options null', names: 'options', run: () => launch(SlowSink, 1, 1, null) },
        {
          what: 'queueCapacity 0',
          names: 'options.queueCapacity',
          run: () => launch(SlowSink, 1, 1, { queueCapacity: 0 }),
        },
        { what: 'name empty', names: 'options.name', run: () => launch(SlowSink, 1, 1, { name: '' }) },
        { what: 'onFull drop', names: 'options.onFull', run: () => launch(SlowSink, 1, 1, { onFull: 'drop' }) },
        {
          what: 'onHandlerError ignore',
          names: 'options.onHandlerError',
          run: () => launch(SlowSink, 1, 1, { onHandlerError: 'ignore' }),
        },
        {
          what: 'autoActivate yes',
          names: 'options.autoActivate',
          run: () => launch(SlowSink, 1, 1, { name: 'x', autoActivate: 'yes' }),
        },
        { what: 'a module that does not exist', names: 'no-such-module', run: () => launch(missingModule) },
        {
          what: 'a module that does not define the kernel',
          names: 'test.reliability.not-defined-there',
          run: () => launch(undefinedThere),
        },
        { what: 'init() throws', names: 'init could not open its table', run: () => launch(InitThrows) },
        { what: 'config workers 0', names: 'config.workers', run: () => builder().config({ workers: 0 }) },
        {
          what: 'config unknown key',
          names: 'config.wrokers',
          run: () => builder().config({ wrokers: 2 } as unknown as { workers: number }),
        },
        {
          what: 'config logLevel',
          names: 'config.logLevel',
          run: () => builder().config({ logLevel: 'loud' as unknown as 'warn' }),
        },
        {
          what: 'config enableTelemetry',
          names: 'config.enableTelemetry',
          run: () => builder().config({ enableTelemetry: 1 as unknown as boolean }),
        },
        { what: 'backend tpu', names: 'backend', run: () => builder().backend('tpu' as unknown as 'cpu') },
        { what: 'device -1', names: 'device', run: () => builder().device(-1) },
        { what: 'tracing ratio 2', names: 'tracing.samplerRatio', run: () => builder().tracing({ samplerRatio: 2 }) },
        { what: 'drain(-1)', names: 'drain timeout', run: () => runtime.drain(-1) },
        {
          what: 'shutdownOnSignals no signals',
          names: 'options.signals',
          run: () => runtime.shutdownOnSignals({ signals: [] }),
        },
        { what: 'supervisor name empty', names: 'options.name', run: () => runtime.supervisor({ name: '' }) },
        {
          what: 'supervisor maxRestarts -1',
          names: 'options.maxRestarts',
          run: () => runtime.supervisor({ name: 'probe', maxRestarts: -1 }),
        },
        { what: 'connect to itself', names: 'connected to itself', run: () => runtime.connect(sink, sink) },
        { what: 'send options null', names: 'options', run: () => sink.send({ seq: 1, micros: 0 }, null as never) },
        {
          what: 'call signal not a signal',
          names: 'options.signal',
          run: () => sink.call({ seq: 1, micros: 0 }, { signal: {} as AbortSignal }),
        },
        {
          what: 'send onFull drop',
          names: 'options.onFull',
          run: () => sink.send({ seq: 1, micros: 0 }, { onFull: 'drop' as 'wait' }),
        },
        { what: 'bytes as an ArrayBuffer', names: 'ArrayBuffer(8)', run: () => echo.trySend(new ArrayBuffer(8)) },
        { what: 'defineKernel(null)', names: 'spec', run: () => defineKernel(null as never) },
        {
          what: 'defineKernel bad id',
          names: 'kernel id',
          run: () => defineKernel({ id: 'bad id!', input: Work, output: Done, cpu: () => undefined }),
        },
        {
          what: 'defineKernel without cpu',
          names: 'cpu',
          run: () => defineKernel({ id: 'test.reliability.no-cpu', input: Work, output: Done }),
        },
        {
          what: 'defineKernel init not a function',
          names: 'init',
          run: () =>
            defineKernel({
              id: 'test.reliability.bad-init',
              input: Work,
              output: Done,
              cpu: () => undefined,
              init: 5 as never,
            }),
        },
        {
          what: 'defineKernel emits not an array',
          names: 'emits',
          run: () =>
            defineKernel({
              id: 'test.reliability.bad-emits',
              input: Work,
              output: Done,
              cpu: () => undefined,
              emits: Done as never,
            }),
        },
      ];
      for (const probe of probes) await expectTyped(probe);
      assert.equal(sink.status, 'Active', 'no probe hurt a healthy kernel');
      assert.equal(((await sink.call({ seq: 7, micros: 0 })) as { seq: number }).seq, 7);
      assert.ok(probes.length >= 24);
    } finally {
      await runtime.shutdown();
    }
  });

  it('argument errors are TypeError / RangeError as the ecosystem expects, and RingKernelErrors with a code', () => {
    const definition = SlowSink as AnyKernelDefinition;
    assert.throws(
      () => RingKernelRuntime.builder().config({ defaultQueueCapacity: -5 }),
      (error: unknown) =>
        error instanceof RangeError &&
        error instanceof RingKernelError &&
        (error as { code?: string }).code === ErrorCode.InvalidArgument &&
        (error as { argument?: string }).argument === 'config.defaultQueueCapacity',
    );
    assert.ok(!(new Error('plain') instanceof RingKernelError));
    assert.ok(definition.id.length > 0);
  });
});
