/**
 * The mlnb REST API (served by the `mlnb.jupyter` server extension under
 * `<base_url>mlnb/api/`). `ServerConnection.makeRequest` adds the token and
 * the XSRF header; errors come back as `{"error": "one line message"}`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type Metrics = Record<string, number>;

/** The gate's verdict on a build (`-`: no gate result). */
export type Verdict = 'promotable' | 'not_promotable' | 'failed' | '-';

/** A param whose value differs from the champion build's (`null`: that side lacks it). */
export interface IParamDiff {
  key: string;
  value: string | null;
  champion: string | null;
}

/** A run's last promotion, from the audit trail (promotions.jsonl). */
export interface IPromotion {
  action: string;
  time: string;
  user: string;
  version: string | null;
  previous_version: string | null;
  note: string;
  reason: string;
  forced: boolean;
}

/** An image artifact of the build or one of its task runs (e.g. the evaluate task's roc.png). */
export interface IPlot {
  run_id: string;
  path: string;
  task: string;
  name: string;
}

/** One build run, as listed by `GET runs`. */
export interface IRun {
  run_id: string;
  run_name?: string;
  start_time: number;
  end_time?: number | null;
  status: 'ok' | 'failed' | string;
  git_commit: string;
  /** Older clients' view of the verdict: promotable -> passed, else failed. */
  gate: 'passed' | 'failed' | '-';
  verdict: Verdict;
  gate_reason: string;
  failed_task: string;
  /** The first failed task and where it failed: "cell 5 ('x = f()'): ValueError: ..." */
  failure?: string;
  failure_task?: string;
  /** The failure is still the task's current one: `POST debug` can open it. */
  debuggable?: boolean;
  metrics: Metrics;
  model_version: string | null;
  champion: boolean;
  previous: boolean;
  params_diff?: IParamDiff[];
  promotion?: IPromotion | null;
  /** The run in the MLflow UI, when a tracking server is configured. */
  mlflow_url?: string | null;
}

export interface IChampion {
  version: string;
  run_id: string | null;
  metrics?: Metrics;
  params?: Record<string, string>;
}

export interface IRunList {
  model_name: string;
  /** Changes when a build or a promotion changed the store (see `runChanges`). */
  token?: string;
  /** Every metric the listed runs report, sorted. */
  metric_keys?: string[];
  champion: IChampion | null;
  runs: IRun[];
}

/** One run in full: its params, plots and promotions. */
export interface IRunFull extends IRun {
  params: Record<string, string>;
  plots: IPlot[];
  promotions: IPromotion[];
}

/** One requirement of the promotion policy (params.yaml `promotion:`) for a build. */
export interface IRequirement {
  /** gate, gate_settings, clean_tree, dvc, nbval, approvals */
  name: string;
  held: boolean;
  /** Whether the policy requires it (a plain promote is refused while a required one is not held). */
  required: boolean;
  /** One line: why it is held or not. */
  detail: string;
}

export interface IRunDetail {
  run: IRunFull;
  champion: IChampion | null;
  deltas: Metrics;
  promotable: boolean;
  refusal: string | null;
  /** Every requirement of the promotion policy, in the policy's order (older servers: absent). */
  requirements?: IRequirement[];
}

/** A lineage record's audit entry: a promotion or rollback of the build or its version. */
export interface ILineageRecord {
  action: string;
  time: string;
  user: string;
  version?: string | null;
  note?: string;
  forced?: boolean;
  bypassed?: string[];
}

/** One link re-checked by `?verify=1`: held, broken (false) or not checkable here (null). */
export interface ILineageLink {
  name: string;
  held: boolean | null;
  detail: string;
}

/** `GET runs/<id>/lineage`: where a build (and its registered version) comes from. */
export interface ILineage {
  ref: string;
  model: {
    name: string;
    version: string;
    aliases: string[];
    artifact_sha256: string;
    source_run_id: string;
    registered_by: string;
  } | null;
  build: {
    run_id: string;
    status: string;
    start_time: number;
    verdict: string | null;
    gate_reason: string;
    metrics: Metrics;
  };
  git: { commit: string; clean: string | null; changed: string };
  params: Record<string, string>;
  gate_settings_changes: string;
  dvc: {
    recorded: string;
    note: string;
    /** stage -> deps and outs, path -> md5 */
    stages: Record<string, { deps: Record<string, string>; outs: Record<string, string> }>;
  };
  notebooks: { task: string; run_id: string; status: string; artifacts: string[] }[];
  promotions: ILineageRecord[];
  approvals: { user: string; time?: string; note?: string }[];
  /** Only with `verify`. */
  links?: ILineageLink[];
}

/** One row of a comparison: the value in run a and in run b. */
export interface ICompareRow<T> {
  key: string;
  a: T | null;
  b: T | null;
  differs: boolean;
  /** Metrics only: b - a when both have it. */
  delta?: number | null;
}

export interface IComparison {
  model_name: string;
  a: IRunFull;
  b: IRunFull;
  params: ICompareRow<string>[];
  metrics: ICompareRow<number>[];
  plots: { name: string; a: IPlot | null; b: IPlot | null }[];
}

export interface IChange {
  changed: boolean;
  message: string;
  version: string;
  previous_version: string | null;
}

/** An error answer of the API: `message` is the server's one-line `error`. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

async function send(endPoint: string, init: RequestInit): Promise<Response> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'mlnb', 'api', endPoint);
  try {
    return await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(`mlnb server unreachable: ${String(error)}`, 0);
  }
}

/**
 * Call `<base_url>mlnb/api/<endPoint>` and return its JSON body.
 * Throws an `ApiError` carrying the server's message on a non-2xx answer.
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {}
): Promise<T> {
  const response = await send(endPoint, init);
  const text = await response.text();
  let data: any = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const message =
      data && typeof data.error === 'string'
        ? data.error
        : `mlnb server: HTTP ${response.status} ${response.statusText}`.trim();
    throw new ApiError(message, response.status);
  }
  if (data === null) {
    throw new ApiError(`mlnb server: ${endPoint} did not answer JSON`, response.status);
  }
  return data as T;
}

function post<T>(endPoint: string, body: unknown): Promise<T> {
  return requestAPI<T>(endPoint, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' }
  });
}

export function listRuns(limit = 20): Promise<IRunList> {
  return requestAPI<IRunList>(`runs?limit=${limit}`);
}

export function getRun(runId: string): Promise<IRunDetail> {
  return requestAPI<IRunDetail>(`runs/${encodeURIComponent(runId)}`);
}

/** The lineage chain of build `runId`; `verify` re-hashes what the server can reach (slower). */
export function getLineage(runId: string, verify = false): Promise<ILineage> {
  return requestAPI<ILineage>(`runs/${encodeURIComponent(runId)}/lineage${verify ? '?verify=1' : ''}`);
}

/** A token that changes when a build or promotion changed the store: cheap enough to poll. */
export function runChanges(): Promise<{ token: string }> {
  return requestAPI<{ token: string }>('runs/changes');
}

export function compareRuns(a: string, b: string): Promise<IComparison> {
  const query = `a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
  return requestAPI<IComparison>(`compare?${query}`);
}

/** The API path of a run's image artifact (each path segment encoded). */
export function artifactPath(runId: string, path: string): string {
  const parts = path.split('/').map(encodeURIComponent).join('/');
  return `runs/${encodeURIComponent(runId)}/artifacts/${parts}`;
}

/** An image artifact of a run, as a Blob (the request carries the token like every other). */
export async function fetchArtifact(runId: string, path: string): Promise<Blob> {
  const response = await send(artifactPath(runId, path), {});
  if (!response.ok) {
    let message = `mlnb server: HTTP ${response.status} ${response.statusText}`.trim();
    try {
      const data = JSON.parse(await response.text());
      message = typeof data?.error === 'string' ? data.error : message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(message, response.status);
  }
  return response.blob();
}

export function promote(
  runId: string,
  note: string,
  force: boolean
): Promise<IChange> {
  return post<IChange>('promote', { run_id: runId, note, force });
}

export function rollback(note: string): Promise<IChange> {
  return post<IChange>('rollback', { note });
}

/** Where `POST debug` wrote a failed task's debug notebook (relative to the server root). */
export interface IDebugNotebook {
  path: string;
  task: string;
}

/** The debug notebook of `task`'s failure in build `runId` (409 once a later build ran the task). */
export function debugTask(task: string, runId?: string): Promise<IDebugNotebook> {
  return post<IDebugNotebook>('debug', runId ? { task, run_id: runId } : { task });
}
