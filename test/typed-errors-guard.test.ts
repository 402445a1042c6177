/**
 * Every error the library raises to a user carries an RK_* code: argument checks throw `ArgumentTypeError` /
 * `InvalidArgumentError` (still a `TypeError` / `RangeError`), everything else a `RingKernelError`. This test reads
 * `src/` and fails on any plain `new Error(` / `new TypeError(` / `new RangeError(` that is not listed below with
 * the reason it never reaches a user as it is — so an untyped error cannot slip back in. A listed one that is gone
 * fails the test too: the list stays exact.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describe, it } from 'node:test';
import { packageRoot } from '../src/backends/package-root.js';

/** A plain error the library may make: where (a file of `src/`), a piece of its line, and why it is allowed. */
interface AllowedPlainError {
  readonly file: string;
  readonly line: string;
  /** How many times the piece occurs in the file. */
  readonly count?: number;
  readonly reason: string;
}

const WORKER_ATTACH =
  "thrown on the kernel's worker while it attaches; the host turns an attach failure into a typed error (attachFailureError)";
const WORKER_SNAPSHOT =
  "thrown on the kernel's worker while it takes a checkpoint; the host rejects checkpoint() with a StateSnapshotError";
const DEAD_LETTER_DETAIL =
  "a dead letter's detail, never thrown: the letter's reason (discarded-on-terminate, kernel-failed…) classifies it";

const ALLOWED: readonly AllowedPlainError[] = [
  {
    file: 'telemetry/telemetry-exporter.ts',
    line: 'spans were still undelivered at shutdown',
    reason: 'never thrown: becomes the text of the one warning that traces could not be delivered',
  },
  {
    file: 'telemetry/runtime-tracing.ts',
    line: "new TypeError('tracing is off: exporter none')",
    reason: "unreachable: the runtime builds its tracing only when resolveTracingOptions enables it, never for 'none'",
  },
  {
    file: 'telemetry/exporter-thread-main.ts',
    line: 'the exporter thread must run in a worker thread',
    reason: "the exporter thread's entry module: the runtime loads it as a worker, nobody imports it",
  },
  {
    file: 'supervision/supervisor.ts',
    line: 'new Error(String(failure))',
    reason: "keeps a non-Error thrown in the supervisor's own decision queue an Error for its 'failed' event",
  },
  { file: 'worker/hosted-kernel.ts', line: 'has no cpu handler', reason: WORKER_ATTACH },
  { file: 'worker/hosted-kernel.ts', line: 'before this output had room', reason: DEAD_LETTER_DETAIL },
  {
    file: 'worker/hosted-kernel.ts',
    line: "throw new Error('termination was forced')",
    count: 2,
    reason:
      'caught by the kernel loop, which ends the kernel with it as the exit reason (KernelFailedError on the host)',
  },
  {
    file: 'worker/hosted-kernel.ts',
    line: 'an output of this kernel could not be delivered',
    reason: DEAD_LETTER_DETAIL,
  },
  { file: 'worker/hosted-kernel.ts', line: 'new Error(why)', reason: DEAD_LETTER_DETAIL },
  { file: 'executor/kernel-module.ts', line: "' is defined in ", reason: WORKER_ATTACH },
  {
    file: 'kernel/kernel-definition.ts',
    line: 'new Error().stack',
    reason: "never thrown: reads the caller's stack to find the module that defines a kernel",
  },
  {
    file: 'backends/webgpu/batch-engine.ts',
    line: 'the batch engine runs already',
    reason: 'internal: the hosted WebGPU kernel starts its own engine once',
  },
  {
    file: 'backends/webgpu/batch-engine.ts',
    line: 'the batch engine was disposed',
    reason: 'internal: the hosted WebGPU kernel never starts an engine it disposed',
  },
  {
    file: 'backends/webgpu/batch-engine.ts',
    line: 'a started engine ends with stop()',
    reason: 'internal: the hosted WebGPU kernel disposes only an engine that never started',
  },
  { file: 'backends/webgpu/hosted-webgpu-kernel.ts', line: 'a batch in flight has waited', reason: WORKER_SNAPSHOT },
  {
    file: 'backends/webgpu/hosted-webgpu-kernel.ts',
    line: 'Object.assign(new Error(letter.message)',
    reason: "a device dead letter's detail, given its code (RK_HANDLER_FAILED) by the Object.assign around it",
  },
  {
    file: 'backends/cuda/hosted-cuda-kernel.ts',
    line: 'the CUDA kernel did not pause within',
    reason: WORKER_SNAPSHOT,
  },
  {
    file: 'backends/cuda/hosted-cuda-kernel.ts',
    line: 'Object.assign(new Error(`',
    reason: "a device dead letter's detail, given its RK_* code by the Object.assign around it",
  },
  { file: 'backends/cuda/hosted-cuda-kernel.ts', line: 'new Error(why)', reason: DEAD_LETTER_DETAIL },
  {
    file: 'wire/message-schema.ts',
    line: 'ringkernel requires a little-endian platform',
    reason: 'thrown while the package loads on a big-endian machine, before any API exists to call',
  },
  {
    file: 'bridge/transfer-bridge.ts',
    line: 'this transfer move is settled already',
    reason: 'internal: the kernel migrator commits or aborts a prepared move once',
  },
  {
    file: 'bridge/transfer-bridge.ts',
    line: 'new Error(load.reason)',
    reason: "caught at once: its message becomes the notice that 'dma' falls back to 'direct'",
  },
  {
    file: 'cluster/cluster-node.ts',
    line: ': new Error(message)',
    reason: "the cause inside a ClusterPlacementError: a remote node's error that came without a code, as it came",
  },
  {
    file: 'cluster/remote-frames.ts',
    line: "new Error(parsed.message ?? '')",
    reason: "a remote node's error frame whose code this version does not know, rebuilt as the remote raised it",
  },
  {
    file: 'cluster/remote-kernel.ts',
    line: 'new Error(String(error))',
    reason: 'keeps a NATS client failure that is not an Error an Error; the known failures are typed just above',
  },
  {
    file: 'devices/checkpoint.ts',
    line: "new RangeError('the ring is not empty')",
    reason: 'internal invariant: the launcher preloads only the fresh input ring it has just made',
  },
  {
    file: 'devices/kernel-migrator.ts',
    line: 'fault injected at',
    count: 3,
    reason: "the tests' fault injection (options.failAt); the migrator rolls back and rejects with a MigrationError",
  },
];

const PLAIN_ERROR = /\bnew (?:Range|Type)?Error\(/;

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/**
 * Every line of `src/` that makes a plain error, outside comments; `text` is that line, trimmed, with the next two
 * when its arguments begin on the next line.
 */
function plainErrors(): { file: string; at: number; text: string }[] {
  const srcRoot = join(packageRoot(), 'src');
  return sources(srcRoot).flatMap((path) => {
    const file = relative(srcRoot, path).split(sep).join('/');
    const lines = readFileSync(path, 'utf8').split('\n');
    return lines
      .map((line, index) => ({ file, at: index + 1, line: line.trim() }))
      .filter(({ line }) => PLAIN_ERROR.test(line) && !/^(\*|\/\/|\/\*)/.test(line))
      .map(({ at, line }) => ({
        file,
        at,
        text: line.endsWith('(') ? [line, ...lines.slice(at, at + 2).map((next) => next.trim())].join(' ') : line,
      }));
  });
}

describe('typed errors: no plain Error, TypeError or RangeError reaches a user', () => {
  it('every plain error made in src/ is on the list of internal ones, each with its reason', () => {
    const found = plainErrors();
    assert.ok(found.length > 0, 'the scan reads src/');
    const unlisted = found.filter(
      ({ file, text }) => !ALLOWED.some((allowed) => allowed.file === file && text.includes(allowed.line)),
    );
    assert.deepEqual(
      unlisted.map(({ file, at, text }) => `${file}:${at}: ${text}`),
      [],
      'throw ArgumentTypeError / InvalidArgumentError (an argument) or a RingKernelError subclass with its RK_* code; ' +
        'list a plain one here only if no user can ever receive it, and say why',
    );
  });

  it('the list is exact: each entry matches the lines it names, as many as it says', () => {
    const found = plainErrors();
    for (const allowed of ALLOWED) {
      const matches = found.filter(({ file, text }) => file === allowed.file && text.includes(allowed.line));
      assert.equal(matches.length, allowed.count ?? 1, `${allowed.file}: '${allowed.line}' (${allowed.reason})`);
      assert.ok(allowed.reason.length > 20, `${allowed.file}: '${allowed.line}' needs its reason`);
    }
  });
});
