// Package api is the auditor's HTTP API: the audit log's entries, filtered by stream, event
// type and recording time and paged by sequence number (GET /v1/audit), and the verification
// of its hash chain (GET /v1/audit/verify).
//
// It only reads: it never appends to, changes or removes an entry. Handlers return their
// errors to the services' one error table (httpx.Errors), to which the auditor adds nothing: a
// malformed request gets 400 invalid_request naming the parameter, and server-side failures
// are logged without the entries' data.
package api
