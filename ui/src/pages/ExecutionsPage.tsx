import { useCallback, useState } from "react";
import { api } from "../lib/api";
import { reduceList } from "../lib/events";
import { useEvents, useLoad, useThrottled } from "../lib/hooks";
import { href, navigate } from "../lib/router";
import { EXECUTION_STATUSES, statusLabel } from "../lib/status";
import { formatDuration, formatTime } from "../lib/timeline";
import type { ExecutionSummary, LifecycleEvent } from "../lib/types";
import { Empty, ErrorBox, Loading, StatusBadge } from "../components/common";
import { LiveBadge } from "../components/LiveBadge";

interface Props {
  workflowId?: string;
  status?: string;
  cursor?: string;
}

export function ExecutionsPage({ workflowId, status, cursor }: Props) {
  const key = `executions:${workflowId ?? ""}:${status ?? ""}:${cursor ?? ""}`;
  const { data, error, loading, reload, setData } = useLoad(
    () => api.executions({ workflow_id: workflowId, status, cursor, limit: 25 }),
    key,
  );
  const workflows = useLoad(() => api.workflows(), "workflows");
  const [previous, setPrevious] = useState<string[]>([]);
  const refetch = useThrottled(reload, 1000);
  const onEvent = useCallback(
    (event: LifecycleEvent) => {
      if (cursor) return; // older pages do not change live
      setData((page) =>
        page ? { ...page, items: reduceList(page.items, event, { workflow_id: workflowId, status }) } : page,
      );
    },
    [cursor, workflowId, status, setData],
  );
  const connection = useEvents(onEvent, refetch);

  const filter = (next: { workflow_id?: string; status?: string }) => {
    setPrevious([]);
    navigate(href(["executions"], { workflow_id: workflowId, status, ...next }));
  };

  return (
    <section aria-labelledby="executions-title">
      <div className="page-head">
        <h1 id="executions-title">Executions</h1>
        <LiveBadge state={connection} />
      </div>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label>
          Workflow
          <select value={workflowId ?? ""} onChange={(e) => filter({ workflow_id: e.target.value || undefined })}>
            <option value="">all</option>
            {workflows.data?.items.map((w) => (
              <option key={w.id} value={w.id}>
                {w.id}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select value={status ?? ""} onChange={(e) => filter({ status: e.target.value || undefined })}>
            <option value="">all</option>
            {EXECUTION_STATUSES.map((s) => (
              <option key={s} value={s}>
                {statusLabel(s)}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </form>
      {error && <ErrorBox error={error} retry={reload} />}
      {!data && loading && <Loading what="executions" />}
      {data && data.items.length === 0 && (
        <Empty>
          <p>No execution{workflowId || status ? " matches these filters" : " yet"}.</p>
          <p className="muted">Start one from a workflow's page.</p>
        </Empty>
      )}
      {data && data.items.length > 0 && <ExecutionTable items={data.items} />}
      <div className="pager">
        {cursor && (
          <button
            type="button"
            onClick={() => {
              const back = previous.slice(0, -1);
              const target = previous[previous.length - 1];
              setPrevious(back);
              navigate(href(["executions"], { workflow_id: workflowId, status, cursor: target || undefined }));
            }}
          >
            ← Newer
          </button>
        )}
        {data?.next_cursor && (
          <button
            type="button"
            onClick={() => {
              setPrevious([...previous, cursor ?? ""]);
              navigate(href(["executions"], { workflow_id: workflowId, status, cursor: data.next_cursor ?? undefined }));
            }}
          >
            Older →
          </button>
        )}
      </div>
    </section>
  );
}

function ExecutionTable({ items }: { items: ExecutionSummary[] }) {
  return (
    <table className="table" data-testid="executions">
      <thead>
        <tr>
          <th scope="col">Execution</th>
          <th scope="col">Workflow</th>
          <th scope="col">Status</th>
          <th scope="col">Created</th>
          <th scope="col">Duration</th>
        </tr>
      </thead>
      <tbody>
        {items.map((e) => (
          <tr key={e.id} data-execution={e.id}>
            <td>
              <a href={href(["executions", e.id])} className="mono">
                {e.id.slice(0, 12)}
              </a>
              {e.parent && <div className="muted small">child of {e.parent.execution_id.slice(0, 8)}</div>}
            </td>
            <td>
              <a href={href(["workflows", e.workflow_id])}>{e.workflow_id}</a> <span className="muted">v{e.version}</span>
            </td>
            <td>
              <StatusBadge status={e.status} />
            </td>
            <td>{formatTime(e.created_at)}</td>
            <td>{e.finished_at ? formatDuration(e.finished_at - e.created_at) : "–"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
