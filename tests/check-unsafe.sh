#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Refuses the unsafe C functions the style guide bans, in our own sources.
set -euo pipefail
cd "$(dirname "$0")/.."
hits=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|atoi|atol|strtok|rand|srand|gets)[[:space:]]*\(' \
    $(git ls-files '*.c' '*.h' 2>/dev/null || find agent sync platform tools tests -name '*.[ch]') \
    | grep -vE '\b(snprintf|vsnprintf)\b' || true)
if [[ -n $hits ]]; then
    echo "unsafe functions (use snprintf, strtol, plat_random ...):" >&2
    echo "$hits" >&2
    exit 1
fi
