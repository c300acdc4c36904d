// Status colouring: every status maps to a tone; the CSS gives each tone a colour for
// light and dark schemes (styles.css: --tone-*).
import type { ExecutionStatus, NodeStatus } from "./types";

export type Tone = "idle" | "queued" | "active" | "waiting" | "ok" | "bad" | "muted";

const TONES: Record<string, Tone> = {
  pending: "idle",
  ready: "queued",
  running: "active",
  waiting: "waiting",
  paused: "waiting",
  succeeded: "ok",
  failed: "bad",
  timed_out: "bad",
  skipped: "muted",
  cancelled: "muted",
};

export function statusTone(status: string | null | undefined): Tone {
  return (status && TONES[status]) || "idle";
}

export function statusLabel(status: string | null | undefined): string {
  if (!status) return "unknown";
  return status.replace(/_/g, " ");
}

export const TERMINAL_NODE: ReadonlySet<NodeStatus> = new Set<NodeStatus>([
  "succeeded",
  "failed",
  "skipped",
  "cancelled",
]);

export const TERMINAL_EXECUTION: ReadonlySet<ExecutionStatus> = new Set<ExecutionStatus>([
  "succeeded",
  "failed",
  "cancelled",
  "timed_out",
]);

export const EXECUTION_STATUSES: ExecutionStatus[] = [
  "pending",
  "running",
  "paused",
  "succeeded",
  "failed",
  "cancelled",
  "timed_out",
];

export function isTerminalExecution(status: string): boolean {
  return TERMINAL_EXECUTION.has(status as ExecutionStatus);
}

/** Which control actions make sense for an execution in ``status``. */
export function allowedActions(status: ExecutionStatus): { pause: boolean; resume: boolean; cancel: boolean } {
  return {
    pause: status === "running",
    resume: status === "paused",
    cancel: !TERMINAL_EXECUTION.has(status),
  };
}

/** Whether ``POST /v1/executions/{id}/retry`` can take the execution (the server has
 * the last word: a child execution, or one whose runtime state expired, is refused). */
export function canRetry(status: ExecutionStatus): boolean {
  return status === "failed" || status === "timed_out" || status === "cancelled";
}
