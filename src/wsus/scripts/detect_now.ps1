$ArgTimeout = [int]{{timeout}}

try {
    $log = [IO.Path]::Combine($env:windir, 'WindowsUpdate.log')
    $offset = [long]0
    if ([IO.File]::Exists($log)) {
        $offset = (New-Object IO.FileInfo($log)).Length
    }
    $agent = Get-WsusfixServiceState 'wuauserv'
    if ($agent -ne 'Running') {
        Stop-Wsusfix 'wuauclt-failed' 'System.InvalidOperationException' ('the Automatic Updates service (wuauserv) is ' + $agent + ': wuauclt.exe /detectnow would do nothing')
    }
    $wuauclt = [IO.Path]::Combine([Environment]::SystemDirectory, 'wuauclt.exe')
    if (-not [IO.File]::Exists($wuauclt)) {
        Stop-Wsusfix 'wuauclt-failed' 'System.IO.FileNotFoundException' ($wuauclt + ' does not exist')
    }
    $process = [System.Diagnostics.Process]::Start($wuauclt, '/detectnow')
    if (-not $process.WaitForExit(60000)) {
        Stop-Wsusfix 'wuauclt-failed' 'System.TimeoutException' 'wuauclt.exe /detectnow did not exit within 60 s'
    }
    if ($process.ExitCode -ne 0) {
        Stop-Wsusfix 'wuauclt-failed' 'System.InvalidOperationException' ('wuauclt.exe /detectnow exited with code ' + $process.ExitCode)
    }

    # Follow the log from its length before the trigger until a search ends (the Agent's END line
    # for "Finding updates"), detection is refused, or the timeout passes. The log is ANSI, or
    # UTF-16LE when it starts with a byte order mark; the 5000 latest lines are kept.
    $deadline = [DateTime]::UtcNow.AddSeconds($ArgTimeout)
    $lines = New-Object System.Collections.ArrayList
    $partial = ''
    $unicode = $null
    $completed = $false
    $ended = $false
    while (-not $ended) {
        Start-Sleep -Seconds 2
        if ([DateTime]::UtcNow -ge $deadline) {
            $ended = $true
        }
        if (-not [IO.File]::Exists($log)) {
            continue
        }
        $stream = New-Object IO.FileStream($log, [IO.FileMode]::Open, [IO.FileAccess]::Read, [IO.FileShare]'ReadWrite, Delete')
        try {
            if ($unicode -eq $null) {
                $bom = New-Object byte[] 2
                $unicode = $stream.Read($bom, 0, 2) -eq 2 -and $bom[0] -eq 0xFF -and $bom[1] -eq 0xFE
            }
            if ($stream.Length -lt $offset) {
                # The log was started anew.
                $offset = [long]0
                $partial = ''
            }
            $count = [int]($stream.Length - $offset)
            $text = ''
            if ($count -gt 0) {
                [void]$stream.Seek($offset, [IO.SeekOrigin]::Begin)
                $bytes = New-Object byte[] $count
                $read = 0
                while ($read -lt $count) {
                    $n = $stream.Read($bytes, $read, $count - $read)
                    if ($n -le 0) {
                        break
                    }
                    $read = $read + $n
                }
                $offset = $offset + $read
                if ($unicode) {
                    $text = [Text.Encoding]::Unicode.GetString($bytes, 0, $read).TrimStart([char]0xFEFF)
                } else {
                    $text = [Text.Encoding]::Default.GetString($bytes, 0, $read)
                }
            }
        } finally {
            $stream.Close()
        }
        if ($text -eq '') {
            continue
        }
        $parts = ($partial + $text).Split([char]10)
        $partial = $parts[$parts.Length - 1]
        for ($i = 0; $i -lt $parts.Length - 1; $i++) {
            $line = $parts[$i].TrimEnd([char]13)
            [void]$lines.Add($line)
            if ($lines.Count -gt 5000) {
                $lines.RemoveAt(0)
            }
            if ($line -match 'Agent\s+\*\*\s+END\s+\*\*\s+Agent: Finding updates') {
                $completed = $true
                $ended = $true
            } elseif ($line -match 'Can not perform non-interactive scan|Unable to trigger Automatic Updates to detect now') {
                $ended = $true
            }
        }
    }
    if ($partial.TrimEnd([char]13) -ne '') {
        [void]$lines.Add($partial.TrimEnd([char]13))
    }
    foreach ($line in $lines) {
        Add-WsusfixKey 'line' $line
    }
    Add-WsusfixKey 'completed' (ConvertTo-WsusfixBool $completed)
    Complete-Wsusfix
} catch {
    Stop-WsusfixWith 'other' (Get-WsusfixCause $_)
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
