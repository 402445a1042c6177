import { createRequire } from 'node:module';
import type { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';

type OtlpTraceExporterClass = typeof OTLPTraceExporter;

let loaded: OtlpTraceExporterClass | undefined;

/**
 * The OTLP (protobuf over HTTP) trace exporter class, loaded the first time an exporter is made rather than when
 * the library is imported: the package and its protobuf code cost every thread that imports ringkernel — each
 * kernel worker does, with its kernel's module — about 100 ms of CPU, and only a runtime that exports over OTLP
 * needs it.
 */
export function otlpTraceExporterClass(): OtlpTraceExporterClass {
  loaded ??= (
    createRequire(import.meta.url)('@opentelemetry/exporter-trace-otlp-proto') as {
      OTLPTraceExporter: OtlpTraceExporterClass;
    }
  ).OTLPTraceExporter;
  return loaded;
}
