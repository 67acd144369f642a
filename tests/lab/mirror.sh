# shellcheck shell=bash
# Sourced by guest-image.sh and host-root.sh: the Debian mirror their builds download from.
# VIRTOPS_GUEST_MIRROR, else the first .../debian URI of the machine's apt sources (one-line and
# deb822 formats), else deb.debian.org.
mirror() {
    local m=${VIRTOPS_GUEST_MIRROR:-}
    if [[ -z $m ]]; then
        m=$(
            {
                sed -nE 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
                    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
                sed -nE 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr -s '[:blank:]' '\n'
            } | grep -E '^https?://[^[:space:]]+/debian/?$' | head -n 1 || true
        )
    fi
    m=${m:-http://deb.debian.org/debian}
    printf '%s' "${m%/}"
}
