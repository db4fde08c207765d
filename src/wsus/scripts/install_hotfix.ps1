$ArgKb = {{kb}}
$ArgPath = {{path}}
$ArgSha256 = {{sha256}}
$ArgArgs = {{args}}
$ArgTimeout = [int]{{timeout}}

try {
    if (-not [IO.File]::Exists($ArgPath)) {
        Stop-Wsusfix 'package-missing' 'System.IO.FileNotFoundException' ('KB' + $ArgKb + ' package ' + $ArgPath + ' does not exist or cannot be read by this session (a share must be readable without delegated credentials)')
    }
    # The package stays open, readable by others but not writable, from the hash check until the
    # installer has ended: the file that runs is the file that was checked.
    $stream = New-Object IO.FileStream($ArgPath, [IO.FileMode]::Open, [IO.FileAccess]::Read, [IO.FileShare]::Read)
    try {
        $sha = $null
        try {
            $sha = New-Object System.Security.Cryptography.SHA256Managed
        } catch {
            # SHA256Managed refuses to run when FIPS mode is enforced; the CSP is allowed (.NET 3.5).
            [void][Reflection.Assembly]::LoadWithPartialName('System.Core')
            $sha = New-Object System.Security.Cryptography.SHA256CryptoServiceProvider
        }
        $digest = $sha.ComputeHash($stream)
        $actual = [BitConverter]::ToString($digest).Replace('-', '').ToLowerInvariant()
        if ($actual -ne $ArgSha256) {
            Add-WsusfixKey 'actual_sha256' $actual
            Stop-Wsusfix 'hash-mismatch' 'System.Security.Cryptography.CryptographicException' ('KB' + $ArgKb + ' package ' + $ArgPath + ' has SHA-256 ' + $actual + ', expected ' + $ArgSha256)
        }

        $start = New-Object System.Diagnostics.ProcessStartInfo
        if ($ArgPath.EndsWith('.msp', [StringComparison]::OrdinalIgnoreCase)) {
            $start.FileName = [IO.Path]::Combine([Environment]::SystemDirectory, 'msiexec.exe')
            $start.Arguments = '/update "' + $ArgPath + '" ' + $ArgArgs
        } else {
            $start.FileName = $ArgPath
            $start.Arguments = $ArgArgs
        }
        $start.UseShellExecute = $false
        $process = [System.Diagnostics.Process]::Start($start)
        if (-not $process.WaitForExit($ArgTimeout * 1000)) {
            # Killing an installer half-way could leave WSUS broken; it is left to finish.
            Stop-Wsusfix 'timeout' 'System.TimeoutException' ('KB' + $ArgKb + ' installer (process ' + $process.Id + ') did not exit within ' + $ArgTimeout + ' s; it was left running')
        }
        $code = $process.ExitCode
    } finally {
        $stream.Close()
    }

    Add-WsusfixKey 'exit_code' ([string]$code)
    # 3010: success, reboot required; 1641: success, the installer started a reboot.
    if ($code -eq 0 -or $code -eq 3010 -or $code -eq 1641) {
        Add-WsusfixKey 'reboot_required' (ConvertTo-WsusfixBool ($code -ne 0))
        Complete-Wsusfix
    }
    Stop-Wsusfix 'install-failed' 'System.InvalidOperationException' ('KB' + $ArgKb + ' installer exited with code ' + $code)
} catch {
    Stop-WsusfixWith 'other' (Get-WsusfixCause $_)
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
