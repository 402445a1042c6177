import { InvalidArgumentError } from '../../errors/argument-errors.js';
import type { BatchEngineOptions } from './batch-engine-contract.js';

/**
 * Checks a batch engine's sizes up front, naming the option and its valid range.
 *
 * @throws {InvalidArgumentError} on `maxBatch`, `inFlight` or `outputBytes` out of range.
 */
export function checkBatchEngineOptions(options: BatchEngineOptions): void {
  const maxBatch = options.maxBatch ?? 4096;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 65_536) {
    throw new InvalidArgumentError('maxBatch', `maxBatch must be an integer between 1 and 65536, got ${maxBatch}`);
  }
  const inFlight = options.inFlight ?? 4;
  if (!Number.isInteger(inFlight) || inFlight < 1 || inFlight > 64) {
    throw new InvalidArgumentError('inFlight', `inFlight must be an integer between 1 and 64, got ${inFlight}`);
  }
  const outputBytes = options.outputBytes ?? Math.min(256, options.output.maxPayloadSize);
  if (!Number.isInteger(outputBytes) || outputBytes < 0 || outputBytes > options.output.maxPayloadSize) {
    throw new InvalidArgumentError(
      'outputBytes',
      `outputBytes must be an integer between 0 and ${options.output.maxPayloadSize} (the output ring's largest payload), got ${outputBytes}`,
    );
  }
}
