import { useCallback, useMemo, useState } from "react";
import { api } from "../lib/api";
import { reduceExecution } from "../lib/events";
import { useEvents, useLoad, useNow, useThrottled } from "../lib/hooks";
import { href } from "../lib/router";
import { allowedActions, canRetry, isTerminalExecution } from "../lib/status";
import { formatDuration, formatTime } from "../lib/timeline";
import type { ExecutionDetail, Explanation, LifecycleEvent, NodeWait, WorkflowGraph } from "../lib/types";
import { Graph } from "../components/Graph";
import { JsonForm } from "../components/JsonForm";
import { LiveBadge } from "../components/LiveBadge";
import { NodePanel } from "../components/NodePanel";
import { Timeline } from "../components/Timeline";
import { ErrorBox, Json, Loading, StatusBadge } from "../components/common";
import { exampleFor } from "../lib/json";

export function ExecutionPage({ id }: { id: string }) {
  const detail = useLoad(() => api.execution(id), `execution:${id}`);
  const explain = useLoad(() => api.explain(id), `explain:${id}`);
  const exec = detail.data;
  const graphKey = exec ? `graph:${exec.workflow_id}:${exec.version}` : "graph:none";
  const graph = useLoad<WorkflowGraph | null>(
    () => (exec ? api.graph(exec.workflow_id, exec.version) : Promise.resolve(null)),
    graphKey,
  );
  const [selected, setSelected] = useState<string | null>(null);
  const [revision, setRevision] = useState(0);

  const refetch = useThrottled(() => {
    detail.reload();
    explain.reload();
    setRevision((r) => r + 1);
  }, 300);
  const onEvent = useCallback(
    (event: LifecycleEvent) => {
      if (event.subject !== id) return;
      detail.setData((current) => (current ? reduceExecution(current, event) : current));
      refetch();
    },
    [id, detail.setData, refetch],
  );
  const connection = useEvents(onEvent, refetch);
  const running = exec ? !isTerminalExecution(exec.status) : false;
  const now = useNow(running);

  if (detail.error && !exec) return <ErrorBox error={detail.error} retry={detail.reload} />;
  if (!exec) return <Loading what={`execution ${id}`} />;

  const statuses = Object.fromEntries(exec.nodes.map((n) => [n.id, n.status]));
  const order = graph.data?.nodes.map((n) => n.id) ?? [];
  return (
    <section aria-labelledby="execution-title">
      <nav className="crumbs" aria-label="Breadcrumb">
        <a href={href(["executions"])}>Executions</a> /{" "}
        <a href={href(["executions"], { workflow_id: exec.workflow_id })}>{exec.workflow_id}</a> / {id.slice(0, 12)}
      </nav>
      <div className="page-head">
        <h1 id="execution-title">
          Execution <span className="mono">{id.slice(0, 12)}</span> <StatusBadge status={exec.status} />
        </h1>
        <LiveBadge state={connection} />
      </div>
      <Summary exec={exec} now={now} />
      <Actions exec={exec} onDone={refetch} />
      {detail.error && <ErrorBox error={detail.error} retry={detail.reload} />}
      <div className="split">
        <div className="main-col">
          <h2>Graph</h2>
          {graph.error && <ErrorBox error={graph.error} retry={graph.reload} />}
          {!graph.data && !graph.error && <Loading what="graph" />}
          {graph.data && (
            <Graph graph={graph.data} statuses={statuses} selected={selected} onSelect={setSelected} />
          )}
          <NodeList exec={exec} order={order} selected={selected} onSelect={setSelected} />
        </div>
        <aside className="side-col">
          <Waiting explain={explain.data} error={explain.error} now={now} onSelect={setSelected} execId={id} onSent={refetch} />
          {selected ? (
            <NodePanel
              executionId={id}
              nodeId={selected}
              revision={revision}
              wait={explain.data?.nodes.find((n) => n.node_id === selected)}
              graphNode={graph.data?.nodes.find((n) => n.id === selected)}
              executionInput={exec.input}
              onClose={() => setSelected(null)}
            />
          ) : (
            <p className="muted">Select a node (in the graph, the list or the timeline) to see its input, output and error.</p>
          )}
        </aside>
      </div>
      <h2>Timeline</h2>
      <Timeline nodes={exec.nodes} now={now} order={order} onSelect={setSelected} />
      <div className="split even">
        <div>
          <h2>Input</h2>
          <Json value={exec.input} label="execution input" />
        </div>
        <div>
          <h2>{exec.error ? "Error" : "Output"}</h2>
          {exec.error ? (
            <div className="error-box">
              <strong>{exec.error.type}</strong>: {exec.error.message}
              {exec.error.node_id && <div className="small">node {exec.error.node_id}</div>}
            </div>
          ) : (
            <Json value={exec.output} label="execution output" />
          )}
        </div>
      </div>
    </section>
  );
}

function Summary({ exec, now }: { exec: ExecutionDetail; now: number }) {
  const end = exec.finished_at ?? now;
  return (
    <dl className="summary" data-testid="execution-summary">
      <div>
        <dt>Workflow</dt>
        <dd>
          <a href={href(["workflows", exec.workflow_id], { version: String(exec.version) })}>{exec.workflow_id}</a> v
          {exec.version}
        </dd>
      </div>
      <div>
        <dt>Created</dt>
        <dd>{formatTime(exec.created_at)}</dd>
      </div>
      <div>
        <dt>Duration</dt>
        <dd>{formatDuration(Math.max(0, end - exec.created_at))}</dd>
      </div>
      {exec.replay_of && (
        <div>
          <dt>Replay of</dt>
          <dd>
            <a href={href(["executions", exec.replay_of])} className="mono" data-testid="replay-of">
              {exec.replay_of.slice(0, 12)}
            </a>
          </dd>
        </div>
      )}
      {exec.retries ? (
        <div>
          <dt>Retried</dt>
          <dd>
            {exec.retries} time{exec.retries === 1 ? "" : "s"}
          </dd>
        </div>
      ) : null}
      {exec.parent && (
        <div>
          <dt>Parent</dt>
          <dd>
            <a href={href(["executions", exec.parent.execution_id])}>{exec.parent.execution_id.slice(0, 12)}</a> (node{" "}
            {exec.parent.node_id})
          </dd>
        </div>
      )}
    </dl>
  );
}

function Actions({ exec, onDone }: { exec: ExecutionDetail; onDone: () => void }) {
  const allowed = allowedActions(exec.status);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const run = async (action: () => Promise<unknown>, done?: string) => {
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      await action();
      if (done) setNotice(done);
      onDone();
    } catch (exc) {
      setError((exc as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const retryable = canRetry(exec.status);
  return (
    <div className="actions" role="group" aria-label="Execution actions">
      <button type="button" disabled={!allowed.pause || busy} onClick={() => run(() => api.pause(exec.id))}>
        Pause
      </button>
      <button type="button" disabled={!allowed.resume || busy} onClick={() => run(() => api.resume(exec.id))}>
        Resume
      </button>
      <button
        type="button"
        className="danger"
        disabled={!allowed.cancel || busy}
        onClick={() => {
          if (window.confirm(`Cancel execution ${exec.id}? Finally branches do not run.`)) {
            void run(() => api.cancel(exec.id));
          }
        }}
      >
        Cancel
      </button>
      <button
        type="button"
        disabled={!retryable || busy}
        title={retryable ? "Run the nodes that did not succeed again" : "Only a failed, timed-out or cancelled execution can be retried"}
        onClick={() => run(() => api.retry(exec.id), "Retry sent: the nodes that did not succeed run again.")}
      >
        Retry
      </button>
      {error && (
        <div className="banner error" role="alert" data-testid="action-error">
          <span>{error}</span>
          <button type="button" className="subtle" onClick={() => setError(null)} aria-label="Dismiss the error">
            ×
          </button>
        </div>
      )}
      {notice && !error && (
        <p className="muted small" role="status">
          {notice}
        </p>
      )}
    </div>
  );
}

function NodeList(props: {
  exec: ExecutionDetail;
  order: string[];
  selected: string | null;
  onSelect: (id: string) => void;
}) {
  const byId = new Map(props.exec.nodes.map((n) => [n.id, n]));
  const ids = props.order.length ? props.order : props.exec.nodes.map((n) => n.id);
  return (
    <details className="node-list">
      <summary>Nodes ({ids.length})</summary>
      <ul>
        {ids.map((nodeId) => (
          <li key={nodeId}>
            <button
              type="button"
              className={props.selected === nodeId ? "link selected" : "link"}
              onClick={() => props.onSelect(nodeId)}
              aria-pressed={props.selected === nodeId}
            >
              {nodeId}
            </button>{" "}
            <StatusBadge status={byId.get(nodeId)?.status ?? "pending"} />
          </li>
        ))}
      </ul>
    </details>
  );
}

function remainingText(wait: NodeWait, now: number): string | null {
  if (wait.until == null && wait.deadline == null) return null;
  const at = (wait.until ?? wait.deadline) as number;
  const left = at - now;
  const label = wait.until != null ? "fires" : "gives up";
  return left >= 0 ? `${label} in ${formatDuration(left)}` : `${label}: overdue by ${formatDuration(-left)}`;
}

function Waiting(props: {
  explain: Explanation | null;
  error: string | null;
  now: number;
  execId: string;
  onSelect: (id: string) => void;
  onSent: () => void;
}) {
  const { explain, error, now } = props;
  const signals = useMemo(() => {
    const byName = new Map<string, NodeWait>();
    for (const n of explain?.nodes ?? []) if (n.kind === "signal" && n.signal && !byName.has(n.signal)) byName.set(n.signal, n);
    return [...byName.values()];
  }, [explain]);
  return (
    <section aria-labelledby="waiting-title" className="waiting" data-testid="why-waiting">
      <h2 id="waiting-title">Why is it waiting?</h2>
      {error && <ErrorBox error={error} />}
      {!explain && !error && <Loading what="explanation" />}
      {explain && <p>{explain.message}</p>}
      {explain && explain.nodes.length > 0 && (
        <ul className="wait-list">
          {explain.nodes.map((n) => (
            <li key={n.node_id} data-node={n.node_id} data-kind={n.kind}>
              <button type="button" className="link" onClick={() => props.onSelect(n.node_id)}>
                {n.node_id}
              </button>{" "}
              <span className="kind">{n.kind.replace(/_/g, " ")}</span>
              <p>{n.message}</p>
              {remainingText(n, now) && <p className="muted small">{remainingText(n, now)}</p>}
              {n.notes?.map((note) => (
                <p key={note} className="muted small">
                  {note}
                </p>
              ))}
            </li>
          ))}
        </ul>
      )}
      {signals.map((n) => (
        <div key={n.signal} className="signal-form" data-signal={n.signal}>
          <h3>
            Send signal <code>{n.signal}</code>
          </h3>
          <JsonForm
            label={`Payload for ${n.signal} (JSON)`}
            submitLabel={`Send ${n.signal}`}
            initial={exampleFor(n.signal_schema)}
            schema={n.signal_schema}
            testId={`signal-${n.signal}`}
            onSubmit={async (data) => {
              await api.signal(props.execId, n.signal as string, data);
              props.onSent();
            }}
          />
        </div>
      ))}
    </section>
  );
}
