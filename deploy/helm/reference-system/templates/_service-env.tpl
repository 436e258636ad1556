{{/* The environment of a service's container and of its relay sidecar:
     exactly the variables their settings classes read (tests/charts). */}}

{{/* What both read alike: telemetry and log level, their database and
     RabbitMQ logins with their TLS settings; .name is the OTel service name. */}}
{{- define "rs.commonEnv" -}}
OTEL_SERVICE_NAME: {{ .name | quote }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ include "rs.otelEndpoint" .root | quote }}
LOG_LEVEL: {{ .root.Values.logLevel | quote }}
DATABASE_HOST: {{ include "rs.postgresHost" .root | quote }}
DATABASE_PORT: {{ .root.Values.postgresql.port | quote }}
DATABASE_NAME: {{ .svc.database | quote }}
DATABASE_USER: {{ .svc.database | quote }}
{{ include "rs.databaseTlsEnv" .root }}
RABBITMQ_HOST: {{ include "rs.rabbitmqHost" .root | quote }}
RABBITMQ_PORT: {{ include "rs.rabbitmqPort" .root | quote }}
RABBITMQ_VHOST: "/"
RABBITMQ_USER: {{ .svc.rabbitmqUser | quote }}
{{ include "rs.rabbitmqTlsEnv" .root }}
{{- end -}}

{{- define "rs.serviceEnv" -}}
{{ include "rs.commonEnv" (dict "root" .root "svc" .svc "name" .key) }}
HTTP_PORT: "8080"
DATABASE_POOL_SIZE: {{ .svc.databasePool.poolSize | quote }}
DATABASE_MAX_OVERFLOW: {{ .svc.databasePool.maxOverflow | quote }}
{{- if .svc.kafka }}
KAFKA_BOOTSTRAP_SERVERS: {{ include "rs.kafkaBootstrap" .root | quote }}
{{ include "rs.kafkaTlsEnv" .root }}
{{- end }}
{{- if .svc.smtp }}
SMTP_HOST: {{ include "rs.smtpHost" .root | quote }}
SMTP_PORT: {{ .root.Values.mailpit.smtpPort | quote }}
SMTP_SECURITY: {{ .root.Values.mailpit.smtpSecurity | quote }}
{{- with .root.Values.mailpit.smtpUsername }}
SMTP_USERNAME: {{ . | quote }}
{{- end }}
{{- if and (ne .root.Values.mailpit.smtpSecurity "none") (include "rs.caFile" .root) }}
SMTP_SSL_CAFILE: {{ include "rs.caFile" .root | quote }}
{{- end }}
{{- end }}
{{- include "rs.redisEnv" .root }}
{{- range $k, $v := .svc.env }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/* The live feed's: LiveFeedSettings (RedisSettings, TelemetrySettings,
     HttpSettings, the services' base URLs and the UIs the page links to). */}}
{{- define "rs.liveFeedEnv" -}}
OTEL_SERVICE_NAME: "live-feed"
OTEL_EXPORTER_OTLP_ENDPOINT: {{ include "rs.otelEndpoint" . | quote }}
LOG_LEVEL: {{ .Values.logLevel | quote }}
HTTP_PORT: "8080"
{{- include "rs.redisEnv" . }}
{{- range $key, $var := dict "order-service" "ORDER_SERVICE_URL" "point-service" "POINT_SERVICE_URL" "notification-service" "NOTIFICATION_SERVICE_URL" }}
{{ $var }}: {{ printf "http://%s:8080" (include "rs.name" (dict "root" $ "name" $key)) | quote }}
{{- end }}
{{- with .Values.liveFeed.traceUiUrl }}
TRACE_UI_URL: {{ . | quote }}
{{- end }}
{{- with .Values.liveFeed.mailUiUrl }}
MAIL_UI_URL: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "rs.relayEnv" -}}
{{ include "rs.commonEnv" (dict "root" .root "svc" .svc "name" (printf "%s-relay" .svc.database)) }}
HTTP_PORT: {{ .root.Values.relay.port | quote }}
KAFKA_BOOTSTRAP_SERVERS: {{ include "rs.kafkaBootstrap" .root | quote }}
{{ include "rs.kafkaTlsEnv" .root }}
{{- range $k, $v := .root.Values.relay.env }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end -}}
