// Showing a dead letter's body: JSON pretty-printed, other text as it is, base64 bodies
// decoded when they are UTF-8 text.

export interface ShownBody {
  text: string;
  /** What the body was found to be. */
  format: "json" | "text" | "binary";
  /** A note on how it is shown (e.g. "base64, not UTF-8 text"). */
  note?: string;
}

function decodeBase64(body: string): Uint8Array | null {
  try {
    const raw = atob(body.replace(/\s+/g, ""));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

function prettyJson(text: string): string | null {
  const trimmed = text.trim();
  if (!trimmed || !"{[\"".includes(trimmed[0]) && !/^(-?\d|true|false|null)/.test(trimmed)) return null;
  try {
    return JSON.stringify(JSON.parse(trimmed), null, 2);
  } catch {
    return null;
  }
}

/** The body as shown: pretty JSON when it parses as JSON (whatever its content type). */
export function showBody(body: string, encoding: string): ShownBody {
  let text = body;
  if (encoding === "base64") {
    const bytes = decodeBase64(body);
    if (!bytes) return { text: body, format: "binary", note: "base64 (not decodable)" };
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      return { text: body, format: "binary", note: `base64, ${bytes.length} bytes, not UTF-8 text` };
    }
  }
  const pretty = prettyJson(text);
  if (pretty !== null) return { text: pretty, format: "json" };
  return { text, format: "text" };
}

/** A short form of a long reason for a table cell. */
export function shorten(text: string, max = 120): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
