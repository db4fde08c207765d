# The WSUS setup key and file versions (facts, file_version).

# VersionString, InstallType and TargetDir from HKLM\SOFTWARE\Microsoft\Update Services\Server\Setup,
# or wsus-not-installed. WinRS starts the native PowerShell (64-bit on x64), whose registry and
# file system views are not redirected; a 32-bit one on 64-bit Windows would read the wrong ones.
function Get-WsusfixSetup {
    if ($env:PROCESSOR_ARCHITEW6432) {
        Stop-Wsusfix 'other' 'System.PlatformNotSupportedException' ('32-bit PowerShell on 64-bit Windows (' + $env:PROCESSOR_ARCHITEW6432 + '): the WSUS registry key and folders would be redirected')
    }
    $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey('SOFTWARE\Microsoft\Update Services\Server\Setup')
    if ($key -eq $null) {
        Stop-Wsusfix 'wsus-not-installed' 'System.InvalidOperationException' 'WSUS is not installed: there is no HKLM\SOFTWARE\Microsoft\Update Services\Server\Setup key'
    }
    try {
        $setup = @{
            VersionString = [string]$key.GetValue('VersionString')
            InstallType = [string]$key.GetValue('InstallType')
            TargetDir = [string]$key.GetValue('TargetDir')
        }
    } finally {
        $key.Close()
    }
    if ($setup.TargetDir -eq '') {
        Stop-Wsusfix 'wsus-not-installed' 'System.InvalidOperationException' 'WSUS is not installed: the Setup key has no TargetDir'
    }
    $setup
}

# The Win32 file version (VS_FIXEDFILEINFO) as four numbers, or '' for a file without one. Never
# the .NET AssemblyVersion, which stays 3.1.6001.1 across WSUS 3.0 builds.
function Get-WsusfixFileVersion([string]$Path) {
    $info = [System.Diagnostics.FileVersionInfo]::GetVersionInfo($Path)
    if ($info.FileMajorPart -eq 0 -and $info.FileMinorPart -eq 0 -and $info.FileBuildPart -eq 0 -and $info.FilePrivatePart -eq 0) {
        return ''
    }
    '{0}.{1}.{2}.{3}' -f $info.FileMajorPart, $info.FileMinorPart, $info.FileBuildPart, $info.FilePrivatePart
}
