{{- /* A Service name must start with a letter: a release named 123 gets llmtor-123. */ -}}
{{- define "llmtor.fullname" -}}
{{- if regexMatch "^[0-9]" .Release.Name -}}{{ printf "%s-%s" .Chart.Name .Release.Name | trunc 50 | trimSuffix "-" }}{{- else if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "llmtor.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{- /* Labels are quoted: a release named 123 or y would otherwise be a number or a boolean, not a string. */ -}}
{{- define "llmtor.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name | quote }}
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end -}}

{{- /* image.digest (sha256:…) pins the image and overrides the tag. */ -}}
{{- define "llmtor.image" -}}
{{- if .image.digest -}}
{{ printf "%s/%s@%s" .root.Values.image.registry .image.repository .image.digest }}
{{- else -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{ printf "%s/%s:%s" .root.Values.image.registry .image.repository $tag }}
{{- end -}}
{{- end -}}

{{- /* Per-role values of the proxy (proxy.issuance / proxy.redemption). The former shared keys
proxy.serviceAccount.annotations, proxy.podLabels and proxy.existingSecret still apply, to issuance
only (the identity side: workload identity, pepper, Stripe, admin token); removed in the next release. */ -}}
{{- define "llmtor.roleSaAnnotations" -}}
{{- $cfg := index .root.Values.proxy .role -}}
{{- $a := (($cfg.serviceAccount | default dict).annotations) | default dict -}}
{{- if eq .role "issuance" }}{{ $a = merge (deepCopy $a) (((.root.Values.proxy.serviceAccount | default dict).annotations) | default dict) }}{{ end -}}
{{- with $a }}{{ toYaml . }}{{ end -}}
{{- end -}}
{{- define "llmtor.rolePodLabels" -}}
{{- $cfg := index .root.Values.proxy .role -}}
{{- $l := $cfg.podLabels | default dict -}}
{{- if eq .role "issuance" }}{{ $l = merge (deepCopy $l) (.root.Values.proxy.podLabels | default dict) }}{{ end -}}
{{- /* Quoted: --set x=true must stay a string label. */ -}}
{{- range $k, $v := $l }}
{{ $k }}: {{ $v | toString | quote }}
{{- end -}}
{{- end -}}
{{- define "llmtor.roleExistingSecret" -}}
{{- $cfg := index .root.Values.proxy .role -}}
{{- if eq .role "issuance" }}{{ $cfg.existingSecret | default .root.Values.proxy.existingSecret }}{{ else }}{{ $cfg.existingSecret }}{{ end -}}
{{- end -}}
{{- define "llmtor.roleSaName" -}}
{{- $sa := (index .root.Values.proxy .role).serviceAccount | default dict -}}
{{- if $sa.name }}{{ $sa.name }}{{ else }}{{ printf "%s-%s" (include "llmtor.fullname" .root) .role }}{{ end -}}
{{- end -}}

{{- /* Probes of a container: values (httpGet path/port filled in) or the defaults; startupProbe gives a slow start room without a long liveness delay. */ -}}
{{- define "llmtor.probes" -}}
{{- $p := .probes | default dict -}}
{{- range $kind, $path := dict "startupProbe" "/healthz" "livenessProbe" "/healthz" "readinessProbe" "/readyz" }}
{{- $v := index $p $kind | default dict }}
{{- if ne (toString $v.enabled) "false" }}
{{ $kind }}:
  httpGet: { path: {{ $path }}, port: {{ $.port }} }
  {{- toYaml (omit $v "enabled") | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{- /* Scheduling of one component's pods: affinity, tolerations, topology spread, node selector, priority class. */ -}}
{{- define "llmtor.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
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

{{- /* Proxy JSON configuration file (LLMTOR_CONFIG_FILE): a Secret this chart renders from proxy.config, or an existing one (key proxy.json). */ -}}
{{- define "llmtor.configSecret" -}}
{{- if .Values.proxy.existingConfigSecret -}}{{ .Values.proxy.existingConfigSecret }}{{- else if .Values.proxy.config -}}{{ printf "%s-proxy-config" (include "llmtor.fullname" .) }}{{- end -}}
{{- end -}}

{{- /* The issuance pods' config file: proxy.config without its redemption section (providers, upstream API keys). Empty when nothing is left or an existing Secret is used (issuance then gets none). */ -}}
{{- define "llmtor.issuanceConfig" -}}
{{- if and .Values.proxy.config (not .Values.proxy.existingConfigSecret) (omit .Values.proxy.config "redemption") -}}{{ printf "%s-issuance-config" (include "llmtor.fullname" .) }}{{- end -}}
{{- end -}}

{{- /* Sentinel or Cluster target of one role (redis.issuance / redis.redemption), true when set: it replaces the URL. */ -}}
{{- define "llmtor.redisTopology" -}}
{{- $r := index .root.Values.redis .role | default dict -}}
{{- if or $r.sentinels $r.clusterNodes }}true{{ end -}}
{{- end -}}

{{- /* Env of one role's Sentinel/Cluster target, with the role's prefix (ISSUANCE_REDIS_* / REDEMPTION_REDIS_*; docs/configuration.md). */ -}}
{{- define "llmtor.redisEnv" -}}
{{- $r := index .root.Values.redis .role | default dict -}}
{{- $p := printf "%s_REDIS_" (upper .role) -}}
{{- with $r.sentinels }}
- { name: {{ $p }}SENTINELS, value: {{ join "," . | quote }} }
{{- end }}
{{- with $r.sentinelName }}
- { name: {{ $p }}SENTINEL_NAME, value: {{ . | quote }} }
{{- end }}
{{- with $r.clusterNodes }}
- { name: {{ $p }}CLUSTER_NODES, value: {{ join "," . | quote }} }
{{- end }}
{{- if and (ne (toString $r.db) "") (ne (toString $r.db) "<nil>") }}
- { name: {{ $p }}DB, value: {{ $r.db | toString | quote }} }
{{- end }}
{{- with $r.username }}
- { name: {{ $p }}USERNAME, value: {{ . | quote }} }
{{- end }}
{{- with $r.passwordSecret }}{{- if .name }}
- name: {{ $p }}PASSWORD
  valueFrom: { secretKeyRef: { name: {{ .name }}, key: {{ .key | default "password" }} } }
{{- end }}{{- end }}
{{- with $r.sentinelPasswordSecret }}{{- if .name }}
- name: {{ $p }}SENTINEL_PASSWORD
  valueFrom: { secretKeyRef: { name: {{ .name }}, key: {{ .key | default "sentinel-password" }} } }
{{- end }}{{- end }}
{{- if $r.tls }}
- { name: {{ $p }}TLS, value: "true" }
{{- end }}
{{- if include "llmtor.redisCa" . }}
- { name: {{ $p }}TLS_CA_FILE, value: {{ printf "/etc/llmtor/redis-ca/%s" (include "llmtor.redisCaKey" .) | quote }} }
{{- end }}
{{- end -}}

{{- /* Private CA of one role's Redis: "secret" or "configMap" when set. */ -}}
{{- define "llmtor.redisCa" -}}
{{- $r := index .root.Values.redis .role | default dict -}}
{{- $ca := $r.tlsCa | default dict -}}
{{- if $ca.secret }}secret{{ else if $ca.configMap }}configMap{{ end -}}
{{- end -}}
{{- define "llmtor.redisCaKey" -}}
{{- $r := index .root.Values.redis .role | default dict -}}
{{- $ca := $r.tlsCa | default dict -}}
{{- $ca.key | default "ca.crt" -}}
{{- end -}}

{{- /* Bundled Redis: generated password, kept across upgrades (lookup; a fresh one under helm template). Memoized in Values so every template of one render sees the same value. */ -}}
{{- define "llmtor.bundledRedisPassword" -}}
{{- $b := .Values.redis.bundled -}}
{{- if not (hasKey $b "_password") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-redis-auth" (include "llmtor.fullname" .)) -}}
{{- $pw := "" -}}
{{- if and $existing $existing.data (index $existing.data "password") -}}{{- $pw = index $existing.data "password" | b64dec -}}{{- else -}}{{- $pw = randAlphaNum 40 -}}{{- end -}}
{{- $_ := set $b "_password" $pw -}}
{{- end -}}
{{- $b._password -}}
{{- end -}}

{{- /* Whether a role has Redis configured (bundled, URL, existing Secret, Sentinel/Cluster). */ -}}
{{- define "llmtor.roleHasRedis" -}}
{{- $v := .root.Values.redis -}}
{{- if or $v.bundled.enabled $v.existingSecret $v.issuanceUrl $v.redemptionUrl (include "llmtor.redisTopology" .) }}true{{ end -}}
{{- end -}}

{{- /* Seed of the per-pod backend onion keys: an existing Secret, or one this chart makes (kept across upgrades). */ -}}
{{- define "llmtor.onionSeedSecret" -}}
{{- .Values.tor.backendSeedSecret | default (printf "%s-onion-backend-seed" (include "llmtor.fullname" .)) -}}
{{- end -}}

{{- /* torrc of the redemption pods' sidecar: one backend onion per pod, an Onionbalance instance of the front. */ -}}
{{- define "llmtor.torrc" -}}
DataDirectory /var/lib/tor/data/tor
SocksPort 0
# No GeoIP lookups (and no GeoIP files in the image).
GeoIPFile ""
GeoIPv6File ""
# hs/ is made by the onion-key init container (key derived per pod, ob_config naming the front).
HiddenServiceDir /var/lib/tor/data/hs
HiddenServicePort {{ .Values.tor.virtualPort }} 127.0.0.1:{{ .Values.proxy.port }}
HiddenServiceOnionbalanceInstance 1
ExitPolicy reject *:*
{{- with .Values.tor.extraTorrc }}
{{ . }}
{{- end }}
{{- end -}}
