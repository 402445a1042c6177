import type { HealthReport } from './health-checker.js';

/** A probe's answer: the HTTP status and the JSON body. */
export interface ProbeAnswer {
  readonly statusCode: 200 | 503;
  readonly body: {
    readonly status: 'pass' | 'fail';
    readonly checks: readonly {
      readonly name: string;
      readonly kind: string;
      readonly status: string;
      readonly reason?: string;
    }[];
  };
}

/**
 * The Kubernetes probes, from one health report.
 * - `liveness` (`/healthz`): the liveness checks; 503 when one is Unhealthy (restart the process). Degraded is
 *   still alive.
 * - `readiness` (`/readyz`): every check; 503 when any is not Healthy (send no traffic until it is).
 */
export function probeAnswer(report: HealthReport, probe: 'liveness' | 'readiness'): ProbeAnswer {
  const checks = report.checks.filter((check) => probe === 'readiness' || check.kind === 'liveness');
  const failing =
    probe === 'liveness'
      ? checks.some((check) => check.status === 'Unhealthy')
      : checks.some((check) => check.status !== 'Healthy');
  return {
    statusCode: failing ? 503 : 200,
    body: {
      status: failing ? 'fail' : 'pass',
      checks: checks.map(({ name, kind, status, reason }) => ({
        name,
        kind,
        status,
        ...(reason === undefined ? {} : { reason }),
      })),
    },
  };
}
