import { useRef, useState } from "react";
import { api } from "../lib/api";
import { shorten, showBody } from "../lib/deadletters";
import { useLoad } from "../lib/hooks";
import { href, navigate } from "../lib/router";
import { formatTime } from "../lib/timeline";
import type { DeadLetterDetail, DeadLetterSummary } from "../lib/types";
import { ConfirmButton } from "../components/Confirm";
import { Empty, ErrorBox, Json, Loading } from "../components/common";

const PAGE = 25;

/** #/dead-letters: messages no consumer could process, newest first, by cursor. */
export function DeadLettersPage({ cursor }: { cursor?: string }) {
  const { data, error, loading, reload } = useLoad(
    () => api.deadLetters({ cursor, limit: PAGE }),
    `dead-letters:${cursor ?? ""}`,
  );
  const [previous, setPrevious] = useState<string[]>([]);
  return (
    <section aria-labelledby="dead-letters-title">
      <div className="page-head">
        <h1 id="dead-letters-title">Dead letters</h1>
        <button type="button" onClick={reload} disabled={loading}>
          {loading && data ? "Refreshing…" : "Refresh"}
        </button>
      </div>
      <p className="muted small">
        Messages that no consumer could process (a handler kept failing, or the message could not be read). Redrive
        one to publish it again where it was first sent, or drop it.
      </p>
      {error && <ErrorBox error={error} retry={reload} />}
      {!data && loading && <Loading what="dead letters" />}
      {data && data.items.length === 0 && (
        <Empty>
          <p>No dead letters{cursor ? " on this page" : ""}.</p>
          <p className="muted">Nothing has failed to be delivered — or every dead letter was redriven or dropped.</p>
        </Empty>
      )}
      {data && data.items.length > 0 && <DeadLetterTable items={data.items} />}
      <div className="pager">
        {cursor && (
          <button
            type="button"
            onClick={() => {
              const target = previous[previous.length - 1];
              setPrevious(previous.slice(0, -1));
              navigate(href(["dead-letters"], { cursor: target || undefined }));
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
              navigate(href(["dead-letters"], { cursor: data.next_cursor ?? undefined }));
            }}
          >
            Older →
          </button>
        )}
      </div>
    </section>
  );
}

function DeadLetterTable({ items }: { items: DeadLetterSummary[] }) {
  return (
    <div className="table-wrap">
      <table className="table" data-testid="dead-letters">
        <thead>
          <tr>
            <th scope="col">Dead since</th>
            <th scope="col">Reason</th>
            <th scope="col">Queue</th>
            <th scope="col">Message</th>
          </tr>
        </thead>
        <tbody>
          {items.map((d) => (
            <tr key={d.id} data-id={d.id}>
              <td>
                <a href={href(["dead-letters", d.id])} aria-label={`Dead letter ${d.id}, ${formatTime(d.dead_at)}`}>
                  {formatTime(d.dead_at)}
                </a>
                {d.count > 1 && <div className="muted small">{d.count} times</div>}
              </td>
              <td className="reason-cell" title={d.reason}>
                {shorten(d.reason)}
              </td>
              <td className="mono small">{d.queue}</td>
              <td className="small">
                <span className="mono">{d.message_id ?? d.id}</span>
                {d.type && <div className="muted">{d.type}</div>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

type Outcome = { kind: "redriven" | "dropped"; message: string } | null;

/** #/dead-letters/<id>: one dead letter with its headers and body; redrive or drop it. */
export function DeadLetterPage({ id }: { id: string }) {
  const { data, error, reload } = useLoad(() => api.deadLetter(id), `dead-letter:${id}`);
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<Outcome>(null);
  const resultRef = useRef<HTMLDivElement>(null);

  const act = async (action: () => Promise<Outcome>) => {
    setBusy(true);
    setFailure(null);
    try {
      setOutcome(await action());
    } catch (exc) {
      setFailure((exc as Error).message);
    } finally {
      setBusy(false);
      window.setTimeout(() => resultRef.current?.focus(), 0);
    }
  };

  const crumbs = (
    <nav className="crumbs" aria-label="Breadcrumb">
      <a href={href(["dead-letters"])}>Dead letters</a> / <span className="mono">{id}</span>
    </nav>
  );
  if (!data && error && !outcome) {
    return (
      <section>
        {crumbs}
        <ErrorBox error={error} retry={reload} />
      </section>
    );
  }
  if (!data) return <Loading what={`dead letter ${id}`} />;
  const body = showBody(data.body, data.body_encoding);
  return (
    <section aria-labelledby="dead-letter-title" data-testid="dead-letter">
      {crumbs}
      <div className="page-head">
        <h1 id="dead-letter-title">
          Dead letter <span className="mono">{shorten(data.message_id ?? id, 40)}</span>
        </h1>
      </div>
      <div className="actions" role="group" aria-label="Dead letter actions">
        <ConfirmButton
          label="Redrive"
          question={`Publish it again to ${data.exchange} (${data.routing_key}) and forget it?`}
          confirmLabel="Yes, redrive"
          disabled={busy || outcome !== null}
          onConfirm={() =>
            void act(async () => {
              const done = await api.redrive(id);
              return {
                kind: "redriven",
                message: `Redriven: published again to ${done.exchange} with routing key ${done.routing_key}; the dead letter is gone.`,
              };
            })
          }
        />
        <ConfirmButton
          label="Drop"
          question="Delete this message for good?"
          confirmLabel="Yes, drop it"
          danger
          disabled={busy || outcome !== null}
          onConfirm={() =>
            void act(async () => {
              await api.dropDeadLetter(id);
              return { kind: "dropped", message: "Dropped: the message is deleted." };
            })
          }
        />
        {busy && (
          <span className="muted" role="status">
            Working…
          </span>
        )}
      </div>
      <div ref={resultRef} tabIndex={-1} className="result-slot">
        {failure && (
          <div className="banner error" role="alert">
            {failure}
          </div>
        )}
        {outcome && (
          <div className="banner ok" role="status" data-outcome={outcome.kind}>
            {outcome.message} <a href={href(["dead-letters"])}>Back to the dead letters</a>
          </div>
        )}
      </div>
      <DeadLetterFacts entry={data} />
      <h2>Reason</h2>
      <pre className="code reason" tabIndex={0} aria-label="reason">
        {data.reason}
      </pre>
      <div className="split even">
        <div>
          <h2>
            Body <span className="muted small">({bodyNote(data, body.format, body.note)})</span>
          </h2>
          <pre className="code" tabIndex={0} aria-label="message body" data-testid="dead-letter-body" data-format={body.format}>
            {body.text}
          </pre>
        </div>
        <div>
          <h2>Headers</h2>
          {Object.keys(data.headers ?? {}).length ? (
            <Json value={data.headers} label="message headers" />
          ) : (
            <p className="muted">none</p>
          )}
        </div>
      </div>
    </section>
  );
}

function bodyNote(entry: DeadLetterDetail, format: string, note?: string): string {
  const parts = [format === "json" ? "JSON, pretty-printed" : note ?? format];
  if (entry.content_type) parts.push(entry.content_type);
  if (entry.content_encoding) parts.push(entry.content_encoding);
  return parts.join(" · ");
}

function DeadLetterFacts({ entry }: { entry: DeadLetterDetail }) {
  const facts: [string, string | number | null | undefined][] = [
    ["Dead since", formatTime(entry.dead_at)],
    ["Queue", entry.queue],
    ["Origin exchange", entry.exchange],
    ["Routing key", entry.routing_key],
    ["Message id", entry.message_id],
    ["Type", entry.type],
    ["Times dead-lettered", entry.count],
    ["Correlation id", entry.correlation_id],
    ["App", entry.app_id],
    ["Priority", entry.priority],
  ];
  return (
    <dl className="summary facts">
      {facts
        .filter(([, value]) => value !== null && value !== undefined && value !== "")
        .map(([name, value]) => (
          <div key={name}>
            <dt>{name}</dt>
            <dd className={typeof value === "string" && name !== "Dead since" ? "mono" : undefined}>{value}</dd>
          </div>
        ))}
    </dl>
  );
}
