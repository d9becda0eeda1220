/** Small text formatters shared by the panel, the dialogs and the run views (no imports: easy to test). */

export function shortId(runId: string): string {
  return runId.slice(0, 8);
}

export function formatMetric(value: number | null | undefined): string {
  return typeof value === 'number' ? value.toFixed(4) : '—';
}

export function formatDelta(value: number | null | undefined): string {
  if (typeof value !== 'number') {
    return '—';
  }
  const text = Math.abs(value).toFixed(4);
  if (Number(text) === 0) {
    return `±${text}`;
  }
  return `${value > 0 ? '+' : '-'}${text}`;
}

/** A param value for display: `—` where that side has none. */
export function formatParam(value: string | null | undefined): string {
  return value === null || value === undefined ? '—' : value;
}

export function formatTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}`
  );
}

/** The commit's first 7 digits; `*` marks a build of a working tree with uncommitted changes. */
export function shortCommit(commit: string): string {
  if (!commit || commit === 'unknown') {
    return commit || '-';
  }
  const dirty = commit.endsWith('-dirty');
  return commit.slice(0, 7) + (dirty ? '*' : '');
}

/** The badge text of a gate verdict (`null`: no badge, the build has no gate result). */
export function verdictLabel(verdict: string | undefined): string | null {
  switch (verdict) {
    case 'promotable':
      return 'promotable';
    case 'not_promotable':
      return 'not promotable';
    case 'failed':
      return 'gate failed';
    default:
      return null;
  }
}

/** Rows that differ first, then the rest; each group keeps its (alphabetical) order. */
export function differingFirst<T extends { differs: boolean }>(rows: T[]): T[] {
  return [...rows.filter(r => r.differs), ...rows.filter(r => !r.differs)];
}

/** Metric names of several runs, alphabetical (nothing assumed about which metrics exist). */
export function metricNames(...sets: (Record<string, number> | undefined)[]): string[] {
  const names = new Set<string>();
  for (const set of sets) {
    Object.keys(set ?? {}).forEach(name => names.add(name));
  }
  return [...names].sort((a, b) => a.localeCompare(b));
}
