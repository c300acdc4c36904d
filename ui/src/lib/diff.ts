// A line diff of two texts (workflow definitions as YAML): the longest common
// subsequence of lines, shown as a unified diff (hunks with context) or side by side.

export type DiffKind = "same" | "add" | "del";

export interface DiffLine {
  kind: DiffKind;
  text: string;
  /** Line number in the old text (1-based; not for an added line). */
  a?: number;
  /** Line number in the new text (1-based; not for a deleted line). */
  b?: number;
}

export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  if (lines[lines.length - 1] === "") lines.pop(); // a final newline ends the last line
  return lines;
}

/** Every line of ``before`` and ``after``, in order, marked kept, deleted or added.
 * Deletions come before additions where both replace the same lines. */
export function diffLines(before: string, after: string): DiffLine[] {
  const a = splitLines(before);
  const b = splitLines(after);
  // The common prefix and suffix are kept as they are: the table covers only the middle.
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const n = endA - start;
  const m = endB - start;
  // lcs[i][j]: the LCS length of a[start+i..endA) and b[start+j..endB).
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[start + i] === b[start + j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out: DiffLine[] = [];
  for (let k = 0; k < start; k++) out.push({ kind: "same", text: a[k], a: k + 1, b: k + 1 });
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[start + i] === b[start + j]) {
      out.push({ kind: "same", text: a[start + i], a: start + i + 1, b: start + j + 1 });
      i++;
      j++;
    } else if (i < n && (j >= m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push({ kind: "del", text: a[start + i], a: start + i + 1 });
      i++;
    } else {
      out.push({ kind: "add", text: b[start + j], b: start + j + 1 });
      j++;
    }
  }
  for (let k = 0; k < a.length - endA; k++) {
    out.push({ kind: "same", text: a[endA + k], a: endA + k + 1, b: endB + k + 1 });
  }
  return out;
}

export interface Hunk {
  /** ``@@ -a,len +b,len @@`` as in a unified diff. */
  header: string;
  lines: DiffLine[];
}

/** The changed lines with ``context`` unchanged lines around them; nearby changes share
 * a hunk. No change: no hunk. */
export function hunks(lines: DiffLine[], context = 3): Hunk[] {
  const changed = lines.map((l, index) => (l.kind === "same" ? -1 : index)).filter((index) => index >= 0);
  if (!changed.length) return [];
  const ranges: [number, number][] = [];
  for (const index of changed) {
    const from = Math.max(0, index - context);
    const to = Math.min(lines.length - 1, index + context);
    const last = ranges[ranges.length - 1];
    if (last && from <= last[1] + 1) last[1] = Math.max(last[1], to);
    else ranges.push([from, to]);
  }
  return ranges.map(([from, to]) => {
    const part = lines.slice(from, to + 1);
    const aLines = part.filter((l) => l.kind !== "add");
    const bLines = part.filter((l) => l.kind !== "del");
    const aStart = aLines[0]?.a ?? startBefore(lines, from, "a");
    const bStart = bLines[0]?.b ?? startBefore(lines, from, "b");
    return { header: `@@ -${aStart},${aLines.length} +${bStart},${bLines.length} @@`, lines: part };
  });
}

/** For a side with no line in a hunk: the number of the line before it (0 at the top). */
function startBefore(lines: DiffLine[], index: number, side: "a" | "b"): number {
  for (let k = index - 1; k >= 0; k--) {
    const n = lines[k][side];
    if (n !== undefined) return n;
  }
  return 0;
}

export interface DiffStats {
  added: number;
  deleted: number;
}

export function diffStats(lines: DiffLine[]): DiffStats {
  let added = 0;
  let deleted = 0;
  for (const l of lines) {
    if (l.kind === "add") added++;
    else if (l.kind === "del") deleted++;
  }
  return { added, deleted };
}

export interface SideRow {
  left?: DiffLine;
  right?: DiffLine;
}

/** Rows for a side-by-side view: kept lines on both sides, a run of deletions paired
 * with the run of additions that follows it. */
export function sideBySide(lines: DiffLine[]): SideRow[] {
  const rows: SideRow[] = [];
  let k = 0;
  while (k < lines.length) {
    const line = lines[k];
    if (line.kind === "same") {
      rows.push({ left: line, right: line });
      k++;
      continue;
    }
    const dels: DiffLine[] = [];
    const adds: DiffLine[] = [];
    while (k < lines.length && lines[k].kind === "del") dels.push(lines[k++]);
    while (k < lines.length && lines[k].kind === "add") adds.push(lines[k++]);
    for (let r = 0; r < Math.max(dels.length, adds.length); r++) rows.push({ left: dels[r], right: adds[r] });
  }
  return rows;
}
