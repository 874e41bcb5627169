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

{{- /* Proxy JSON configuration file (LLMTOR_CONFIG_FILE): a Secret this chart renders from proxy.config, or an existing one (key proxy.json). */ -}}
{{- define "llmtor.configSecret" -}}
{{- if .Values.proxy.existingConfigSecret -}}{{ .Values.proxy.existingConfigSecret }}{{- else if .Values.proxy.config -}}{{ printf "%s-proxy-config" (include "llmtor.fullname" .) }}{{- end -}}
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
