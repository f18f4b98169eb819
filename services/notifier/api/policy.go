package api

import "github.com/annals-dev/annals/internal/auth"

// Policy is the scope each of the notifier's routes needs: notifications:read. Without
// personal-data, the sent log carries its recipients redacted.
func Policy() auth.Policy {
	return auth.Policy{"GET /v1/notifications": auth.ScopeNotificationsRead}
}
