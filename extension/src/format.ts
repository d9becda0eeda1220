/** Small text formatters shared by the panel and the promote dialog (no imports: easy to test). */

export function shortId(runId: string): string {
  return runId.slice(0, 8);
}

export function formatMetric(value: number | undefined): string {
  return typeof value === 'number' ? value.toFixed(4) : '—';
}
