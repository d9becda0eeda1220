/**
 * The mlnb REST API (served by the `mlnb.jupyter` server extension under
 * `<base_url>mlnb/api/`). `ServerConnection.makeRequest` adds the token and
 * the XSRF header; errors come back as `{"error": "one line message"}`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type Metrics = Record<string, number>;

/** One build run, as listed by `GET runs`. */
export interface IRun {
  run_id: string;
  start_time: number;
  status: 'ok' | 'failed' | string;
  git_commit: string;
  gate: 'passed' | 'failed' | '-';
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
}

export interface IChampion {
  version: string;
  run_id: string | null;
  metrics?: Metrics;
}

export interface IRunList {
  model_name: string;
  champion: IChampion | null;
  runs: IRun[];
}

export interface IRunDetail {
  run: IRun;
  champion: IChampion | null;
  deltas: Metrics;
  promotable: boolean;
  refusal: string | null;
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

/**
 * Call `<base_url>mlnb/api/<endPoint>` and return its JSON body.
 * Throws an `ApiError` carrying the server's message on a non-2xx answer.
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'mlnb', 'api', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(`mlnb server unreachable: ${String(error)}`, 0);
  }
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
