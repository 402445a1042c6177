/**
 * Prometheus's own linter for the metrics tests: `promtool check metrics` reads exposition text on stdin and exits
 * non-zero on what Prometheus would reject or warn about. Found as RINGKERNEL_PROMTOOL, else the copy
 * scripts/fetch-promtool.sh unpacks into .promtool/, else on PATH.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const fetched = fileURLToPath(new URL('../../../.promtool/promtool', import.meta.url));

/** The promtool to run, or why there is none (the tests skip with that reason). */
export function findPromtool(): { readonly path: string } | { readonly skip: string } {
  const candidates = [process.env.RINGKERNEL_PROMTOOL, existsSync(fetched) ? fetched : undefined, 'promtool'];
  for (const candidate of candidates) {
    if (candidate === undefined || candidate === '') continue;
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (probe.status === 0) return { path: candidate };
  }
  return {
    skip: 'promtool not found (RINGKERNEL_PROMTOOL, .promtool/promtool from scripts/fetch-promtool.sh, or PATH): run scripts/fetch-promtool.sh (needs Debian apt and its archive)',
  };
}

/** Runs `promtool check metrics` on `text`: its exit code and what it printed. */
export function promtoolCheckMetrics(promtool: string, text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

/**
 * The histogram families in `text` that have samples yet lack one of `_bucket`, `_sum`, `_count` (with a `+Inf`
 * bucket). A family with no series yet (nothing observed, e.g. no GC so far) is complete.
 */
export function incompleteHistograms(text: string): string[] {
  const histograms = [...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1] as string);
  return histograms.filter((name) => {
    const has = (suffix: string): boolean => new RegExp(`^${name}${suffix}[{ ]`, 'm').test(text);
    if (!has('_bucket') && !has('_sum') && !has('_count')) return false;
    return !(has('_sum') && has('_count') && new RegExp(`^${name}_bucket\\{[^}]*le="\\+Inf"`, 'm').test(text));
  });
}
