package api

import (
	"net/http"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// redactUser returns u with its email and name redacted, unless the caller holds the
// personal-data scope.
func redactUser(r *http.Request, u readmodel.User) readmodel.User {
	if !auth.SeesPersonalData(r.Context()) {
		u.Email, u.Name = auth.Redacted, auth.Redacted
	}
	return u
}
