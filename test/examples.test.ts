import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

describe('examples', () => {
  it('frames-between-workers runs, delivers everything in order and exits 0', () => {
    const script = fileURLToPath(new URL('../examples/frames-between-workers.js', import.meta.url));
    const out = execFileSync(process.execPath, [script], {
      encoding: 'utf8',
      env: { ...process.env, EXAMPLE_READINGS: '200000' },
      timeout: 60_000,
    });
    assert.match(out, /200,000 readings in [\d.]+ s/);
    assert.match(out, /out of order: 0, malformed: 0/);
    const mean = Number(/mean (-?[\d.]+)/.exec(out)?.[1]);
    assert.ok(mean > 15 && mean < 25, `mean ${mean}`);
  });
});
