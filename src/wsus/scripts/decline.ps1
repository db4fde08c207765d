$ArgUpdate = {{update}}

try {
    $wsus = Get-WsusfixServer
    $update = Get-WsusfixUpdate $wsus $ArgUpdate
    $wasDeclined = $update.IsDeclined
    # Declined or not, decline: this is the last step of the approval reset, and declining
    # removes the approvals of every revision.
    $update.Decline()
    $update.Refresh()
    Add-WsusfixKey 'changed' (ConvertTo-WsusfixBool (-not $wasDeclined))
    Add-WsusfixKey 'declined' (ConvertTo-WsusfixBool $update.IsDeclined)
    Complete-Wsusfix
} catch {
    Stop-WsusfixUpdateError $_
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
