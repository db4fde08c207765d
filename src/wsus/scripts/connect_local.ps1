# The local WSUS server, reached with the port and SSL setting of its own registry.
function Connect-Wsusfix {
    [Microsoft.UpdateServices.Administration.AdminProxy]::GetUpdateServer()
}
