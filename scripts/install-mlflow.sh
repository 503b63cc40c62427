#!/usr/bin/env bash
# Installs MLflow 3.17.2 into target/mlflow-venv (once) for the MLflow integration test and prints
# the path of its `mlflow` executable on stdout; everything else goes to stderr.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/mlflow-venv"
version="3.17.2"
mlflow="$venv/bin/mlflow"

installed_version() {
    "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mlflow"))' 2>/dev/null || true
}

if [ -x "$mlflow" ] && [ "$(installed_version)" = "$version" ]; then
    echo "mlflow $version already installed in $venv" >&2
else
    python="${PYTHON:-python3}"
    echo "installing mlflow $version into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "mlflow==$version" >&2
fi

echo "$mlflow"
