// Package api is the projector's HTTP query API: users, orders, a user's orders and order
// statistics, read from the read models of package readmodel, with cursor paging and
// read-your-writes waits (?min_version=N&wait=2s).
//
// It only reads: it never changes a read model or the event store. Handlers return their
// errors to the services' one error table (httpx.Errors), with the projector's own rule for a
// read model still behind after a wait (504); a malformed request gets 400 invalid_request
// naming the parameter, and server-side failures are logged without request bodies.
package api
