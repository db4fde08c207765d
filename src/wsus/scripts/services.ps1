$ArgNames = @({{names}})
$ArgWaitRunning = @({{wait_running}})
$ArgTimeout = [int]{{timeout}}

try {
    $deadline = [DateTime]::UtcNow.AddSeconds($ArgTimeout)
    while ($true) {
        $waiting = @()
        foreach ($name in $ArgWaitRunning) {
            if ((Get-WsusfixServiceState $name) -ne 'Running') {
                $waiting += $name
            }
        }
        if ($waiting.Count -eq 0 -or [DateTime]::UtcNow -ge $deadline) {
            break
        }
        Start-Sleep -Seconds 2
    }
    foreach ($name in $ArgNames) {
        Add-WsusfixKey 'service' ($name + '|' + (Get-WsusfixServiceState $name))
    }
    if ($waiting.Count -gt 0) {
        Stop-Wsusfix 'timeout' 'System.TimeoutException' ('not running after ' + $ArgTimeout + ' s: ' + ($waiting -join ', '))
    }
    Complete-Wsusfix
} catch {
    Stop-WsusfixWith 'other' (Get-WsusfixCause $_)
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
