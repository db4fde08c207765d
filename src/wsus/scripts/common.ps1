# Shared by every wsusfix script (docs/script-contract.md). PowerShell 2.0, .NET 2.0/3.5 only.
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

# An error that escapes every catch (a bug in a script) ends the script with exit code 1 and no
# error_kind: an unexpected failure, explained on stderr.
trap {
    [Console]::Error.WriteLine('wsusfix: unhandled error: ' + $_)
    exit 1
}

# Results are collected and written together at the end, so a failure never mixes half a result
# with its error. Each is a line wsusfix:KEY=BASE64(UTF-8 value).
$WsusfixKeys = New-Object System.Collections.ArrayList

function Add-WsusfixKey([string]$Key, [string]$Value) {
    $bytes = [System.Text.Encoding]::UTF8.GetBytes($Value)
    [void]$WsusfixKeys.Add('wsusfix:' + $Key + '=' + [System.Convert]::ToBase64String($bytes))
}

function Write-WsusfixKeys {
    foreach ($line in $WsusfixKeys) {
        [Console]::Out.WriteLine($line)
    }
    [Console]::Out.Flush()
}

# Success: the collected keys, exit code 0.
function Complete-Wsusfix {
    Write-WsusfixKeys
    exit 0
}

# A known failure: the collected keys, then error_kind, error_type and error; exit code 1.
function Stop-Wsusfix([string]$Kind, [string]$Type, [string]$Message) {
    Add-WsusfixKey 'error_kind' $Kind
    Add-WsusfixKey 'error_type' $Type
    Add-WsusfixKey 'error' $Message
    Write-WsusfixKeys
    exit 1
}

function Stop-WsusfixWith([string]$Kind, $Exception) {
    Stop-Wsusfix $Kind ($Exception.GetType().FullName) ($Exception.Message)
}

# The exception behind an error record: PowerShell wraps exceptions thrown by .NET methods
# (MethodInvocationException) and by cmdlets; skip those wrappers.
function Get-WsusfixCause($ErrorRecord) {
    $e = $ErrorRecord.Exception
    while ($e.InnerException -ne $null -and $e.GetType().FullName -like 'System.Management.Automation.*') {
        $e = $e.InnerException
    }
    $e
}

# The first exception in the error's chain whose type name (without namespace) is $TypeName and
# whose message is -like $Like, or $null.
function Find-WsusfixException($ErrorRecord, [string]$TypeName, [string]$Like) {
    $e = $ErrorRecord.Exception
    while ($e -ne $null) {
        if ($e.GetType().Name -eq $TypeName -and $e.Message -like $Like) {
            return $e
        }
        $e = $e.InnerException
    }
    $null
}

function ConvertTo-WsusfixBool($Value) {
    if ($Value) { 'true' } else { 'false' }
}

# ISO 8601 UTC with milliseconds; '' for no time (DateTime.MinValue, or SQL's 1753-01-01 that
# WSUS reports for "never"). The WSUS API returns UTC times; only Local ones are converted.
function ConvertTo-WsusfixTime($Time) {
    if ($Time -eq $null) {
        return ''
    }
    $t = [DateTime]$Time
    if ($t.Year -le 1753) {
        return ''
    }
    if ($t.Kind -eq [DateTimeKind]::Local) {
        $t = $t.ToUniversalTime()
    }
    $t.ToString('yyyy-MM-dd\THH:mm:ss.fff\Z', [Globalization.CultureInfo]::InvariantCulture)
}

# Running, Stopped, another ServiceControllerStatus name, or NotInstalled.
function Get-WsusfixServiceState([string]$Name) {
    $service = Get-Service -Name $Name -ErrorAction SilentlyContinue
    if ($service -eq $null) {
        return 'NotInstalled'
    }
    [string]$service.Status
}
