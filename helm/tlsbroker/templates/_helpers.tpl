{{/* Names and labels. */}}
{{- define "tlsbroker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tlsbroker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tlsbroker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tlsbroker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tlsbroker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tlsbroker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "tlsbroker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tlsbroker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The most replicas that can run at once: the client ID checks cover ordinals 0..this-1. */}}
{{- define "tlsbroker.maxReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- max (int .Values.autoscaling.maxReplicas) (int .Values.replicaCount) -}}
{{- else -}}
{{- int .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/* Where the projected volume puts things (one volume at /etc/tlsbroker, no subPath mounts,
     so Secret rotation reaches the running pod). */}}
{{- define "tlsbroker.configDir" -}}/etc/tlsbroker{{- end -}}

{{/*
The broker config file, as YAML. Backends are passed through from values with the chart-only
`secret` key replaced by the mounted credential paths.
*/}}
{{- define "tlsbroker.config" -}}
{{- $dir := include "tlsbroker.configDir" . -}}
{{- $listen := dict
      "grpc" (printf "0.0.0.0:%d" (int .Values.ports.grpc))
      "metrics" (printf "0.0.0.0:%d" (int .Values.ports.metrics))
      "tls" (dict "cert" (printf "%s/listen/tls.crt" $dir) "key" (printf "%s/listen/tls.key" $dir) "client_ca" (printf "%s/listen/ca.crt" $dir))
      "drain_grace_period" (printf "%ds" (int .Values.listen.drainGracePeriodSeconds)) -}}
{{- if .Values.listen.adminCallers -}}
{{- $_ := set $listen "admin_callers" .Values.listen.adminCallers -}}
{{- end -}}
{{- range $key, $field := dict "keepaliveTime" "keepalive_time" "keepaliveTimeout" "keepalive_timeout" "keepaliveMinClientInterval" "keepalive_min_client_interval" "maxConnectionAge" "max_connection_age" "maxConnectionAgeGrace" "max_connection_age_grace" -}}
{{- with index $.Values.listen $key -}}{{- $_ := set $listen $field . -}}{{- end -}}
{{- end -}}
{{- $backends := list -}}
{{- range .Values.backends -}}
{{- $b := omit (deepCopy .) "secret" -}}
{{- $tls := dict -}}
{{- if hasKey $b "tls" -}}{{- $tls = $b.tls -}}{{- end -}}
{{- $base := printf "%s/backends/%s" $dir .name -}}
{{- if not (hasKey $tls "ca") -}}{{- $_ := set $tls "ca" (printf "%s/ca.crt" $base) -}}{{- end -}}
{{- $clientCert := include "tlsbroker.backendClientCert" .secret | eq "true" -}}
{{- if $clientCert -}}
{{- if and (not (hasKey $tls "cert")) (not (hasKey $tls "key")) -}}
{{- $_ := set $tls "cert" (printf "%s/tls.crt" $base) -}}
{{- $_ := set $tls "key" (printf "%s/tls.key" $base) -}}
{{- end -}}
{{- if and .secret.keyPassword (not (hasKey $tls "key_password_file")) -}}
{{- $_ := set $tls "key_password_file" (printf "%s/tls.key.password" $base) -}}
{{- end -}}
{{- end -}}
{{- if and .secret.pkcs12 (not (hasKey $tls "pkcs12")) -}}
{{- $_ := set $tls "pkcs12" (printf "%s/keystore.p12" $base) -}}
{{- if not (hasKey $tls "password_file") -}}
{{- $_ := set $tls "password_file" (printf "%s/keystore.password" $base) -}}
{{- end -}}
{{- end -}}
{{- if and .secret.crlKeys (not (hasKey $tls "crl")) -}}
{{- $crls := list -}}
{{- range .secret.crlKeys -}}{{- $crls = append $crls (printf "%s/%s" $base .) -}}{{- end -}}
{{- $_ := set $tls "crl" $crls -}}
{{- end -}}
{{- $_ := set $b "tls" $tls -}}
{{- $backends = append $backends $b -}}
{{- end -}}
{{- $config := dict "listen" $listen "backends" $backends -}}
{{- if .Values.limits -}}{{- $_ := set $config "limits" .Values.limits -}}{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Whether a backend's Secret holds tls.crt + tls.key: secret.clientCert, by default true
     unless the credentials come as a PKCS#12 bundle (secret.pkcs12). Prints "true"/"false". */}}
{{- define "tlsbroker.backendClientCert" -}}
{{- if hasKey . "clientCert" -}}{{- .clientCert -}}{{- else -}}{{- not .pkcs12 -}}{{- end -}}
{{- end -}}

{{/*
Client ID checks over every replica ordinal, so that `helm install` refuses what would
otherwise fail only on some pods (or worse, succeed and mint duplicate IDs across replicas).
Each backend on each replica mints prefix(ordinal) + slot, slot 1..max_sockets zero-padded so
the ID is `width` characters long. Rules (IMS Connect, when ims_rules is on): width <= 8,
characters A-Z 0-9 @ # $, not starting with HWS; the slot digits must hold max_sockets; and no
two (backend, replica) pairs may mint the same ID. The pair rule is the broker's own
(broker/config/load_options.cc) applied across replicas: with equal widths and prefix A a
prefix of B, B's IDs repeat A's iff the rest of B's prefix is digits r and
r * 10^(B's digits) + 1 <= A's max_sockets.
*/}}
{{- define "tlsbroker.checkClientIds" -}}
{{- $replicas := int (include "tlsbroker.maxReplicas" .) -}}
{{- $minted := list -}}
{{- range $b := .Values.backends -}}
{{- $cid := $b.client_id | default dict -}}
{{- $raw := "TLSB" -}}
{{- if hasKey $cid "prefix" -}}{{- $raw = toString $cid.prefix -}}{{- end -}}
{{- $width := 8 -}}
{{- if hasKey $cid "width" -}}{{- $width = int $cid.width -}}{{- end -}}
{{- $ims := true -}}
{{- if hasKey $cid "ims_rules" -}}{{- $ims = $cid.ims_rules -}}{{- end -}}
{{- $maxSockets := 16 -}}
{{- if and $b.pool (hasKey $b.pool "max_sockets") -}}{{- $maxSockets = int $b.pool.max_sockets -}}{{- end -}}
{{- if and (gt $replicas 1) (not (contains "{ordinal}" $raw)) -}}
{{- fail (printf "backends %s: client_id.prefix %q has no {ordinal}: all %d replicas would mint the same client IDs" $b.name $raw $replicas) -}}
{{- end -}}
{{- if and $ims (gt $width 8) -}}
{{- fail (printf "backends %s: client_id.width %d: IMS Connect client IDs are at most 8 characters" $b.name $width) -}}
{{- end -}}
{{- range $ordinal := until $replicas -}}
{{- $prefix := replace "{ordinal}" (toString $ordinal) $raw -}}
{{- if and $ims (not (regexMatch "^[A-Z0-9@#$]*$" $prefix)) -}}
{{- fail (printf "backends %s: client_id.prefix %q on replica %d: IMS Connect client IDs use only A-Z 0-9 @ # $" $b.name $prefix $ordinal) -}}
{{- end -}}
{{- if and $ims (hasPrefix "HWS" $prefix) -}}
{{- fail (printf "backends %s: client_id.prefix %q: IMS Connect reserves client IDs starting with HWS" $b.name $prefix) -}}
{{- end -}}
{{- $digits := sub $width (len $prefix) -}}
{{- if lt $digits 1 -}}
{{- fail (printf "backends %s: client_id.prefix %q on replica %d leaves no digits in width %d" $b.name $prefix $ordinal $width) -}}
{{- end -}}
{{- $capacity := 1 -}}
{{- range until (int $digits) -}}{{- $capacity = mul $capacity 10 -}}{{- end -}}
{{- if lt (sub $capacity 1) $maxSockets -}}
{{- fail (printf "backends %s: client_id width %d with prefix %q (replica %d) leaves %d digit(s): fewer than max_sockets (%d) client IDs" $b.name $width $prefix $ordinal $digits $maxSockets) -}}
{{- end -}}
{{- $minted = append $minted (dict "backend" $b.name "ordinal" $ordinal "prefix" $prefix "width" $width "digits" (int $digits) "max" $maxSockets) -}}
{{- end -}}
{{- end -}}
{{- range $i, $x := $minted -}}
{{- range $j, $y := $minted -}}
{{- if and (lt $i $j) (eq $x.width $y.width) -}}
{{- $a := $x -}}{{- $bb := $y -}}
{{- if gt (len $x.prefix) (len $y.prefix) -}}{{- $a = $y -}}{{- $bb = $x -}}{{- end -}}
{{- if hasPrefix $a.prefix $bb.prefix -}}
{{- $rest := trimPrefix $a.prefix $bb.prefix -}}
{{- if regexMatch "^[0-9]*$" $rest -}}
{{- $smallest := 0 -}}
{{- if $rest -}}
{{- $smallest = atoi $rest -}}
{{- range until $bb.digits -}}{{- $smallest = mul $smallest 10 -}}{{- end -}}
{{- end -}}
{{- if le (add $smallest 1) $a.max -}}
{{- fail (printf "client IDs collide: backend %s on replica %d (prefix %q) and backend %s on replica %d (prefix %q) can mint the same ID; put a letter after {ordinal} or give each backend its own prefix" $x.backend $x.ordinal $x.prefix $y.backend $y.ordinal $y.prefix) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Backend ports, for the NetworkPolicy egress rule. */}}
{{- define "tlsbroker.backendPorts" -}}
{{- $ports := list -}}
{{- range .Values.backends -}}
{{- range (.addresses | default (list .address)) -}}
{{- $port := regexFind "[0-9]+$" . -}}
{{- if not (has $port $ports) -}}{{- $ports = append $ports $port -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- join "," $ports -}}
{{- end -}}
