/**
 * The exporter thread compiles its export path before the runtime takes work: it runs that path — drain, encode,
 * the OTLP HTTP transport — over synthetic records sent to a receiver of its own on the loopback interface, so its
 * first real exports do not run cold (several times the steady cost, much of it on V8's compiler and GC threads,
 * which the thread's low priority does not cover) beside the data path. The collector never sees those records.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExporterThread } from '../src/telemetry/exporter-thread.js';
import { warmUpExport } from '../src/telemetry/exporter-warm-up.js';
import { OtlpReceiver } from './support/otlp-receiver.js';

describe('the exporter thread warms up before it is ready', () => {
  it('runs three full batches through its HTTP transport to a loopback receiver, none to the collector', async () => {
    const collector = await OtlpReceiver.start();
    const thread = new ExporterThread(
      {
        exporter: 'otlp',
        endpoint: collector.url,
        serviceName: 'warm-up-test',
        exportIntervalMs: 100,
        maxExportBatchSize: 4096,
        exportTimeoutMs: undefined,
        maxCpuShare: 0.1,
      },
      (message) => assert.fail(`no export may fail: ${message}`),
    );
    try {
      assert.equal(thread.warmedUp, 0, 'not before it is ready');
      await thread.ready;
      // Exported means delivered: the loopback receiver answered every request of the warm-up.
      assert.equal(thread.warmedUp, 3 * 4096);
      await thread.flush();
      assert.equal(collector.requests, 0, 'the warm-up sends nothing to the collector');
      assert.equal(thread.stats().spansExported, 0, 'nor counts its records as exported spans');
    } finally {
      await thread.shutdown(1000);
      await collector.close();
    }
  });

  it('with no transport given, discards the requests; it leaves no timer or socket behind', async () => {
    assert.equal(await warmUpExport(5000), 5000);
    assert.equal(await warmUpExport(0), 0);
  });
});
