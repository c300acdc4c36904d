import { useId, useMemo, useState } from "react";
import { api } from "../lib/api";
import { diffLines, diffStats, hunks, sideBySide, type DiffLine, type Hunk } from "../lib/diff";
import { useLoad } from "../lib/hooks";
import { href, navigate } from "../lib/router";
import { formatTime } from "../lib/timeline";
import type { WorkflowGraph, WorkflowSummary } from "../lib/types";
import { Empty, ErrorBox, Loading } from "../components/common";

interface Side {
  graph: WorkflowGraph;
  record: WorkflowSummary;
}

async function loadSide(id: string, version: number): Promise<Side> {
  const [graph, record] = await Promise.all([api.graph(id, version), api.workflowVersion(id, version)]);
  return { graph, record };
}

/** #/workflows/<id>/diff?a=1&b=2: the YAML definitions of two versions, as a line diff. */
export function WorkflowDiffPage({ id, a, b }: { id: string; a?: number; b?: number }) {
  const latest = useLoad(() => api.workflow(id), `workflow:${id}`);
  const newest = latest.data?.version ?? 0;
  const right = Math.min(b ?? newest, newest) || newest;
  const left = Math.max(1, Math.min(a ?? right - 1, newest));
  const sides = useLoad<[Side, Side] | null>(
    () => (newest ? Promise.all([loadSide(id, left), loadSide(id, right)]) : Promise.resolve(null)),
    `diff:${id}:${left}:${right}:${newest}`,
  );
  const [view, setView] = useState<"unified" | "split">(() =>
    window.matchMedia?.("(max-width: 900px)").matches ? "unified" : "split",
  );
  const [whole, setWhole] = useState(false);
  const fieldId = useId();

  const lines = useMemo(
    () => (sides.data ? diffLines(sides.data[0].graph.definition_yaml, sides.data[1].graph.definition_yaml) : []),
    [sides.data],
  );
  const parts = useMemo(() => hunks(lines, whole ? lines.length : 3), [lines, whole]);
  const stats = diffStats(lines);

  const go = (next: { a?: number; b?: number }) =>
    navigate(href(["workflows", id, "diff"], { a: String(next.a ?? left), b: String(next.b ?? right) }));
  const versions = Array.from({ length: newest }, (_, i) => newest - i);

  return (
    <section aria-labelledby="diff-title">
      <nav className="crumbs" aria-label="Breadcrumb">
        <a href={href(["workflows"])}>Workflows</a> / <a href={href(["workflows", id])}>{id}</a> / compare versions
      </nav>
      <div className="page-head">
        <h1 id="diff-title">
          Compare versions of {latest.data?.name || id}
        </h1>
      </div>
      {latest.error && <ErrorBox error={latest.error} retry={latest.reload} />}
      {!latest.data && !latest.error && <Loading what={`workflow ${id}`} />}
      {latest.data && newest < 2 && (
        <Empty>
          <p>
            {id} has one version only: nothing to compare yet. A changed definition registered again becomes version 2.
          </p>
        </Empty>
      )}
      {latest.data && newest >= 2 && (
        <>
          <form className="filters" aria-label="Versions to compare" onSubmit={(e) => e.preventDefault()}>
            <label>
              Old version
              <select value={left} onChange={(e) => go({ a: Number(e.target.value) })}>
                {versions.map((v) => (
                  <option key={v} value={v}>
                    v{v}
                  </option>
                ))}
              </select>
            </label>
            <label>
              New version
              <select value={right} onChange={(e) => go({ b: Number(e.target.value) })}>
                {versions.map((v) => (
                  <option key={v} value={v}>
                    v{v}
                  </option>
                ))}
              </select>
            </label>
            <button type="button" onClick={() => go({ a: right, b: left })}>
              Swap
            </button>
            <fieldset className="segmented">
              <legend>View</legend>
              {(["split", "unified"] as const).map((v) => (
                <label key={v}>
                  <input
                    type="radio"
                    name={`${fieldId}-view`}
                    value={v}
                    checked={view === v}
                    onChange={() => setView(v)}
                  />
                  {v === "split" ? "Side by side" : "Unified"}
                </label>
              ))}
            </fieldset>
            <label className="check">
              <input type="checkbox" checked={whole} onChange={(e) => setWhole(e.target.checked)} />
              Whole file
            </label>
          </form>
          {sides.error && <ErrorBox error={sides.error} retry={sides.reload} />}
          {!sides.data && !sides.error && <Loading what={`v${left} and v${right}`} />}
          {sides.data && (
            <>
              <p className="diff-stats" role="status" data-testid="diff-stats">
                <a href={href(["workflows", id], { version: String(left) })}>v{left}</a>{" "}
                <span className="muted small">({formatTime(sides.data[0].record.created_at)})</span> →{" "}
                <a href={href(["workflows", id], { version: String(right) })}>v{right}</a>{" "}
                <span className="muted small">({formatTime(sides.data[1].record.created_at)})</span>:{" "}
                {parts.length === 0 ? (
                  "identical definitions"
                ) : (
                  <>
                    <span className="diff-added-count">+{stats.added}</span>{" "}
                    <span className="diff-deleted-count">−{stats.deleted}</span> lines
                  </>
                )}
              </p>
              {parts.length > 0 && (
                <div className="diff-wrap" data-testid="diff" data-view={view}>
                  {view === "unified" ? <Unified parts={parts} /> : <Split parts={parts} left={left} right={right} />}
                </div>
              )}
            </>
          )}
        </>
      )}
    </section>
  );
}

const MARK = { same: " ", add: "+", del: "−" } as const;
const SPOKEN = { same: "", add: "added: ", del: "removed: " } as const;

function Unified({ parts }: { parts: Hunk[] }) {
  return (
    <table className="diff" aria-label="Unified diff">
      <thead className="sr-only">
        <tr>
          <th scope="col">Old line</th>
          <th scope="col">New line</th>
          <th scope="col">Text</th>
        </tr>
      </thead>
      {parts.map((hunk) => (
        <tbody key={hunk.header}>
          <tr className="diff-hunk">
            <td colSpan={3}>{hunk.header}</td>
          </tr>
          {hunk.lines.map((line, k) => (
            <tr key={k} className={`diff-${line.kind}`}>
              <td className="diff-num">{line.a ?? ""}</td>
              <td className="diff-num">{line.b ?? ""}</td>
              <CodeCell line={line} />
            </tr>
          ))}
        </tbody>
      ))}
    </table>
  );
}

function Split({ parts, left, right }: { parts: Hunk[]; left: number; right: number }) {
  return (
    <table className="diff split-diff" aria-label="Side-by-side diff">
      <thead>
        <tr>
          <th scope="col" colSpan={2}>
            v{left}
          </th>
          <th scope="col" colSpan={2}>
            v{right}
          </th>
        </tr>
      </thead>
      {parts.map((hunk) => (
        <tbody key={hunk.header}>
          <tr className="diff-hunk">
            <td colSpan={4}>{hunk.header}</td>
          </tr>
          {sideBySide(hunk.lines).map((row, k) => (
            <tr key={k}>
              <td className={`diff-num diff-${row.left?.kind ?? "none"}`}>{row.left?.a ?? ""}</td>
              {row.left ? <CodeCell line={row.left} /> : <td className="diff-none" />}
              <td className={`diff-num diff-${row.right?.kind ?? "none"}`}>{row.right?.b ?? ""}</td>
              {row.right ? <CodeCell line={row.right} /> : <td className="diff-none" />}
            </tr>
          ))}
        </tbody>
      ))}
    </table>
  );
}

function CodeCell({ line }: { line: DiffLine }) {
  return (
    <td className={`diff-text diff-${line.kind}`}>
      <span className="sr-only">{SPOKEN[line.kind]}</span>
      <span aria-hidden="true" className="diff-mark">
        {MARK[line.kind]}
      </span>
      {line.text}
    </td>
  );
}
