/**
 * `node dist/bench/cuda-only.js [--quick] [--json FILE]`: only the CUDA cases (bench/cuda-cases.ts), for a GPU
 * machine's short lease (scripts/device-check.sh). The full `npm run bench` runs them too, beside every other case.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { percentiles, round } from './case-result.js';
import { cudaCases } from './cuda-cases.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const jsonIndex = args.indexOf('--json');
const jsonFile = jsonIndex >= 0 ? args[jsonIndex + 1] : undefined;

const cases = await cudaCases(quick ? 100_000 : 1_000_000, quick ? 1_000 : 10_000, percentiles);
for (const c of cases) {
  console.log(
    c.value === undefined
      ? `${c.name.padEnd(30)} ${String(c.msgsPerSec).padStart(10)} msg/s   p50 ${c.p50us.toFixed(2).padStart(8)} µs   p99 ${c.p99us.toFixed(2).padStart(8)} µs`
      : `${c.name.padEnd(30)} ${String(c.value).padStart(10)} ${c.unit}`,
  );
}
const prefix = cases[0]?.name.split('.')[0];
const by = (name: string) => cases.find((c) => c.name === `${prefix}.${name}`);
const ratios =
  prefix === undefined
    ? {}
    : {
        'launchPerMessage.64 p50 / call.64 p50 (goal ≥ 10)': round(
          (by('launchPerMessage.64')?.p50us ?? 0) / (by('call.64')?.p50us ?? 1),
        ),
        'sustained.64 msg/s (goal ≥ 1 M)': by('sustained.64')?.msgsPerSec ?? 0,
        'launchPerMessage.64 p50 / dma.call.64 p50': round(
          (by('launchPerMessage.64')?.p50us ?? 0) / (by('dma.call.64')?.p50us ?? 1),
        ),
      };
for (const [name, value] of Object.entries(ratios)) console.log(`  ${name.padEnd(52)} ${value}`);
if (jsonFile !== undefined) {
  mkdirSync(dirname(jsonFile), { recursive: true });
  writeFileSync(jsonFile, `${JSON.stringify({ cases, ratios, date: new Date().toISOString(), quick }, null, 2)}\n`);
}
