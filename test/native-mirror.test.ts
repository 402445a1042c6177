/**
 * The native DMA mirror on its own, under sanitizers: native/test/mirror_stress.c drives it with real threads
 * (producers, an echo "kernel", consumers; rings that wrap and fill), detaches rings mid-traffic and frees their
 * memory at once, and stops and destroys the mirror while it copies and while its wake-up callback runs. Built
 * with AddressSanitizer + UndefinedBehaviorSanitizer, and with ThreadSanitizer; any use after free, overflow, data
 * race or lost/corrupted frame fails the test. `npm run test:asan` also runs the JavaScript dma tests against an
 * ASan build of the library. Skips, with the reason, when there is no C compiler or sanitizer runtime.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'ringkernel-mirror-'));
const hasCompiler = spawnSync('cc', ['--version']).status === 0;

/** Compiles the stress harness with the given sanitizers; returns the binary, or why it could not be built. */
function build(sanitizers: string): { binary: string } | { skip: string } {
  const binary = join(work, `mirror_stress_${sanitizers.replace(/\W/g, '_')}`);
  const result = spawnSync(
    'cc',
    [
      '-std=c11',
      '-O1',
      '-g',
      '-fno-omit-frame-pointer',
      `-fsanitize=${sanitizers}`,
      '-fno-sanitize-recover=all',
      '-pthread',
      '-Wall',
      '-Wextra',
      '-Werror',
      '-I',
      join(root, 'native/include'),
      join(root, 'native/src/mirror.c'),
      join(root, 'native/test/mirror_stress.c'),
      '-o',
      binary,
    ],
    { encoding: 'utf8' },
  );
  if (result.status === 0) return { binary };
  // A missing sanitizer runtime is the machine's limit, not a defect; any other compile error is a failure.
  if (/cannot find -l[at]san|libtsan|libasan/.test(result.stderr)) return { skip: `no ${sanitizers} runtime` };
  assert.fail(`the harness did not compile with -fsanitize=${sanitizers}:\n${result.stderr}`);
}

describe('the native mirror under sanitizers', { skip: hasCompiler ? false : 'skipped: no C compiler (cc)' }, () => {
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const sanitizers of ['address,undefined', 'thread']) {
    it(`copies every frame intact and never touches freed memory (-fsanitize=${sanitizers})`, (t) => {
      const built = build(sanitizers);
      if ('skip' in built) {
        t.skip(`skipped: ${built.skip}`);
        return;
      }
      const run = spawnSync(built.binary, {
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1', TSAN_OPTIONS: 'halt_on_error=1' },
      });
      assert.equal(run.signal, null, `killed: ${run.stderr}`);
      assert.equal(run.status, 0, run.stderr);
      assert.doesNotMatch(run.stderr, /ERROR: (Address|Thread)Sanitizer|runtime error:/);
      const match = /mirror stress ok: (\d+) frames checked \((\d+) before detach\), (\d+) passes/.exec(run.stdout);
      assert.ok(match !== null, run.stdout);
      assert.ok(Number(match[1]) >= 20_000, 'frames went through the mirror after the detaches');
      assert.ok(Number(match[2]) > 0, 'the detached rings carried frames before they went');
    });
  }
});
