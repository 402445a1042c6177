/**
 * The benchmark's picture: ringkernel against the alternatives a Node.js developer has (postMessage, Piscina, a
 * raw ringbuf.js ring), as horizontal bars, written as SVG beside the JSON. One panel per question — how many
 * one-way 64-byte messages a second, how long a round trip takes — each bar labelled with its figure and its ratio
 * to postMessage, the baseline everyone has. Plain SVG text with no script or font of its own, so it renders the
 * same in a browser, on GitHub and in an editor's preview.
 */
import type { CaseResult } from './case-result.js';

/** What the chart's caption says about the run. */
export interface ChartRun {
  readonly date: string;
  readonly cpu: string;
  readonly cores: number;
  readonly quick: boolean;
}

/** One bar: the case it reads and what it is called in the picture. */
interface BarSpec {
  readonly name: string;
  readonly label: string;
}

/** One question: the figure its bars show, and the case the ratios are taken against. */
interface PanelSpec {
  readonly title: string;
  readonly figure: 'msgsPerSec' | 'p50us';
  readonly unit: string;
  readonly higherIsBetter: boolean;
  readonly baseline: string;
  readonly bars: readonly BarSpec[];
}

const PANELS: readonly PanelSpec[] = [
  {
    title: 'One-way 64-byte messages to another thread (msg/s, higher is better)',
    figure: 'msgsPerSec',
    unit: 'msg/s',
    higherIsBetter: true,
    baseline: 'postMessage.oneway.64',
    bars: [
      { name: 'kernel.send.64', label: 'ringkernel: kernel.trySend' },
      { name: 'dma.oneway.64', label: 'ringkernel over the native mirror (dma)' },
      { name: 'frames.oneway.64', label: 'ringkernel frames on a bare ring' },
      { name: 'ringbuf.oneway.64', label: 'ringbuf.js ring, raw' },
      { name: 'postMessage.oneway.64', label: 'worker postMessage' },
      { name: 'piscina.run.64', label: 'Piscina run()' },
    ],
  },
  {
    title: 'Round trip of a 64-byte request (p50 µs, lower is better)',
    figure: 'p50us',
    unit: 'µs',
    higherIsBetter: false,
    baseline: 'postMessage.rtt.64',
    bars: [
      { name: 'kernel.call.64', label: 'ringkernel: kernel.call' },
      { name: 'dma.call.64', label: 'ringkernel over the native mirror (dma)' },
      { name: 'postMessage.rtt.64', label: 'worker postMessage, there and back' },
      { name: 'piscina.run.64', label: 'Piscina run()' },
    ],
  },
];

const WIDTH = 780;
const LABEL_WIDTH = 270;
const BAR_AREA = 270;
const BAR_HEIGHT = 18;
const BAR_GAP = 6;
const PANEL_GAP = 28;
const TITLE_HEIGHT = 22;

/** `&`, `<`, `>` and quotes as SVG text needs them. */
function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A figure as people read it: 4.73 M, 263 k, 2.10 µs. */
function formatFigure(value: number, unit: string): string {
  if (unit === 'µs') return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} µs`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M ${unit}`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(0)} k ${unit}`;
  return `${value.toFixed(0)} ${unit}`;
}

/**
 * Renders the chart of a run's cases. Bars whose case did not run (no native mirror, no Piscina figure) are left
 * out; a panel whose baseline did not run is left out whole.
 *
 * @example
 * writeFileSync('bench-results/full.svg', renderBenchChart(cases, { date, cpu, cores, quick: false }));
 */
export function renderBenchChart(cases: readonly CaseResult[], run: ChartRun): string {
  const byName = new Map(cases.map((c) => [c.name, c]));
  const parts: string[] = [];
  let y = 34;
  for (const panel of PANELS) {
    const baseline = byName.get(panel.baseline);
    const bars = panel.bars
      .map((bar) => ({ bar, value: byName.get(bar.name)?.[panel.figure] }))
      .filter((b): b is { bar: BarSpec; value: number } => typeof b.value === 'number' && b.value > 0);
    const base = baseline?.[panel.figure];
    if (base === undefined || !(base > 0) || bars.length === 0) continue;
    const max = Math.max(...bars.map((b) => b.value));
    parts.push(`<text x="12" y="${y + 14}" class="title">${escapeXml(panel.title)}</text>`);
    y += TITLE_HEIGHT + 4;
    for (const { bar, value } of bars) {
      const width = Math.max(1, Math.round((value / max) * BAR_AREA));
      const ratio = panel.higherIsBetter ? value / base : base / value;
      const ours = bar.name.startsWith('kernel.') || bar.name.startsWith('dma.') || bar.name.startsWith('frames.');
      const figure = `${formatFigure(value, panel.unit)} · ${ratio.toFixed(ratio < 10 ? 2 : 1)}× postMessage`;
      parts.push(
        `<g data-case="${escapeXml(bar.name)}" data-value="${value}">` +
          `<text x="${LABEL_WIDTH - 8}" y="${y + 13}" class="label" text-anchor="end">${escapeXml(bar.label)}</text>` +
          `<rect x="${LABEL_WIDTH}" y="${y}" width="${width}" height="${BAR_HEIGHT}" class="${ours ? 'ours' : 'other'}"/>` +
          `<text x="${LABEL_WIDTH + width + 6}" y="${y + 13}" class="figure">${escapeXml(figure)}</text>` +
          '</g>',
      );
      y += BAR_HEIGHT + BAR_GAP;
    }
    y += PANEL_GAP - BAR_GAP;
  }
  const caption = `${run.quick ? 'npm run bench -- --quick' : 'npm run bench'} · ${run.date.slice(0, 10)} · ${run.cpu}, ${run.cores} cores · ratios within one run`;
  parts.push(`<text x="12" y="${y}" class="caption">${escapeXml(caption)}</text>`);
  const height = y + 14;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img">`,
    '<title>ringkernel against postMessage, Piscina and a raw ring</title>',
    '<style>text{font:12px sans-serif;fill:#222}.title{font-weight:bold;font-size:13px}.caption{fill:#666;font-size:11px}' +
      '.ours{fill:#2f6fb0}.other{fill:#a8a8a8}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="20" class="title">ringkernel vs postMessage vs Piscina vs a raw ring</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
