//! WS-Management (WinRS) client: SOAP envelopes, NTLM/Negotiate with message encryption, Basic over
//! HTTPS, and the remote shell lifecycle.
