import { api } from "../lib/api";
import { useLoad } from "../lib/hooks";
import { href } from "../lib/router";
import { formatTime } from "../lib/timeline";
import { Empty, ErrorBox, Loading } from "../components/common";

export function WorkflowsPage() {
  const { data, error, loading, reload } = useLoad(() => api.workflows(), "workflows");
  return (
    <section aria-labelledby="workflows-title">
      <div className="page-head">
        <h1 id="workflows-title">Workflows</h1>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </div>
      {error && <ErrorBox error={error} retry={reload} />}
      {!data && loading && <Loading what="workflows" />}
      {data && data.items.length === 0 && (
        <Empty>
          <p>No workflow is registered yet.</p>
          <p className="muted">
            Register one with <code>spane register FILE</code>, <code>POST /v1/workflows</code>, or start
            the dev server with <code>spane dev --workflows DIR</code>.
          </p>
        </Empty>
      )}
      {data && data.items.length > 0 && (
        <table className="table" data-testid="workflows">
          <thead>
            <tr>
              <th scope="col">Workflow</th>
              <th scope="col">Latest version</th>
              <th scope="col">Registered</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data.items.map((w) => (
              <tr key={w.id}>
                <td>
                  <a href={href(["workflows", w.id])}>{w.name || w.id}</a>
                  {w.name && <div className="muted small">{w.id}</div>}
                  {w.description && <div className="muted small">{w.description}</div>}
                </td>
                <td>
                  v{w.version}
                  {w.version > 1 && (
                    <span className="muted small">
                      {" "}
                      (older:{" "}
                      {Array.from({ length: Math.min(w.version - 1, 5) }, (_, i) => w.version - 1 - i).map((v) => (
                        <a key={v} href={href(["workflows", w.id], { version: String(v) })} className="version-link">
                          v{v}
                        </a>
                      ))}
                      )
                    </span>
                  )}
                  {w.version > 1 && (
                    <div className="small">
                      <a href={href(["workflows", w.id, "diff"])}>Compare versions</a>
                    </div>
                  )}
                </td>
                <td>{formatTime(w.created_at)}</td>
                <td>
                  <a href={href(["executions"], { workflow_id: w.id })}>Executions</a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
