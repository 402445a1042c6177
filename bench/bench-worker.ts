import { parentPort, workerData } from 'node:worker_threads';
import { RingBuffer } from 'ringbuf.js';
import { FrameConsumer, FrameProducer, type FrameView } from '../src/internal.js';
import { type BenchJob, BenchMessages, wallMs } from './messages.js';

/**
 * The receiving side of every benchmark case. Sinks count messages and report the wall-clock times at which the
 * first fifth (the warm-up, excluded from the figure) and the last one were handled; echoes send each message
 * straight back.
 */
const job = workerData as BenchJob;
let warmAt = 0;
const warmCount = 'count' in job ? Math.floor(job.count / 5) : 0;
const port = parentPort;
if (port === null) throw new Error('bench-worker must run in a worker thread');

switch (job.kind) {
  case 'postMessage-sink': {
    let received = 0;
    let checksum = 0;
    port.on('message', (message: Uint8Array) => {
      checksum += message[0] as number;
      if (++received === warmCount) warmAt = wallMs();
      if (received === job.count) port.postMessage({ warmAt, doneAt: wallMs(), checksum });
    });
    break;
  }
  case 'postMessage-echo':
    port.on('message', (message: Uint8Array) => port.postMessage(message));
    break;
  case 'ringbuf-sink': {
    // The physical limit: raw ringbuf.js, one pop per message, busy-spinning when empty.
    const ring = new RingBuffer(job.ring, Uint8Array);
    const message = new Uint8Array(job.size);
    let checksum = 0;
    port.postMessage('ready');
    for (let received = 0; received < job.count; ) {
      if (ring.availableRead() >= job.size) {
        ring.pop(message);
        checksum += message[0] as number;
        if (++received === warmCount) warmAt = wallMs();
      }
    }
    port.postMessage({ warmAt, doneAt: wallMs(), checksum });
    break;
  }
  case 'ringbuf-echo': {
    const ping = new RingBuffer(job.ping, Uint8Array);
    const pong = new RingBuffer(job.pong, Uint8Array);
    const message = new Uint8Array(job.size);
    port.postMessage('ready');
    for (let echoed = 0; echoed < job.count; ) {
      if (ping.availableRead() >= job.size) {
        ping.pop(message);
        while (pong.availableWrite() < job.size);
        pong.push(message);
        echoed++;
      }
    }
    break;
  }
  case 'frames-sink': {
    const schema = BenchMessages[job.size];
    const consumer = new FrameConsumer(job.memory);
    let received = 0;
    let checksum = 0;
    const onFrame = (frame: FrameView): void => {
      const sample = frame.decode(schema);
      checksum += sample.seq + (sample.data[0] as number);
      if (++received === warmCount) warmAt = wallMs();
    };
    port.postMessage('ready');
    while (received < job.count) {
      if (consumer.drain(onFrame) === 0) consumer.waitForData();
    }
    port.postMessage({ warmAt, doneAt: wallMs(), checksum });
    break;
  }
  case 'frames-echo': {
    const schema = BenchMessages[job.size];
    const consumer = new FrameConsumer(job.ping);
    const producer = new FrameProducer(job.pong);
    let echoed = 0;
    const onFrame = (frame: FrameView): void => {
      // Decode, then send the same payload back as a response.
      const sample = frame.decode(schema);
      producer.write(schema, sample, { correlationId: frame.messageId });
      echoed++;
    };
    port.postMessage('ready');
    while (echoed < job.count) {
      if (consumer.drain(onFrame) === 0) consumer.waitForData();
    }
    break;
  }
}
