{{/* Names, labels and the endpoints every component is configured with. */}}

{{- define "rs.name" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rs.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "rs.labels" -}}
{{ include "rs.selector" . }}
app.kubernetes.io/part-of: reference-system
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "rs.image" -}}
{{- $i := .root.Values.images -}}
{{- if $i.registry -}}{{ printf "%s/" $i.registry }}{{- end -}}
{{- printf "%s/%s:%s" $i.repository .image $i.tag -}}
{{- end -}}

{{- define "rs.secretName" -}}
{{- .Values.credentials.existingSecret | default (printf "%s-credentials" .Release.Name) -}}
{{- end -}}

{{- define "rs.kafkaBootstrap" -}}
{{- if .Values.kafka.enabled -}}
{{- printf "%s-kafka:9092" .Release.Name -}}
{{- else -}}
{{- required "kafka.bootstrapServers is required when kafka.enabled is false" .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{- define "rs.rabbitmqHost" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- printf "%s-rabbitmq" .Release.Name -}}
{{- else -}}
{{- required "rabbitmq.host is required when rabbitmq.enabled is false" .Values.rabbitmq.host -}}
{{- end -}}
{{- end -}}

{{- define "rs.rabbitmqManagementUrl" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- printf "http://%s-rabbitmq:15672" .Release.Name -}}
{{- else -}}
{{- required "rabbitmq.managementUrl is required when rabbitmq.enabled is false" .Values.rabbitmq.managementUrl -}}
{{- end -}}
{{- end -}}

{{- define "rs.postgresHost" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-postgresql" .Release.Name -}}
{{- else -}}
{{- required "postgresql.host is required when postgresql.enabled is false" .Values.postgresql.host -}}
{{- end -}}
{{- end -}}

{{- define "rs.smtpHost" -}}
{{- if .Values.mailpit.enabled -}}
{{- printf "%s-mailpit" .Release.Name -}}
{{- else -}}
{{- required "mailpit.smtpHost is required when mailpit.enabled is false" .Values.mailpit.smtpHost -}}
{{- end -}}
{{- end -}}

{{- define "rs.otelEndpoint" -}}
{{- if .Values.otel.endpoint -}}
{{- .Values.otel.endpoint -}}
{{- else if .Values.jaeger.enabled -}}
{{- printf "http://%s-jaeger:4317" .Release.Name -}}
{{- end -}}
{{- end -}}

{{/* Pod and container hardening shared by the system's own workloads. */}}
{{- define "rs.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "rs.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* HTTP probes on the endpoints messaging.health and the relay serve. */}}
{{- define "rs.probes" -}}
startupProbe:
  httpGet: {path: /health/live, port: {{ .port }}}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /health/live, port: {{ .port }}}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /health/ready, port: {{ .port }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* The variables every settings class of the service reads, from the
     service's own database and RabbitMQ user (messaging.settings). */}}
{{- define "rs.secretEnv" -}}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "rs.secretName" .root }}, key: {{ .svc.database }}-database-password}
- name: RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "rs.secretName" .root }}, key: {{ .svc.rabbitmqUser }}-rabbitmq-password}
{{- end -}}
