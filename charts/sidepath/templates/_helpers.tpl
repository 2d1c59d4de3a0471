{{/* Names, labels and the derived settings every template shares. */}}

{{- define "sidepath.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sidepath.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sidepath.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sidepath.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sidepath.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sidepath.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: worker
app.kubernetes.io/part-of: sidepath
app.kubernetes.io/managed-by: {{ .Release.Service }}
sidepath/region: {{ .Values.region | quote }}
sidepath/variant: {{ .Values.variant | quote }}
{{- end }}

{{- define "sidepath.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sidepath.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sidepath.image" -}}
{{- $repo := required "image.repository is required: set it to the image built from the Dockerfile" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The worker's settings the chart reads, with the worker's own defaults. */}}
{{- define "sidepath.metricsPort" -}}
{{- (.Values.config.metrics | default dict).port | default 9108 | int }}
{{- end }}

{{- define "sidepath.kafka" -}}
{{- $k := .Values.config.kafka | default dict }}
{{- dict
    "bootstrap_servers" ($k.bootstrap_servers | default "")
    "topic" ($k.topic | default "posts")
    "group_id" ($k.group_id | default "sidepath")
    "auto_offset_reset" ($k.auto_offset_reset | default "earliest")
    "security_protocol" ($k.security_protocol | default "PLAINTEXT")
    "sasl_mechanism" ($k.sasl_mechanism | default "")
  | toJson }}
{{- end }}

{{- define "sidepath.usesSasl" -}}
{{- $k := include "sidepath.kafka" . | fromJson }}
{{- if hasPrefix "SASL" $k.security_protocol }}true{{ end }}
{{- end }}

{{/* terminationGracePeriodSeconds: the worker's drain time, then leaving the group
(engine.close_timeout_s, worker default 10), plus a margin. */}}
{{- define "sidepath.terminationGrace" -}}
{{- $engine := .Values.config.engine | default dict }}
{{- $grace := $engine.shutdown_grace_s | default 25 }}
{{- $close := hasKey $engine "close_timeout_s" | ternary $engine.close_timeout_s 10 }}
{{- add (ceil $grace | int) (ceil $close | int) .Values.terminationMarginSeconds }}
{{- end }}

{{/* The start-up budget the startup probe allows (seconds). */}}
{{- define "sidepath.startupBudget" -}}
{{- mul .Values.probes.startup.periodSeconds .Values.probes.startup.failureThreshold }}
{{- end }}

{{/* The node label value a GPU must exceed: gpu.memory less gpu.nodeAffinity.marginPercent,
since GPU feature discovery labels less than the nominal size (a 16 GB T4 reads 15360 MiB). */}}
{{- define "sidepath.gpuMemoryFloorMiB" -}}
{{- $mib := include "sidepath.gpuMemoryMiB" . | int }}
{{- $margin := .Values.gpu.nodeAffinity.marginPercent | int }}
{{- sub (div (mul $mib (sub 100 $margin)) 100) 1 }}
{{- end }}

{{/* gpu.memory (e.g. 16Gi, 24576Mi) in MiB, for the node label comparison. */}}
{{- define "sidepath.gpuMemoryMiB" -}}
{{- $m := .Values.gpu.memory | toString }}
{{- if hasSuffix "Gi" $m }}
{{- mul (trimSuffix "Gi" $m | int) 1024 }}
{{- else }}
{{- trimSuffix "Mi" $m | int }}
{{- end }}
{{- end }}

{{- define "sidepath.replicas" -}}
{{- index .Values.replicas .Values.region | int }}
{{- end }}

{{/* Rendering-time checks the JSON schema cannot express; each fails with one line. */}}
{{- define "sidepath.validate" -}}
{{- $k := include "sidepath.kafka" . | fromJson }}
{{- $kv := .Values.config.kafka | default dict }}
{{- range $key := list "sasl_password" "ssl_key_password" }}
{{- if hasKey $kv $key }}
{{- fail (printf "config.kafka.%s: secrets never go in values; put it in the Secret named by secrets.existingSecret (the chart passes it as SIDEPATH_KAFKA_%s)" $key (upper $key)) }}
{{- end }}
{{- end }}
{{- if and (ne .Values.variant "main") (eq $k.group_id "sidepath") }}
{{- fail (printf "variant %q reads with consumer group %q, the main release's; set config.kafka.group_id to a group of its own, e.g. sidepath-%s" .Values.variant $k.group_id .Values.variant) }}
{{- end }}
{{- if and (or (include "sidepath.usesSasl" .) .Values.secrets.env .Values.secrets.kafkaSslKeyPasswordKey) (not .Values.secrets.existingSecret) }}
{{- fail "secrets.existingSecret is empty but SASL credentials or secrets.env are in use; create a Secret and name it in secrets.existingSecret" }}
{{- end }}
{{- $mode := .Values.autoscaling.mode }}
{{- $parts := .Values.autoscaling.partitions | int }}
{{- if ne $mode "none" }}
{{- if lt $parts 1 }}
{{- fail (printf "autoscaling.partitions is %d; set it to the partition count of topic %q so that maxReplicas can be checked against it" $parts $k.topic) }}
{{- end }}
{{- if gt (.Values.autoscaling.maxReplicas | int) $parts }}
{{- fail (printf "autoscaling.maxReplicas=%d exceeds autoscaling.partitions=%d: consumers beyond the partition count sit idle; lower maxReplicas to %d or add partitions" (.Values.autoscaling.maxReplicas | int) $parts $parts) }}
{{- end }}
{{- if gt (.Values.autoscaling.minReplicas | int) (.Values.autoscaling.maxReplicas | int) }}
{{- fail (printf "autoscaling.minReplicas=%d exceeds autoscaling.maxReplicas=%d; lower minReplicas" (.Values.autoscaling.minReplicas | int) (.Values.autoscaling.maxReplicas | int)) }}
{{- end }}
{{- else if and (gt $parts 0) (gt (include "sidepath.replicas" . | int) $parts) }}
{{- fail (printf "replicas.%s=%s exceeds autoscaling.partitions=%d: consumers beyond the partition count sit idle; lower it to %d" .Values.region (include "sidepath.replicas" .) $parts $parts) }}
{{- end }}
{{- if and (eq $mode "keda") (not (has $k.auto_offset_reset (list "earliest" "latest"))) }}
{{- fail (printf "config.kafka.auto_offset_reset=%q cannot be mirrored by KEDA's offsetResetPolicy; use earliest or latest with autoscaling.mode=keda" $k.auto_offset_reset) }}
{{- end }}
{{- end }}

{{/*
TOML writer. Helm's toToml prints every number as a float (replicas = 2.0), which
the worker's int keys and user models should not have to accept, so the chart
writes TOML itself: one [section] per top-level key, nested maps as inline tables.
*/}}
{{- define "sidepath.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "sidepath.tomlValue" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ toJson $v }}
{{- else if kindIs "bool" $v }}{{ $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) }}
{{- if eq (floor $v) $v }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) }}{{ $v }}
{{- else if kindIs "slice" $v }}[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "sidepath.tomlValue" $e }}{{ end }}]
{{- else if kindIs "map" $v }}{ {{- range $i, $k := keys $v | sortAlpha }}{{ if $i }},{{ end }} {{ include "sidepath.tomlKey" $k }} = {{ include "sidepath.tomlValue" (index $v $k) }}{{ end }} }
{{- else if kindIs "invalid" $v }}{{ fail "sidepath.toml cannot hold null values; remove the key instead" }}
{{- else }}{{ fail (printf "sidepath.toml cannot hold the value %v (%s)" $v (kindOf $v)) }}
{{- end }}
{{- end }}

{{- define "sidepath.toml" -}}
{{- range $section := keys . | sortAlpha }}
[{{ include "sidepath.tomlKey" $section }}]
{{- $body := index $ $section }}
{{- range $key := keys $body | sortAlpha }}
{{ include "sidepath.tomlKey" $key }} = {{ include "sidepath.tomlValue" (index $body $key) }}
{{- end }}
{{ end }}
{{- end }}

{{/* The effective sidepath.toml: values.config plus what the chart owns. */}}
{{- define "sidepath.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $service := $cfg.service | default dict }}
{{- $_ := set $service "name" ($service.name | default (include "sidepath.fullname" .)) }}
{{- $_ := set $service "namespace" .Release.Namespace }}
{{- $_ := set $cfg "service" $service }}
{{- $_ := set $cfg "deploy" (dict
    "cpu" (.Values.resources.requests.cpu | toString)
    "memory" (.Values.resources.requests.memory | toString)
    "gpu_memory" (.Values.gpu.memory | toString)
    "init_delay_seconds" (.Values.probes.initialDelaySeconds | int)
    "replicas" .Values.replicas) }}
{{- include "sidepath.toml" $cfg }}
{{- end }}
