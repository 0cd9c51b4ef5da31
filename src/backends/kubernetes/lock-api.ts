/**
 * The structural slice of `KubeClient` the lock depends on (`request`, `watch`, `namespace`), spelled
 * out here so the lock compiles and unit-tests against any object of this shape — a `KubeClient`, a
 * tiny in-memory stub, or a user's own client. Matches the KubeClient contract in client.ts.
 */
export interface KubeLockRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** Non-2xx statuses returned instead of thrown. */
  accept?: readonly number[];
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface KubeLockResponse<T = unknown> {
  status: number;
  body: T;
}

export interface KubeWatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: unknown;
}

export interface KubeLockApi {
  readonly namespace: string;
  request<T = unknown>(opts: KubeLockRequest): Promise<KubeLockResponse<T>>;
  watch(opts: {
    path: string;
    query?: Record<string, string | number | boolean | undefined>;
    signal: AbortSignal;
    idleTimeoutMs?: number;
  }): AsyncIterable<KubeWatchEvent>;
}
