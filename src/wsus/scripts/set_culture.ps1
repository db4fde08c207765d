$ArgCulture = {{culture}}

# The user locale ("Standards and formats") of the account the script runs as, read from the
# registry: the culture of a running process stays the one it started with.
function Get-WsusfixUserCulture {
    $key = [Microsoft.Win32.Registry]::CurrentUser.OpenSubKey('Control Panel\International')
    if ($key -eq $null) {
        return (Get-Culture).Name
    }
    try {
        $name = [string]$key.GetValue('LocaleName')
        $lcid = [string]$key.GetValue('Locale')
    } finally {
        $key.Close()
    }
    if ($name -ne '') {
        return $name
    }
    if ($lcid -ne '') {
        return (New-Object Globalization.CultureInfo([Convert]::ToInt32($lcid, 16))).Name
    }
    (Get-Culture).Name
}

# Sets the user locale the way the Regional Options control panel does, from an answer file:
# the GlobalizationServices XML on Windows Server 2008 and later, a [RegionalSettings] text
# file on Windows Server 2003. control.exe hands the file on and may return first, so the
# registry is polled until the change shows (60 s at most).
function Set-WsusfixUserCulture($Culture) {
    $file = [IO.Path]::Combine([IO.Path]::GetTempPath(), 'wsusfix-culture-' + [Guid]::NewGuid().ToString('N'))
    if ([Environment]::OSVersion.Version.Major -ge 6) {
        $file = $file + '.xml'
        $text = '<gs:GlobalizationServices xmlns:gs="urn:longhornGlobalizationUnattend">' +
            '<gs:UserList><gs:User UserID="Current"/></gs:UserList>' +
            '<gs:UserLocale><gs:Locale Name="' + $Culture.Name + '" SetAsCurrent="true"/></gs:UserLocale>' +
            '</gs:GlobalizationServices>'
        $exe = [IO.Path]::Combine([Environment]::SystemDirectory, 'control.exe')
        $arguments = 'intl.cpl,,/f:"' + $file + '"'
    } else {
        $file = $file + '.txt'
        $text = "[RegionalSettings]`r`nUserLocale = " + $Culture.LCID.ToString('x8', [Globalization.CultureInfo]::InvariantCulture) + "`r`n"
        $exe = [IO.Path]::Combine([Environment]::SystemDirectory, 'rundll32.exe')
        $arguments = 'shell32.dll,Control_RunDLL intl.cpl,,/f:"' + $file + '"'
    }
    [IO.File]::WriteAllText($file, $text, [Text.Encoding]::ASCII)
    try {
        $process = [System.Diagnostics.Process]::Start($exe, $arguments)
        [void]$process.WaitForExit(60000)
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        while ((Get-WsusfixUserCulture) -ne $Culture.Name -and [DateTime]::UtcNow -lt $deadline) {
            Start-Sleep -Seconds 1
        }
    } finally {
        [IO.File]::Delete($file)
    }
}

try {
    $culture = $null
    try {
        $culture = New-Object Globalization.CultureInfo($ArgCulture)
    } catch {
        Stop-WsusfixWith 'bad-culture' (Get-WsusfixCause $_)
    }
    if ($culture.IsNeutralCulture) {
        Stop-Wsusfix 'bad-culture' 'System.ArgumentException' ($ArgCulture + ' is a neutral culture; a regional format needs a specific one such as en-US')
    }
    $previous = Get-WsusfixUserCulture
    Add-WsusfixKey 'previous' $previous
    if ($previous -ne $culture.Name) {
        Set-WsusfixUserCulture $culture
    }
    $current = Get-WsusfixUserCulture
    if ($current -ne $culture.Name) {
        Stop-Wsusfix 'other' 'System.InvalidOperationException' ('the regional format is still ' + $current + ' after setting ' + $culture.Name)
    }
    Add-WsusfixKey 'current' $current
    Complete-Wsusfix
} catch {
    Stop-WsusfixWith 'other' (Get-WsusfixCause $_)
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
