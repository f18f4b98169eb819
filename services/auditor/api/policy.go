package api

import "github.com/annals-dev/annals/internal/auth"

// Policy is the scope each of the auditor's routes needs: audit:read. Without personal-data,
// the entries carry the emails and names in their data redacted.
func Policy() auth.Policy {
	return auth.Policy{
		"GET /v1/audit":        auth.ScopeAuditRead,
		"GET /v1/audit/verify": auth.ScopeAuditRead,
	}
}
