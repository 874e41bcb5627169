{{- define "llmtor.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "llmtor.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "llmtor.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "llmtor.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{ printf "%s/%s:%s" .root.Values.image.registry .image.repository $tag }}
{{- end -}}

{{- define "llmtor.issuerName" -}}{{ .Values.tokenIssuer.name }}{{- end -}}
{{- define "llmtor.keysSecret" -}}{{ .Values.tokenIssuer.spec.secretName | default (printf "%s-signing-keys" .Values.tokenIssuer.name) }}{{- end -}}
{{- define "llmtor.directoryConfigMap" -}}{{ .Values.tokenIssuer.spec.configMapName | default (printf "%s-directory" .Values.tokenIssuer.name) }}{{- end -}}
{{- define "llmtor.localKekSecret" -}}
{{- $kp := .Values.tokenIssuer.spec.keyProtection | default dict -}}
{{- $local := $kp.local | default dict -}}
{{- $local.secretName | default (printf "%s-kek" .Values.tokenIssuer.name) -}}
{{- end -}}
{{- define "llmtor.azureKeyVault" -}}
{{- $kp := .Values.tokenIssuer.spec.keyProtection | default dict -}}
{{- if $kp.azureKeyVault }}{{ $kp.azureKeyVault.vaultUrl }}{{ end -}}
{{- end -}}
{{- define "llmtor.redisSecret" -}}{{ .Values.redis.existingSecret | default (printf "%s-redis" (include "llmtor.fullname" .)) }}{{- end -}}
