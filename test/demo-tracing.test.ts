/**
 * The demo (`npm start`) honours the OTEL_* variables: it sends its traces to the collector they name, and with no
 * collector listening it runs normally and says once that traces could not be delivered.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { OtlpReceiver } from './support/otlp-receiver.js';

const run = promisify(execFile);
const demo = fileURLToPath(new URL('../examples/demo.js', import.meta.url));

describe('npm start demo, traced', () => {
  it('sends its spans to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT with OTEL_SERVICE_NAME and the sampler asked for', async () => {
    const receiver = await OtlpReceiver.start();
    try {
      const { stdout } = await run(process.execPath, [demo], {
        encoding: 'utf8',
        timeout: 60_000,
        env: {
          ...process.env,
          DEMO_SECONDS: '2',
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url,
          OTEL_SERVICE_NAME: 'demo-under-test',
          OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
          OTEL_TRACES_SAMPLER_ARG: '0.01',
        },
      });
      assert.match(
        stdout,
        new RegExp(`tracing: parentbased_traceidratio 0.01 → ${receiver.url.replace(/[/.:]/g, '.')}`),
      );
      const exported = Number(
        /traces +([\d,]+) spans exported, 0 not delivered/.exec(stdout)?.[1]?.replaceAll(',', ''),
      );
      assert.ok(exported > 0, stdout);
      assert.equal(receiver.spans.length, exported, 'every span the demo exported arrived');
      assert.ok(receiver.spans.every((s) => s.resource['service.name'] === 'demo-under-test'));
      assert.ok(receiver.named('process demo.stats').length > 0);
      assert.ok(receiver.named('launch demo.stats').length === 1);
    } finally {
      await receiver.close();
    }
  });

  it('with no collector listening, runs normally and says once that traces could not be delivered', async () => {
    const down = await OtlpReceiver.start();
    const url = down.url;
    await down.close();
    const { stdout, stderr } = await run(process.execPath, [demo], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, DEMO_SECONDS: '2', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url, OTEL_TRACES_SAMPLER: '' },
    });
    // Every fault the demo injects is one restart and one dead letter; nothing else fails.
    const faults = Number(/supervision +(\d+) garbage readings/.exec(stdout)?.[1]);
    assert.match(stdout, new RegExp(`shutdown +2 terminated, 0 failed, ${faults} restarts, ${faults} dead letters`));
    assert.match(stdout, /traces +0 spans exported, [1-9][\d,]* not delivered/);
    assert.equal(stderr.match(/traces could not be delivered/g)?.length, 1, stderr);
  });
});
