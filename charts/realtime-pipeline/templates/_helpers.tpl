{{- define "rp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "rp.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rp.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rp.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Security contexts shared by every container: non-root, read-only root filesystem, nothing extra. */}}
{{- define "rp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "rp.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Environment every process shares: namespace, Kafka, Redis. */}}
{{- define "rp.commonEnv" -}}
- name: Pipeline__Namespace
  value: {{ .Values.pipelineNamespace | quote }}
- name: Kafka__BootstrapServers
  value: {{ required "kafka.bootstrapServers is required" .Values.kafka.bootstrapServers | quote }}
- name: Kafka__IngressPartitions
  value: {{ .Values.kafka.ingressPartitions | quote }}
- name: Kafka__NodeTopicPartitions
  value: {{ .Values.kafka.nodeTopicPartitions | quote }}
- name: Kafka__ReplicationFactor
  value: {{ .Values.kafka.replicationFactor | quote }}
- name: Kafka__ProvisionTopics
  value: {{ .Values.kafka.provisionTopics | quote }}
{{- if .Values.kafka.sasl.enabled }}
- name: Kafka__Properties__security.protocol
  value: {{ ternary "SASL_SSL" "SASL_PLAINTEXT" .Values.kafka.tls.enabled | quote }}
- name: Kafka__Properties__sasl.mechanism
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: Kafka__Properties__sasl.username
  valueFrom:
    secretKeyRef: {name: {{ required "kafka.sasl.existingSecret is required with SASL" .Values.kafka.sasl.existingSecret | quote }}, key: {{ .Values.kafka.sasl.usernameKey | quote }}}
- name: Kafka__Properties__sasl.password
  valueFrom:
    secretKeyRef: {name: {{ .Values.kafka.sasl.existingSecret | quote }}, key: {{ .Values.kafka.sasl.passwordKey | quote }}}
{{- else if .Values.kafka.tls.enabled }}
- name: Kafka__Properties__security.protocol
  value: SSL
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- name: Kafka__Properties__ssl.ca.location
  value: /etc/realtime/kafka-ca/{{ .Values.kafka.tls.caKey }}
{{- end }}
{{- if .Values.redis.existingSecret }}
- name: Redis__Configuration
  valueFrom:
    secretKeyRef: {name: {{ .Values.redis.existingSecret | quote }}, key: {{ .Values.redis.configurationKey | quote }}}
{{- else }}
- name: Redis__Configuration
  value: {{ .Values.redis.configuration | quote }}
{{- end }}
- name: DOTNET_gcServer
  value: "0"
{{- end -}}

{{- define "rp.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret | quote }}
{{- end }}
{{- end -}}

{{- define "rp.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/realtime/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}
