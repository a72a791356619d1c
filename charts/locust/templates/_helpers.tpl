{{/* Chart name, truncated to 63 characters (DNS label). */}}
{{- define "locust.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-name + chart name, unless overridden. */}}
{{- define "locust.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "locust.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Selector labels: immutable, so only name and instance. */}}
{{- define "locust.selectorLabels" -}}
app.kubernetes.io/name: {{ include "locust.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Standard labels. */}}
{{- define "locust.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "locust.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | quote }}
app.kubernetes.io/part-of: readmit
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* registry/repository:tag (tag default: appVersion), or @digest when one is given. */}}
{{- define "locust.image" -}}
{{- $repo := printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Master or worker pods: the selector adds the role. */}}
{{- define "locust.roleSelectorLabels" -}}
{{ include "locust.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{/* What master and workers share: image, command, environment, security, volumes. */}}
{{- define "locust.podSpec" -}}
{{- $v := .ctx.Values -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: {{ .role }}
    image: {{ include "locust.image" .ctx | quote }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    command: [locust, -f, {{ if $v.locustfile }}/mnt/locustfile/locustfile.py{{ else }}/src/locustfile.py{{ end }}]
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      - name: READMIT_LOCUST_ENCOUNTERS
        value: {{ $v.load.encounters | quote }}
      - name: READMIT_LOCUST_BATCH_SIZE
        value: {{ $v.load.batchSize | quote }}
      - name: READMIT_LOCUST_WAIT_MIN_S
        value: {{ $v.load.waitMinSeconds | quote }}
      - name: READMIT_LOCUST_WAIT_MAX_S
        value: {{ $v.load.waitMaxSeconds | quote }}
      - name: READMIT_LOCUST_METRICS_PORT
        value: "9646"
      {{- if $v.data.existingClaim }}
      - name: READMIT_DATA
        value: /data/{{ $v.data.path }}
      {{- end }}
      {{- if $v.global.apiKeys.enabled }}
      # The key as a file from the mounted Secret, not an environment variable.
      - name: READMIT_API_KEY_FILE
        value: /var/run/secrets/readmit/api-key
      {{- end }}
    {{- with .ports }}
    ports:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .probes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    resources:
      {{- toYaml (index $v.resources .role) | nindent 6 }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: [ALL]
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- if $v.locustfile }}
      - name: locustfile
        mountPath: /mnt/locustfile
        readOnly: true
      {{- end }}
      {{- if $v.data.existingClaim }}
      - name: data
        mountPath: /data
        readOnly: true
      {{- end }}
      {{- if $v.global.apiKeys.enabled }}
      - name: api-key
        mountPath: /var/run/secrets/readmit
        readOnly: true
      {{- end }}
volumes:
  - name: tmp
    emptyDir: {}
  {{- if $v.locustfile }}
  - name: locustfile
    configMap:
      name: {{ include "locust.fullname" .ctx }}-locustfile
  {{- end }}
  {{- if $v.data.existingClaim }}
  - name: data
    persistentVolumeClaim:
      claimName: {{ $v.data.existingClaim }}
      readOnly: true
  {{- end }}
  {{- if $v.global.apiKeys.enabled }}
  - name: api-key
    secret:
      secretName: {{ $v.global.apiKeys.existingSecret | default (printf "%s-api-keys" .ctx.Release.Name) }}
      items: [{key: {{ $v.global.apiKeys.secretKey }}, path: api-key}]
      defaultMode: 0440
  {{- end }}
{{- end }}
