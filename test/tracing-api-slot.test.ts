/**
 * The OpenTelemetry API's global slot, as a traced runtime leaves it: defined (so that V8 caches its read on every
 * send) but empty, so the API still sees nothing registered and the app's registrations work as before. Run in a
 * child process of its own: the slot is process-wide, and other tests in this process register globals.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const CHILD = fileURLToPath(new URL('./fixtures/api-slot-child.js', import.meta.url));

describe('tracing and the OpenTelemetry API global slot', () => {
  it('a traced runtime defines the slot empty; a context manager registered afterwards is seen by sends', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [CHILD], { timeout: 60_000 });
    const line = stdout.split('\n').find((text) => text.startsWith('{"slotBefore"'));
    assert.ok(line !== undefined, stdout);
    const report = JSON.parse(line) as Record<string, unknown>;
    assert.deepEqual(report, {
      slotBefore: false,
      slotAfterBuild: true,
      slotValue: 'undefined',
      registered: true,
      tracedChildOfActiveSpan: true,
    });
  });
});
