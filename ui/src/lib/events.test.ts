import { describe, expect, it } from "vitest";
import { executionStatusOf, nodeStatusOf, reduceExecution, reduceList } from "./events";
import type { ExecutionDetail, ExecutionSummary, LifecycleEvent } from "./types";

function nodeEvent(node: string, status: string, attempt = 1, subject = "e1"): LifecycleEvent {
  return {
    id: `${subject}:${node}:${attempt}:${status}`,
    type: `io.spane.node.${status}`,
    subject,
    time: "2024-01-01T00:00:10Z",
    data: { execution_id: subject, workflow_id: "wf", node_id: node, attempt, status },
  };
}

function execEvent(status: string, subject = "e1", workflow = "wf", extra = {}): LifecycleEvent {
  return {
    id: `${subject}:${status}`,
    type: `io.spane.execution.${status}`,
    subject,
    time: "2024-01-01T00:00:20Z",
    data: { execution_id: subject, workflow_id: workflow, version: 2, status, ...extra },
  };
}

const detail: ExecutionDetail = {
  id: "e1",
  workflow_id: "wf",
  version: 2,
  status: "running",
  created_at: 1704067200,
  nodes: [{ id: "a", status: "running", attempt: 1, started_at: 1704067205 }],
};

describe("event statuses", () => {
  it("maps lifecycle statuses", () => {
    expect(executionStatusOf(execEvent("started"))).toBe("running");
    expect(executionStatusOf(execEvent("resumed"))).toBe("running");
    expect(executionStatusOf(nodeEvent("a", "started"))).toBeNull();
    expect(nodeStatusOf(nodeEvent("a", "retrying"))).toBe("waiting");
    expect(nodeStatusOf(nodeEvent("a", "bogus"))).toBeNull();
  });
});

describe("reduceExecution", () => {
  it("finishes a node with the event's time", () => {
    const next = reduceExecution(detail, nodeEvent("a", "succeeded"));
    expect(next.nodes[0]).toMatchObject({ id: "a", status: "succeeded", finished_at: 1704067210, started_at: 1704067205 });
    expect(detail.nodes[0].status).toBe("running"); // pure
  });

  it("adds a node it has not seen", () => {
    const next = reduceExecution(detail, nodeEvent("b", "started", 2));
    expect(next.nodes.map((n) => [n.id, n.status, n.attempt])).toEqual([
      ["a", "running", 1],
      ["b", "running", 2],
    ]);
    expect(next.nodes[1].started_at).toBe(1704067210);
  });

  it("changes the execution status and ignores other executions", () => {
    expect(reduceExecution(detail, execEvent("paused")).status).toBe("paused");
    const done = reduceExecution(detail, execEvent("succeeded"));
    expect(done.status).toBe("succeeded");
    expect(done.finished_at).toBe(1704067220);
    expect(reduceExecution(detail, nodeEvent("a", "failed", 1, "other"))).toBe(detail);
  });
});

describe("reduceList", () => {
  const items: ExecutionSummary[] = [{ id: "e1", workflow_id: "wf", version: 2, status: "running", created_at: 1 }];

  it("updates a listed execution", () => {
    expect(reduceList(items, execEvent("succeeded"), {})[0].status).toBe("succeeded");
  });

  it("puts a new matching execution on top", () => {
    const next = reduceList(items, execEvent("started", "e2"), { workflow_id: "wf" });
    expect(next.map((i) => i.id)).toEqual(["e2", "e1"]);
    expect(next[0]).toMatchObject({ status: "running", version: 2 });
  });

  it("respects the filters", () => {
    expect(reduceList(items, execEvent("started", "e3", "other"), { workflow_id: "wf" })).toBe(items);
    expect(reduceList(items, execEvent("succeeded"), { status: "running" })).toEqual([]);
    expect(reduceList(items, nodeEvent("a", "succeeded"), {})).toBe(items);
    expect(reduceList(items, execEvent("started", "c1", "wf", { parent_execution_id: "e1" }), {})).toBe(items);
  });
});
