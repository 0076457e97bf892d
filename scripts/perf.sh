#!/usr/bin/env bash
# perf.sh: the figures of docs/PERFORMANCE.md, measured in one run on this
# machine (make perf). It starts a cluster of its own (coffer up, two HSMs
# on 127.0.0.11 and .12), a SoftHSMv2 token beside it, and runs coffer bench
# through the same PKCS#11 code against both: the targets table, threads,
# keys held, and 1, 2 and 3 HSMs (the third added through the control
# plane's CreateHsm). For each cell it also reads the HSMs' CPU time from
# /proc. Results: $OUT/cells.tsv (a line a cell) and the JSON of each run.
# Bounded: every cell lasts DUR; the cluster is stopped at the end.
set -euo pipefail
BIN=$(realpath "${BIN:-bin}")
C=$BIN/coffer
LIB=$BIN/libcoffer_pkcs11.so
OUT=$(realpath -m "${OUT:-perf-out}")
DUR=${DUR:-5s}
HELD=${HELD:-10000,100000}
SOFTHSM=${SOFTHSM:-/usr/lib/softhsm/libsofthsm2.so}
TARGET_OPS=rsa2048-sign,ecdsa-p256,aes256-gcm-1k,hmac-sha256-1k,aes-keygen-token

for tool in jq softhsm2-util aws; do
	command -v "$tool" >/dev/null || { echo "perf.sh: $tool is needed" >&2; exit 1; }
done
rm -rf "$OUT"
mkdir -p "$OUT/softhsm/tokens"
D=$OUT/cluster
trap '"$C" down --data-dir "$D" >/dev/null 2>&1 || true' EXIT
"$C" up --detach --data-dir "$D" >"$OUT/up.out"

# Fresh token keys go to the HSM that confirmed them for a while
# (FreshObjectWindow) unless both must confirm: with 2, both HSMs serve.
jq '. + {"create_object_minimum_nodes": 2}' "$D/pkcs11.json" >"$OUT/pkcs11-2.json"
jq '. + {"create_object_minimum_nodes": 2, "batching": "off"}' "$D/pkcs11.json" >"$OUT/pkcs11-unbatched.json"
jq '.hsms |= .[:1]' "$D/pkcs11.json" >"$OUT/pkcs11-1.json"
export COFFER_PKCS11_CONFIG=$OUT/pkcs11-2.json
PIN="$(jq -r .crypto_user.username "$D/up.json"):$(jq -r .crypto_user.password "$D/up.json")"

printf 'directories.tokendir = %s/softhsm/tokens\nobjectstore.backend = file\n' "$OUT" >"$OUT/softhsm/softhsm2.conf"
export SOFTHSM2_CONF=$OUT/softhsm/softhsm2.conf
softhsm2-util --init-token --free --label bench --so-pin 5678 --pin 1234 >/dev/null

hsm_cpu() { # the HSM processes' CPU time, in clock ticks
	local t=0 p
	for p in $(pgrep -f "coffer hsm run --config $D/" || true); do
		t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo $t
}
printf 'run\ttarget\top\tthreads\tkeys\theld\tops_s\tp50_us\tp99_us\tclient_cpu_us_op\thsm_cpu_us_op\n' >"$OUT/cells.tsv"
TICK=$(getconf CLK_TCK)

# run NAME TARGET OPS THREADS ARGS...: coffer bench against TARGET (softhsm
# or coffer), one run per op and thread count, so that the HSMs' CPU time
# read around a run is that cell's (its key's set-up included).
run() {
	local name=$1 target=$2 ops=$3 threads=$4
	shift 4
	local mod=(--pkcs11 "$LIB" --pin "$PIN")
	[ "$target" = softhsm ] && mod=(--pkcs11 "$SOFTHSM" --pin 1234)
	local op n c0 c1 i=0
	for op in ${ops//,/ }; do
		for n in ${threads//,/ }; do
			i=$((i + 1))
			echo "== $name ($target): $op, $n threads $*" >&2
			c0=$(hsm_cpu)
			"$C" bench "${mod[@]}" --duration "$DUR" --json --ops "$op" --threads "$n" "$@" >"$OUT/$name.$i.json"
			c1=$(hsm_cpu)
			jq -r --arg run "$name" --arg target "$target" --argjson cpu $((c1 - c0)) --argjson tick "$TICK" '
				.held_keys as $held | .cells[] |
				[$run, $target, .op, (.threads | tostring), .keys, ($held // 0 | tostring)] +
				([.ops_per_second, .latency_us.p50, .latency_us.p99, .cpu_us_per_op] | map(floor | tostring)) +
				[if $target == "softhsm" or .ops == 0 then "-" else ($cpu / $tick * 1e6 / .ops | floor | tostring) end]
				| @tsv' "$OUT/$name.$i.json" >>"$OUT/cells.tsv"
		done
	done
}

# 1. The targets: token keys, then session keys, 1 and 32 threads.
run targets-softhsm softhsm "$TARGET_OPS" 1,32 --token-keys
run targets-coffer coffer "$TARGET_OPS" 1,32 --token-keys
run targets-coffer-session coffer "$TARGET_OPS" 1,32
COFFER_PKCS11_CONFIG=$OUT/pkcs11-unbatched.json run targets-coffer-unbatched coffer "$TARGET_OPS" 1,32 --token-keys

# 2. Threads (each thread has its own session: sessions grow with them;
# 1 and 32 are in the targets above).
run threads-softhsm softhsm ecdsa-p256,hmac-sha256-1k 8,64,256 --token-keys
run threads-coffer coffer ecdsa-p256,hmac-sha256-1k 8,64,256 --token-keys

# 3. Keys the cluster holds.
for n in ${HELD//,/ }; do
	run "held-$n" coffer hmac-sha256-1k,ecdsa-p256 32 --token-keys --hold-keys "$n"
done

# 4. HSMs: one (the configuration names one), two (above), three.
COFFER_PKCS11_CONFIG=$OUT/pkcs11-1.json run hsms-1 coffer ecdsa-p256,hmac-sha256-1k 32 --token-keys
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION
AWS_ACCESS_KEY_ID=$(jq -r .access_key_id "$D/up.json")
AWS_SECRET_ACCESS_KEY=$(jq -r .secret_access_key "$D/up.json")
AWS_DEFAULT_REGION=$(jq -r .region "$D/up.json")
endpoint=$(jq -r .endpoint "$D/up.json")
cluster=$(jq -r .cluster_id "$D/up.json")
aws --endpoint-url "$endpoint" cloudhsmv2 create-hsm --cluster-id "$cluster" \
	--availability-zone "${AWS_DEFAULT_REGION}a" >"$OUT/create-hsm.json"
for _ in $(seq 120); do
	addrs=$(aws --endpoint-url "$endpoint" cloudhsmv2 describe-clusters --filters "clusterIds=$cluster" |
		jq -c '[.Clusters[0].Hsms[] | select(.State == "ACTIVE") | .EniIp + ":2223"]')
	[ "$(jq length <<<"$addrs")" = 3 ] && break
	sleep 1
done
[ "$(jq length <<<"$addrs")" = 3 ] || { echo "perf.sh: the third HSM did not become ACTIVE" >&2; exit 1; }
jq --argjson a "$addrs" '.hsms = $a' "$OUT/pkcs11-2.json" >"$OUT/pkcs11-3.json"
sleep 5 # the HSMs restarted with the new member; let them settle
COFFER_PKCS11_CONFIG=$OUT/pkcs11-3.json run hsms-3 coffer ecdsa-p256,hmac-sha256-1k 32 --token-keys

column -t -s $'\t' "$OUT/cells.tsv"
