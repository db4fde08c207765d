$ArgUpdate = {{update}}

try {
    $wsus = Get-WsusfixServer
    $update = Get-WsusfixUpdate $wsus $ArgUpdate
    if ($update.IsDeclined) {
        Add-WsusfixKey 'changed' 'false'
    } else {
        $update.Decline()
        $update.Refresh()
        Add-WsusfixKey 'changed' 'true'
    }
    Add-WsusfixKey 'declined' (ConvertTo-WsusfixBool $update.IsDeclined)
    Complete-Wsusfix
} catch {
    Stop-WsusfixUpdateError $_
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
