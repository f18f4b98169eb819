package api

import (
	"net/http"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// Error codes of the API, next to the HTTP statuses they go with.
const (
	CodeInvalidRequest = httpx.CodeInvalidRequest // 400, with field
	CodeNotFound       = httpx.CodeNotFound       // 404
	CodeNotCaughtUp    = "not_caught_up"          // 504, with stream_id, version and min_version
	CodeUnavailable    = httpx.CodeUnavailable    // 503
	CodeInternal       = httpx.CodeInternal       // 500
)

// errorRules are the projector's own entries of its error table (httpx.Errors): a read model
// still behind after the wait.
var errorRules = []httpx.Rule{
	httpx.As(func(nc *readmodel.NotCaughtUpError) httpx.Problem {
		return httpx.Problem{Status: http.StatusGatewayTimeout, Code: CodeNotCaughtUp, Message: nc.Error(),
			Fields: map[string]any{"stream_id": nc.StreamID, "version": nc.Version, "min_version": nc.MinVersion}}
	}),
}
