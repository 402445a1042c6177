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

describe('npm start demo', () => {
  it('streams readings through two kernels and prints a summary with every kernel healthy', () => {
    const script = fileURLToPath(new URL('../examples/demo.js', import.meta.url));
    const out = execFileSync(process.execPath, [script], {
      encoding: 'utf8',
      env: { ...process.env, DEMO_SECONDS: '2' },
      timeout: 60_000,
    });
    assert.match(out, /readings sent +[\d,]+ in [\d.]+ s \([\d,]+ msg\/s\)/);
    assert.match(out, /call latency +p50 [\d.]+ µs +p99 [\d.]+ µs/);
    assert.match(out, /demo\.stats +Active +received ([\d,]+), processed \1, failed 0, dropped 0/);
    assert.match(out, /demo\.alerts +Active +received ([\d,]+), processed \1, failed 0, dropped 0/);
    assert.match(out, /shutdown +2 terminated, 0 failed, 0 dead letters/);
    const windows = Number(/windows of 64 +([\d,]+)/.exec(out)?.[1]?.replaceAll(',', ''));
    const readings = Number(/readings sent +([\d,]+)/.exec(out)?.[1]?.replaceAll(',', ''));
    assert.equal(
      windows,
      Math.floor(readings / 16 / 64) * 16,
      'every full window of every sensor became an alert verdict',
    );
  });
});
