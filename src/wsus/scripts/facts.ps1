$ArgUpdate = {{update}}
$ArgSince = {{since}}
$ArgServices = @({{services}})

# SoftwareDistribution.log records at or after $Since (ISO 8601 UTC, '' for all) that hold the
# duplicate-key failure of KB 954960, each with its continuation lines (stack traces have no
# timestamp). Reads at most the last 16 MB of the log and keeps the 50 latest records, each cut
# to 8000 characters. The log is open in WSUS, hence the shared read.
function Add-WsusfixSoftdistRecords([string]$Path, [string]$Since) {
    if (-not [IO.File]::Exists($Path)) {
        return
    }
    $from = ''
    if ($Since -ne '') {
        $from = $Since.Substring(0, 23).Replace('T', ' ')
    }
    $found = New-Object System.Collections.ArrayList
    $stream = New-Object IO.FileStream($Path, [IO.FileMode]::Open, [IO.FileAccess]::Read, [IO.FileShare]'ReadWrite, Delete')
    try {
        $window = 16MB
        if ($stream.Length -gt $window) {
            [void]$stream.Seek($stream.Length - $window, [IO.SeekOrigin]::Begin)
        }
        $reader = New-Object IO.StreamReader($stream, $true)
        if ($stream.Position -gt 0) {
            [void]$reader.ReadLine()
        }
        $record = $null
        $stamp = ''
        while ($true) {
            $line = $reader.ReadLine()
            $start = $line -eq $null -or $line -match '^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d\d\d) '
            if ($start -and $record -ne $null) {
                if ($record.Contains('Item has already been added') -and ($from -eq '' -or [string]::CompareOrdinal($stamp, $from) -ge 0)) {
                    if ($record.Length -gt 8000) {
                        $record = $record.Substring(0, 8000)
                    }
                    [void]$found.Add($record)
                    if ($found.Count -gt 50) {
                        $found.RemoveAt(0)
                    }
                }
                $record = $null
            }
            if ($line -eq $null) {
                break
            }
            if ($start) {
                $record = $line
                $stamp = $matches[1]
            } elseif ($record -ne $null) {
                $record = $record + "`n" + $line
            }
        }
    } finally {
        $stream.Close()
    }
    foreach ($record in $found) {
        Add-WsusfixKey 'softdist_record' $record
    }
}

try {
    $setup = Get-WsusfixSetup
    Add-WsusfixKey 'version_string' $setup.VersionString
    Add-WsusfixKey 'install_type' $setup.InstallType
    Add-WsusfixKey 'target_dir' $setup.TargetDir
    if ($setup.InstallType -eq '2') {
        Stop-Wsusfix 'wsus-not-installed' 'System.InvalidOperationException' 'only the WSUS administration console is installed (InstallType 2), not the server'
    }

    $wsus = Get-WsusfixServer
    $config = $wsus.GetConfiguration()
    Add-WsusfixKey 'replica' (ConvertTo-WsusfixBool $config.IsReplicaServer)
    Add-WsusfixKey 'sync_from_mu' (ConvertTo-WsusfixBool $config.SyncFromMicrosoftUpdate)
    Add-WsusfixKey 'upstream_name' ([string]$config.UpstreamWsusServerName)
    Add-WsusfixKey 'upstream_port' ([string]$config.UpstreamWsusServerPortNumber)
    Add-WsusfixKey 'upstream_ssl' (ConvertTo-WsusfixBool $config.UpstreamWsusServerUseSsl)
    Add-WsusfixKey 'config_state' ([string]$config.GetUpdateServerConfigurationState())
    $subscription = $wsus.GetSubscription()
    Add-WsusfixKey 'sync_status' ([string]$subscription.GetSynchronizationStatus())
    Add-WsusfixKey 'last_sync_result' ([string]$subscription.GetLastSynchronizationInfo().Result)

    # No registry value records the language WSUS was installed in; the language Windows was
    # installed in is the proxy (docs/operations.md).
    Add-WsusfixKey 'install_language' ([Globalization.CultureInfo]::InstalledUICulture.Name)
    Add-WsusfixKey 'current_culture' ((Get-Culture).Name)
    $arch = [string]$env:PROCESSOR_ARCHITECTURE
    if ($arch -eq 'AMD64') {
        $arch = 'x64'
    } elseif ($arch -eq 'x86') {
        $arch = 'x86'
    } else {
        $arch = $arch.ToLowerInvariant()
    }
    Add-WsusfixKey 'arch' $arch

    $dll = [IO.Path]::Combine($setup.TargetDir, 'WebServices\ClientWebService\bin\Microsoft.UpdateServices.WebServices.Client.dll')
    if ([IO.File]::Exists($dll)) {
        Add-WsusfixKey 'dll_version' (Get-WsusfixFileVersion $dll)
    } else {
        Add-WsusfixKey 'dll_version' ''
    }

    $update = $null
    try {
        $update = Get-WsusfixUpdate $wsus $ArgUpdate
    } catch {
        if ((Find-WsusfixException $_ 'WsusObjectNotFoundException' '*') -eq $null) {
            throw
        }
    }
    if ($update -eq $null) {
        Add-WsusfixKey 'update_synced' 'false'
    } else {
        Add-WsusfixKey 'update_synced' 'true'
        Add-WsusfixKey 'update_declined' (ConvertTo-WsusfixBool $update.IsDeclined)
        Add-WsusfixKey 'update_publication_state' ([string]$update.PublicationState)
        foreach ($approval in $update.GetUpdateApprovals()) {
            Add-WsusfixKey 'update_approval' ([string]$approval.ComputerTargetGroupId + '|' + [string]$approval.Action)
        }
    }

    foreach ($name in $ArgServices) {
        Add-WsusfixKey 'service' ($name + '|' + (Get-WsusfixServiceState $name))
    }

    Add-WsusfixSoftdistRecords ([IO.Path]::Combine($setup.TargetDir, 'LogFiles\SoftwareDistribution.log')) $ArgSince
    Complete-Wsusfix
} catch {
    Stop-WsusfixWith 'other' (Get-WsusfixCause $_)
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
