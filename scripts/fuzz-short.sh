#!/usr/bin/env bash
# fuzz-short.sh: run every Go fuzz target of the repository for a short while, one after another.
#
# Every `func FuzzXxx(` in a *_test.go file is a target. Each package's targets first run once on
# their seed corpora (f.Add and testdata/fuzz/<target>/, without -fuzz): a -fuzz run spends its
# -fuzztime starting the test binary and its workers and gathering baseline coverage, so a short
# one may end before it has tried every committed input.
# Then each target fuzzes with
#   go test -run '^$' -fuzz '^FuzzXxx$' -fuzztime "$FUZZTIME" <its package>
# (go test -fuzz takes one package and one target at a time). FUZZTIME defaults to 5s; it takes
# what -fuzztime takes (a duration such as 30s, or a count such as 1000x). FUZZFLAGS adds go test
# flags to every run (e.g. FUZZFLAGS='-parallel 1 -fuzzminimizetime 5s'). The script runs every
# target even after a failure, then lists the failures and exits 1. A failing input is written by
# go test under the package's testdata/fuzz/<target>/; commit it with the fix so it stays a test.
#
# A package whose tests start PostgreSQL (pgtest) would start it for every fuzz run and worker:
# keep fuzz targets in packages of unit tests (internal/service's run without a database).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime="${FUZZTIME:-5s}"
go="${GO:-go}"
read -r -a extra <<<"${FUZZFLAGS:-}"

# "dir name" pairs, sorted, from the test files under the repository (not bin/, vendor/, testdata/
# or hidden directories).
mapfile -t targets < <(
	find . \( -path ./bin -o -name vendor -o -name testdata -o -name '.?*' \) -prune -o \
		-type f -name '*_test.go' -print |
		while IFS= read -r file; do
			sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' "$file" | while IFS= read -r name; do
				printf '%s %s\n' "$(dirname "$file")" "$name"
			done
		done | LC_ALL=C sort -u
)

if [[ ${#targets[@]} -eq 0 ]]; then
	echo "fuzz-short: no fuzz targets found" >&2
	exit 1
fi

echo "fuzz-short: ${#targets[@]} targets, ${fuzztime} each"
failed=()

# The seed corpora, one go test per package.
mapfile -t dirs < <(printf '%s\n' "${targets[@]}" | cut -d' ' -f1 | LC_ALL=C sort -u)
for dir in "${dirs[@]}"; do
	names=$(printf '%s\n' "${targets[@]}" | awk -v d="$dir" '$1 == d { print $2 }' | paste -sd'|' -)
	echo "=== seed corpora of ${dir#./}: ${names//|/ }"
	if ! (cd "$dir" && "$go" test -count=1 -run "^(${names})\$" "${extra[@]}" .); then
		failed+=("seed corpora of ${dir#./}")
	fi
done

n=0
for entry in "${targets[@]}"; do
	dir="${entry% *}"
	name="${entry##* }"
	n=$((n + 1))
	echo "=== fuzz ${n}/${#targets[@]}: ${name} in ${dir#./}"
	# cd into the package, so that a package of a nested module runs with its own go.mod.
	if ! (cd "$dir" && "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "${extra[@]}" .); then
		failed+=("${name} (${dir#./})")
	fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
	echo "fuzz-short: ${#failed[@]} runs failed:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz-short: all ${#targets[@]} targets passed"
