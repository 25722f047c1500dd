# Sourced by the scripts that use Python packages from PyPI: Iron.io's official IronMQ client
# (`iron-mq`, for Tools/ironmq-emulator), which Debian does not package. Installs it once into a
# virtualenv, .build-venv/tools, and reuses it afterwards. Sets $python to the interpreter to use
# (the virtualenv's, or python3 without the package) and $missing to why it is not there (empty
# when it is). (Prometheus's parser comes from Debian, python3-prometheus-client: PyPI may be
# out of reach where apt is not.)
#
# The virtualenv is made from Debian's /usr/bin/python3 when there is one: Debian's pip trusts the
# system CA store (/etc/ssl/certs), a pyenv or upstream pip only its own bundle. On a fresh Debian
# machine behind a TLS-intercepting proxy, pip's own CA bundle does not know the proxy; a second
# try points pip at the system's CA store.
#
# Environment: IVY_IRONMQ_PYTHON, the python3 that makes the virtualenv (default /usr/bin/python3,
# else python3). Expects say() from the caller and the project root as the working directory;
# its own names start with _ivy_ and are unset at the end.

_ivy_venv=.build-venv/tools
_ivy_packages=(iron-mq)
_ivy_imports='import iron_mq'
_ivy_pythons=${IVY_IRONMQ_PYTHON:-/usr/bin/python3 python3}
_ivy_system_cas=/etc/ssl/certs/ca-certificates.crt
export PIP_DISABLE_PIP_VERSION_CHECK=1

python=python3 # without the packages, the raw-HTTP tests need only the standard library
missing=""
_ivy_logs=$(mktemp -d "${TMPDIR:-/tmp}/ivy-tools-venv.XXXXXX") # pip's logs, removed at the end

# why pip failed: its TLS complaint if it made one, else its last line
_ivy_reason() {
  local line=""
  if [ -r "$1" ]; then
    line=$(grep -o -m 1 -E '(SSLCertVerificationError|CERTIFICATE_VERIFY_FAILED)[^)]*' "$1" || true)
    [ -n "$line" ] || line=$(grep -v '^[[:space:]]*$' "$1" | tail -n 1 || true)
  fi
  echo "${line:-no output}" | cut -c 1-300
}

if [ -x "$_ivy_venv/bin/python" ] && "$_ivy_venv/bin/python" -c "$_ivy_imports" >/dev/null 2>&1; then
  python=$_ivy_venv/bin/python
  say "from PyPI: ${_ivy_packages[*]} in $_ivy_venv"
else
  if [ ! -x "$_ivy_venv/bin/python" ] || ! "$_ivy_venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$_ivy_venv"
    _ivy_made=""
    for _ivy_candidate in $_ivy_pythons; do
      command -v "$_ivy_candidate" >/dev/null 2>&1 || continue
      say "creating $_ivy_venv with $_ivy_candidate"
      if "$_ivy_candidate" -m venv "$_ivy_venv" >"$_ivy_logs/venv.log" 2>&1; then
        _ivy_made=$_ivy_candidate
        break
      fi
      rm -rf "$_ivy_venv"
    done
    [ -n "$_ivy_made" ] ||
      missing="no python3 could make a virtualenv (on Debian: apt-get install python3-venv): $(_ivy_reason "$_ivy_logs/venv.log")"
  fi
  if [ -z "$missing" ]; then
    _ivy_pip=("$_ivy_venv/bin/python" -m pip install --quiet --no-input --timeout 20 --retries 2 "${_ivy_packages[@]}")
    say "installing ${_ivy_packages[*]} from PyPI into $_ivy_venv"
    _ivy_failed_log=""
    if ! "${_ivy_pip[@]}" >"$_ivy_logs/pip.log" 2>&1; then
      _ivy_failed_log=$_ivy_logs/pip.log
      if [ -z "${PIP_CERT:-}" ] && [ -r "$_ivy_system_cas" ]; then
        say "pip failed ($(_ivy_reason "$_ivy_failed_log")); retrying with the system CA store $_ivy_system_cas"
        _ivy_failed_log=""
        "${_ivy_pip[@]}" --cert "$_ivy_system_cas" >"$_ivy_logs/pip-cert.log" 2>&1 || _ivy_failed_log=$_ivy_logs/pip-cert.log
      fi
    fi
    if [ -z "$_ivy_failed_log" ]; then
      python=$_ivy_venv/bin/python
    else
      missing="pip install ${_ivy_packages[*]} failed: $(_ivy_reason "$_ivy_failed_log")"
    fi
  fi
fi
rm -rf "$_ivy_logs"
unset -v _ivy_venv _ivy_packages _ivy_imports _ivy_pythons _ivy_system_cas _ivy_logs _ivy_made _ivy_failed_log _ivy_candidate _ivy_pip
unset -f _ivy_reason
