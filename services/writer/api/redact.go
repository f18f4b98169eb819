package api

import (
	"net/http"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
)

// redactEvents returns evs with the emails and names in their data redacted, unless the
// caller holds the personal-data scope. evs is changed in place.
func redactEvents(r *http.Request, evs []events.Envelope) []events.Envelope {
	if auth.SeesPersonalData(r.Context()) {
		return evs
	}
	for i := range evs {
		evs[i].Data = domain.RedactPersonalData(evs[i].Type, evs[i].Data, auth.Redacted)
	}
	return evs
}

// redactUser returns u with its email and name redacted, unless the caller holds the
// personal-data scope.
func redactUser(r *http.Request, u domain.UserState) domain.UserState {
	if !auth.SeesPersonalData(r.Context()) {
		u.Email, u.Name = auth.Redacted, auth.Redacted
	}
	return u
}
