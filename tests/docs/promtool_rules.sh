#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# promtool_rules.sh: the Prometheus alerting rules of docs/alerts.md
# (docs/examples/prometheus/aether-alerts.yml) are accepted by
# `promtool check rules`, and every alert the tables of docs/alerts.md name
# (**AetherX**) is a rule of that file, and every rule of the file is named
# in the tables (tests layer; ctest docs.promtool_rules).
#
#   promtool_rules.sh SOURCE_DIR
#
# Exit 0 ok, 1 with the reason, 77 (ctest: skipped) when promtool is not
# installed (Debian package prometheus; tools/deps installs it).
set -u
src=${1:?usage: promtool_rules.sh SOURCE_DIR}
rules=$src/docs/examples/prometheus/aether-alerts.yml
doc=$src/docs/alerts.md
command -v promtool >/dev/null || { echo "promtool not installed (tools/deps): skipped"; exit 77; }
out=$(promtool check rules "$rules" 2>&1) || { echo "promtool check rules $rules:"; echo "$out"; exit 1; }
echo "$out"
in_doc=$(grep -o '^| \*\*Aether[A-Za-z]*\*\*' "$doc" | tr -d '|* ' | sort -u)
in_rules=$(sed -n 's/^ *- alert: \(Aether[A-Za-z]*\) *$/\1/p' "$rules" | sort -u)
[[ -n "$in_doc" ]] || { echo "no **AetherX** alert rows found in $doc"; exit 1; }
missing=$(comm -23 <(echo "$in_doc") <(echo "$in_rules"))
extra=$(comm -13 <(echo "$in_doc") <(echo "$in_rules"))
[[ -z "$missing" ]] || { echo "alerts in docs/alerts.md but not in $rules: $missing"; exit 1; }
[[ -z "$extra" ]] || { echo "rules in $rules not described in docs/alerts.md: $extra"; exit 1; }
echo "PASS: $(echo "$in_rules" | wc -l) alerts, the same in docs/alerts.md and the rules file"
