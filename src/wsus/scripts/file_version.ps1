$ArgPath = {{path}}

try {
    $setup = Get-WsusfixSetup
    $file = [IO.Path]::Combine($setup.TargetDir, $ArgPath)
    if ([IO.File]::Exists($file)) {
        Add-WsusfixKey 'exists' 'true'
        Add-WsusfixKey 'version' (Get-WsusfixFileVersion $file)
    } else {
        Add-WsusfixKey 'exists' 'false'
        Add-WsusfixKey 'version' ''
    }
    Complete-Wsusfix
} catch {
    Stop-WsusfixWith 'other' (Get-WsusfixCause $_)
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
