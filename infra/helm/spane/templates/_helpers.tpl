{{/*
Names and labels. fullname is truncated to 40 characters so that suffixes such as
"-worker-<pool>" still fit the 63-character limit of names and label values.
*/}}
{{- define "spane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "spane.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "spane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "spane.labels" -}}
helm.sh/chart: {{ include "spane.chart" . }}
{{ include "spane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: spane
{{- end }}

{{- define "spane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "orchestrator"). */}}
{{- define "spane.componentSelector" -}}
{{ include "spane.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Worker names and labels: (dict "root" $ "pool" $pool). */}}
{{- define "spane.workerName" -}}
{{- printf "%s-worker-%s" (include "spane.fullname" .root) .pool.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "spane.workerSelector" -}}
{{ include "spane.componentSelector" (dict "root" .root "component" "worker") }}
spane.io/pool: {{ .pool.name }}
{{- end }}

{{/* The pool (queue) an entry serves: .pool.pool, else its name. */}}
{{- define "spane.poolType" -}}
{{- default .name .pool -}}
{{- end }}

{{/*
The worker's `--pool` value: the pool, or TYPE:POOL when .pool.type names a task type
other than the pool (`function:scoring` runs function tasks routed to pool scoring).
*/}}
{{- define "spane.poolArg" -}}
{{- $pool := include "spane.poolType" . -}}
{{- if and .type (ne .type $pool) -}}
{{- printf "%s:%s" .type $pool -}}
{{- else -}}
{{- $pool -}}
{{- end -}}
{{- end }}

{{/*
The RabbitMQ queue of a pool, as spane.bus.topology.Topology(namespace).task_queue
builds it: "<namespace>.tasks.<pool>". tests/infra checks the two agree.
*/}}
{{- define "spane.taskQueue" -}}
{{- printf "%s.tasks.%s" .root.Values.config.namespace (include "spane.poolType" .pool) -}}
{{- end }}

{{- define "spane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "spane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the server URLs: existingSecret, or the one this chart creates. */}}
{{- define "spane.secretName" -}}
{{- if .Values.servers.existingSecret }}
{{- .Values.servers.existingSecret }}
{{- else }}
{{- printf "%s-servers" (include "spane.fullname" .) }}
{{- end }}
{{- end }}

{{/* image reference: (dict "root" $ "image" $override) — override fields win. */}}
{{- define "spane.image" -}}
{{- $image := merge (deepCopy (default (dict) .image)) (deepCopy .root.Values.image) }}
{{- $tag := default .root.Chart.AppVersion $image.tag | toString }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository $tag }}
{{- end }}
{{- end }}

{{- define "spane.imagePullPolicy" -}}
{{- $image := merge (deepCopy (default (dict) .image)) (deepCopy .root.Values.image) }}
{{- $image.pullPolicy }}
{{- end }}

{{/*
Environment of every SPANE process: the server URLs from the Secret, then the settings.
Extra variables (a map) follow: (dict "root" $ "extra" $map).
*/}}
{{- define "spane.env" -}}
{{- $root := .root }}
{{- $keys := $root.Values.servers.secretKeys -}}
- name: SPANE_AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "spane.secretName" $root }}
      key: {{ $keys.amqpUrl }}
- name: SPANE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "spane.secretName" $root }}
      key: {{ $keys.redisUrl }}
- name: SPANE_MONGODB_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "spane.secretName" $root }}
      key: {{ $keys.mongodbUrl }}
- name: SPANE_NAMESPACE
  value: {{ $root.Values.config.namespace | quote }}
- name: SPANE_LOG_LEVEL
  value: {{ $root.Values.config.logLevel | quote }}
- name: SPANE_METRICS_PORT
  value: {{ $root.Values.metrics.port | quote }}
{{- range $name, $value := $root.Values.config.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $name, $value := .extra }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pods when the chart-made Secret changes. */}}
{{- define "spane.podAnnotations" -}}
{{- $annotations := dict }}
{{- if not .Values.servers.existingSecret }}
{{- $_ := set $annotations "checksum/servers" (include (print .Template.BasePath "/secret.yaml") . | sha256sum) }}
{{- end }}
{{- range $key, $value := .Values.podAnnotations }}
{{- $_ := set $annotations $key $value }}
{{- end }}
{{- if $annotations }}
{{- toYaml $annotations }}
{{- end }}
{{- end }}

{{- define "spane.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "spane.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Probes on /livez and /readyz of a named port. */}}
{{- define "spane.probes" -}}
startupProbe:
  httpGet:
    path: /livez
    port: {{ .port }}
  periodSeconds: 5
  failureThreshold: 24
livenessProbe:
  httpGet:
    path: /livez
    port: {{ .port }}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .port }}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/* Preferred anti-affinity: spread replicas of one component over nodes. */}}
{{- define "spane.spreadAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- .selector | nindent 12 }}
{{- end }}

{{/*
One pool entry with poolDefaults filled in, as YAML (use with fromYaml):
(dict "root" $ "entry" $entry). The entry's own fields replace the defaults;
`autoscaling` is merged field by field. (Not sprig's merge: it treats 0 and false as
unset, and minReplicas: 0 or enabled: false must win.)
*/}}
{{- define "spane.pool" -}}
{{- $pool := dict }}
{{- range $key, $value := .root.Values.poolDefaults }}
{{- $_ := set $pool $key $value }}
{{- end }}
{{- range $key, $value := .entry }}
{{- $_ := set $pool $key $value }}
{{- end }}
{{- $autoscaling := dict }}
{{- range $key, $value := .root.Values.poolDefaults.autoscaling }}
{{- $_ := set $autoscaling $key $value }}
{{- end }}
{{- range $key, $value := (default (dict) .entry.autoscaling) }}
{{- $_ := set $autoscaling $key $value }}
{{- end }}
{{- $_ := set $pool "autoscaling" $autoscaling }}
{{- if not $pool.pool }}
{{- $_ := set $pool "pool" $pool.name }}
{{- end }}
{{- toYaml $pool }}
{{- end }}
