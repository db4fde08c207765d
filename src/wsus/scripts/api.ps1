# The WSUS administration API (Microsoft.UpdateServices.Administration).

function Get-WsusfixServer {
    $assembly = [Reflection.Assembly]::LoadWithPartialName('Microsoft.UpdateServices.Administration')
    if ($assembly -eq $null) {
        Stop-Wsusfix 'wsus-not-installed' 'System.IO.FileNotFoundException' 'WSUS is not installed: the assembly Microsoft.UpdateServices.Administration cannot be loaded'
    }
    Connect-Wsusfix
}

# The latest revision of an update (revision 0 means the latest); throws
# WsusObjectNotFoundException when the server never synchronised it.
function Get-WsusfixUpdate($Server, [string]$UpdateId) {
    $id = New-Object Microsoft.UpdateServices.Administration.UpdateRevisionId([Guid]$UpdateId)
    $Server.GetUpdate($id)
}

# Ends the script for an error of an approval or a decline: replica-mode when a replica refused
# it, not-synced when the update is unknown to the server, other otherwise.
function Stop-WsusfixUpdateError($ErrorRecord) {
    $e = Find-WsusfixException $ErrorRecord 'InvalidOperationException' '*replica*'
    if ($e -ne $null) {
        Stop-WsusfixWith 'replica-mode' $e
    }
    $e = Find-WsusfixException $ErrorRecord 'WsusObjectNotFoundException' '*'
    if ($e -ne $null) {
        Stop-WsusfixWith 'not-synced' $e
    }
    Stop-WsusfixWith 'other' (Get-WsusfixCause $ErrorRecord)
}

# $true once the configuration state is Ready (not ProcessingSave, not
# SynchronizationInProgress); $false if it is still busy at $Deadline (UTC).
function Wait-WsusfixConfigReady($Config, [DateTime]$Deadline) {
    while ($true) {
        if ([string]$Config.GetUpdateServerConfigurationState() -eq 'Ready') {
            return $true
        }
        if ([DateTime]::UtcNow -ge $Deadline) {
            return $false
        }
        Start-Sleep -Seconds 2
    }
}
