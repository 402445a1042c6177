/**
 * Bad input to each public entry that validates its arguments: the error carries an RK_* code and its message
 * names the argument (and, where it has one, the value). One row per check, each its own test.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createActor } from 'xstate';
import { packKernelArgs } from '../src/backends/cuda/driver.js';
import {
  buildEmulatedKernel,
  CircuitBreaker,
  ControlBlock,
  createFrameRing,
  createTelemetryRing,
  cudaTopology,
  defineKernel,
  defineMessage,
  defineStructLayout,
  ErrorCode,
  type ErrorCodeString,
  FrameConsumer,
  field,
  fromKernel,
  HybridLogicalClock,
  KernelWatchdog,
  layoutField,
  RingKernelError,
  RingKernelRuntime,
  renderMessagesHeader,
} from '../src/internal.js';
import { hexToId } from '../src/telemetry/trace-ids.js';
import { SlowSink, Work } from './fixtures/reliability-kernels.js';
import { ExitsItsWorker } from './fixtures/worker-exit-kernels.js';

/** One bad input: what it calls, the code it must raise, and the words its message must contain. */
interface Row {
  readonly what: string;
  readonly code: ErrorCodeString;
  /** The argument, option or field the message must name. */
  readonly names: string;
  /** The value the message must show, when the check has one. */
  readonly value?: string;
  readonly run: () => unknown;
}

const INVALID = ErrorCode.InvalidArgument;

async function expectRow(row: Row): Promise<void> {
  let caught: unknown;
  try {
    await row.run();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof Error, `${row.what}: expected an error, got ${String(caught)}`);
  const error = caught as Error & { code?: unknown; argument?: unknown };
  assert.equal(error.code, row.code, `${row.what}: ${error.name}: ${error.message}`);
  assert.ok(caught instanceof RingKernelError, `${row.what}: not a RingKernelError`);
  assert.ok(error.message.includes(row.names), `${row.what}: '${error.message}' does not name ${row.names}`);
  if (row.value !== undefined) {
    assert.ok(error.message.includes(row.value), `${row.what}: '${error.message}' does not show ${row.value}`);
  }
  if (row.code === INVALID) {
    // Argument errors stay the built-in classes callers catch, and say which argument.
    assert.ok(error instanceof TypeError || error instanceof RangeError, `${row.what}: not a TypeError/RangeError`);
    assert.ok(typeof error.argument === 'string' && error.argument !== '', `${row.what}: no argument`);
  }
}

function table(rows: readonly Row[]): void {
  for (const row of rows) it(row.what, () => expectRow(row));
}

const Probe = defineMessage('test.typedErrors.Probe', { seq: 'u32', value: 'f64' });
const ring = () => createFrameRing({ capacityBytes: 1024 });

describe('typed errors: messages, rings, layouts, clocks and control blocks', () => {
  table([
    {
      what: 'decode of a buffer shorter than the message',
      code: INVALID,
      names: 'bytes',
      value: 'test.typedErrors.Probe.decode needs 16 bytes at offset 0, have 3',
      run: () => Probe.decode(new Uint8Array(3)),
    },
    {
      what: 'decode past the end of the buffer',
      code: INVALID,
      names: 'bytes',
      value: 'at offset 8',
      run: () => Probe.decode(new Uint8Array(16), 8),
    },
    {
      what: 'field.string(-1)',
      code: INVALID,
      names: 'field.string capacity',
      value: '-1',
      run: () => field.string(-1),
    },
    { what: 'field.bytes(1.5)', code: INVALID, names: 'field.bytes length', value: '1.5', run: () => field.bytes(1.5) },
    {
      what: 'field.array of a length past 2^24',
      code: INVALID,
      names: 'field.array length',
      value: String(2 ** 25),
      run: () => field.array('u8', 2 ** 25),
    },
    {
      what: 'field.array of a kind that is not a scalar',
      code: INVALID,
      names: 'field.array element',
      value: '"u128"',
      run: () => field.array('u128' as 'u8', 4),
    },
    {
      what: 'createFrameRing(null)',
      code: INVALID,
      names: 'options',
      value: 'null',
      run: () => createFrameRing(null as never),
    },
    {
      what: "createFrameRing capacityBytes 'big'",
      code: INVALID,
      names: 'options.capacityBytes',
      value: 'string',
      run: () => createFrameRing({ capacityBytes: 'big' as never }),
    },
    {
      what: 'createFrameRing capacityBytes 10',
      code: INVALID,
      names: 'options.capacityBytes',
      value: 'got 10',
      run: () => createFrameRing({ capacityBytes: 10 }),
    },
    {
      what: 'createFrameRing maxPayloadSize larger than the ring',
      code: INVALID,
      names: 'options.maxPayloadSize',
      value: 'got 4096',
      run: () => createFrameRing({ capacityBytes: 1024, maxPayloadSize: 4096 }),
    },
    {
      what: 'createFrameRing integrity 1',
      code: INVALID,
      names: 'options.integrity',
      value: 'number',
      run: () => createFrameRing({ capacityBytes: 1024, integrity: 1 as never }),
    },
    {
      what: 'a FrameConsumer over something that is not ring memory',
      code: INVALID,
      names: 'memory',
      value: '"ring"',
      run: () => new FrameConsumer('ring' as never),
    },
    {
      what: 'a FrameConsumer over ring memory whose signal is not a SharedArrayBuffer',
      code: INVALID,
      names: 'memory.ring',
      run: () => new FrameConsumer({ ...ring(), signal: new ArrayBuffer(64) } as never),
    },
    {
      what: 'a FrameConsumer over ring memory whose signal is too small',
      code: INVALID,
      names: 'memory.signal',
      value: '8 bytes',
      run: () => new FrameConsumer({ ...ring(), signal: new SharedArrayBuffer(8) }),
    },
    {
      what: 'a FrameConsumer with a spin of -1',
      code: INVALID,
      names: 'options.spin',
      value: '-1',
      run: () => new FrameConsumer(ring(), { spin: -1 }),
    },
    {
      what: 'a FrameConsumer whose onMalformed is not a function',
      code: INVALID,
      names: 'options.onMalformed',
      run: () => new FrameConsumer(ring(), { onMalformed: 5 as never }),
    },
    {
      what: 'a struct layout with a field defined twice',
      code: INVALID,
      names: 'rk_probe.a',
      run: () =>
        defineStructLayout('rk_probe', '', 8, [
          ['a', 'u32', 0, 'host', ''],
          ['a', 'u32', 4, 'host', ''],
        ]),
    },
    {
      what: 'a struct layout whose fields do not fill its size',
      code: INVALID,
      names: 'size',
      value: 'fields end at 4, but the size is 8',
      run: () => defineStructLayout('rk_probe', '', 8, [['a', 'u32', 0, 'host', '']]),
    },
    {
      what: 'layoutField of a field that is not there',
      code: INVALID,
      names: 'rk_probe has no field',
      value: '"nope"',
      run: () => layoutField(defineStructLayout('rk_probe', '', 4, [['a', 'u32', 0, 'host', '']]), 'nope'),
    },
    {
      what: 'a HybridLogicalClock on node 1.5',
      code: INVALID,
      names: 'node',
      value: '1.5',
      run: () => new HybridLogicalClock(1.5),
    },
    {
      what: 'a HybridLogicalClock with maxSkewUs -1',
      code: INVALID,
      names: 'options.maxSkewUs',
      value: '-1',
      run: () => new HybridLogicalClock(1, { maxSkewUs: -1 }),
    },
    {
      what: "a remote timestamp whose logical counter overflows the clock's",
      code: ErrorCode.ValueOutOfRange,
      names: 'HlcTimestamp.logical',
      run: () => {
        const clock = new HybridLogicalClock(1, { now: () => 1000 });
        clock.receive(1000, 0xffff_ffff);
      },
    },
    {
      what: 'a ControlBlock over too small a buffer',
      code: INVALID,
      names: 'buffer',
      value: 'the buffer has 8',
      run: () => new ControlBlock(new SharedArrayBuffer(8)),
    },
    {
      what: 'a ControlBlock at an unaligned offset',
      code: INVALID,
      names: 'byteOffset',
      value: 'got 3',
      run: () => new ControlBlock(new SharedArrayBuffer(4096), 3),
    },
    {
      what: 'a ControlBlock over memory of another layout version',
      code: INVALID,
      names: 'buffer',
      value: 'layout version 0',
      run: () => new ControlBlock(new SharedArrayBuffer(4096)),
    },
    {
      what: 'a telemetry ring of 6 records',
      code: INVALID,
      names: 'capacity',
      value: 'got 6',
      run: () => createTelemetryRing(6, 0),
    },
    {
      what: 'a remote trace id that is not hex',
      code: ErrorCode.InvalidEnvelope,
      names: 'envelope.traceId',
      value: '"zz"',
      run: () => hexToId('traceId', 'zz', new Uint8Array(16), 0, 16),
    },
    {
      what: 'renderMessagesHeader with a lower-case guard',
      code: INVALID,
      names: 'guard',
      value: '"my_h"',
      run: () => renderMessagesHeader('my_h', [Probe]),
    },
  ]);
});

describe('typed errors: kernel definitions and the CUDA backend (checked without a GPU)', () => {
  const cudaKernel = (id: string, cuda: unknown) => () =>
    defineKernel({ id: `test.typedErrors.${id}`, input: Work, output: Work, cuda: cuda as never });
  table([
    { what: 'cuda not an object', code: INVALID, names: 'cuda', run: cudaKernel('c1', 'add.cu') },
    {
      what: 'cuda with file and source',
      code: INVALID,
      names: 'cuda',
      run: cudaKernel('c2', { file: '/a.cu', source: 'x' }),
    },
    {
      what: 'cuda.file relative',
      code: INVALID,
      names: 'cuda.file',
      value: '"add.cu"',
      run: cudaKernel('c3', { file: 'add.cu' }),
    },
    {
      what: 'cuda.file an http URL',
      code: INVALID,
      names: 'cuda.file',
      value: 'http:',
      run: cudaKernel('c4', { file: new URL('http://example.invalid/a.cu') }),
    },
    { what: 'cuda.source empty', code: INVALID, names: 'cuda.source', run: cudaKernel('c5', { source: ' ' }) },
    {
      what: 'cuda.entry not an identifier',
      code: INVALID,
      names: 'cuda.entry',
      value: '"9lives"',
      run: cudaKernel('c6', { source: 'x', entry: '9lives' }),
    },
    {
      what: 'cuda.blockSize 2048',
      code: INVALID,
      names: 'cuda.blockSize',
      value: 'got 2048',
      run: cudaKernel('c7', { source: 'x', blockSize: 2048 }),
    },
    {
      what: "cuda.batchMax '8'",
      code: INVALID,
      names: 'cuda.batchMax',
      value: 'got 8',
      run: cudaKernel('c8', { source: 'x', batchMax: '8' }),
    },
    {
      what: 'a u32 kernel argument of -1',
      code: INVALID,
      names: 'args[0].value',
      value: 'got -1',
      run: () => packKernelArgs([{ type: 'u32', value: -1 }]),
    },
    {
      what: 'a kernel argument of an unknown type',
      code: INVALID,
      names: 'args[1].type',
      value: '"u8"',
      run: () => packKernelArgs([{ type: 'u32', value: 1 }, { type: 'u8', value: 1 } as never]),
    },
    {
      what: 'an i64 kernel argument that is a number',
      code: INVALID,
      names: 'args[0].value',
      run: () => packKernelArgs([{ type: 'i64', value: 1 as never }]),
    },
    {
      what: 'buildEmulatedKernel without a handlerPath',
      code: INVALID,
      names: 'options.handlerPath',
      run: () => buildEmulatedKernel({ handlerPath: '', outputPath: '/tmp/x.so' }),
    },
    {
      what: 'buildEmulatedKernel with includeDirs not an array',
      code: INVALID,
      names: 'options.includeDirs',
      run: () => buildEmulatedKernel({ handlerPath: 'a.cu', outputPath: '/tmp/x.so', includeDirs: 'inc' as never }),
    },
    {
      what: 'cudaTopology(driver, null)',
      code: INVALID,
      names: 'options',
      value: 'null',
      run: () => cudaTopology(undefined as never, null as never),
    },
    {
      what: 'cudaTopology copyBytes 100',
      code: INVALID,
      names: 'options.copyBytes',
      value: 'got 100',
      run: () => cudaTopology(undefined as never, { copyBytes: 100 }),
    },
    {
      what: 'cudaTopology repetitions 0',
      code: INVALID,
      names: 'options.repetitions',
      value: 'got 0',
      run: () => cudaTopology(undefined as never, { repetitions: 0 }),
    },
  ]);
});

describe('typed errors: operations (breakers, watchdog, health, degradation, metrics, memory)', () => {
  const watchdog = () => new KernelWatchdog(() => []);
  table([
    {
      what: 'a circuit breaker with failureThreshold 0',
      code: INVALID,
      names: 'options.failureThreshold',
      value: 'got 0',
      run: () => new CircuitBreaker({ failureThreshold: 0 }),
    },
    {
      what: "a circuit breaker with windowMs '10'",
      code: INVALID,
      names: 'options.windowMs',
      value: 'string',
      run: () => new CircuitBreaker({ windowMs: '10' as never }),
    },
    {
      what: 'a circuit breaker with recoveryTimeoutMs Infinity',
      code: INVALID,
      names: 'options.recoveryTimeoutMs',
      value: 'Infinity',
      run: () => new CircuitBreaker({ recoveryTimeoutMs: Number.POSITIVE_INFINITY }),
    },
    {
      what: "a watchdog policy 'panic'",
      code: INVALID,
      names: 'policy',
      value: '"panic"',
      run: () => watchdog().setPolicy('panic' as never),
    },
    {
      what: "a watchdog policy 'restart' without a runtime",
      code: INVALID,
      names: 'policy',
      value: "'restart'",
      run: () => watchdog().setPolicy('restart'),
    },
    {
      what: 'a watchdog heartbeat timeout of -1',
      code: INVALID,
      names: 'setHeartbeatTimeout: ms',
      value: '-1',
      run: () => watchdog().setHeartbeatTimeout(-1),
    },
    {
      what: 'a watchdog started every 0 ms',
      code: INVALID,
      names: 'intervalMs',
      value: 'got 0',
      run: () => watchdog().start(0),
    },
  ]);

  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().config({ workers: 2, devices: 2 }).build();
  });
  after(() => runtime.shutdown());

  const health = () => runtime.healthChecker();
  table([
    {
      what: 'a health check without a name',
      code: INVALID,
      names: 'check.name',
      value: 'undefined',
      run: () => health().register({ kind: 'liveness', check: () => true } as never),
    },
    {
      what: "a health check of kind 'startup'",
      code: INVALID,
      names: 'check.kind',
      value: '"startup"',
      run: () => health().register({ name: 'db', kind: 'startup' as never, check: () => true }),
    },
    {
      what: 'a health check whose check is not a function',
      code: INVALID,
      names: 'check.check',
      run: () => health().register({ name: 'db', kind: 'readiness', check: true as never }),
    },
    {
      what: 'a health check registered twice',
      code: INVALID,
      names: 'check.name',
      value: "'twice'",
      run: () => {
        health().register({ name: 'twice', kind: 'readiness', check: () => true });
        health().register({ name: 'twice', kind: 'readiness', check: () => true });
      },
    },
    {
      what: 'health checks run every -5 ms',
      code: INVALID,
      names: 'intervalMs',
      value: '-5',
      run: () => health().start(-5),
    },
    {
      what: 'degradation hysteresis 2',
      code: INVALID,
      names: 'options.hysteresis',
      value: 'got 2',
      run: () => runtime.degradationManager({ hysteresis: 2 }),
    },
    {
      what: 'degradation thresholds not increasing',
      code: INVALID,
      names: 'options.thresholds.queuePressure',
      value: '[4,3,2,1]',
      run: () => runtime.degradationManager({ thresholds: { queuePressure: [4, 3, 2, 1] } as never }),
    },
    {
      what: 'degradation admit of a level that does not exist',
      code: INVALID,
      names: 'options.admit.Panic',
      run: () => runtime.degradationManager({ admit: { Panic: 1 } as never }),
    },
    {
      what: 'degradation admit priority 300',
      code: INVALID,
      names: 'options.admit.Critical',
      value: 'got 300',
      run: () => runtime.degradationManager({ admit: { Critical: 300 } as never }),
    },
    {
      what: 'a degradation manager started every NaN ms',
      code: INVALID,
      names: 'intervalMs',
      value: 'NaN',
      run: () => runtime.degradationManager().start(Number.NaN),
    },
    {
      what: 'prometheusExporter with an unknown option',
      code: INVALID,
      names: 'prometheusExporter.port',
      run: () => runtime.prometheusExporter({ port: 9100 } as never),
    },
    {
      what: 'prometheusExporter with a registry that is not one',
      code: INVALID,
      names: 'prometheusExporter.registry',
      run: () => runtime.prometheusExporter({ registry: {} as never }),
    },
    {
      what: "prometheusExporter with processMetrics 'yes'",
      code: INVALID,
      names: 'prometheusExporter.processMetrics',
      value: 'string',
      run: () => runtime.prometheusExporter({ processMetrics: 'yes' as never }),
    },
    {
      what: 'metrics served on port 70000',
      code: INVALID,
      names: 'port',
      value: 'got 70000',
      run: () => runtime.prometheusExporter().serve(70_000),
    },
    {
      what: 'metrics served on an empty host',
      code: INVALID,
      names: 'host',
      value: '""',
      run: () => runtime.prometheusExporter().serve({ port: 0, host: '' }),
    },
    {
      what: 'a memory budget of 0 bytes',
      code: INVALID,
      names: 'setBudget: bytes',
      value: 'got 0',
      run: () => runtime.gpuMemoryDashboard().setBudget(0),
    },
    {
      what: 'memory thresholds that do not increase',
      code: INVALID,
      names: 'setThresholds: thresholds',
      value: '[0.9,0.5,0.7]',
      run: () => runtime.gpuMemoryDashboard().setThresholds([0.9, 0.5, 0.7]),
    },
    {
      what: "a memory alert of level 'Doom'",
      code: INVALID,
      names: 'triggerAlert: level',
      value: '"Doom"',
      run: () => runtime.gpuMemoryDashboard().triggerAlert('Doom' as never),
    },
    {
      what: "a device coordinator with strategy 'Fastest'",
      code: INVALID,
      names: 'strategy',
      value: '"Fastest"',
      run: () => runtime.multiGpuCoordinator('Fastest' as never),
    },
    {
      what: 'a placement asking for -1 bytes',
      code: INVALID,
      names: 'requirements.memoryBytes',
      value: 'got -1',
      run: () => runtime.multiGpuCoordinator().selectDevice({ memoryBytes: -1 }),
    },
    {
      what: "a placement asking for 'many' compute units",
      code: INVALID,
      names: 'requirements.minComputeUnits',
      value: 'many',
      run: () => runtime.multiGpuCoordinator().selectDevice({ minComputeUnits: 'many' as never }),
    },
    {
      what: "a launch with transferStrategy 'teleport'",
      code: INVALID,
      names: 'options.transferStrategy',
      value: '"teleport"',
      run: () => runtime.launch(SlowSink, 1, 1, { name: 'teleport', transferStrategy: 'teleport' as never }),
    },
    {
      what: "a launch with transferStrategy 'mapped' on the CPU backend",
      code: INVALID,
      names: 'options.transferStrategy',
      value: "'mapped'",
      run: () => runtime.launch(SlowSink, 1, 1, { name: 'mapped', transferStrategy: 'mapped' }),
    },
    {
      what: 'receiveBatch(0)',
      code: INVALID,
      names: 'max',
      value: 'got 0',
      run: async () => {
        const sink = await runtime.launch(SlowSink, 1, 1, { name: 'batch-probe', autoActivate: true });
        try {
          await sink.receiveBatch(0, 10);
        } finally {
          await sink.terminate();
        }
      },
    },
    {
      what: 'receiveBatch(2.5)',
      code: INVALID,
      names: 'max',
      value: 'got 2.5',
      run: async () => {
        const sink = await runtime.launch(SlowSink, 1, 1, { name: 'batch-probe-2', autoActivate: true });
        try {
          await sink.receiveBatch(2.5, 10);
        } finally {
          await sink.terminate();
        }
      },
    },
    {
      what: 'a migration with failAt an unknown phase',
      code: INVALID,
      names: 'options.failAt',
      value: '"later"',
      run: async () => {
        const sink = await runtime.launch(SlowSink, 1, 1, { name: 'migrate-probe', device: 0, autoActivate: true });
        try {
          await runtime.kernelMigrator().migrateKernel(sink, 0, 1, { failAt: 'later' as never });
        } finally {
          await sink.terminate();
        }
      },
    },
    {
      what: 'a migration with a timeout of 0 ms',
      code: INVALID,
      names: 'options.timeoutMs',
      value: 'got 0',
      run: async () => {
        const sink = await runtime.launch(SlowSink, 1, 1, { name: 'migrate-probe-2', device: 0, autoActivate: true });
        try {
          await runtime.kernelMigrator().migrateKernel(sink, 0, 1, { timeoutMs: 0 });
        } finally {
          await sink.terminate();
        }
      },
    },
    {
      what: 'a restore whose queued frames do not fit the new queue',
      code: INVALID,
      names: 'options.restore',
      value: 'options.queueCapacity',
      run: async () => {
        const sink = await runtime.launch(SlowSink, 1, 1, { name: 'restore-probe', autoActivate: true });
        try {
          await sink.deactivate();
          for (let seq = 0; seq < 10; seq++) await sink.send({ seq, micros: 0 });
          const saved = await sink.checkpoint();
          await runtime.launch(SlowSink, 1, 1, { name: 'cramped', restore: saved, queueCapacity: 4 });
        } finally {
          await sink.terminate({ drain: false });
        }
      },
    },
  ]);
});

describe('typed errors: the builder and XState actors', () => {
  table([
    {
      what: 'builder inspect(42)',
      code: INVALID,
      names: 'inspect',
      run: () => RingKernelRuntime.builder().inspect(42 as never),
    },
    {
      what: "tracing maxTracesPerSecond '100'",
      code: INVALID,
      names: 'tracing.maxTracesPerSecond',
      value: 'string',
      run: () => RingKernelRuntime.builder().tracing({ maxTracesPerSecond: '100' as never }),
    },
    {
      what: 'tracing maxTracesPerSecond 0',
      code: INVALID,
      names: 'tracing.maxTracesPerSecond',
      value: 'got 0',
      run: () => RingKernelRuntime.builder().tracing({ maxTracesPerSecond: 0 }),
    },
    {
      what: "tracing exporterCpuShare 'half'",
      code: INVALID,
      names: 'tracing.exporterCpuShare',
      value: 'string',
      run: () => RingKernelRuntime.builder().tracing({ exporterCpuShare: 'half' as never }),
    },
    {
      what: 'tracing exporterCpuShare 1.5',
      code: INVALID,
      names: 'tracing.exporterCpuShare',
      value: 'got 1.5',
      run: () => RingKernelRuntime.builder().tracing({ exporterCpuShare: 1.5 }),
    },
    {
      what: 'fromKernel used without a runtime',
      code: INVALID,
      names: 'options.runtime',
      run: () =>
        new Promise((_, reject) => {
          const actor = createActor(fromKernel(SlowSink));
          actor.subscribe({ error: reject });
          actor.start();
        }),
    },
  ]);
});

describe('typed errors: a launch whose worker ends while attaching the kernel', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
  });
  after(() => runtime.shutdown());
  table([
    {
      what: 'a kernel whose module ends the worker that imports it',
      code: ErrorCode.KernelFailed,
      names: "kernel 'test.worker-exit.exits-its-worker'",
      value: 'worker exited with code: 7',
      run: () => runtime.launch(ExitsItsWorker, 1, 1),
    },
  ]);
});
