/**
 * Trace context a caller sends with a forward, passed on to the target so that one trace spans
 * the hop through the registrar, as Envoy and Consul's proxies pass it: W3C Trace Context and
 * baggage, Zipkin's B3, and a request id. Nothing else of the caller's reaches the target.
 */
export const TRACE_HEADERS = [
  'traceparent',
  'tracestate',
  'baggage',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'x-request-id',
] as const;

/** The trace headers among a request's, or undefined when it has none (the usual case). */
export function traceHeaders(header: (name: string) => string | undefined): Record<string, string> | undefined {
  let found: Record<string, string> | undefined;
  for (const name of TRACE_HEADERS) {
    const value = header(name);
    if (value !== undefined) (found ??= {})[name] = value;
  }
  return found;
}
