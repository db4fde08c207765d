$ArgServer = {{server}}
$ArgPort = [int]{{port}}
$ArgSsl = [bool]::Parse({{ssl}})

# The WSUS web site by name, port and SSL (API remoting through IIS). The two-argument form would
# assume port 80 or 443 and miss a site on 8530/8531.
function Connect-Wsusfix {
    [Microsoft.UpdateServices.Administration.AdminProxy]::GetUpdateServer($ArgServer, $ArgSsl, $ArgPort)
}
