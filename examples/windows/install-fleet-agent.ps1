<#
.SYNOPSIS
    Install the fleet agent on a client site's Windows machine, from the MSP's RMM.

.DESCRIPTION
    Run once per site, as SYSTEM or an administrator (the RMM's "run script" does that):

    1. installs fleet for the machine in its own virtual environment under
       C:\Program Files\fleet, from PyPI or from an offline wheelhouse
       (`make wheelhouse-windows` on the MSP's Linux box builds one);
    2. writes the site's inventory and its agent key (what `fleet agent-key SITE_ID` printed
       on the central machine) under C:\ProgramData\fleet, readable by SYSTEM and
       Administrators only (fleet relies on this folder's ACL on Windows);
    3. registers the Scheduled Task \fleet\fleet-agent, nightly, as SYSTEM, which runs
       fleet-agent.ps1: `fleet sweep --site SITE_ID --push CENTRAL_URL`. The task's
       "Last Run Result" is fleet's exit code; fleet-agent.ps1 prints one summary line.

    Exit codes of this script: 0 installed (and, with -RunNow, the first sweep's code:
    0 ok, 1 warn, 2 critical, 3 unknown or could not run); 10 and up: the install failed
    (the one line it prints says why).

.EXAMPLE
    .\install-fleet-agent.ps1 -SiteId contoso-hq -CentralUrl https://fleet.msp.example `
        -InventoryFile .\contoso-hq.yaml -AgentKey $env:FLEET_SITE_KEY -RunNow

.EXAMPLE
    # No internet at the site: the wheelhouse copied next to the script
    .\install-fleet-agent.ps1 -SiteId contoso-hq -CentralUrl https://fleet.msp.example `
        -InventoryFile .\contoso-hq.yaml -AgentKeyFile .\contoso-hq.key -Wheelhouse .\wheelhouse-windows
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$SiteId,
    [Parameter(Mandatory = $true)][string]$CentralUrl,
    [Parameter(Mandatory = $true)][string]$InventoryFile,
    # The site's key from `fleet agent-key SITE_ID` (hex). Prefer -AgentKeyFile or an RMM
    # secret variable: a key typed on a command line can end up in a log.
    [string]$AgentKey,
    [string]$AgentKeyFile,
    # A folder of wheels (offline install); without it, pip installs from PyPI.
    [string]$Wheelhouse,
    # What pip installs: "fleet", "fleet==0.1.0", or a wheel's path.
    [string]$Package = "fleet",
    # A Python 3.11-3.13 for all users; without it, the py launcher's newest 3.11-3.13.
    [string]$Python,
    # The python.org installer (python-3.12.x-amd64.exe) to run silently if no Python is found.
    [string]$PythonInstaller,
    [string]$At = "02:30",
    [switch]$RunNow
)

Set-StrictMode -Version 3
# Cmdlets stop the script on failure; native programs (py, pip, icacls, fleet) are judged by
# their exit codes: Windows PowerShell would otherwise turn any line they write to stderr
# into a terminating error.
$ErrorActionPreference = "Continue"
$PSDefaultParameterValues["*:ErrorAction"] = "Stop"
trap { Write-Output "fleet install: $_"; exit 19 }

$Data = Join-Path $env:ProgramData "fleet"        # C:\ProgramData\fleet
$Venv = Join-Path $env:ProgramFiles "fleet"        # C:\Program Files\fleet
$TaskPath = "\fleet\"
$TaskName = "fleet-agent"

# What the Scheduled Task runs (written to C:\ProgramData\fleet\fleet-agent.ps1). It prints
# one line, fleet's summary, and exits with fleet's code: 0 ok, 1 warn, 2 critical,
# 3 unknown or could not run (also: the central refused the result). The rest goes to
# logs\agent.log; the table to reports\last.txt; last-run.txt keeps the last line.
$AgentScript = @'
# fleet-agent.ps1: run nightly by the Scheduled Task \fleet\fleet-agent, as SYSTEM.
$ErrorActionPreference = "Continue"   # fleet's stderr is information, not a PowerShell error
$Data = Join-Path $env:ProgramData "fleet"
$config = Get-Content -Raw -Path "$Data\agent.json" | ConvertFrom-Json
$env:FLEET_AGENT_KEY = (Get-Content -Raw -Path "$Data\agent.key").Trim()
$env:FLEET_INVENTORY = "$Data\inventory.yaml"
$env:FLEET_DB = "$Data\fleet.db"
$env:PYTHONUTF8 = "1"                 # names in any script reach the log intact
try { [Console]::OutputEncoding = [Text.Encoding]::UTF8 } catch { }
$log = "$Data\logs\agent.log"
# The result goes to the central (and waits in the spool while it cannot be reached).
$said = & $config.fleet --log-file $log sweep --site $config.site --push $config.central `
    --spool "$Data\spool" --quiet --output "$Data\reports\last.txt" 2>&1 | ForEach-Object { "$_" }
$code = $LASTEXITCODE
$stamp = Get-Date -Format "yyyy-MM-dd HH:mm:ss"
Add-Content -Encoding utf8 -Path $log -Value ($said | ForEach-Object { "$stamp $_" })
$summary = @($said | Where-Object { $_ -like "fleet sweep *" }) | Select-Object -Last 1
if (-not $summary) { $summary = "fleet: " + (@($said) | Select-Object -Last 1) }
$meaning = @{ 0 = "ok"; 1 = "warn"; 2 = "critical"; 3 = "unknown" }[$code]
$line = "$summary (exit $code $meaning)"
Set-Content -Encoding utf8 -Path "$Data\last-run.txt" -Value "$stamp $line"
Write-Output $line
exit $code
'@

function Fail([int]$Code, [string]$Message) {
    Write-Output "fleet install: $Message"
    exit $Code
}

function Find-Python {
    if ($Python) { return $Python }
    $launcher = Get-Command py.exe -ErrorAction SilentlyContinue
    if ($launcher) {
        foreach ($version in "3.13", "3.12", "3.11") {
            $exe = & $launcher.Source "-$version" -c "import sys; print(sys.executable)" 2>$null
            if ($LASTEXITCODE -eq 0 -and $exe) { return $exe.Trim() }
        }
    }
    foreach ($version in "313", "312", "311") {
        $exe = Join-Path $env:ProgramFiles "Python$version\python.exe"
        if (Test-Path $exe) { return $exe }
    }
    return $null
}

# -- 0. checks ----------------------------------------------------------------------------
$identity = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $identity.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Fail 10 "run as SYSTEM or an administrator"
}
if (-not (Test-Path $InventoryFile)) { Fail 11 "no inventory at $InventoryFile" }
if ($AgentKeyFile) { $AgentKey = (Get-Content -Raw -Path $AgentKeyFile).Trim() }
if (-not $AgentKey -or $AgentKey -notmatch '^[0-9a-fA-F]{64}$') {
    Fail 12 "give the site's key from ``fleet agent-key $SiteId`` (-AgentKey or -AgentKeyFile: 64 hex characters)"
}

# -- 1. Python and fleet, for the machine -----------------------------------------------------
$py = Find-Python
if (-not $py -and $PythonInstaller) {
    $installer = Start-Process -FilePath $PythonInstaller -Wait -PassThru `
        -ArgumentList "/quiet", "InstallAllUsers=1", "PrependPath=0", "Include_test=0", "Include_launcher=1"
    if ($installer.ExitCode -ne 0) { Fail 13 "the Python installer failed ($($installer.ExitCode))" }
    $py = Find-Python
}
if (-not $py) { Fail 13 "no Python 3.11-3.13 for all users: pass -Python or -PythonInstaller" }

if (-not (Test-Path (Join-Path $Venv "Scripts\python.exe"))) {
    & $py -m venv $Venv
    if ($LASTEXITCODE -ne 0) { Fail 14 "cannot create the virtual environment $Venv" }
}
$pip = @("-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade")
if ($Wheelhouse) { $pip += @("--no-index", "--find-links", (Resolve-Path $Wheelhouse).Path) }
& (Join-Path $Venv "Scripts\python.exe") @pip $Package
if ($LASTEXITCODE -ne 0) { Fail 15 "pip could not install $Package" }
$fleet = Join-Path $Venv "Scripts\fleet.exe"

# -- 2. the site's files, for SYSTEM and Administrators only ----------------------------------
New-Item -ItemType Directory -Force -Path $Data | Out-Null
# No inherited access (C:\ProgramData lets every user read and create): SYSTEM (S-1-5-18)
# and Administrators (S-1-5-32-544) only, by SID so it works in every Windows language.
& icacls.exe $Data /inheritance:r /grant:r "*S-1-5-18:(OI)(CI)F" "*S-1-5-32-544:(OI)(CI)F" | Out-Null
if ($LASTEXITCODE -ne 0) { Fail 16 "cannot set the ACL of $Data" }
New-Item -ItemType Directory -Force -Path "$Data\spool", "$Data\logs", "$Data\reports" | Out-Null

Copy-Item -Force -Path $InventoryFile -Destination "$Data\inventory.yaml"
Set-Content -NoNewline -Encoding ascii -Path "$Data\agent.key" -Value $AgentKey
# The task's script is written from here: an RMM uploads one file.
Set-Content -Encoding utf8 -Path "$Data\fleet-agent.ps1" -Value $AgentScript
@{ site = $SiteId; central = $CentralUrl; fleet = $fleet } | ConvertTo-Json |
    Set-Content -Encoding ascii -Path "$Data\agent.json"

& $fleet validate "$Data\inventory.yaml" | Out-Null
if ($LASTEXITCODE -ne 0) { Fail 17 "the inventory does not validate: run ``fleet validate`` on it" }

# -- 3. the nightly Scheduled Task ------------------------------------------------------------
$runner = "$Data\fleet-agent.ps1"
$action = New-ScheduledTaskAction -Execute "powershell.exe" `
    -Argument "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$runner`""
$trigger = New-ScheduledTaskTrigger -Daily -At $At -RandomDelay (New-TimeSpan -Minutes 15)
$principal = New-ScheduledTaskPrincipal -UserId "S-1-5-18" -LogonType ServiceAccount -RunLevel Highest
# A missed night runs at the next start; never two at once (fleet's lock would refuse the
# second anyway); fleet's own per-site budgets end a sweep long before the limit.
$settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -MultipleInstances IgnoreNew `
    -ExecutionTimeLimit (New-TimeSpan -Hours 4) -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
Register-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName -Action $action -Trigger $trigger `
    -Principal $principal -Settings $settings -Force | Out-Null

Write-Output "fleet install: $(& $fleet --version) for site $SiteId; task $TaskPath$TaskName daily at $At; files in $Data"

if ($RunNow) {
    # The first sweep now, in this script: the RMM sees its summary line and exit code.
    & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $runner
    exit $LASTEXITCODE
}
exit 0
