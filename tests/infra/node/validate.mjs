// Validate custom resources offline against their CRDs' JSON schemas, using the models
// published as npm packages (@kubernetes-models/keda, @kubernetes-models/prometheus-operator).
//
// Usage: node validate.mjs < manifests.json
//
// Standard input: one JSON document, either a single resource or an array of resources
// (YAML is not parsed here; tests/infra converts the rendered chart to JSON first).
// Prints one line per resource ("ok <kind>/<name>" or "invalid <kind>/<name>: <errors>")
// and exits 0 when every resource is valid, 1 when one is not, 2 on a usage error (bad
// JSON, or a kind this script has no schema for: that is an error, not a silent pass).

import { readFileSync } from "node:fs";

import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

function describe(error) {
  if (Array.isArray(error?.details)) {
    return error.details
      .map((d) => `${d.instancePath || "/"} ${d.message}${d.params ? " " + JSON.stringify(d.params) : ""}`)
      .join("; ");
  }
  return String(error?.message ?? error);
}

let documents;
try {
  documents = JSON.parse(readFileSync(0, "utf8"));
} catch (error) {
  console.error(`validate.mjs: standard input is not JSON: ${error.message}`);
  process.exit(2);
}
if (!Array.isArray(documents)) documents = [documents];

let invalid = 0;
for (const doc of documents) {
  const key = `${doc?.apiVersion}/${doc?.kind}`;
  const name = `${doc?.kind}/${doc?.metadata?.name}`;
  const Model = MODELS[key];
  if (!Model) {
    console.error(`validate.mjs: no schema for ${key} (known: ${Object.keys(MODELS).join(", ")})`);
    process.exit(2);
  }
  try {
    new Model(doc).validate();
    console.log(`ok ${name}`);
  } catch (error) {
    invalid += 1;
    console.log(`invalid ${name}: ${describe(error)}`);
  }
}
process.exit(invalid ? 1 : 0);
