#!/usr/bin/env bash
# The house rules, checked: swift-format's strict lint over the code (the root .swift-format),
# and the DocC catalogs converted with warnings as errors (broken links, undocumented
# parameters). Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
swift format lint --recursive --strict Sources Tests Package.swift

# Symbol graphs of the documented modules, from a build of their own (no package plugin).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The graphs go to a fixed directory: a new one each run would change the flags, and the build
# would start over (20 s instead of under one).
graphs=.build-docs/symbol-graphs
swift build --scratch-path .build-docs -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir \
  -Xswiftc "$PWD/$graphs" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
status=0
for catalog in Sources/*/Docs.docc; do
  module=$(basename "$(dirname "$catalog")")
  mkdir -p "$work/$module"
  cp "$graphs/$module.symbols.json" "$work/$module/"
  cp "$graphs/$module"@*.symbols.json "$work/$module/" 2>/dev/null || true
  if ! docc convert "$catalog" --fallback-display-name "$module" --fallback-bundle-identifier "org.ivy.$module" \
    --additional-symbol-graph-dir "$work/$module" --output-path "$work/out-$module" --warnings-as-errors \
    >"$work/$module.log" 2>&1; then
    echo "lint: DocC for $module:" >&2
    grep -E "warning|error" "$work/$module.log" >&2 || cat "$work/$module.log" >&2
    status=1
  fi
done
exit $status
