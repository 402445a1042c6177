import { ErrorCode } from './codes.js';
import { RingKernelError } from './ringkernel-error.js';

/** A value that does not fit its message field: out of range, wrong type or wrong length. Nothing is truncated. */
export class ValueOutOfRangeError extends RingKernelError {
  /** `Message.field` that rejected the value. */
  readonly field: string;

  constructor(field: string, detail: string) {
    super(ErrorCode.ValueOutOfRange, `${field}: ${detail}`);
    this.field = field;
  }
}

/** A string whose UTF-8 encoding is longer than its field's capacity. Strings are never silently truncated. */
export class StringTooLongError extends RingKernelError {
  /** `Message.field` that rejected the string. */
  readonly field: string;
  /** The field's capacity in UTF-8 bytes. */
  readonly capacity: number;

  constructor(field: string, capacity: number) {
    super(ErrorCode.StringTooLong, `${field}: UTF-8 encoding exceeds the field's capacity of ${capacity} bytes`);
    this.field = field;
    this.capacity = capacity;
  }
}

/** A remote hybrid-logical-clock timestamp that is ahead of the local clock by more than the allowed skew. */
export class ClockSkewError extends RingKernelError {
  /** How far ahead the remote clock was, in microseconds. */
  readonly skewUs: number;
  /** The largest skew the clock accepts, in microseconds. */
  readonly maxSkewUs: number;

  constructor(skewUs: number, maxSkewUs: number) {
    super(ErrorCode.ClockSkew, `remote clock is ${skewUs} µs ahead; the maximum allowed skew is ${maxSkewUs} µs`);
    this.skewUs = skewUs;
    this.maxSkewUs = maxSkewUs;
  }
}

/** A wait that ran past its deadline. */
export class TimeoutError extends RingKernelError {
  constructor(what: string, timeoutMs: number) {
    super(ErrorCode.Timeout, `${what} timed out after ${timeoutMs} ms`);
  }
}

/**
 * A wait cancelled through its `AbortSignal` (before it began or while it waited); `cause` is the signal's reason.
 */
export class AbortedError extends RingKernelError {
  constructor(what: string, reason: unknown) {
    super(ErrorCode.Aborted, `${what} was aborted`, { cause: reason });
  }
}

/** A frame read as a message type it does not carry. */
export class MessageTypeMismatchError extends RingKernelError {
  constructor(expected: string, detail: string) {
    super(ErrorCode.MessageTypeMismatch, `frame is not a ${expected}: ${detail}`);
  }
}

/** An envelope field that does not fit the frame header. */
export class InvalidEnvelopeError extends RingKernelError {
  /** The envelope field that was rejected. */
  readonly field: string;

  constructor(field: string, detail: string) {
    super(ErrorCode.InvalidEnvelope, `envelope.${field}: ${detail}`);
    this.field = field;
  }
}

/** A message definition (`defineMessage`) is malformed, or clashes with one defined before; the message says how. */
export class MessageSchemaError extends RingKernelError {
  /** The message's name, as given. */
  readonly messageName: string;

  constructor(messageName: string, detail: string) {
    super(ErrorCode.InvalidMessageSchema, `message ${JSON.stringify(messageName)}: ${detail}`);
    this.messageName = messageName;
  }
}
