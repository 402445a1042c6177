/**
 * A local OTLP/HTTP sink for the tracing benchmark, in a worker thread of its own so that it does not share the
 * sending thread: accepts `POST /v1/traces`, reads the whole protobuf body, answers 200 with an empty
 * ExportTraceServiceResponse, and counts requests and bytes. It does not decode (the tests' receiver does that).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort } from 'node:worker_threads';

const port = parentPort;
if (port === null) throw new Error('otlp-sink-worker must run in a worker thread');
let requests = 0;
let bytes = 0;
const server = createServer((request, response) => {
  request.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  request.on('end', () => {
    requests++;
    response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  });
});
server.listen(0, '127.0.0.1', () => {
  port.postMessage({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces` });
});
port.on('message', () => port.postMessage({ requests, bytes }));
