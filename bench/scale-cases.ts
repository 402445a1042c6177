import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type CaseResult, round } from './case-result.js';

/** Runs one scale case in a child process (a fresh RSS baseline) and returns its figures. */
function runChild(mode: 'idle' | 'churn', count: number): Record<string, number> {
  const script = fileURLToPath(new URL('./scale-child.js', import.meta.url));
  const out = execFileSync(process.execPath, [script, mode, String(count)], { encoding: 'utf8', timeout: 600_000 });
  return JSON.parse(out.trim().split('\n').at(-1) as string) as Record<string, number>;
}

const figure = (name: string, value: number, unit: string): CaseResult => ({
  name,
  msgsPerSec: 0,
  p50us: 0,
  p99us: 0,
  value: round(value),
  unit,
});

/**
 * How many actors one process holds: `idle10k.*` — 10 000 launched, activated, called-once and idle kernels (64-byte
 * messages, default queue), the process's RSS and CPU; `launch.rate` — launches per second over those 10 000, and
 * `launch.cpuUs` the CPU time each took across the process's threads;
 * `churn.rssRatio` — RSS after 10 000 launch / call / terminate cycles with at most 200 alive, over RSS before;
 * `churn.rssSecondHalfRatio` — over RSS halfway through: a leak apart from the heaps growing to their working size.
 */
export function scaleCases(quick: boolean): CaseResult[] {
  const kernels = quick ? 2_000 : 10_000;
  const idle = runChild('idle', kernels);
  const churn = runChild('churn', kernels);
  const tag = quick ? '2k' : '10k';
  return [
    figure(`idle${tag}.rssMB`, idle.rssMB as number, 'MiB (goal < 1024 at 10k)'),
    figure(`idle${tag}.cpuPercent`, idle.cpuPercent as number, '% of one core (goal < 2)'),
    figure('launch.rate', idle.launchesPerSec as number, `launches/s over ${kernels} (goal ≥ 5000)`),
    figure('launch.cpuUs', idle.launchCpuUs as number, 'CPU µs per launch, all threads (2 cores: 400 = 5000/s)'),
    figure(
      'churn.rssRatio',
      churn.rssRatio as number,
      `RSS after / before ${kernels} cycles, ≤ 200 alive (goal ≤ 1.5)`,
    ),
    figure(
      'churn.rssSecondHalfRatio',
      churn.rssSecondHalfRatio as number,
      `RSS after / halfway through the ${kernels} cycles (1.0: the second half added nothing)`,
    ),
    figure('churn.rate', churn.cyclesPerSec as number, 'launch/call/terminate cycles per second'),
  ];
}
