#!/usr/bin/env bash
# Print the path of a CPython 3.12 interpreter (the Lambda runtime's version), or fail.
# The layers are byte-compiled with it at build time: /opt is read-only in Lambda, so a layer
# without .pyc files recompiles every module on every cold start.
set -u
candidates=(python3.12)
if [ -n "${PYENV_ROOT:-${HOME:-}/.pyenv}" ]; then
    for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do candidates+=("$p"); done
fi
for p in "${candidates[@]}"; do
    if command -v "$p" >/dev/null 2>&1 && \
       "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then
        command -v "$p"
        exit 0
    fi
done
echo "no CPython 3.12 found (python3.12 on PATH or pyenv versions/3.12.*): it byte-compiles the layers" >&2
exit 1
