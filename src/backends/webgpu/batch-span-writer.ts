import { SpanRecordKind } from '../../telemetry/span-record.js';
import { SpanRecorder } from '../../telemetry/span-recorder.js';
import { TelemetryClock } from '../../telemetry/telemetry-clock.js';
import { telemetryRingEpoch } from '../../telemetry/telemetry-ring.js';
import { fillRandomId } from '../../telemetry/trace-ids.js';
import type { Envelope } from '../../wire/envelope.js';
import type { Slot } from './batch-slot.js';
import { MESSAGE_DESCRIPTOR_WORDS } from './wgsl-program.js';

/**
 * The processing spans of a WebGPU kernel's sampled messages, written into its telemetry ring: one per message,
 * from its batch's submit to its readback (the GPU runs a batch as one), parented by the span its frame carried,
 * with a fresh span id its outputs carry as their parent. Unsampled messages never reach here.
 */
export class BatchSpanWriter {
  readonly #recorder: SpanRecorder;
  readonly #clock: TelemetryClock;
  readonly #kernel: number;
  readonly #spanId = new Uint8Array(8);
  readonly #spanView = new DataView(this.#spanId.buffer);
  #endNs = 0;

  constructor(telemetry: { readonly ring: SharedArrayBuffer; readonly kernel: number }) {
    this.#recorder = new SpanRecorder(telemetry.ring);
    this.#clock = new TelemetryClock(telemetryRingEpoch(telemetry.ring));
    this.#kernel = telemetry.kernel;
  }

  /** The telemetry clock, ns. */
  nowNs(): number {
    return this.#clock.nowNs();
  }

  /**
   * Starts message `i`'s span and points the output envelopes at it. Stamped before the outputs are written, so an
   * answer the host sees at once never seems to come back before the processing ended.
   */
  begin(slot: Slot, i: number, ...envelopes: Envelope[]): void {
    this.#endNs = this.#clock.nowNs();
    fillRandomId(this.#spanView, 0, 8);
    const traceId = slot.traceContext.subarray(i * 24, i * 24 + 16);
    for (const envelope of envelopes) {
      envelope.traceId = traceId;
      envelope.spanId = this.#spanId;
      envelope.traceFlags = 1;
    }
  }

  /** Records message `i`'s span with `errorCode` (0 = ok) and clears the envelopes' trace context. */
  end(slot: Slot, i: number, errorCode: number, ...envelopes: Envelope[]): void {
    for (const envelope of envelopes) {
      envelope.traceId = undefined;
      envelope.spanId = undefined;
      envelope.traceFlags = 0;
    }
    const d = i * MESSAGE_DESCRIPTOR_WORDS;
    this.#recorder.record(
      slot.traceContext,
      i * 24,
      this.#spanId,
      0,
      slot.traceContext,
      i * 24 + 16,
      slot.startNs,
      this.#endNs,
      slot.messageIds[i] as number,
      this.#kernel,
      slot.descriptors[d] as number,
      slot.descriptors[d + 1] as number,
      errorCode,
      SpanRecordKind.PROCESS,
      0,
      slot.descriptors[d + 6] as number,
    );
  }
}
