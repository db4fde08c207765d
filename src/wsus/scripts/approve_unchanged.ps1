$ArgUpdate = {{update}}
$ArgGroup = {{group}}

try {
    $wsus = Get-WsusfixServer
    $update = Get-WsusfixUpdate $wsus $ArgUpdate
    # By ID, never by display name: group names are localized.
    $group = $null
    try {
        $group = $wsus.GetComputerTargetGroup([Guid]$ArgGroup)
    } catch {
        $cause = Get-WsusfixCause $_
        Stop-Wsusfix 'other' ($cause.GetType().FullName) ('target group ' + $ArgGroup + ': ' + $cause.Message)
    }
    # KB 954960: "approve it, making no changes in the Approve Updates dialog". Untouched, that
    # dialog leaves every group Not approved, so the API equivalent is an approval with action
    # NotApproved (Install would be refused for the expired update).
    $action = [Microsoft.UpdateServices.Administration.UpdateApprovalAction]::NotApproved
    [void]$update.Approve($action, $group)
    Add-WsusfixKey 'approved' 'true'
    Complete-Wsusfix
} catch {
    $e = Find-WsusfixException $_ 'InvalidOperationException' '*expired*'
    if ($e -ne $null) {
        Stop-WsusfixWith 'expired' $e
    }
    Stop-WsusfixUpdateError $_
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
