// Live updates: lifecycle CloudEvents from the WebSocket /v1/events, folded into the
// execution being shown (reduceExecution) or into the executions list (reduceList).
// The reducers are pure; the pages also refetch after events to reconcile.
import type {
  ExecutionDetail,
  ExecutionStatus,
  ExecutionSummary,
  LifecycleEvent,
  NodeStatus,
  NodeView,
} from "./types";

const EXECUTION_EVENT_STATUS: Record<string, ExecutionStatus> = {
  pending: "pending",
  started: "running",
  resumed: "running",
  paused: "paused",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "cancelled",
  timed_out: "timed_out",
};

const NODE_EVENT_STATUS: Record<string, NodeStatus> = {
  started: "running",
  retrying: "waiting",
  waiting: "waiting",
  succeeded: "succeeded",
  failed: "failed",
  skipped: "skipped",
  cancelled: "cancelled",
};

export function isNodeEvent(event: LifecycleEvent): boolean {
  return event.type.startsWith("io.spane.node.");
}

export function executionStatusOf(event: LifecycleEvent): ExecutionStatus | null {
  if (isNodeEvent(event)) return null;
  return EXECUTION_EVENT_STATUS[String(event.data.status ?? "")] ?? null;
}

export function nodeStatusOf(event: LifecycleEvent): NodeStatus | null {
  if (!isNodeEvent(event)) return null;
  return NODE_EVENT_STATUS[String(event.data.status ?? "")] ?? null;
}

function eventSeconds(event: LifecycleEvent): number | null {
  const ms = Date.parse(event.time);
  return Number.isNaN(ms) ? null : ms / 1000;
}

function applyNode(nodes: NodeView[], event: LifecycleEvent, status: NodeStatus): NodeView[] {
  const id = String(event.data.node_id ?? "");
  if (!id) return nodes;
  const attempt = typeof event.data.attempt === "number" ? event.data.attempt : undefined;
  const at = eventSeconds(event);
  const terminal = status !== "running" && status !== "waiting";
  const existing = nodes.find((n) => n.id === id);
  const base: NodeView = existing ?? { id, status: "pending", attempt: 0 };
  const updated: NodeView = {
    ...base,
    status,
    attempt: attempt ?? base.attempt,
    started_at: status === "running" && base.started_at == null ? at : base.started_at,
    finished_at: terminal ? (at ?? base.finished_at) : null,
  };
  return existing ? nodes.map((n) => (n.id === id ? updated : n)) : [...nodes, updated];
}

/** The execution detail after one event (events of other executions change nothing). */
export function reduceExecution(detail: ExecutionDetail, event: LifecycleEvent): ExecutionDetail {
  if (event.subject !== detail.id) return detail;
  const nodeStatus = nodeStatusOf(event);
  if (nodeStatus) return { ...detail, nodes: applyNode(detail.nodes, event, nodeStatus) };
  const status = executionStatusOf(event);
  if (!status) return detail;
  const finished = status !== "running" && status !== "paused" && status !== "pending";
  return {
    ...detail,
    status,
    finished_at: finished ? (eventSeconds(event) ?? detail.finished_at) : detail.finished_at,
  };
}

export interface ListFilter {
  workflow_id?: string;
  status?: string;
}

/** The executions list (newest first) after one execution event. A new execution that
 * matches the filter is put on top; one whose status no longer matches is dropped. */
export function reduceList(
  items: ExecutionSummary[],
  event: LifecycleEvent,
  filter: ListFilter,
): ExecutionSummary[] {
  const status = executionStatusOf(event);
  if (!status || event.data.parent_execution_id) return items;
  const workflowId = String(event.data.workflow_id ?? "");
  if (filter.workflow_id && filter.workflow_id !== workflowId) return items;
  const existing = items.find((i) => i.id === event.subject);
  const matches = !filter.status || filter.status === status;
  if (existing) {
    if (!matches) return items.filter((i) => i.id !== event.subject);
    return items.map((i) => (i.id === event.subject ? { ...i, status } : i));
  }
  if (!matches) return items;
  const created = eventSeconds(event) ?? 0;
  const version = typeof event.data.version === "number" ? event.data.version : 0;
  return [{ id: event.subject, workflow_id: workflowId, version, status, created_at: created }, ...items];
}
