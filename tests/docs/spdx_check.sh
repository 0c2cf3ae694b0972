#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# spdx_check.sh SOURCE_DIR: every source, script and build file of the
# checkout names its licence with an SPDX-License-Identifier line (issue 15:
# the project is Apache-2.0; LICENSE has the text). Lists the files that do
# not and exits 1; exits 0 when all do. Needs the git checkout (the file list
# is `git ls-files`: generated and untracked files are not sources).
set -euo pipefail
src=${1:?usage: spdx_check.sh SOURCE_DIR}
cd "$src"
[[ -f LICENSE ]] || { echo "spdx_check: no LICENSE file in $src" >&2; exit 1; }
grep -q "Apache License" LICENSE || { echo "spdx_check: LICENSE is not the Apache License" >&2; exit 1; }
mapfile -t files < <(git ls-files |
  grep -E '\.(c|h|cpp|cc|sh|cmake|js|mjs)$|CMakeLists\.txt$|^\.ci/run$|^cmake/aether_version\.h\.in$|^tools/[a-z-]+$' |
  grep -vE '^tests/(corpus|vectors)/')
missing=()
for f in "${files[@]}"; do
  [[ -f "$f" ]] || continue
  head -n 3 "$f" | grep -q 'SPDX-License-Identifier: Apache-2.0' || missing+=("$f")
done
if (( ${#missing[@]} > 0 )); then
  echo "spdx_check: ${#missing[@]} of ${#files[@]} files lack 'SPDX-License-Identifier: Apache-2.0' in their first 3 lines:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "spdx_check: ${#files[@]} files, each with its SPDX line"
