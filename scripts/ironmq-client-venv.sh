# Sourced by the scripts that drive Tools/ironmq-emulator with Iron.io's official Python client
# (PyPI `iron-mq`): installs it once into a virtualenv, .build-venv/ironmq, and reuses it
# afterwards. Sets $python to the interpreter to use (the virtualenv's, or python3 without the
# client) and $missing to why the client is not there (empty when it is).
#
# The virtualenv is made from Debian's /usr/bin/python3 when there is one: Debian's pip trusts the
# system CA store (/etc/ssl/certs), a pyenv or upstream pip only its own bundle. On a fresh Debian
# machine behind a TLS-intercepting proxy, pip's own CA bundle does not know the proxy; a second
# try points pip at the system's CA store.
#
# Environment: IVY_IRONMQ_PYTHON, the python3 that makes the virtualenv (default /usr/bin/python3,
# else python3). Expects say() from the caller and the project root as the working directory.

venv=.build-venv/ironmq
pythons=${IVY_IRONMQ_PYTHON:-/usr/bin/python3 python3}
system_cas=/etc/ssl/certs/ca-certificates.crt
export PIP_DISABLE_PIP_VERSION_CHECK=1

python=python3 # without the client, the raw-HTTP tests need only the standard library
missing=""
logs=$(mktemp -d "${TMPDIR:-/tmp}/ivy-ironmq-venv.XXXXXX") # pip's logs, removed at the end

# why pip failed: its TLS complaint if it made one, else its last line
reason() {
  local line=""
  if [ -r "$1" ]; then
    line=$(grep -o -m 1 -E '(SSLCertVerificationError|CERTIFICATE_VERIFY_FAILED)[^)]*' "$1" || true)
    [ -n "$line" ] || line=$(grep -v '^[[:space:]]*$' "$1" | tail -n 1 || true)
  fi
  echo "${line:-no output}" | cut -c 1-300
}

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import iron_mq' >/dev/null 2>&1; then
  python=$venv/bin/python
  say "official client: iron-mq from $venv"
else
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$venv"
    made=""
    for candidate in $pythons; do
      command -v "$candidate" >/dev/null 2>&1 || continue
      say "creating $venv with $candidate"
      if "$candidate" -m venv "$venv" >"$logs/venv.log" 2>&1; then
        made=$candidate
        break
      fi
      rm -rf "$venv"
    done
    [ -n "$made" ] ||
      missing="no python3 could make a virtualenv (on Debian: apt-get install python3-venv): $(reason "$logs/venv.log")"
  fi
  if [ -z "$missing" ]; then
    pip=("$venv/bin/python" -m pip install --quiet --no-input --timeout 20 --retries 2 iron-mq)
    say "installing iron-mq from PyPI into $venv"
    failed_log=""
    if ! "${pip[@]}" >"$logs/pip.log" 2>&1; then
      failed_log=$logs/pip.log
      if [ -z "${PIP_CERT:-}" ] && [ -r "$system_cas" ]; then
        say "pip failed ($(reason "$failed_log")); retrying with the system CA store $system_cas"
        failed_log=""
        "${pip[@]}" --cert "$system_cas" >"$logs/pip-cert.log" 2>&1 || failed_log=$logs/pip-cert.log
      fi
    fi
    if [ -z "$failed_log" ]; then
      python=$venv/bin/python
    else
      missing="pip install iron-mq failed: $(reason "$failed_log")"
    fi
  fi
fi
rm -rf "$logs"
