#!/usr/bin/env bash
# Regenerate the committed gRPC code from protos/. With --check, fail when the
# committed files differ from what the .proto files produce.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
out=protos
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d)
fi
files=$(cd protos && find shoal -name '*.proto' | sort)
# google/rpc/status.proto ships with googleapis-common-protos (a dependency).
rpc_protos=$("$PY" -c 'import google.rpc, pathlib; print(pathlib.Path(google.rpc.__path__[0]).parent.parent)')
(cd protos && "$OLDPWD/$PY" -m grpc_tools.protoc -I. -I"$rpc_protos" --python_out="$( [ "$out" = protos ] && echo . || echo "$out")" \
  --grpc_python_out="$( [ "$out" = protos ] && echo . || echo "$out")" \
  --pyi_out="$( [ "$out" = protos ] && echo . || echo "$out")" $files)
if [ "${1:-}" = "--check" ]; then
  status=0
  for f in $(cd "$out" && find shoal -name '*_pb2*.py*'); do
    if ! cmp -s "$out/$f" "protos/$f"; then echo "generated code is stale: protos/$f (run scripts/gen_protos.sh)"; status=1; fi
  done
  rm -rf "$out"
  exit $status
fi
