#!/usr/bin/env bash
# check-breaking.sh: fail when proto/ breaks compatibility, unannounced, with what was released.
#
# The baseline is the latest release tag reachable from HEAD (git describe --tags --abbrev=0 --match
# 'v*') or, while there is none, the first commit. Its buf.yaml and proto/ are extracted with
# git archive into a temporary directory (so this works in a git worktree and in a fresh clone) and
# compared with the working tree by the pinned buf (BUF, default bin/buf) under buf.yaml's breaking
# rules (FILE: wire, JSON and generated-code compatibility).
#
# A deliberate break is "announced" in scripts/announced-breaks.txt: one line per break, exactly as
# this script prints it ("RULE path message", without line numbers), under a comment saying why and
# since when. Announced breaks are reported and allowed; any other fails with buf's message.
#
# Without the history (not a git checkout, or a shallow clone with no release tag) the script says
# that it SKIPPED and why, and exits 0 so that a source tarball still runs `make test`; with
# RESOLVER_REQUIRE_BREAKING_CHECK=1 (for CI) skipping is a failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
buf="${BUF:-bin/buf}"
announced=scripts/announced-breaks.txt

skip() {
	echo "check-breaking: SKIPPED, proto/ was NOT checked for breaking changes: $*" >&2
	if [[ "${RESOLVER_REQUIRE_BREAKING_CHECK:-}" == 1 ]]; then
		echo "check-breaking: RESOLVER_REQUIRE_BREAKING_CHECK=1 makes a skipped check a failure" >&2
		exit 1
	fi
	exit 0
}

if [[ ! -x "$buf" ]]; then
	echo "check-breaking: $buf is missing: run 'make tools' (or set BUF)" >&2
	exit 1
fi
top=$(git rev-parse --show-toplevel 2>/dev/null) || skip "this is not a git checkout, so there is no release to compare with"
if [[ "$(cd "$top" && pwd -P)" != "$(pwd -P)" ]]; then
	skip "$(pwd -P) is not the root of its git checkout ($top), so its history is not this project's"
fi

if base=$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null); then
	what="release $base"
else
	if [[ "$(git rev-parse --is-shallow-repository)" == true ]]; then
		skip "a shallow clone without a release tag has no first commit to compare with (git fetch --unshallow)"
	fi
	base=$(git rev-list --max-parents=0 HEAD | tail -1)
	what="the first commit ${base:0:12} (there is no release tag v* yet)"
fi

mapfile -t paths < <(git ls-tree --name-only "$base" -- buf.yaml buf.lock proto)
if [[ ! " ${paths[*]} " =~ " proto " ]]; then
	echo "check-breaking: $what has no proto/: nothing released to break"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$base" -- "${paths[@]}" | tar -x -C "$tmp"

set +e
out=$("$buf" breaking --against "$tmp" --error-format=msvs 2>&1)
rc=$?
set -e
if [[ $rc -ne 0 && $rc -ne 100 ]]; then
	# 100 is buf's "found breaking changes"; anything else is buf failing to run.
	printf '%s\n' "$out" >&2
	echo "check-breaking: buf breaking failed (exit $rc)" >&2
	exit 1
fi

# msvs lines: "path(line,col) : error RULE : message" → the key "RULE path message".
key() { sed -E 's/^([^(]*)(\([0-9]+(,[0-9]+)?\))? : error ([A-Z0-9_]+) : (.*)$/\4 \1 \5/'; }
mapfile -t known < <(grep -v -e '^#' -e '^[[:space:]]*$' "$announced" 2>/dev/null || true)
# contains NEEDLE ITEMS...: whether NEEDLE is one of ITEMS.
contains() {
	local needle=$1 item
	shift
	for item in "$@"; do
		[[ "$item" == "$needle" ]] && return 0
	done
	return 1
}

unannounced=()
unannounced_keys=()
found=()
while IFS= read -r line; do
	[[ -z "$line" ]] && continue
	k=$(key <<<"$line")
	found+=("$k")
	if contains "$k" "${known[@]}"; then
		echo "check-breaking: announced break against $what (allowed): $k"
	else
		unannounced+=("$line")
		unannounced_keys+=("$k")
	fi
done <<<"$out"

for k in "${known[@]}"; do
	if ! contains "$k" "${found[@]}"; then
		echo "check-breaking: note: $announced announces a break that $what no longer shows; remove it: $k"
	fi
done

if [[ ${#unannounced[@]} -gt 0 ]]; then
	{
		echo "check-breaking: proto/ breaks compatibility with $what:"
		printf '  %s\n' "${unannounced[@]}"
		echo "Undo the change (add a field or method instead of changing one), or, if the break is deliberate,"
		echo "announce it: add these lines to $announced, under a comment saying why and since when:"
		printf '  %s\n' "${unannounced_keys[@]}"
	} >&2
	exit 1
fi
echo "check-breaking: OK, no unannounced breaking change of proto/ against $what"
