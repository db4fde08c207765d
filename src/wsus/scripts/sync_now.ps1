$ArgTimeout = [int]{{timeout}}

try {
    $deadline = [DateTime]::UtcNow.AddSeconds($ArgTimeout)
    $wsus = Get-WsusfixServer
    $config = $wsus.GetConfiguration()
    while ([string]$config.GetUpdateServerConfigurationState() -eq 'ProcessingSave') {
        if ([DateTime]::UtcNow -ge $deadline) {
            Stop-Wsusfix 'config-busy' 'System.TimeoutException' ('the configuration was still being saved after ' + $ArgTimeout + ' s')
        }
        Start-Sleep -Seconds 2
    }

    $subscription = $wsus.GetSubscription()
    # A synchronisation already running began before this call: let it end, then start one.
    while ([string]$subscription.GetSynchronizationStatus() -ne 'NotProcessing') {
        if ([DateTime]::UtcNow -ge $deadline) {
            Stop-Wsusfix 'timeout' 'System.TimeoutException' ('a synchronisation already running did not end within ' + $ArgTimeout + ' s')
        }
        Start-Sleep -Seconds 5
    }
    $previousStart = $subscription.GetLastSynchronizationInfo().StartTime
    try {
        $subscription.StartSynchronization()
    } catch {
        $e = Find-WsusfixException $_ 'InvalidOperationException' '*'
        if ($e -ne $null) {
            Stop-WsusfixWith 'config-busy' $e
        }
        throw
    }

    # The status may read NotProcessing for a moment after the start: the synchronisation is
    # over once the last one recorded is a new one and nothing runs.
    while ($true) {
        Start-Sleep -Seconds 5
        $status = [string]$subscription.GetSynchronizationStatus()
        $info = $subscription.GetLastSynchronizationInfo()
        if ($status -eq 'NotProcessing' -and $info.StartTime -ne $previousStart) {
            break
        }
        if ([DateTime]::UtcNow -ge $deadline) {
            Stop-Wsusfix 'timeout' 'System.TimeoutException' ('the synchronisation did not end within ' + $ArgTimeout + ' s (status ' + $status + '); it was left running')
        }
    }
    Add-WsusfixKey 'result' ([string]$info.Result)
    Add-WsusfixKey 'started' (ConvertTo-WsusfixTime $info.StartTime)
    Add-WsusfixKey 'finished' (ConvertTo-WsusfixTime $info.EndTime)
    if ([string]$info.Result -ne 'Succeeded') {
        Add-WsusfixKey 'error_text' ([string]$info.ErrorText)
        Stop-Wsusfix 'sync-failed' 'System.InvalidOperationException' ('the synchronisation ended with ' + $info.Result + ': ' + $info.ErrorText)
    }
    Complete-Wsusfix
} catch {
    Stop-WsusfixWith 'other' (Get-WsusfixCause $_)
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
