{{- define "pgone.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pgone.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pgone.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pgone.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pgone.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "pgone.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "pgone.secretName" -}}
{{- default (include "pgone.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* pgone.checkConfig fails the render when the config's listen addresses
do not use the container ports the chart opens and probes. */}}
{{- define "pgone.checkConfig" -}}
{{- if not .Values.existingSecret -}}
{{- $listen := required "config.listen is required" .Values.config.listen -}}
{{- if not (hasSuffix (printf ":%d" (int .Values.ports.client)) $listen) -}}
{{- fail (printf "config.listen %q must use ports.client %d" $listen (int .Values.ports.client)) -}}
{{- end -}}
{{- $http := (.Values.config.http | default dict).listen | default "" -}}
{{- if not (hasSuffix (printf ":%d" (int .Values.ports.metrics)) $http) -}}
{{- fail (printf "config.http.listen %q must be set and use ports.metrics %d (the probes and metrics need it beyond loopback)" $http (int .Values.ports.metrics)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
