import { describe, expect, it } from "vitest";
import { allowedActions, canRetry, isTerminalExecution, statusLabel, statusTone } from "./status";

describe("status colouring", () => {
  it.each([
    ["pending", "idle"],
    ["ready", "queued"],
    ["running", "active"],
    ["waiting", "waiting"],
    ["paused", "waiting"],
    ["succeeded", "ok"],
    ["failed", "bad"],
    ["timed_out", "bad"],
    ["skipped", "muted"],
    ["cancelled", "muted"],
    ["something-new", "idle"],
    [null, "idle"],
  ])("%s -> %s", (status, tone) => {
    expect(statusTone(status)).toBe(tone);
  });

  it("labels", () => {
    expect(statusLabel("timed_out")).toBe("timed out");
    expect(statusLabel(undefined)).toBe("unknown");
  });

  it("terminal executions and allowed actions", () => {
    expect(isTerminalExecution("succeeded")).toBe(true);
    expect(isTerminalExecution("paused")).toBe(false);
    expect(allowedActions("running")).toEqual({ pause: true, resume: false, cancel: true });
    expect(allowedActions("paused")).toEqual({ pause: false, resume: true, cancel: true });
    expect(allowedActions("failed")).toEqual({ pause: false, resume: false, cancel: false });
  });
});

describe("retry", () => {
  it("is offered for failed, timed-out and cancelled executions only", () => {
    expect(canRetry("failed")).toBe(true);
    expect(canRetry("timed_out")).toBe(true);
    expect(canRetry("cancelled")).toBe(true);
    expect(canRetry("succeeded")).toBe(false);
    expect(canRetry("running")).toBe(false);
    expect(canRetry("paused")).toBe(false);
  });
});
