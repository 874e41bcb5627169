/** Prometheus registry and the skeleton's own metrics (role modules register theirs on the same registry). */
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

export interface HttpMetrics {
  requests: Counter<'method' | 'route' | 'status'>;
  duration: Histogram<'method' | 'route'>;
}

export function createRegistry(opts: { defaultMetrics?: boolean } = {}): Registry {
  const r = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: r, prefix: 'llmtor_' });
  return r;
}

/** Labels use the matched route pattern, never the raw path (unbounded cardinality, and it may carry ids). */
export function httpMetrics(r: Registry): HttpMetrics {
  return {
    requests: new Counter({ name: 'llmtor_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [r] }),
    duration: new Histogram({
      name: 'llmtor_http_request_duration_seconds',
      help: 'HTTP request duration by route',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    }),
  };
}

/** Returns the metric registered under `name`, or creates it (modules may be built twice in one registry in tests). */
export function counter<L extends string>(r: Registry, name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
  return (r.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter<L>({ name, help, labelNames: [...labelNames], registers: [r] });
}
