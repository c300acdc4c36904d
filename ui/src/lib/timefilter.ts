// The executions list's time filter ("last hour / day / week / all"). The API has no
// time filter, so it is applied in the browser on created_at, page by page: pages come
// newest first, so once a page reaches past the cutoff no older page can match.

export type TimeRange = "hour" | "day" | "week" | "all";

export const TIME_RANGES: { value: TimeRange; label: string; seconds: number | null }[] = [
  { value: "all", label: "all time", seconds: null },
  { value: "hour", label: "last hour", seconds: 3600 },
  { value: "day", label: "last 24 hours", seconds: 86_400 },
  { value: "week", label: "last 7 days", seconds: 7 * 86_400 },
];

export function parseRange(value: string | null | undefined): TimeRange {
  return TIME_RANGES.some((r) => r.value === value) ? (value as TimeRange) : "all";
}

/** The oldest created_at (UNIX seconds) still in ``range`` at ``now``; null: no limit. */
export function cutoff(range: TimeRange, now: number): number | null {
  const seconds = TIME_RANGES.find((r) => r.value === range)?.seconds ?? null;
  return seconds === null ? null : now - seconds;
}

export interface Timed {
  created_at: number;
}

/** The items created at or after the cutoff. */
export function withinRange<T extends Timed>(items: T[], range: TimeRange, now: number): T[] {
  const from = cutoff(range, now);
  return from === null ? items : items.filter((item) => item.created_at >= from);
}

/** Whether an older page can still hold items in range: there is a next page, and this
 * page (newest first) did not already reach past the cutoff. */
export function olderPagesMayMatch<T extends Timed>(
  items: T[],
  nextCursor: string | null | undefined,
  range: TimeRange,
  now: number,
): boolean {
  if (!nextCursor) return false;
  const from = cutoff(range, now);
  if (from === null || items.length === 0) return true;
  return items[items.length - 1].created_at >= from;
}
