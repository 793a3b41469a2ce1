#!/usr/bin/env bash
# CPU profile of a login benchmark, grouped by what the time is spent on:
#   local/cpu-breakdown.sh BINARY PROFILE
# (make bench-login writes .cache/bench/login-cpu-breakdown.txt with it).
set -euo pipefail
bin=$1 prof=$2
group() { # name, pprof focus regexp
  printf '%-34s ' "$1"
  go tool pprof -top -focus="$2" "$bin" "$prof" 2>/dev/null | sed -n 's/^Showing nodes accounting for \([^,]*\), \([^ ]*\) of \(.*\) total$/\1  \2 of \3/p'
}
group "argon2 (local hash check)"      'golang.org/x/crypto/argon2'
group "AWS SDK signing (SigV4)"        'aws-sdk-go-v2/aws/signer'
group "AWS SDK (all middleware)"       'aws-sdk-go-v2|smithy-go'
group "JSON (API, SDK, Keycloak)"      'encoding/json|smithy-go/encoding/json|attributevalue'
group "HTTP and sockets"               'net/http|internal/poll|syscall'
group "token cache AES-GCM"            'crypto/aes|crypto/cipher'
group "GC and allocation"              'runtime\.(gcBgMarkWorker|gcDrain|mallocgc|scanobject|memclrNoHeapPointers|madvise)'
