/**
 * Prometheus metrics of one host (GET /metrics). Counters and histograms are
 * this process's; `konnector_jobs` (jobs by state) is read from CouchDB at
 * scrape time, so it is the same on every host sharing the database.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobReport } from '../sandbox/job.ts';

const MiB = 1024 * 1024;

export class ServeMetrics {
  readonly registry = new Registry();

  readonly finished = new Counter({
    name: 'konnector_jobs_finished_total',
    help: 'Jobs this host ended, by konnector, final state and error code ("" when done)',
    labelNames: ['konnector', 'state', 'error'] as const,
    registers: [this.registry],
  });

  readonly retried = new Counter({
    name: 'konnector_jobs_retried_total',
    help: 'Attempts that failed and were queued again after a back-off',
    labelNames: ['konnector', 'error'] as const,
    registers: [this.registry],
  });

  readonly requeued = new Counter({
    name: 'konnector_jobs_requeued_total',
    help: 'Running jobs put back in the queue: their host died (lease expired) or drained past its grace period',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly staleMessages = new Counter({
    name: 'konnector_queue_stale_messages_total',
    help: 'Queue messages dropped because their job had already been claimed or had moved on',
    registers: [this.registry],
  });

  readonly running = new Gauge({
    name: 'konnector_jobs_running_here',
    help: 'Jobs running in this host',
    registers: [this.registry],
  });

  readonly duration = new Histogram({
    name: 'konnector_job_duration_seconds',
    help: 'Wall-clock time of one attempt in the sandbox',
    labelNames: ['konnector', 'state'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });

  readonly queueWait = new Histogram({
    name: 'konnector_job_queue_wait_seconds',
    help: 'From the moment a job may run (queued, or its back-off ended) to its claim by a host',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly memoryPeak = new Histogram({
    name: 'konnector_job_memory_peak_bytes',
    help: 'Peak linear memory of the konnector during one attempt',
    labelNames: ['konnector'] as const,
    buckets: [8, 16, 32, 64, 128, 256, 512].map((n) => n * MiB),
    registers: [this.registry],
  });

  readonly fuel = new Histogram({
    name: 'konnector_job_fuel_used',
    help: 'Fuel one attempt of a metered konnector spent (docs/fuel.md)',
    labelNames: ['konnector'] as const,
    buckets: [1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12],
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: 'konnector_job_http_requests_total',
    help: 'Outgoing HTTP requests konnectors sent',
    labelNames: ['konnector'] as const,
    registers: [this.registry],
  });

  readonly savedDocuments = new Counter({
    name: 'konnector_job_saved_documents_total',
    help: 'Documents konnectors saved, by doctype',
    labelNames: ['konnector', 'doctype'] as const,
    registers: [this.registry],
  });

  constructor(countByState: () => Promise<Record<string, number>>) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'konnector_jobs',
      help: 'Jobs by state, in the job store shared by every host',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        const counts = await countByState();
        for (const state of ['queued', 'running', 'done', 'errored']) this.set({ state }, counts[state] ?? 0);
      },
    });
  }

  /** One attempt's report. */
  observeAttempt(report: Pick<JobReport, 'slug' | 'state' | 'durationMs' | 'memoryPeakBytes' | 'fuelUsed' | 'requests' | 'saved'>): void {
    this.duration.observe({ konnector: report.slug, state: report.state }, report.durationMs / 1000);
    this.memoryPeak.observe({ konnector: report.slug }, report.memoryPeakBytes);
    if (report.fuelUsed !== null) this.fuel.observe({ konnector: report.slug }, report.fuelUsed);
    this.httpRequests.inc({ konnector: report.slug }, report.requests);
    for (const [doctype, count] of Object.entries(report.saved)) this.savedDocuments.inc({ konnector: report.slug, doctype }, count);
  }
}
