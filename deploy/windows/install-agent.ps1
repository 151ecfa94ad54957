<#
.SYNOPSIS
  Install (or remove) the nhigw workstation agent as a Windows service, with WinSW.

.DESCRIPTION
  Run in an elevated PowerShell on the workstation. What it does, in order:
    1. a Python venv in -Prefix with the nhigw wheel (pyscard has Windows wheels on PyPI);
    2. the data directory -Data (default C:\ProgramData\nhigw) readable only by the service,
       Administrators and SYSTEM (icacls): it holds the agent's sealed key, certificates and cloud SAMs;
    3. the Redis URL (with the agent's password) and the one-time enrolment token as files there
       (never on a command line: every local user sees those);
    4. nhigw-agent.exe (WinSW, -WinSW) and nhigw-agent.xml beside it, installed as the service
       "nhigw-agent" under its own virtual account NT SERVICE\nhigw-agent, started.
  Sealed files are bound to this PC's MachineGuid and the service's account: copied to another PC
  they do not open (no NHIGW_MASTER_KEY is needed on Windows).

  With -Component https://localhost:5066 the agent does no PC/SC itself: the official 6.0 component
  (which owns 5066 and the readers) does every card operation; -ComponentCa cshis6.crt pins its
  certificate (else it is pinned on first use). Without it the agent reads the PC/SC readers and
  depends on the smart-card service (SCardSvr).

.EXAMPLE
  .\install-agent.ps1 -Workstation ws-03 -RedisUrl "redis://agent:<password>@gw.clinic.lan:6379/0" `
      -EnrolToken <token> -Cloud https://medvpndc.nhi.gov.tw -Wheel .\nhigw-0.1.0-py3-none-any.whl `
      -WinSW .\WinSW-x64.exe
.EXAMPLE
  .\install-agent.ps1 -Workstation ws-03 -RedisUrl ... -EnrolToken ... -Component https://localhost:5066 `
      -ComponentCa "C:\NHI\cshis6.crt" -Wheel ... -WinSW ...
.EXAMPLE
  .\install-agent.ps1 -Uninstall      # stops and removes the service (the data directory is kept)
#>
param(
  [string]$Workstation = $env:COMPUTERNAME,
  [string]$RedisUrl,
  [string]$EnrolToken,
  [string]$Cloud = "https://medvpndc.nhi.gov.tw",
  [string]$CloudCa,
  [string]$Component,
  [string]$ComponentCa,
  [string]$Wheel,
  [string]$WinSW,
  [string]$Prefix = "C:\nhigw",
  [string]$Data = "C:\ProgramData\nhigw",
  [string]$Python = "py -3.11",
  [switch]$Uninstall
)
$ErrorActionPreference = "Stop"
$svc = Join-Path $Prefix "nhigw-agent.exe"

if ($Uninstall) {
  & $svc stop
  & $svc uninstall
  Write-Host "nhigw-agent removed; $Data kept (delete it to forget the agent's key and enrolment)"
  return
}
foreach ($p in "RedisUrl", "Wheel", "WinSW") {
  if (-not (Get-Variable $p -ValueOnly)) { throw "-$p is required" }
}

# 1. the venv and the wheel
New-Item -ItemType Directory -Force $Prefix | Out-Null
Invoke-Expression "$Python -m venv `"$Prefix\venv`""
& "$Prefix\venv\Scripts\pip.exe" install --upgrade $Wheel

# 2. the data directory: the service, Administrators and SYSTEM only
New-Item -ItemType Directory -Force $Data, "$Data\logs" | Out-Null
icacls $Data /inheritance:r /grant:r "NT SERVICE\nhigw-agent:(OI)(CI)M" "Administrators:(OI)(CI)F" "SYSTEM:(OI)(CI)F" | Out-Null

# 3. secrets as files (read once at start; the token is needed only for the first enrolment)
Set-Content -NoNewline -Encoding ascii "$Data\redis-url" $RedisUrl
if ($EnrolToken) { Set-Content -NoNewline -Encoding ascii "$Data\enrol-token" $EnrolToken }

# 4. the WinSW service
if ($Component) {
  $mode = "--component $Component" + $(if ($ComponentCa) { " --component-ca `"$ComponentCa`"" } else { "" })
  $depend = ""
} else {
  $mode = "--pcsc"
  $depend = "<depend>SCardSvr</depend>"
}
$xml = (Get-Content -Raw (Join-Path $PSScriptRoot "nhigw-agent.xml")).
  Replace("@VENV@", "$Prefix\venv").Replace("@DATA@", $Data).Replace("@WORKSTATION@", $Workstation).
  Replace("@MODE@", $mode).Replace("@DEPEND@", $depend).Replace("@CLOUD@", $Cloud).
  Replace("@CLOUDCA@", $(if ($CloudCa) { "<env name=`"NHIGW_CLOUD_CA`" value=`"$CloudCa`"/>" } else { "" }))
Set-Content -Encoding utf8 (Join-Path $Prefix "nhigw-agent.xml") $xml
Copy-Item $WinSW $svc -Force
& $svc install
sc.exe config nhigw-agent obj= "NT SERVICE\nhigw-agent" | Out-Null   # a virtual account: no password, no rights elsewhere
& $svc start
Write-Host "nhigw-agent started; check: $Prefix\venv\Scripts\nhigw.exe doctor --agent https://127.0.0.1:5066 --data-dir $Data --cloud $Cloud"
Write-Host "once the gateway logs agent_enrolled, delete $Data\enrol-token (the agent keeps its own key)"
