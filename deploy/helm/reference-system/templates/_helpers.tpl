{{/* Names, labels and the endpoints every component is configured with. */}}

{{/* The name of a component's objects: <release>-<component> (or
     <fullnameOverride>-<component>), at most 50 characters so that every
     suffix the chart adds (-headless, -relay-env, -provisioning, the
     provisioning Job's digest, at most 13) and a StatefulSet's
     controller-revision-hash label (name + 11) stay within 63. */}}
{{- define "rs.name" -}}
{{- $prefix := .root.Values.fullnameOverride | default .root.Release.Name -}}
{{- if gt (add (len $prefix) (len .name) 1 | int) 50 -}}
{{- /* A long release name is shortened, not the component: its start and a
       digest of the whole, so that two long names stay apart. */ -}}
{{- $prefix = printf "%s-%s" ($prefix | trunc (sub 42 (len .name) | int) | trimSuffix "-") ($prefix | sha256sum | trunc 6) -}}
{{- end -}}
{{- printf "%s-%s" $prefix .name -}}
{{- end -}}

{{- define "rs.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* What each part of the release is (app.kubernetes.io/component). */}}
{{- define "rs.component" -}}
{{- $components := dict
  "order-service" "service" "point-service" "service" "notification-service" "service"
  "kafka" "event-broker" "rabbitmq" "command-broker" "postgresql" "database"
  "prometheus" "metrics" "grafana" "dashboards" "jaeger" "tracing" "mailpit" "mail"
  "provision" "provisioning" "test-order-flow" "test"
  "redis" "notice-broker" "live-feed" "gateway" -}}
{{- get $components .name | default "configuration" -}}
{{- end -}}

{{/* Labels of a pod template: nothing that changes with the chart's or the
     app's version, so that a chart upgrade restarts only the pods whose
     image or configuration changed (infrastructure keeps running). */}}
{{- define "rs.podLabels" -}}
{{ include "rs.selector" . }}
app.kubernetes.io/component: {{ include "rs.component" . }}
app.kubernetes.io/part-of: {{ .root.Values.nameOverride | default .root.Chart.Name }}
{{- end -}}

{{- define "rs.labels" -}}
{{ include "rs.podLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* An image reference, `[registry/]repository:tag` or `…@digest`, from
     an image block (registry, repository, tag, digest, pullPolicy); empty
     fields come from `defaults`. global.imageRegistry, when set, replaces
     every registry (a mirror of everything, as in Bitnami's charts); the
     tag defaults to the chart's appVersion; a digest wins over the tag. */}}
{{- define "rs.image" -}}
{{- $i := merge (dict) .image (.defaults | default dict) -}}
{{- $registry := .root.Values.global.imageRegistry | default $i.registry -}}
{{- $ref := $i.repository -}}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $ref $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref ($i.tag | default .root.Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{/* image and imagePullPolicy of a container running one of the system's
     own images (deploy/docker/Dockerfile): .image is the component's block,
     .Values.image supplies what it leaves empty. */}}
{{- define "rs.ownImage" -}}
image: {{ include "rs.image" (dict "root" .root "image" .image "defaults" .root.Values.image) | quote }}
imagePullPolicy: {{ .image.pullPolicy | default .root.Values.image.pullPolicy }}
{{- end -}}

{{/* image and imagePullPolicy of an infrastructure container. */}}
{{- define "rs.infraImage" -}}
image: {{ include "rs.image" (dict "root" .root "image" .image) | quote }}
imagePullPolicy: {{ .image.pullPolicy }}
{{- end -}}

{{/* imagePullSecrets of every pod: global.imagePullSecrets and
     imagePullSecrets, each entry a name or {name: …}. */}}
{{- define "rs.imagePullSecrets" -}}
{{- $names := list -}}
{{- range $s := concat (.Values.global.imagePullSecrets | default list) (.Values.imagePullSecrets | default list) -}}
{{- $name := $s -}}
{{- if kindIs "map" $s }}{{ $name = get $s "name" }}{{ end -}}
{{- if and $name (not (has $name $names)) }}{{ $names = append $names $name }}{{ end -}}
{{- end -}}
{{- if $names }}
imagePullSecrets:
{{- range $names }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "rs.secretName" -}}
{{- .Values.credentials.existingSecret | default (include "rs.name" (dict "root" . "name" "credentials")) -}}
{{- end -}}

{{/* The chart-managed credentials (base64), computed once per rendering:
     kept from the live Secret on upgrade (lookup), generated on install.
     templates/secret.yaml renders them, and pod templates hash the keys
     they read, so that a changed password rolls exactly those pods. */}}
{{- define "rs.credentials" -}}
{{- if not (hasKey .Values "__credentials") -}}
{{- $existing := (lookup "v1" "Secret" .Release.Namespace (include "rs.secretName" .)) | default dict -}}
{{- $data := (get $existing "data") | default dict -}}
{{- $keys := list "postgres-admin-password" "rabbitmq-admin-password" "grafana-admin-password" "redis-password" -}}
{{- range $svc := list "order" "point" "notification" -}}
{{- $keys = append $keys (printf "%s-database-password" $svc) -}}
{{- $keys = append $keys (printf "%s-rabbitmq-password" $svc) -}}
{{- end -}}
{{- $credentials := dict -}}
{{- range $key := $keys -}}
{{- $_ := set $credentials $key ((get $data $key) | default (randAlphaNum 32 | b64enc)) -}}
{{- end -}}
{{- $_ := set .Values "__credentials" $credentials -}}
{{- end -}}
{{- toJson (get .Values "__credentials") -}}
{{- end -}}

{{/* checksum/secret of a pod reading these keys; empty with an existing
     Secret, whose changes the chart cannot see (roll with
     `kubectl rollout restart`, or a controller such as Reloader). */}}
{{- define "rs.secretChecksum" -}}
{{- if not .root.Values.credentials.existingSecret -}}
{{- $credentials := include "rs.credentials" .root | fromJson -}}
{{- $values := list -}}
{{- range $key := .keys }}{{ $values = append $values (get $credentials $key) }}{{ end -}}
{{- $values | join "," | sha256sum -}}
{{- end -}}
{{- end -}}

{{- define "rs.kafkaBootstrap" -}}
{{- if .Values.kafka.enabled -}}
{{- printf "%s:9092" (include "rs.name" (dict "root" . "name" "kafka")) -}}
{{- else -}}
{{- required "kafka.bootstrapServers is required when kafka.enabled is false" .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{- define "rs.rabbitmqHost" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- include "rs.name" (dict "root" . "name" "rabbitmq") -}}
{{- else -}}
{{- required "rabbitmq.host is required when rabbitmq.enabled is false" .Values.rabbitmq.host -}}
{{- end -}}
{{- end -}}

{{/* The AMQP port the clients connect to: rabbitmq.port, or when it is
     empty 5671 (AMQPS) with rabbitmq.tls and 5672 without. */}}
{{- define "rs.rabbitmqPort" -}}
{{- if .Values.rabbitmq.port -}}
{{- .Values.rabbitmq.port -}}
{{- else if .Values.rabbitmq.tls -}}
5671
{{- else -}}
5672
{{- end -}}
{{- end -}}

{{- define "rs.rabbitmqManagementUrl" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- printf "http://%s:15672" (include "rs.name" (dict "root" . "name" "rabbitmq")) -}}
{{- else -}}
{{- required "rabbitmq.managementUrl is required when rabbitmq.enabled is false" .Values.rabbitmq.managementUrl -}}
{{- end -}}
{{- end -}}

{{- define "rs.postgresHost" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "rs.name" (dict "root" . "name" "postgresql") -}}
{{- else -}}
{{- required "postgresql.host is required when postgresql.enabled is false" .Values.postgresql.host -}}
{{- end -}}
{{- end -}}

{{- define "rs.smtpHost" -}}
{{- if .Values.mailpit.enabled -}}
{{- include "rs.name" (dict "root" . "name" "mailpit") -}}
{{- else -}}
{{- required "mailpit.smtpHost is required when mailpit.enabled is false" .Values.mailpit.smtpHost -}}
{{- end -}}
{{- end -}}

{{/* Where the activity notices go: the in-cluster Redis, else redis.host;
     empty when neither (the services' feed is off, no live feed). */}}
{{- define "rs.redisHost" -}}
{{- if .Values.redis.enabled -}}
{{- include "rs.name" (dict "root" . "name" "redis") -}}
{{- else -}}
{{- .Values.redis.host -}}
{{- end -}}
{{- end -}}

{{- define "rs.redisPort" -}}
{{- if .Values.redis.enabled -}}6379{{- else -}}{{ .Values.redis.port }}{{- end -}}
{{- end -}}

{{/* The live feed runs when enabled and there is a Redis to read. */}}
{{- define "rs.liveFeedEnabled" -}}
{{- if and .Values.liveFeed.enabled (include "rs.redisHost" .) -}}true{{- end -}}
{{- end -}}

{{- define "rs.otelEndpoint" -}}
{{- if .Values.otel.endpoint -}}
{{- .Values.otel.endpoint -}}
{{- else if .Values.jaeger.enabled -}}
{{- printf "http://%s:4317" (include "rs.name" (dict "root" . "name" "jaeger")) -}}
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
{{- if .kafka }}
{{- include "rs.kafkaSaslPasswordEnv" .root }}
{{- end }}
{{- if and .smtp .root.Values.mailpit.smtpUsername }}
- name: SMTP_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "rs.secretName" .root }}, key: smtp-password}
{{- end }}
{{- if .redis }}
{{- include "rs.redisPasswordEnv" .root }}
{{- end }}
{{- end -}}

{{/* REDIS_PASSWORD (RedisSettings) when there is a Redis; with the feed off
     nothing reads it. */}}
{{- define "rs.redisPasswordEnv" -}}
{{- if include "rs.redisHost" . }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "rs.secretName" . }}, key: redis-password}
{{- end -}}
{{- end -}}

{{/* The Redis variables of RedisSettings, for a ConfigMap; none without a
     Redis: REDIS_HOST's default, empty, turns the activity notices off (and
     no ConfigMap value renders empty). */}}
{{- define "rs.redisEnv" -}}
{{- with include "rs.redisHost" . }}
REDIS_HOST: {{ . | quote }}
REDIS_PORT: {{ include "rs.redisPort" $ | quote }}
REDIS_TIMEOUT_MS: {{ $.Values.redis.timeoutMs | quote }}
{{- end }}
{{- end -}}

{{/* checksum/config of a pod: the `data` of the ConfigMap a template file
     renders (its labels, which change with every chart version, left out). */}}
{{- define "rs.configChecksum" -}}
{{- $rendered := include (print .root.Template.BasePath "/" .file) .root | fromYaml -}}
{{- get $rendered "data" | toJson | sha256sum -}}
{{- end -}}

{{/* Where a pod runs: the release-wide `scheduling`, with the component's
     own block (.own) winning key by key. A topology spread constraint
     without a labelSelector gets the component's selector. */}}
{{- define "rs.scheduling" -}}
{{- $s := merge (dict) (.own | default dict) .root.Values.scheduling -}}
{{- with $s.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $s.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $s.topologySpreadConstraints }}
topologySpreadConstraints:
{{- range $c := $s.topologySpreadConstraints }}
{{- $c = merge (dict) $c (dict "labelSelector" (dict "matchLabels" (include "rs.selector" $.ctx | fromYaml))) }}
  - {{- toYaml $c | nindent 4 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* -- Secure connections ------------------------------------------------ */}}

{{/* Where the trusted CA bundle is mounted in every container of ours that
     connects to something; empty when none is configured (system store). */}}
{{- define "rs.caFile" -}}
{{- $ca := .Values.tls.caBundle -}}
{{- if or $ca.configMap $ca.secret -}}
{{- printf "/etc/reference-system/ca/%s" $ca.key -}}
{{- end -}}
{{- end -}}

{{- define "rs.caVolume" -}}
{{- $ca := .Values.tls.caBundle -}}
{{- if $ca.configMap }}
- name: ca-bundle
  configMap: {name: {{ $ca.configMap }}, items: [{key: {{ $ca.key }}, path: {{ $ca.key }}}]}
{{- else if $ca.secret }}
- name: ca-bundle
  secret: {secretName: {{ $ca.secret }}, items: [{key: {{ $ca.key }}, path: {{ $ca.key }}}]}
{{- end -}}
{{- end -}}

{{- define "rs.caMount" -}}
{{- if include "rs.caFile" . }}
- {name: ca-bundle, mountPath: /etc/reference-system/ca, readOnly: true}
{{- end -}}
{{- end -}}

{{- define "rs.kafkaTls" -}}
{{- has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") -}}
{{- end -}}

{{/* Variables of DatabaseSettings, RabbitMQSettings and KafkaSettings that
     make their connections secure (messaging.settings), for a ConfigMap. */}}
{{- define "rs.databaseTlsEnv" -}}
DATABASE_SSLMODE: {{ .Values.postgresql.sslmode | quote }}
{{- if and (include "rs.caFile" .) (has .Values.postgresql.sslmode (list "require" "verify-ca" "verify-full")) }}
DATABASE_SSLROOTCERT: {{ include "rs.caFile" . | quote }}
{{- end }}
{{- end -}}

{{- define "rs.rabbitmqTlsEnv" -}}
RABBITMQ_TLS: {{ .Values.rabbitmq.tls | quote }}
{{- if and .Values.rabbitmq.tls (include "rs.caFile" .) }}
RABBITMQ_SSL_CAFILE: {{ include "rs.caFile" . | quote }}
{{- end }}
{{- end -}}

{{- define "rs.kafkaTlsEnv" -}}
KAFKA_SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}
KAFKA_SASL_MECHANISM: {{ .Values.kafka.saslMechanism | quote }}
KAFKA_SASL_USERNAME: {{ .Values.kafka.saslUsername | quote }}
{{- end }}
{{- if and (eq (include "rs.kafkaTls" .) "true") (include "rs.caFile" .) }}
KAFKA_SSL_CAFILE: {{ include "rs.caFile" . | quote }}
{{- end }}
{{- end -}}

{{/* The Kafka SASL password, from the existing Secret, as a container's env. */}}
{{- define "rs.kafkaSaslPasswordEnv" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "rs.secretName" . }}, key: kafka-sasl-password}
{{- end -}}
{{- end -}}

{{/* Egress ports of a client: the port of every Kafka bootstrap server, of
     the OTLP endpoint, and so on, from the configured addresses. */}}
{{- define "rs.kafkaPorts" -}}
{{- $ports := list -}}
{{- range $server := splitList "," (include "rs.kafkaBootstrap" .) -}}
{{- $port := $server | trim | splitList ":" | last -}}
{{- if not (has $port $ports) }}{{ $ports = append $ports $port }}{{ end -}}
{{- end -}}
{{- toJson $ports -}}
{{- end -}}

{{- define "rs.urlPort" -}}
{{- $url := urlParse .url -}}
{{- $hostPort := splitList ":" $url.host -}}
{{- if gt (len $hostPort) 1 -}}{{ last $hostPort }}
{{- else if eq $url.scheme "https" -}}443
{{- else -}}80
{{- end -}}
{{- end -}}

{{/* A `KEY: value` block (as the ConfigMaps hold) as a container's env list. */}}
{{- define "rs.envList" -}}
{{- range $k, $v := . | fromYaml }}
- {name: {{ $k }}, value: {{ $v | toString | quote }}}
{{- end -}}
{{- end -}}

{{/* The most connections to PostgreSQL the release opens: per service, its
     pods at the autoscaler's maximum plus a rolling update's surge pod, each
     with its pool (size + overflow) and, beside an outbox, the relay's
     (RELAY_CONCURRENCY publishing, one spare, one listening). */}}
{{- define "rs.connectionBudget" -}}
{{- $total := 0 -}}
{{- $relay := add (.Values.relay.env.RELAY_CONCURRENCY | default "2" | int) 2 -}}
{{- range $key, $svc := .Values.services -}}
{{- if $svc.enabled -}}
{{- $pods := add1 (ternary $svc.autoscaling.maxReplicas $svc.replicas $svc.autoscaling.enabled) -}}
{{- $each := add $svc.databasePool.poolSize $svc.databasePool.maxOverflow (ternary $relay 0 $svc.outbox) -}}
{{- $total = add $total (mul $pods $each) -}}
{{- end -}}
{{- end -}}
{{- $total -}}
{{- end -}}
