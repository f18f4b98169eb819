package api

import "github.com/annals-dev/annals/internal/httpx"

// Error codes of the API, next to the HTTP statuses they go with. httpx.Errors maps errors to
// them; the notifier adds no rule of its own.
const (
	CodeInvalidRequest = httpx.CodeInvalidRequest // 400, with field
	CodeUnavailable    = httpx.CodeUnavailable    // 503
	CodeInternal       = httpx.CodeInternal       // 500
)
