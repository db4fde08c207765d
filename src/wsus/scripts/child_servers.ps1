try {
    $wsus = Get-WsusfixServer
    # Direct children only; GetDownstreamServers() would return the whole rolled-up subtree.
    foreach ($child in $wsus.GetChildServers()) {
        $fields = @(
            [string]$child.FullDomainName,
            (ConvertTo-WsusfixBool $child.IsReplica),
            [string]$child.Version,
            (ConvertTo-WsusfixTime $child.LastSyncTime),
            [string]$child.Id,
            [string]$child.ParentServerId
        )
        Add-WsusfixKey 'child' ($fields -join '|')
    }
    Complete-Wsusfix
} catch {
    Stop-WsusfixWith 'other' (Get-WsusfixCause $_)
}

[Console]::Error.WriteLine('wsusfix: the script ended without a result')
exit 1
