import { useState } from "react";
import { api } from "../lib/api";
import { useLoad } from "../lib/hooks";
import { href, navigate } from "../lib/router";
import { exampleFor } from "../lib/json";
import { Graph } from "../components/Graph";
import { JsonForm } from "../components/JsonForm";
import { ErrorBox, Loading } from "../components/common";

export function WorkflowPage({ id, version }: { id: string; version?: number }) {
  const { data, error, loading, reload } = useLoad(() => api.graph(id, version), `graph:${id}:${version ?? ""}`);
  const [tab, setTab] = useState<"graph" | "yaml" | "plan">("graph");
  if (error) return <ErrorBox error={error} retry={reload} />;
  if (!data || loading) return <Loading what={`workflow ${id}`} />;
  return (
    <section aria-labelledby="workflow-title">
      <nav className="crumbs" aria-label="Breadcrumb">
        <a href={href(["workflows"])}>Workflows</a> / {id}
      </nav>
      <div className="page-head">
        <h1 id="workflow-title">
          {data.name || data.workflow_id} <span className="muted">v{data.version}</span>
        </h1>
        <div className="row">
          {(data.version > 1 || version !== undefined) && (
            <a
              className="button"
              href={href(["workflows", id, "diff"], data.version > 1 ? { a: String(data.version - 1), b: String(data.version) } : {})}
            >
              Compare versions
            </a>
          )}
          <a className="button" href={href(["executions"], { workflow_id: id })}>
            Executions
          </a>
        </div>
      </div>
      {data.description && <p>{data.description}</p>}
      <p className="muted small">
        {data.nodes.length} nodes · roots {data.roots.join(", ") || "none"}
        {data.branch_points.length > 0 && ` · branches ${data.branch_points.join(", ")}`}
        {data.convergence_points.length > 0 && ` · joins ${data.convergence_points.join(", ")}`}
        {data.max_concurrency ? ` · max_concurrency ${data.max_concurrency}` : ""}
        {data.max_executions ? ` · max_executions ${data.max_executions}` : ""}
      </p>
      <div className="split">
        <div className="main-col">
          <div className="tabs" role="tablist" aria-label="Workflow views">
            {(["graph", "yaml", "plan"] as const).map((t) => (
              <button
                key={t}
                type="button"
                role="tab"
                aria-selected={tab === t}
                className={tab === t ? "tab active" : "tab"}
                onClick={() => setTab(t)}
              >
                {t === "graph" ? "Graph" : t === "yaml" ? "Definition (YAML)" : "Plan in words"}
              </button>
            ))}
          </div>
          {tab === "graph" && <Graph graph={data} />}
          {tab === "yaml" && (
            <pre className="code" tabIndex={0} data-testid="yaml">
              {data.definition_yaml}
            </pre>
          )}
          {tab === "plan" && (
            <pre className="code" tabIndex={0}>
              {data.description_text}
            </pre>
          )}
        </div>
        <aside className="side-col" aria-labelledby="start-title">
          <h2 id="start-title">Start an execution</h2>
          <JsonForm
            label="Input (JSON)"
            submitLabel="Start"
            initial={exampleFor(data.input_schema)}
            schema={data.input_schema}
            testId="start-form"
            onSubmit={async (input) => {
              const started = await api.start(id, input, version);
              navigate(href(["executions", started.execution_id]));
            }}
          />
          {!data.input_schema && <p className="muted small">This workflow declares no input_schema.</p>}
        </aside>
      </div>
    </section>
  );
}
