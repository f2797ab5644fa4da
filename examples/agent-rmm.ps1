# Agent mode from an RMM (a scheduled script at a site the central machine cannot reach).
# The site's scanner box sweeps only its own site and writes a self-contained result;
# the RMM collects the file; the central machine runs `fleet ingest`.
# Set FLEET_AGENT_KEY (same value on both ends) to sign results.
$env:FLEET_INVENTORY = "C:\ProgramData\fleet\inventory.yaml"
fleet sweep --site $env:FLEET_SITE_ID --no-store --quiet --format json --output "C:\ProgramData\fleet\result-$(Get-Date -Format yyyyMMdd).json"
# exit codes: 0 ok, 1 warn, 2 critical, 3 unknown/could not run
exit $LASTEXITCODE
# Central machine, after the RMM copied the files:
#   fleet ingest -i /etc/fleet/inventory.yaml /srv/rmm/drop/*.json
