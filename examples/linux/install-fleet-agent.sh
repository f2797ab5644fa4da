#!/usr/bin/env bash
# Install the fleet agent on a client site's Linux box, from the MSP's RMM (run as root).
#
#   install-fleet-agent.sh SITE_ID CENTRAL_URL INVENTORY.yaml KEY_FILE [WHEELHOUSE]
#
# KEY_FILE holds what `fleet agent-key SITE_ID` printed on the central machine. With
# WHEELHOUSE (a folder of wheels: `pip download fleet -d DIR` where there is internet),
# nothing is fetched from the network. Installs fleet in /opt/fleet, the
# inventory in /etc/fleet, and a nightly systemd timer (fleet-agent.timer) running
# `fleet sweep --site SITE_ID --push CENTRAL_URL` as the user fleet.
# Exit codes: 0 installed; 10 and up: the install failed (the message says why).
set -euo pipefail

fail() { echo "fleet install: $2"; exit "$1"; }

[ "$(id -u)" -eq 0 ] || fail 10 "run as root"
[ $# -ge 4 ] || fail 10 "usage: $0 SITE_ID CENTRAL_URL INVENTORY.yaml KEY_FILE [WHEELHOUSE]"
site=$1 central=$2 inventory=$3 key_file=$4 wheelhouse=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
[ -f "$inventory" ] || fail 11 "no inventory at $inventory"
key=$(tr -d '[:space:]' <"$key_file")
[[ $key =~ ^[0-9a-fA-F]{64}$ ]] || fail 12 "the key file must hold the 64 hex characters \`fleet agent-key $site\` printed"
python=$(command -v python3.13 || command -v python3.12 || command -v python3.11 || true)
[ -n "$python" ] || fail 13 "no Python 3.11-3.13 (apt-get install python3 python3-venv)"

# 1. fleet in its own virtual environment
[ -x /opt/fleet/bin/python ] || "$python" -m venv /opt/fleet || fail 14 "cannot create /opt/fleet"
if [ -n "$wheelhouse" ]; then
    /opt/fleet/bin/pip install --quiet --upgrade --no-index --find-links "$wheelhouse" fleet
else
    /opt/fleet/bin/pip install --quiet --upgrade fleet
fi || fail 15 "pip could not install fleet"

# 2. the user, the inventory (root-owned, readable by fleet) and the key (root only:
#    systemd reads the EnvironmentFile before it drops to the user fleet)
id fleet >/dev/null 2>&1 || useradd --system --home-dir /var/lib/fleet --shell /usr/sbin/nologin fleet
install -d -m 0750 -o root -g fleet /etc/fleet
install -m 0640 -o root -g fleet "$inventory" /etc/fleet/inventory.yaml
umask 077
printf 'FLEET_SITE=%s\nFLEET_CENTRAL=%s\nFLEET_AGENT_KEY=%s\n' "$site" "$central" "$key" >/etc/fleet/agent.env
chmod 0600 /etc/fleet/agent.env
/opt/fleet/bin/fleet validate /etc/fleet/inventory.yaml >/dev/null || fail 17 "the inventory does not validate: run \`fleet validate\` on it"

# 3. the nightly timer
install -m 0644 "$here/fleet-agent.service" "$here/fleet-agent.timer" /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now fleet-agent.timer >/dev/null
echo "fleet install: $(/opt/fleet/bin/fleet --version) for site $site; fleet-agent.timer: $(systemctl show -p NextElapseUSecRealtime --value fleet-agent.timer)"
# What an RMM reads afterwards: the last run's exit code and its summary line
#   systemctl show -p ExecMainStatus --value fleet-agent.service
#   journalctl -u fleet-agent.service -n 20 --no-pager | grep 'fleet sweep '
