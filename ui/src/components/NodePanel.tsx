import { api } from "../lib/api";
import { href, navigate } from "../lib/router";
import { JsonForm } from "./JsonForm";
import { useLoad } from "../lib/hooks";
import { formatDuration, formatTime } from "../lib/timeline";
import type { GraphNode, NodeWait } from "../lib/types";
import { ErrorBox, Json, Loading, StatusBadge } from "./common";

interface Props {
  executionId: string;
  nodeId: string;
  revision: number;
  wait?: NodeWait;
  graphNode?: GraphNode;
  /** The execution's input: the replay form starts with it. */
  executionInput?: unknown;
  onClose: () => void;
}

function traceback(details: unknown): string | null {
  if (details && typeof details === "object" && "traceback" in details) {
    const value = (details as { traceback: unknown }).traceback;
    return typeof value === "string" ? value : null;
  }
  return null;
}

export function NodePanel({ executionId, nodeId, revision, wait, graphNode, executionInput, onClose }: Props) {
  const { data, error, reload } = useLoad(() => api.node(executionId, nodeId), `node:${executionId}:${nodeId}:${revision}`);
  const state = data?.state;
  const trace = traceback(state?.error?.details);
  return (
    <section className="node-panel" aria-labelledby="node-title" data-testid="node-panel">
      <div className="page-head">
        <h2 id="node-title">
          Node <code>{nodeId}</code>
        </h2>
        <button type="button" onClick={onClose} aria-label="Close node panel">
          Close
        </button>
      </div>
      {error && <ErrorBox error={error} retry={reload} />}
      {!state && !error && <Loading what={`node ${nodeId}`} />}
      {state && (
        <>
          <dl className="summary">
            <div>
              <dt>Status</dt>
              <dd>
                <StatusBadge status={state.status} />
              </dd>
            </div>
            {graphNode && (
              <div>
                <dt>Type</dt>
                <dd>
                  {graphNode.type} ({graphNode.kind})
                </dd>
              </div>
            )}
            <div>
              <dt>Attempts</dt>
              <dd>
                {state.attempt}
                {graphNode && graphNode.max_attempts > 1 ? ` of ${graphNode.max_attempts}` : ""}
                {state.lost ? ` (${state.lost} lost with a worker)` : ""}
              </dd>
            </div>
            <div>
              <dt>Started</dt>
              <dd>{formatTime(state.started_at)}</dd>
            </div>
            <div>
              <dt>Finished</dt>
              <dd>{formatTime(state.finished_at)}</dd>
            </div>
            <div>
              <dt>Took</dt>
              <dd>
                {state.started_at != null && state.finished_at != null
                  ? formatDuration(state.finished_at - state.started_at)
                  : "–"}
              </dd>
            </div>
          </dl>
          {wait && (
            <p className="wait-note">
              <strong>Waiting:</strong> {wait.message}
            </p>
          )}
          {state.children && state.children.length > 0 && (
            <p>
              Children:{" "}
              {state.children.map((c) => (
                <a key={c} href={`#/executions/${encodeURIComponent(c)}`} className="mono">
                  {c.slice(0, 16)}{" "}
                </a>
              ))}
            </p>
          )}
          {state.error && (
            <div className="error-box" data-testid="node-error">
              <strong>{state.error.type}</strong>: {state.error.message}
              {state.error.attempt != null && <div className="small">attempt {state.error.attempt}</div>}
              {trace && <pre className="code">{trace}</pre>}
              {!trace && state.error.details != null && <Json value={state.error.details} label="error details" />}
            </div>
          )}
          <h3>Input</h3>
          <Json value={state.input ?? null} label="node input" />
          <h3>Output</h3>
          <Json value={state.output ?? null} label="node output" />
        </>
      )}
      <details className="replay" data-testid="replay">
        <summary>Replay from this node</summary>
        <p className="muted small">
          A new execution of the same workflow version runs <code>{nodeId}</code> and everything downstream of it; the
          other nodes keep the outputs they had here.
        </p>
        <JsonForm
          key={`${executionId}:${nodeId}`}
          label="Input of the new execution (JSON)"
          submitLabel={`Replay from ${nodeId}`}
          initial={JSON.stringify(executionInput ?? null, null, 2)}
          onSubmit={async (input) => {
            const started = await api.replay(executionId, nodeId, input);
            navigate(href(["executions", started.execution_id]));
          }}
        />
      </details>
    </section>
  );
}
