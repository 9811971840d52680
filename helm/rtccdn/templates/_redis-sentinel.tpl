{{- /*
A Sentinel-managed Redis for users who have none (redis.enabled and redis.sentinel.enabled):
redis.sentinel.replicas pods (3 by default), each a data node (redis-server) and a Sentinel
(redis-server --sentinel) from the same image as the single server. Pod 0 is the first primary,
the others its replicas; afterwards the Sentinels decide (quorum redis.sentinel.quorum) and a
(re)starting pod asks them whom to follow. Nodes are known by their DNS names through the headless
Service (replica-announce-ip, Sentinel's resolve-hostnames / announce-hostnames), so a pod's new IP
changes nothing. Clients get the redis+sentinel:// URL of the Secret (redis.yaml). The start
scripts are files/redis-sentinel/*.sh, in a ConfigMap.
*/}}
{{- define "rtccdn.redisSentinel" -}}
{{- $root := .root }}
{{- $name := include "rtccdn.redisName" $root }}
{{- $sentinel := $root.Values.redis.sentinel }}
{{- if lt (int $sentinel.replicas) 3 }}
{{- fail "redis.sentinel.replicas must be at least 3 (a failover needs a quorum of Sentinels and a replica to promote)" }}
{{- end }}
{{- if or (lt (int $sentinel.quorum) 1) (gt (int $sentinel.quorum) (int $sentinel.replicas)) }}
{{- fail "redis.sentinel.quorum must be between 1 and redis.sentinel.replicas" }}
{{- end }}
{{- $scripts := dict "common.sh" ($root.Files.Get "files/redis-sentinel/common.sh") "redis.sh" ($root.Files.Get "files/redis-sentinel/redis.sh") "sentinel.sh" ($root.Files.Get "files/redis-sentinel/sentinel.sh") "prestop.sh" ($root.Files.Get "files/redis-sentinel/prestop.sh") }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}-scripts
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "rtccdn.redisLabels" $root | nindent 4 }}
data:
  {{- range $file, $text := $scripts }}
  {{ $file }}: |
    {{- $text | nindent 4 }}
  {{- end }}
---
{{- if $root.Values.podDisruptionBudget.enabled }}
# A voluntary disruption (kubectl drain, a node upgrade) takes one Redis pod at a time: the others
# keep the quorum and a replica to promote.
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "rtccdn.redisLabels" $root | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "rtccdn.redisSelector" $root | nindent 6 }}
---
{{- end }}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "rtccdn.redisLabels" $root | nindent 4 }}
spec:
  serviceName: {{ $name }}-headless
  replicas: {{ $sentinel.replicas }}
  selector:
    matchLabels:
      {{- include "rtccdn.redisSelector" $root | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "rtccdn.redisLabels" $root | nindent 8 }}
      annotations:
        # The password is read at start: a new one (the Secret deleted and re-created) restarts Redis.
        rtccdn.io/password-hash: {{ $.password | sha256sum | trunc 16 | quote }}
        rtccdn.io/scripts-hash: {{ toJson $scripts | sha256sum | trunc 16 | quote }}
        {{- with $root.Values.redis.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with $root.Values.redis.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.redis.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      # The preStop of a primary waits up to 20 s for the failover it asked for.
      terminationGracePeriodSeconds: 40
      {{- with $root.Values.redis.podSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: redis
          image: "{{ $root.Values.redis.image.repository }}:{{ $root.Values.redis.image.tag | default $root.Chart.AppVersion }}"
          imagePullPolicy: {{ $root.Values.redis.image.pullPolicy }}
          args:
            - sh
            - /opt/rtccdn-redis/redis.sh
            {{- with $root.Values.redis.extraArgs }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          env:
            {{- include "rtccdn.redisSentinelEnv" $root | nindent 12 }}
            # How long a node the Sentinels still name as primary, restarted without its data,
            # waits for them to promote a replica (down-after plus the failover's time).
            - name: RTCCDN_FAILOVER_WAIT_S
              value: {{ div (add $sentinel.downAfterMilliseconds $sentinel.failoverTimeoutMilliseconds) 1000 | quote }}
          ports:
            - name: redis
              containerPort: 6379
              protocol: TCP
          # redis-cli exits 0 on an error reply (NOAUTH, LOADING): the reply itself is checked.
          readinessProbe:
            exec:
              command: ["sh", "-c", "test \"$(redis-cli -h 127.0.0.1 -p 6379 ping)\" = PONG"]
            periodSeconds: 5
            timeoutSeconds: 3
          livenessProbe:
            exec:
              command: ["sh", "-c", "case \"$(redis-cli -h 127.0.0.1 -p 6379 ping)\" in PONG | LOADING*) exit 0 ;; *) exit 1 ;; esac"]
            initialDelaySeconds: {{ add 10 (div (add $sentinel.downAfterMilliseconds $sentinel.failoverTimeoutMilliseconds) 1000) }}
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          lifecycle:
            preStop:
              exec:
                command: ["sh", "/opt/rtccdn-redis/prestop.sh"]
          {{- with $root.Values.redis.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $root.Values.redis.securityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: data
              mountPath: /data
            - name: scripts
              mountPath: /opt/rtccdn-redis
              readOnly: true
        - name: sentinel
          image: "{{ $root.Values.redis.image.repository }}:{{ $root.Values.redis.image.tag | default $root.Chart.AppVersion }}"
          imagePullPolicy: {{ $root.Values.redis.image.pullPolicy }}
          args: ["sh", "/opt/rtccdn-redis/sentinel.sh"]
          env:
            {{- include "rtccdn.redisSentinelEnv" $root | nindent 12 }}
            - name: RTCCDN_SENTINEL_QUORUM
              value: {{ $sentinel.quorum | quote }}
            - name: RTCCDN_SENTINEL_DOWN_AFTER_MS
              value: {{ $sentinel.downAfterMilliseconds | quote }}
            - name: RTCCDN_SENTINEL_FAILOVER_TIMEOUT_MS
              value: {{ $sentinel.failoverTimeoutMilliseconds | quote }}
          ports:
            - name: sentinel
              containerPort: 26379
              protocol: TCP
          readinessProbe:
            exec:
              command: ["sh", "-c", "test \"$(redis-cli -h 127.0.0.1 -p 26379 ping)\" = PONG"]
            periodSeconds: 5
            timeoutSeconds: 3
          livenessProbe:
            exec:
              command: ["sh", "-c", "test \"$(redis-cli -h 127.0.0.1 -p 26379 ping)\" = PONG"]
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          {{- with $sentinel.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $root.Values.redis.securityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: sentinel
              mountPath: /sentinel
            - name: scripts
              mountPath: /opt/rtccdn-redis
              readOnly: true
      volumes:
        - name: scripts
          configMap:
            name: {{ $name }}-scripts
        # Sentinel's configuration, which it rewrites (and which holds the password): in memory.
        - name: sentinel
          emptyDir:
            medium: Memory
            sizeLimit: 1Mi
        {{- if not $root.Values.redis.persistence.enabled }}
        # No persistence: the append-only file lives as long as the pod.
        - name: data
          emptyDir: {}
        {{- end }}
      {{- with $root.Values.redis.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.redis.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      affinity:
        {{- if $root.Values.redis.affinity }}
        {{- toYaml $root.Values.redis.affinity | nindent 8 }}
        {{- else }}
        # One pod per Kubernetes node where the cluster has enough: a node lost takes one data
        # node and one Sentinel.
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    {{- include "rtccdn.redisSelector" $root | nindent 20 }}
        {{- end }}
  {{- if $root.Values.redis.persistence.enabled }}
  # The claims outlive the StatefulSet (Kubernetes' default, Retain): `helm uninstall` keeps the
  # data; delete the PVCs data-{{ $name }}-<ordinal> to drop it.
  volumeClaimTemplates:
    - metadata:
        name: data
        labels:
          {{- include "rtccdn.redisSelector" $root | nindent 10 }}
      spec:
        accessModes: ["ReadWriteOnce"]
        {{- with $root.Values.redis.persistence.storageClass }}
        storageClassName: {{ if eq . "-" }}""{{ else }}{{ . | quote }}{{ end }}
        {{- end }}
        resources:
          requests:
            storage: {{ $root.Values.redis.persistence.size | quote }}
  {{- end }}
{{- end -}}
