{{/* What master and workers share: image, command, environment, security, volumes. */}}
{{- define "locust.podSpec" -}}
{{- $v := .ctx.Values -}}
{{- $master := eq .role "master" -}}
automountServiceAccountToken: false
securityContext:
  {{- include "common.pods.securityContext" . | nindent 2 }}
containers:
  - name: {{ .role }}
    image: {{ include "common.images.image" .ctx | quote }}
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
        value: {{ include "common.services.port" "locust-metrics" | quote }}
      - name: READMIT_API_URL
        value: {{ include "locust.apiUrl" .ctx | quote }}
      {{- if $master }}
      - name: READMIT_LOCUST_MAX_USERS
        value: {{ $v.load.maxUsers | quote }}
      - name: READMIT_LOCUST_MAX_SPAWN_RATE
        value: {{ $v.load.maxSpawnRate | quote }}
      - name: READMIT_LOCUST_WEB_PASSWORD_FILE
        value: /var/run/secrets/readmit-locust/password
      {{- end }}
      {{- if $v.data.existingClaim }}
      - name: READMIT_DATA
        value: /data/{{ $v.data.path }}
      {{- end }}
      {{- include "common.pods.apiKeyEnv" .ctx | nindent 6 }}
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
      {{- include "common.pods.containerSecurityContext" . | nindent 6 }}
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
      {{- include "common.pods.apiKeyVolumeMount" .ctx | nindent 6 }}
      {{- if $master }}
      - name: web-login
        mountPath: /var/run/secrets/readmit-locust
        readOnly: true
      {{- end }}
volumes:
  - name: tmp
    emptyDir: {}
  {{- if $v.locustfile }}
  - name: locustfile
    configMap:
      name: {{ include "common.names.fullname" .ctx }}-locustfile
  {{- end }}
  {{- if $v.data.existingClaim }}
  - name: data
    persistentVolumeClaim:
      claimName: {{ $v.data.existingClaim }}
      readOnly: true
  {{- end }}
  {{- include "common.pods.apiKeyVolume" (dict "ctx" .ctx "client" "locust") | nindent 2 }}
  {{- if $master }}
  - name: web-login
    secret:
      secretName: {{ include "locust.webSecretName" .ctx }}
      items: [{key: password, path: password}]
      defaultMode: 0440
  {{- end }}
{{- end }}
