/**
 * The Pipeline panel's calls to mlnb's REST API: JSON requests go through
 * `requestAPI` (src/request.ts: token, XSRF, one-line errors); the build
 * events are a server-sent event stream read with the same
 * `ServerConnection.makeRequest` (so it is authenticated the same way), and
 * re-opened after a drop.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IPipelineEvent, IPipelineSnapshot, parseEventStream } from './pipeline-model';
import { requestAPI } from './request';

export type BuildMode = 'build' | 'force' | 'resume';

export interface IBuildStarted {
  pid: number;
  mode: BuildMode;
  log: string;
  /** It held the project's build lock when the server answered (false: it had already ended). */
  running: boolean;
}

export interface IBuildStopped {
  pid: number;
  signal: string;
}

export function getPipeline(): Promise<IPipelineSnapshot> {
  return requestAPI<IPipelineSnapshot>('pipeline');
}

export function startBuild(mode: BuildMode): Promise<IBuildStarted> {
  return requestAPI<IBuildStarted>('pipeline/build', {
    method: 'POST',
    body: JSON.stringify({ mode }),
    headers: { 'Content-Type': 'application/json' }
  });
}

export function stopBuild(): Promise<IBuildStopped> {
  return requestAPI<IBuildStopped>('pipeline/stop', { method: 'POST' });
}

export interface IEventStream {
  close(): void;
}

/**
 * Read `GET pipeline/events` until `close()`: each message to `onEvent`; after a
 * drop, `onDown(message)` and a new connection `retryMs` later (its first message
 * is a fresh snapshot, so nothing is missed).
 */
export function subscribe(
  onEvent: (event: IPipelineEvent) => void,
  onDown: (message: string) => void,
  retryMs = 2000
): IEventStream {
  let closed = false;
  let controller: AbortController | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;

  const connect = async () => {
    controller = new AbortController();
    const settings = ServerConnection.makeSettings();
    const url = URLExt.join(settings.baseUrl, 'mlnb', 'api', 'pipeline', 'events');
    try {
      const response = await ServerConnection.makeRequest(
        url,
        { signal: controller.signal, cache: 'no-store' },
        settings
      );
      if (!response.ok || !response.body) {
        let message = `mlnb server: HTTP ${response.status}`;
        try {
          const data = await response.json();
          message = typeof data?.error === 'string' ? data.error : message;
        } catch {
          // not JSON: keep the status line
        }
        throw new Error(message);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          break;
        }
        buffer += decoder.decode(value, { stream: true });
        const parsed = parseEventStream(buffer);
        buffer = parsed.rest;
        parsed.events.forEach(onEvent);
      }
      if (!closed) {
        onDown('the connection to the Jupyter server was lost; reconnecting');
      }
    } catch (error) {
      if (closed) {
        return;
      }
      onDown(error instanceof Error ? error.message : String(error));
    }
    if (!closed) {
      timer = setTimeout(() => void connect(), retryMs);
    }
  };
  void connect();
  return {
    close: () => {
      closed = true;
      if (timer !== null) {
        clearTimeout(timer);
      }
      controller?.abort();
    }
  };
}
