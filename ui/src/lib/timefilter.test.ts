import { describe, expect, it } from "vitest";
import { cutoff, olderPagesMayMatch, parseRange, withinRange } from "./timefilter";

const NOW = 1_700_000_000;
const items = [
  { id: "a", created_at: NOW - 10 },
  { id: "b", created_at: NOW - 3599 },
  { id: "c", created_at: NOW - 3601 },
  { id: "d", created_at: NOW - 2 * 86_400 },
];

describe("time filter", () => {
  it("parses a range, anything unknown being all", () => {
    expect(parseRange("hour")).toBe("hour");
    expect(parseRange("week")).toBe("week");
    expect(parseRange("year")).toBe("all");
    expect(parseRange(null)).toBe("all");
  });

  it("computes the cutoff", () => {
    expect(cutoff("all", NOW)).toBeNull();
    expect(cutoff("hour", NOW)).toBe(NOW - 3600);
    expect(cutoff("day", NOW)).toBe(NOW - 86_400);
  });

  it("keeps the items created within the range", () => {
    expect(withinRange(items, "hour", NOW).map((i) => i.id)).toEqual(["a", "b"]);
    expect(withinRange(items, "day", NOW).map((i) => i.id)).toEqual(["a", "b", "c"]);
    expect(withinRange(items, "week", NOW)).toHaveLength(4);
    expect(withinRange(items, "all", NOW)).toBe(items);
  });

  it("stops paging once a page reaches past the cutoff", () => {
    expect(olderPagesMayMatch(items, "next", "hour", NOW)).toBe(false);
    expect(olderPagesMayMatch(items.slice(0, 2), "next", "hour", NOW)).toBe(true);
    expect(olderPagesMayMatch(items.slice(0, 2), null, "hour", NOW)).toBe(false);
    expect(olderPagesMayMatch(items, "next", "all", NOW)).toBe(true);
    expect(olderPagesMayMatch([], "next", "hour", NOW)).toBe(true);
  });
});
