// Package api is the notifier's HTTP API: GET /v1/notifications, the sent log, filtered by
// recipient (to) or event (event_id) and paged with limit and cursor like the projector's
// lists.
//
// It only reads: it never changes the sent log. Handlers return their errors to the services'
// one error table (httpx.Errors), to which the notifier adds nothing: a malformed request gets
// 400 invalid_request naming the parameter, and server-side failures are logged without
// request bodies.
package api
