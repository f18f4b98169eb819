{{/*
Names, labels and the pieces every service's pod shares. The four services differ only in
their binary, their port and a few settings, so the templates range over one list of them
instead of repeating a file per service.
*/}}

{{- define "annals.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource's name: <release>-<chart>, or the release alone when it already
contains the chart's name. Truncated so that "<prefix>-<component>-<suffix>" names stay
within the 63 characters of a Service or label value.
*/}}
{{- define "annals.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "annals.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The version label: the image tag in use, cut to a valid label value. */}}
{{- define "annals.version" -}}
{{- $v := default .Chart.AppVersion .Values.image.tag | replace "+" "_" | trunc 63 -}}
{{- regexReplaceAll "[^A-Za-z0-9]+$" $v "" -}}
{{- end -}}

{{/* The services, in the order the pipeline runs them. */}}
{{- define "annals.services" -}}
{{- list "writer" "projector" "notifier" "auditor" | toJson -}}
{{- end -}}

{{/* The services that read the event topics, each in a consumer group of its own. */}}
{{- define "annals.consumers" -}}
{{- list "projector" "notifier" "auditor" | toJson -}}
{{- end -}}

{{/*
The port each service listens on unless HTTP_ADDR says otherwise (internal/app); the
containers set HTTP_ADDR to it, so that the probes and the container port always agree.
*/}}
{{- define "annals.containerPort" -}}
{{- get (dict "writer" 8080 "projector" 8081 "notifier" 8082 "auditor" 8083) . -}}
{{- end -}}

{{/* Labels of every resource; call with (dict "root" $ "component" "writer"), or without the component. */}}
{{- define "annals.labels" -}}
helm.sh/chart: {{ include "annals.chart" .root }}
{{ include "annals.selectorLabels" . }}
app.kubernetes.io/version: {{ include "annals.version" .root | quote }}
app.kubernetes.io/part-of: annals
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/*
The labels that select a component's pods. They never change between upgrades (a
Deployment's selector is immutable), so the version is not one of them. Resources that all
the services share (the ConfigMap, the Secret) have no component.
*/}}
{{- define "annals.selectorLabels" -}}
app.kubernetes.io/name: {{ include "annals.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- define "annals.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "annals.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "annals.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A value as the text of an environment variable. Helm reads numbers from YAML as floats, and
printing a float prints 1e+06 for a million; JSON prints it whole.
*/}}
{{- define "annals.str" -}}
{{- if kindIs "string" . -}}
{{- . -}}
{{- else -}}
{{- toJson . -}}
{{- end -}}
{{- end -}}

{{/*
The non-secret settings, as the environment variables the services read: the ConfigMap's
data, and the migration job's environment (the job runs before the ConfigMap exists).
*/}}
{{- define "annals.configData" -}}
{{- $v := .Values -}}
{{- $data := dict
  "EVENT_STORE_HOST" $v.database.host
  "EVENT_STORE_PORT" (include "annals.str" $v.database.port)
  "EVENT_STORE_DATABASE" $v.database.name
  "EVENT_STORE_USERNAME" $v.database.user
  "EVENT_STORE_CONNECTION_POOL" (include "annals.str" $v.database.connectionPool)
  "KAFKA_BROKERS" (join "," $v.kafka.brokers)
  "KAFKA_TOPIC_PREFIX" $v.kafka.topicPrefix
  "KAFKA_TOPIC_PARTITIONS" (include "annals.str" $v.kafka.topicPartitions)
  "KAFKA_REPLICATION_FACTOR" (include "annals.str" $v.kafka.replicationFactor)
  "SMTP_ADDR" $v.smtp.addr
  "SMTP_FROM" $v.smtp.from
  "SMTP_STARTTLS" $v.smtp.starttls
  "SMTP_TIMEOUT" $v.smtp.timeout
  "LOG_LEVEL" $v.log.level
  "LOG_FORMAT" $v.log.format
  "MIGRATE_ON_START" (ternary "false" "true" $v.migrations.enabled)
  "KAFKA_SECURITY_PROTOCOL" $v.kafka.securityProtocol
  "EVENT_STORE_SSLMODE" $v.database.sslmode
-}}
{{- with $v.kafka.sasl.mechanism }}{{ $_ := set $data "KAFKA_SASL_MECHANISM" . }}{{ end -}}
{{- with $v.kafka.sasl.username }}{{ $_ := set $data "KAFKA_SASL_USERNAME" . }}{{ end -}}
{{- range $name, $path := include "annals.tlsFiles" . | fromYaml -}}
{{- $_ := set $data $name $path -}}
{{- end -}}
{{- range $name, $value := $v.config -}}
{{- $_ := set $data $name (include "annals.str" $value) -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}

{{/*
The chart's Secret: only the secrets that have a value, under the names of their
environment variables.
*/}}
{{- define "annals.secretData" -}}
{{- $v := .Values -}}
{{- $data := dict -}}
{{- with $v.database.password }}{{ $_ := set $data "EVENT_STORE_PASSWORD" . }}{{ end -}}
{{- with $v.database.url }}{{ $_ := set $data "DATABASE_URL" . }}{{ end -}}
{{- with $v.smtp.username }}{{ $_ := set $data "SMTP_USERNAME" . }}{{ end -}}
{{- with $v.smtp.password }}{{ $_ := set $data "SMTP_PASSWORD" . }}{{ end -}}
{{- with $v.signing.key }}{{ $_ := set $data "EVENT_SIGNING_KEY" . }}{{ end -}}
{{- with $v.signing.acceptedKeys }}{{ $_ := set $data "EVENT_SIGNING_ACCEPTED_KEYS" . }}{{ end -}}
{{- with $v.auth.apiKeys }}{{ $_ := set $data "API_KEYS" . }}{{ end -}}
{{- with $v.kafka.sasl.password }}{{ $_ := set $data "KAFKA_SASL_PASSWORD" . }}{{ end -}}
{{- with $v.eventStore.redisUrl }}{{ $_ := set $data "EVENT_STORE_REDIS_URL" . }}{{ end -}}
{{- with $v.eventStore.mongodbUri }}{{ $_ := set $data "EVENT_STORE_MONGODB_URI" . }}{{ end -}}
{{- if $data }}{{ toYaml $data }}{{ end -}}
{{- end -}}

{{/*
Environment entries for secrets, read from the chart's Secret or from existingSecret; call
with (dict "root" $ "smtp" true|false "signing" true|false "secretName" name): the SMTP
credentials for the notifier, the signing keys and API keys for the services (not the migrations). With existingSecret every key is
optional: a key the Secret lacks leaves its setting unset. The chart's Secret holds only
the keys that have a value, so only those are referenced.
*/}}
{{- define "annals.secretEnv" -}}
{{- $v := .root.Values -}}
{{- $entries := list (list "EVENT_STORE_PASSWORD" $v.existingSecretKeys.databasePassword) (list "DATABASE_URL" $v.existingSecretKeys.databaseUrl) (list "KAFKA_SASL_PASSWORD" $v.existingSecretKeys.kafkaSaslPassword) (list "EVENT_STORE_REDIS_URL" $v.existingSecretKeys.redisUrl) (list "EVENT_STORE_MONGODB_URI" $v.existingSecretKeys.mongodbUri) -}}
{{- if .smtp -}}
{{- $entries = concat $entries (list (list "SMTP_USERNAME" $v.existingSecretKeys.smtpUsername) (list "SMTP_PASSWORD" $v.existingSecretKeys.smtpPassword)) -}}
{{- end -}}
{{- if .signing -}}
{{- $entries = concat $entries (list (list "EVENT_SIGNING_KEY" $v.existingSecretKeys.signingKey) (list "EVENT_SIGNING_ACCEPTED_KEYS" $v.existingSecretKeys.signingAcceptedKeys) (list "API_KEYS" $v.existingSecretKeys.apiKeys)) -}}
{{- end -}}
{{- if $v.existingSecret -}}
{{- range $entries }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.existingSecret }}
      key: {{ index . 1 }}
      optional: true
{{- end -}}
{{- else -}}
{{- $data := include "annals.secretData" .root | fromYaml -}}
{{- $secretName := .secretName -}}
{{- range $entries }}
{{- if hasKey $data (index . 0) }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ index . 0 }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The TLS files of Kafka and PostgreSQL that the pods mount from Secrets, by the configuration
key that names them: each Secret is a volume under /etc/annals (kafka/ca, kafka/client,
postgres/ca, postgres/client).
*/}}
{{- define "annals.tlsFiles" -}}
{{- $v := .Values -}}
{{- $files := dict -}}
{{- with $v.kafka.tls.caSecret }}{{ $_ := set $files "KAFKA_TLS_CA_FILE" (printf "/etc/annals/kafka/ca/%s" $v.kafka.tls.caKey) }}{{ end -}}
{{- with $v.kafka.tls.clientSecret }}{{ $_ := set $files "KAFKA_TLS_CERT_FILE" "/etc/annals/kafka/client/tls.crt" }}{{ $_ := set $files "KAFKA_TLS_KEY_FILE" "/etc/annals/kafka/client/tls.key" }}{{ end -}}
{{- with $v.database.tls.caSecret }}{{ $_ := set $files "EVENT_STORE_SSLROOTCERT" (printf "/etc/annals/postgres/ca/%s" $v.database.tls.caKey) }}{{ end -}}
{{- with $v.database.tls.clientSecret }}{{ $_ := set $files "EVENT_STORE_SSLCERT" "/etc/annals/postgres/client/tls.crt" }}{{ $_ := set $files "EVENT_STORE_SSLKEY" "/etc/annals/postgres/client/tls.key" }}{{ end -}}
{{- if $files }}{{ toYaml $files }}{{ end -}}
{{- end -}}

{{/* The Secrets of the TLS files, as (volume name, Secret name, mount path) triples. */}}
{{- define "annals.tlsSecrets" -}}
{{- $v := .Values -}}
{{- $mounts := list -}}
{{- with $v.kafka.tls.caSecret }}{{ $mounts = append $mounts (list "kafka-ca" . "/etc/annals/kafka/ca") }}{{ end -}}
{{- with $v.kafka.tls.clientSecret }}{{ $mounts = append $mounts (list "kafka-client" . "/etc/annals/kafka/client") }}{{ end -}}
{{- with $v.database.tls.caSecret }}{{ $mounts = append $mounts (list "postgres-ca" . "/etc/annals/postgres/ca") }}{{ end -}}
{{- with $v.database.tls.clientSecret }}{{ $mounts = append $mounts (list "postgres-client" . "/etc/annals/postgres/client") }}{{ end -}}
{{- toJson $mounts -}}
{{- end -}}

{{/* volumeMounts entries of the TLS files' Secrets, read-only. */}}
{{- define "annals.tlsVolumeMounts" -}}
{{- range include "annals.tlsSecrets" . | fromJsonArray }}
- name: {{ index . 0 }}
  mountPath: {{ index . 2 }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/*
volumes entries of the TLS files' Secrets: readable by the pods' group (fsGroup) only, as a
private key must be.
*/}}
{{- define "annals.tlsVolumes" -}}
{{- range include "annals.tlsSecrets" . | fromJsonArray }}
- name: {{ index . 0 }}
  secret:
    secretName: {{ index . 1 }}
    defaultMode: 0440
{{- end -}}
{{- end -}}

{{/* The pod-level security context: non-root, and the runtime's default seccomp profile. */}}
{{- define "annals.podSecurityContext" -}}
runAsNonRoot: true
{{- with .Values.podSecurityContext }}
{{- if not (kindIs "invalid" .runAsUser) }}
runAsUser: {{ .runAsUser | int64 }}
{{- end }}
{{- if not (kindIs "invalid" .runAsGroup) }}
runAsGroup: {{ .runAsGroup | int64 }}
{{- end }}
{{- if not (kindIs "invalid" .fsGroup) }}
fsGroup: {{ .fsGroup | int64 }}
{{- end }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Every container's security context. It is not configurable: the binaries need no
privilege, no capability and no writable file outside the /tmp volume.
*/}}
{{- define "annals.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The autoscaler in charge of a service's replicas: "hpa", "keda" or "". */}}
{{- define "annals.scaler" -}}
{{- $s := index .root.Values .component -}}
{{- if and (hasKey $s "keda") $s.keda.enabled -}}
keda
{{- else if $s.autoscaling.enabled -}}
hpa
{{- end -}}
{{- end -}}
