import { describe, expect, it } from "vitest";
import { shorten, showBody } from "./deadletters";

describe("showBody", () => {
  it("pretty-prints a JSON body", () => {
    expect(showBody('{"a":1,"b":[true]}', "utf-8")).toEqual({
      text: '{\n  "a": 1,\n  "b": [\n    true\n  ]\n}',
      format: "json",
    });
  });

  it("shows other text as it is", () => {
    expect(showBody("not json {", "utf-8")).toEqual({ text: "not json {", format: "text" });
    expect(showBody("", "utf-8").format).toBe("text");
  });

  it("decodes base64 UTF-8 text", () => {
    expect(showBody(btoa('{"x":"y"}'), "base64")).toEqual({ text: '{\n  "x": "y"\n}', format: "json" });
  });

  it("leaves binary base64 as it is, with a note", () => {
    const shown = showBody(btoa(String.fromCharCode(0xff, 0xfe, 0x00)), "base64");
    expect(shown.format).toBe("binary");
    expect(shown.note).toContain("3 bytes");
  });
});

describe("shorten", () => {
  it("keeps short text and cuts long text on one line", () => {
    expect(shorten("a\n b")).toBe("a b");
    expect(shorten("x".repeat(10), 5)).toBe("xxxx…");
  });
});
