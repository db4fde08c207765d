//! Typed WSUS 3.0 operations and the PowerShell 2.0 scripts that carry them out over WinRM.
