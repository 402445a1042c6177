/**
 * The benchmark's chart: bars drawn to scale from the run's own figures, ratios taken against postMessage within
 * the run, cases that did not run left out, text escaped. Rendered from a run's shape, not timed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CaseResult } from '../bench/case-result.js';
import { renderBenchChart } from '../bench/chart.js';

const RUN = { date: '2026-12-06T04:00:00.000Z', cpu: 'A <test> CPU & co', cores: 2, quick: true };

function result(name: string, msgsPerSec: number, p50us = 0): CaseResult {
  return { name, msgsPerSec, p50us, p99us: p50us * 4 };
}

/** Each bar of the SVG: its case, the value it carries, its drawn width and its figure text, in order. */
function barsOf(svg: string): { name: string; value: number; width: number; text: string }[] {
  return [...svg.matchAll(/<g data-case="([^"]+)" data-value="([^"]+)">(.*?)<\/g>/g)].map((m) => ({
    name: m[1] ?? '',
    value: Number(m[2]),
    width: Number(/<rect [^>]*width="(\d+)"/.exec(m[3] ?? '')?.[1]),
    text: /class="figure">([^<]*)</.exec(m[3] ?? '')?.[1] ?? '',
  }));
}

describe('the benchmark chart', () => {
  const cases = [
    result('postMessage.oneway.64', 250_000),
    result('postMessage.rtt.64', 12_000, 20),
    result('ringbuf.oneway.64', 1_000_000),
    result('frames.oneway.64', 2_000_000),
    result('piscina.run.64', 25_000, 40),
    result('kernel.send.64', 5_000_000),
    result('kernel.call.64', 100_000, 2.5),
  ];

  it('draws each panel to its own scale, with the ratio to postMessage from the same run', () => {
    const svg = renderBenchChart(cases, RUN);
    const bars = barsOf(svg);
    assert.deepEqual(
      bars.map((b) => b.name),
      [
        'kernel.send.64',
        'frames.oneway.64',
        'ringbuf.oneway.64',
        'postMessage.oneway.64',
        'piscina.run.64',
        'kernel.call.64',
        'postMessage.rtt.64',
        'piscina.run.64',
      ],
    );
    const oneWay = bars.slice(0, 5);
    const longest = oneWay[0]?.width ?? 0;
    for (const bar of oneWay) {
      assert.ok(Math.abs(bar.width - (bar.value / 5_000_000) * longest) <= 1, `${bar.name} drawn to scale`);
    }
    assert.equal(oneWay[0]?.text, '5.00 M msg/s · 20.0× postMessage');
    assert.equal(oneWay[3]?.text, '250 k msg/s · 1.00× postMessage');
    // Round trips: lower is better, so the ratio is postMessage's time over the bar's.
    const roundTrip = bars.slice(5);
    assert.deepEqual(
      roundTrip.map((b) => b.value),
      [2.5, 20, 40],
    );
    assert.equal(roundTrip[0]?.text, '2.50 µs · 8.00× postMessage');
    assert.equal(roundTrip[2]?.text, '40.0 µs · 0.50× postMessage');
    assert.ok((roundTrip[2]?.width ?? 0) > (roundTrip[0]?.width ?? 0), 'the slowest round trip is the longest bar');
  });

  it('leaves out what did not run, and a panel whose baseline did not run', () => {
    const withoutRtt = cases.filter((c) => c.name !== 'postMessage.rtt.64');
    const bars = barsOf(renderBenchChart(withoutRtt, RUN));
    assert.equal(
      bars.some((b) => b.name === 'kernel.call.64'),
      false,
    );
    assert.equal(
      bars.some((b) => b.name.startsWith('dma.')),
      false,
      'no native mirror in this run',
    );
    const withDma = barsOf(renderBenchChart([...cases, result('dma.oneway.64', 3_000_000)], RUN));
    assert.ok(withDma.some((b) => b.name === 'dma.oneway.64'));
  });

  it('is one well-formed SVG document whose text is escaped', () => {
    const svg = renderBenchChart(cases, RUN);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.equal(svg.trimEnd().endsWith('</svg>'), true);
    assert.match(svg, /A &#60;test&#62; CPU &#38; co, 2 cores/);
    assert.equal(svg.includes('<test>'), false);
    assert.equal((svg.match(/<g /g) ?? []).length, (svg.match(/<\/g>/g) ?? []).length);
    const height = Number(/height="(\d+)"/.exec(svg)?.[1]);
    const lastY = Math.max(...[...svg.matchAll(/ y="(\d+)"/g)].map((m) => Number(m[1])));
    assert.ok(lastY < height, 'everything drawn lies inside the picture');
  });
});
