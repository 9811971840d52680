{{/* Chart name, truncated to fit label values. */}}
{{- define "rtccdn.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name (the release name alone when it already contains the chart name). */}}
{{- define "rtccdn.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of the operator's Deployment, Service and (default) ServiceAccount. */}}
{{- define "rtccdn.operatorName" -}}
{{- printf "%s-operator" (include "rtccdn.fullname" .) -}}
{{- end -}}

{{- define "rtccdn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rtccdn.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rtccdn.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: rtccdn
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector of the operator pods (immutable in a Deployment: keep it minimal). */}}
{{- define "rtccdn.operatorSelector" -}}
app.kubernetes.io/name: rtccdn-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Name of the chart's Redis: its StatefulSet, Service and Secret (`<name>-headless` governs the pods). */}}
{{- define "rtccdn.redisName" -}}
{{- printf "%s-redis" (include "rtccdn.fullname" .) -}}
{{- end -}}

{{/* Selector of the Redis pod (immutable in a StatefulSet: keep it minimal). */}}
{{- define "rtccdn.redisSelector" -}}
app.kubernetes.io/name: rtccdn-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of the chart's Redis objects: the chart's, plus its name and component. */}}
{{- define "rtccdn.redisLabels" -}}
{{ include "rtccdn.labels" . }}
app.kubernetes.io/name: rtccdn-redis
app.kubernetes.io/component: redis
{{- end -}}

{{/* The Sentinel group's pods' DNS names (through the headless Service), with the Sentinel port, comma-separated. */}}
{{- define "rtccdn.redisSentinelHosts" -}}
{{- $name := include "rtccdn.redisName" . -}}
{{- $hosts := list -}}
{{- range $i := until (int .Values.redis.sentinel.replicas) -}}
{{- $hosts = append $hosts (printf "%s-%d.%s-headless.%s.svc:26379" $name $i $name $.Release.Namespace) -}}
{{- end -}}
{{- join "," $hosts -}}
{{- end -}}

{{/* Environment of both containers of the Sentinel-managed Redis (files/redis-sentinel/common.sh). */}}
{{- define "rtccdn.redisSentinelEnv" -}}
{{- $name := include "rtccdn.redisName" . -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: RTCCDN_REDIS_SET
  value: {{ $name }}
- name: RTCCDN_REDIS_HEADLESS
  value: {{ printf "%s-headless.%s.svc" $name .Release.Namespace }}
- name: RTCCDN_REDIS_REPLICAS
  value: {{ .Values.redis.sentinel.replicas | quote }}
- name: RTCCDN_SENTINEL_MASTER
  value: {{ .Values.redis.sentinel.masterName }}
# Read by the start scripts (requirepass, masterauth, the Sentinels' auth; never on a command line).
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: password
# Read by redis-cli (the probes, the scripts, `kubectl exec ... redis-cli`).
- name: REDISCLI_AUTH
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: password
{{- end -}}
