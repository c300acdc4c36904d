// Shapes of the SPANE HTTP API (spane/api/models.py, routes/graph.py, routes/explain.py).

export type NodeStatus =
  | "pending"
  | "ready"
  | "running"
  | "waiting"
  | "succeeded"
  | "failed"
  | "skipped"
  | "cancelled";

export type ExecutionStatus =
  | "pending"
  | "running"
  | "paused"
  | "succeeded"
  | "failed"
  | "cancelled"
  | "timed_out";

export interface ErrorInfo {
  type: string;
  message: string;
  node_id?: string | null;
  attempt?: number | null;
  details?: unknown;
}

export interface WorkflowSummary {
  id: string;
  version: number;
  name?: string | null;
  description?: string | null;
  checksum: string;
  created_at: number;
}

export interface GraphNode {
  id: string;
  type: string;
  kind: string;
  name?: string | null;
  join: string;
  threshold: number;
  level: number;
  ports: string[];
  guard?: string | null;
  signal?: string | null;
  signal_schema?: Record<string, unknown> | null;
  timeout?: number | null;
  max_attempts: number;
  has_body: boolean;
}

export interface GraphEdge {
  source: string;
  port: string;
  target: string;
}

export interface WorkflowGraph {
  workflow_id: string;
  version: number;
  name?: string | null;
  description?: string | null;
  input_schema?: Record<string, unknown> | null;
  nodes: GraphNode[];
  edges: GraphEdge[];
  roots: string[];
  leaves: string[];
  branch_points: string[];
  convergence_points: string[];
  groups: string[][];
  max_concurrency?: number | null;
  max_executions?: number | null;
  description_text: string;
  definition_yaml: string;
}

export interface ExecutionSummary {
  id: string;
  workflow_id: string;
  version: number;
  status: ExecutionStatus;
  created_at: number;
  finished_at?: number | null;
  parent?: { execution_id: string; node_id: string } | null;
  /** The execution this one replays (POST /v1/executions/{id}/replay). */
  replay_of?: string | null;
  /** How many times it was retried. */
  retries?: number;
}

export interface NodeView {
  id: string;
  status: NodeStatus;
  attempt: number;
  started_at?: number | null;
  finished_at?: number | null;
  duration?: number | null;
  wait?: string | null;
  output?: unknown;
  error?: ErrorInfo | null;
}

export interface ExecutionDetail extends ExecutionSummary {
  input?: unknown;
  output?: unknown;
  error?: ErrorInfo | null;
  vars?: Record<string, unknown>;
  nodes: NodeView[];
}

export interface ExecutionPage {
  items: ExecutionSummary[];
  next_cursor?: string | null;
}

export interface OpenEdge {
  edge: string;
  source: string;
  port: string;
  source_status: NodeStatus;
}

export interface NodeWait {
  node_id: string;
  status: NodeStatus;
  kind: string;
  message: string;
  since?: number | null;
  until?: number | null;
  remaining?: number | null;
  open_edges?: OpenEdge[];
  signal?: string | null;
  signal_schema?: Record<string, unknown> | null;
  pool?: string | null;
  pool_consumers?: number | null;
  attempt?: number | null;
  queue_position?: number | null;
  deadline?: number | null;
  notes?: string[];
}

export interface Explanation {
  execution_id: string;
  workflow_id: string;
  version: number;
  status: ExecutionStatus;
  message: string;
  now: number;
  nodes: NodeWait[];
}

export interface NodeState {
  status: NodeStatus;
  attempt: number;
  input?: unknown;
  output?: unknown;
  error?: ErrorInfo | null;
  wait?: string | null;
  timers?: Record<string, number>;
  lost?: number;
  started_at?: number | null;
  finished_at?: number | null;
  children?: string[];
  edges?: Record<string, boolean>;
}

export interface NodeDetail {
  execution_id: string;
  node_id: string;
  state: NodeState;
}

export interface LifecycleEvent {
  id: string;
  type: string;
  subject: string;
  time: string;
  data: Record<string, unknown> & { status?: string; node_id?: string; workflow_id?: string };
}

// Dead letters (spane/api/routes/dead_letters.py).
export interface DeadLetterSummary {
  id: string;
  dead_at: number;
  reason: string;
  queue: string;
  exchange: string;
  routing_key: string;
  message_id?: string | null;
  type?: string | null;
  count: number;
}

export interface DeadLetterDetail extends DeadLetterSummary {
  content_type?: string | null;
  content_encoding?: string | null;
  correlation_id?: string | null;
  app_id?: string | null;
  priority?: number | null;
  headers: Record<string, unknown>;
  body: string;
  body_encoding: "utf-8" | "base64" | string;
}

export interface DeadLetterPage {
  items: DeadLetterSummary[];
  next_cursor?: string | null;
}

export interface Redriven {
  id: string;
  exchange: string;
  routing_key: string;
  message_id?: string | null;
}

// Recovery (spane/api/routes/recovery.py).
export interface ReplayStarted {
  execution_id: string;
  replay_of: string;
  from_node: string;
}
