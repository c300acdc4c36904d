// Writes spane/api/static/build-stamp.json: a sha256 over the dashboard's sources, so
// tests/unit/test_dashboard_build.py can tell when the committed build is stale.
// The same walk is done in Python there: keep both in step.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const UI = fileURLToPath(new URL("..", import.meta.url));
const ROOT_FILES = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"];
const SKIP = /\.test\.tsx?$/;

function walk(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...walk(path));
    else if (!SKIP.test(name)) found.push(path);
  }
  return found;
}

export function sourceFiles() {
  const files = [...ROOT_FILES.map((f) => join(UI, f)), ...walk(join(UI, "src"))];
  return files.map((f) => relative(UI, f).split(sep).join("/")).sort();
}

export function sourceHash() {
  const hash = createHash("sha256");
  for (const file of sourceFiles()) {
    hash.update(file + "\0");
    hash.update(readFileSync(join(UI, file)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

const stamp = { sha256: sourceHash(), files: sourceFiles().length };
writeFileSync(join(UI, "..", "spane", "api", "static", "build-stamp.json"), JSON.stringify(stamp, null, 2) + "\n");
console.log(`build-stamp.json: ${stamp.sha256}`);
