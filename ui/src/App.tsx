import { useState } from "react";
import { apiKey, setApiKey } from "./lib/api";
import { href, useRoute } from "./lib/router";
import { DeadLetterPage, DeadLettersPage } from "./pages/DeadLettersPage";
import { ExecutionPage } from "./pages/ExecutionPage";
import { ExecutionsPage } from "./pages/ExecutionsPage";
import { WorkflowDiffPage } from "./pages/WorkflowDiffPage";
import { WorkflowPage } from "./pages/WorkflowPage";
import { WorkflowsPage } from "./pages/WorkflowsPage";

function Page() {
  const { parts, query } = useRoute();
  const [section, id, sub] = parts;
  if (section === "workflows" && id && sub === "diff") {
    const a = Number(query.get("a")) || undefined;
    const b = Number(query.get("b")) || undefined;
    return <WorkflowDiffPage key={id} id={id} a={a} b={b} />;
  }
  if (section === "workflows" && id) {
    const version = Number(query.get("version")) || undefined;
    return <WorkflowPage key={`${id}:${version}`} id={id} version={version} />;
  }
  if (section === "executions" && id) return <ExecutionPage key={id} id={id} />;
  if (section === "executions")
    return (
      <ExecutionsPage
        workflowId={query.get("workflow_id") ?? undefined}
        status={query.get("status") ?? undefined}
        since={query.get("since") ?? undefined}
        cursor={query.get("cursor") ?? undefined}
      />
    );
  if (section === "dead-letters" && id) return <DeadLetterPage key={id} id={id} />;
  if (section === "dead-letters") return <DeadLettersPage cursor={query.get("cursor") ?? undefined} />;
  if (!section || section === "workflows") return <WorkflowsPage />;
  return (
    <div className="state empty">
      <p>No page here.</p>
      <a href={href(["workflows"])}>Go to the workflows</a>
    </div>
  );
}

function KeyButton() {
  const [key, setKey] = useState(apiKey());
  return (
    <button
      type="button"
      className="subtle"
      onClick={() => {
        const value = window.prompt("API key (leave empty for none; kept for this browser session)", key ?? "");
        if (value === null) return;
        setApiKey(value.trim() || null);
        setKey(value.trim() || null);
        window.location.reload();
      }}
    >
      {key ? "API key set" : "API key"}
    </button>
  );
}

export function App() {
  const { parts } = useRoute();
  const section = parts[0] ?? "workflows";
  return (
    <>
      <a className="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href={href(["workflows"])}>
          SPANE
        </a>
        <nav aria-label="Main">
          <a href={href(["workflows"])} aria-current={section === "workflows" ? "page" : undefined}>
            Workflows
          </a>
          <a href={href(["executions"])} aria-current={section === "executions" ? "page" : undefined}>
            Executions
          </a>
          <a href={href(["dead-letters"])} aria-current={section === "dead-letters" ? "page" : undefined}>
            Dead letters
          </a>
          <a href="/docs">API docs</a>
        </nav>
        <KeyButton />
      </header>
      <main id="main" tabIndex={-1}>
        <Page />
      </main>
    </>
  );
}
