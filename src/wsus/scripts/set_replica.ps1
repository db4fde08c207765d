$ArgReplica = [bool]::Parse({{replica}})
$ArgTimeout = [int]{{timeout}}

try {
    $deadline = [DateTime]::UtcNow.AddSeconds($ArgTimeout)
    $wsus = Get-WsusfixServer
    $config = $wsus.GetConfiguration()
    if ($config.IsReplicaServer -eq $ArgReplica) {
        Add-WsusfixKey 'changed' 'false'
        Add-WsusfixKey 'replica' (ConvertTo-WsusfixBool $config.IsReplicaServer)
        Complete-Wsusfix
    }

    # Save() throws InvalidOperationException while a synchronisation or an earlier save is
    # being processed (up to minutes): wait for Ready, and retry a refused save while busy.
    $refusedWhileReady = 0
    while ($true) {
        if (-not (Wait-WsusfixConfigReady $config $deadline)) {
            Stop-Wsusfix 'config-busy' 'System.TimeoutException' ('the configuration was not Ready within ' + $ArgTimeout + ' s (state ' + $config.GetUpdateServerConfigurationState() + ')')
        }
        $config = $wsus.GetConfiguration()
        $config.IsReplicaServer = $ArgReplica
        try {
            $config.Save()
            break
        } catch {
            if ((Find-WsusfixException $_ 'InvalidOperationException' '*') -eq $null) {
                throw
            }
            if ([string]$config.GetUpdateServerConfigurationState() -eq 'Ready') {
                $refusedWhileReady = $refusedWhileReady + 1
                if ($refusedWhileReady -ge 3) {
                    throw
                }
            }
            Start-Sleep -Seconds 2
        }
    }

    # The save starts background processing; give it the rest of the timeout, then read back.
    [void](Wait-WsusfixConfigReady $config $deadline)
    $saved = $wsus.GetConfiguration()
    if ($saved.IsReplicaServer -ne $ArgReplica) {
        Stop-Wsusfix 'other' 'System.InvalidOperationException' ('the server saved the configuration but IsReplicaServer is still ' + $saved.IsReplicaServer)
    }
    Add-WsusfixKey 'changed' 'true'
    Add-WsusfixKey 'replica' (ConvertTo-WsusfixBool $saved.IsReplicaServer)
    Complete-Wsusfix
} catch {
    Stop-WsusfixWith 'other' (Get-WsusfixCause $_)
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
