#!/usr/bin/env bash
# Install what the lab tier (tests/lab) needs from Debian: Postfix without a default
# configuration, rbldnsd, dnsmasq (the program only, not its service), microsocks, swaks
# (with its TLS module), ncat, strace (the demo test proves it only talks to loopback),
# chromium (the HTML report is loaded in it, headless), and the lab's mailbox: Dovecot with
# IMAP, LMTP and Sieve, and Debian's SPF policy service for Postfix (--verify-delivery). Non-interactive, starts no service,
# and does nothing (exit 0) when everything is already there. Run as root; .ci/run calls it
# before `make test`.
set -euo pipefail

# program (or Perl module) -> the Debian package that provides it
declare -A PROVIDES=(
    [postfix]=postfix
    [rbldnsd]=rbldnsd
    [dnsmasq]=dnsmasq-base
    [microsocks]=microsocks
    [swaks]=swaks
    [Net::SSLeay]=libnet-ssleay-perl
    [ncat]=ncat
    [strace]=strace
    [chromium]=chromium
    [dovecot]=dovecot-core
    [/usr/lib/dovecot/imap]=dovecot-imapd
    [/usr/lib/dovecot/lmtp]=dovecot-lmtpd
    [sievec]=dovecot-sieve
    [policyd-spf]=postfix-policyd-spf-python
)

have() {
    case "$1" in
        *::*) perl -M"$1" -e 1 2>/dev/null ;;
        /*) test -x "$1" ;;
        *) PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null ;;
    esac
}

missing=()
for program in "${!PROVIDES[@]}"; do
    have "$program" || missing+=("${PROVIDES[$program]}")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "lab packages: everything is installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "lab packages missing: ${missing[*]}; run as root: bash $0" >&2
    exit 1
fi
echo "lab packages: installing ${missing[*]}"

export DEBIAN_FRONTEND=noninteractive
# No default Postfix instance: the lab runs its own, from its own folder.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

# Package scripts must not start services (rbldnsd, postfix). A machine's own policy-rc.d is
# its policy: leave it alone; otherwise use a temporary one that refuses every start.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ] && [ ! -L "$policy" ]; then
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\n# temporary, from tests/lab/install-packages.sh: start no services\nexit 101\n' >"$policy"
    chmod 755 "$policy"
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

still=()
for program in "${!PROVIDES[@]}"; do
    have "$program" || still+=("$program")
done
if [ ${#still[@]} -ne 0 ]; then
    echo "lab packages: still missing after installing: ${still[*]}" >&2
    exit 1
fi
echo "lab packages: installed"
