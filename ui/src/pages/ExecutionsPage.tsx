import { useCallback, useState } from "react";
import { api } from "../lib/api";
import { reduceList } from "../lib/events";
import { useEvents, useLoad, useNow, useThrottled } from "../lib/hooks";
import { href, navigate } from "../lib/router";
import { EXECUTION_STATUSES, statusLabel } from "../lib/status";
import { formatDuration, formatTime } from "../lib/timeline";
import { TIME_RANGES, olderPagesMayMatch, parseRange, withinRange } from "../lib/timefilter";
import type { ExecutionSummary, LifecycleEvent } from "../lib/types";
import { Empty, ErrorBox, Loading, StatusBadge } from "../components/common";
import { LiveBadge } from "../components/LiveBadge";

interface Props {
  workflowId?: string;
  status?: string;
  /** The time filter: hour, day, week (absent: all). Applied here, on created_at. */
  since?: string;
  cursor?: string;
}

export function ExecutionsPage({ workflowId, status, since, cursor }: Props) {
  const range = parseRange(since);
  const sinceParam = range === "all" ? undefined : range;
  const now = useNow(range !== "all", 30_000);
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

  const filter = (next: { workflow_id?: string; status?: string; since?: string }) => {
    setPrevious([]);
    navigate(href(["executions"], { workflow_id: workflowId, status, since: sinceParam, ...next }));
  };
  const items = data ? withinRange(data.items, range, now) : [];
  const hidden = data ? data.items.length - items.length : 0;
  const older = data ? olderPagesMayMatch(data.items, data.next_cursor, range, now) : false;
  const filtered = Boolean(workflowId || status || sinceParam);

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
        <label>
          Created
          <select value={range} onChange={(e) => filter({ since: e.target.value === "all" ? undefined : e.target.value })}>
            {TIME_RANGES.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
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
      {data && items.length === 0 && (
        <Empty>
          <p>No execution{filtered ? " matches these filters" : " yet"}{cursor ? " on this page" : ""}.</p>
          <p className="muted">Start one from a workflow's page.</p>
        </Empty>
      )}
      {data && items.length > 0 && <ExecutionTable items={items} />}
      {hidden > 0 && items.length > 0 && (
        <p className="muted small" role="status">
          {hidden} older execution{hidden === 1 ? "" : "s"} on this page hidden by the time filter.
        </p>
      )}
      <div className="pager">
        {cursor && (
          <button
            type="button"
            onClick={() => {
              const back = previous.slice(0, -1);
              const target = previous[previous.length - 1];
              setPrevious(back);
              navigate(
                href(["executions"], { workflow_id: workflowId, status, since: sinceParam, cursor: target || undefined }),
              );
            }}
          >
            ← Newer
          </button>
        )}
        {data?.next_cursor && older && (
          <button
            type="button"
            onClick={() => {
              setPrevious([...previous, cursor ?? ""]);
              navigate(
                href(["executions"], {
                  workflow_id: workflowId,
                  status,
                  since: sinceParam,
                  cursor: data.next_cursor ?? undefined,
                }),
              );
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
              {e.replay_of && <div className="muted small">replay of {e.replay_of.slice(0, 8)}</div>}
              {e.retries ? <div className="muted small">retried {e.retries}×</div> : null}
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
