// The HTTP API client. An API key (when the server requires one) is kept for the
// session in sessionStorage and sent as a Bearer token.
import type {
  DeadLetterDetail,
  DeadLetterPage,
  ExecutionDetail,
  ExecutionPage,
  Explanation,
  NodeDetail,
  Redriven,
  ReplayStarted,
  WorkflowGraph,
  WorkflowSummary,
} from "./types";

const KEY = "spane.apiKey";

export function apiKey(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function setApiKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set("Accept", "application/json");
  const key = apiKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch (exc) {
    throw new ApiError(`cannot reach the server: ${(exc as Error).message}`, 0);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    if (response.ok) throw new ApiError(`${response.status}: the response is not JSON`, response.status);
  }
  if (!response.ok) {
    const problems = Array.isArray(body?.problems)
      ? body.problems.map((p: { location: string; message: string }) => `${p.location}: ${p.message}`)
      : [];
    const detail = [body?.detail ?? body?.title ?? response.statusText, ...problems].join("; ");
    throw new ApiError(`${response.status}: ${detail}`, response.status);
  }
  return body as T;
}

function post<T>(path: string, body?: unknown): Promise<T> {
  return request<T>(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const enc = encodeURIComponent;

export const api = {
  workflows: () => request<{ items: WorkflowSummary[] }>("/v1/workflows"),
  workflow: (id: string) => request<WorkflowSummary>(`/v1/workflows/${enc(id)}`),
  workflowVersion: (id: string, version: number) =>
    request<WorkflowSummary>(`/v1/workflows/${enc(id)}/versions/${version}`),
  graph: (id: string, version?: number) =>
    request<WorkflowGraph>(`/v1/workflows/${enc(id)}/graph${version ? `?version=${version}` : ""}`),
  executions: (query: { workflow_id?: string; status?: string; cursor?: string; limit?: number }) => {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value) params.set(name, String(value));
    return request<ExecutionPage>(`/v1/executions?${params}`);
  },
  execution: (id: string) => request<ExecutionDetail>(`/v1/executions/${enc(id)}`),
  explain: (id: string) => request<Explanation>(`/v1/executions/${enc(id)}/explain`),
  node: (id: string, node: string) => request<NodeDetail>(`/v1/executions/${enc(id)}/nodes/${enc(node)}`),
  start: (workflow: string, input: unknown, version?: number) =>
    post<{ execution_id: string }>(`/v1/workflows/${enc(workflow)}/executions`, { input, version }),
  cancel: (id: string) => post(`/v1/executions/${enc(id)}/cancel`, {}),
  pause: (id: string) => post(`/v1/executions/${enc(id)}/pause`),
  resume: (id: string) => post(`/v1/executions/${enc(id)}/resume`),
  signal: (id: string, name: string, data: unknown) =>
    post(`/v1/executions/${enc(id)}/signals/${enc(name)}`, { data }),
  retry: (id: string) => post<{ execution_id: string }>(`/v1/executions/${enc(id)}/retry`),
  replay: (id: string, fromNode: string, input: unknown) =>
    post<ReplayStarted>(`/v1/executions/${enc(id)}/replay`, { from_node: fromNode, input }),
  deadLetters: (query: { cursor?: string; limit?: number }) => {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value) params.set(name, String(value));
    return request<DeadLetterPage>(`/v1/dead-letters?${params}`);
  },
  deadLetter: (id: string) => request<DeadLetterDetail>(`/v1/dead-letters/${enc(id)}`),
  redrive: (id: string) => post<Redriven>(`/v1/dead-letters/${enc(id)}/redrive`),
  dropDeadLetter: (id: string) => request<null>(`/v1/dead-letters/${enc(id)}`, { method: "DELETE" }),
};
