package domain

import (
	"encoding/json"
	"fmt"

	"github.com/annals-dev/annals/pkg/events"
)

// UserCategory is the category of user streams: "user-<uuid>".
const UserCategory = "user"

// Event types of users.
const (
	EventUserCreated        = "UserCreated"
	EventUserProfileUpdated = "UserProfileUpdated"
	EventUserDeactivated    = "UserDeactivated"
)

// UserCreated: a user signed up.
type UserCreated struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Name   string `json:"name"`
}

// UserProfileUpdated: some of the profile's fields changed; absent ones did not.
type UserProfileUpdated struct {
	Name  *string `json:"name,omitempty"`
	Email *string `json:"email,omitempty"`
}

// UserDeactivated: the user was deactivated, for a reason.
type UserDeactivated struct {
	Reason string `json:"reason"`
}

// UserStatus is the life-cycle state of a user.
type UserStatus string

// The statuses of a user.
const (
	UserStatusActive      UserStatus = "active"
	UserStatusDeactivated UserStatus = "deactivated"
)

// UserState is a user as its events made it.
type UserState struct {
	ID                 string     `json:"id"`
	Email              string     `json:"email"`
	Name               string     `json:"name"`
	Status             UserStatus `json:"status"`
	DeactivationReason string     `json:"deactivation_reason,omitempty"`
}

// Active reports whether the user exists and is not deactivated.
func (s UserState) Active() bool { return s.Status == UserStatusActive }

// User defines the user aggregate.
var User = events.Definition[UserState]{
	Category:           UserCategory,
	StateSchemaVersion: 1,
	// UserProfileUpdated gained email in its second version (avro/UserProfileUpdated.v2.avsc).
	SchemaVersions: map[string]int{EventUserProfileUpdated: 2},
	Apply:          applyUser,
}

func applyUser(s *UserState, e events.Envelope) error {
	switch e.Type {
	case EventUserCreated:
		var d UserCreated
		if err := decode(e, &d); err != nil {
			return err
		}
		if err := d.Check(); err != nil {
			return fmt.Errorf("%s: %w", e.Type, err)
		}
		*s = UserState{ID: d.UserID, Email: d.Email, Name: d.Name, Status: UserStatusActive}
	case EventUserProfileUpdated:
		var d UserProfileUpdated
		if err := decode(e, &d); err != nil {
			return err
		}
		if d.Name != nil {
			s.Name = *d.Name
		}
		if d.Email != nil {
			s.Email = *d.Email
		}
	case EventUserDeactivated:
		var d UserDeactivated
		if err := decode(e, &d); err != nil {
			return err
		}
		s.Status = UserStatusDeactivated
		s.DeactivationReason = d.Reason
	default:
		return fmt.Errorf("user: unknown event type %q", e.Type)
	}
	return nil
}

func decode(e events.Envelope, v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("%s data: %w", e.Type, err)
	}
	return nil
}

// CreateUser records UserCreated on a user that does not exist yet. The name is trimmed.
func CreateUser(a *events.Aggregate[UserState], email, name string) error {
	if a.Exists() {
		return ruleErr(RuleUserAlreadyExists, "user %s already exists", a.ID())
	}
	if err := ValidateEmail("email", email); err != nil {
		return err
	}
	name, err := NormalizeName("name", name)
	if err != nil {
		return err
	}
	return a.Record(EventUserCreated, UserCreated{UserID: a.ID(), Email: email, Name: name})
}

// ProfileUpdate lists the profile fields to change; nil fields stay as they are.
type ProfileUpdate struct {
	Name  *string
	Email *string
}

// UpdateUserProfile records UserProfileUpdated with the given fields (at least one).
func UpdateUserProfile(a *events.Aggregate[UserState], u ProfileUpdate) error {
	if !a.Exists() {
		return ruleErr(RuleUserNotFound, "user %s does not exist", a.ID())
	}
	if u.Name == nil && u.Email == nil {
		return invalid("", "give at least one of name and email")
	}
	var d UserProfileUpdated
	if u.Name != nil {
		name, err := NormalizeName("name", *u.Name)
		if err != nil {
			return err
		}
		d.Name = &name
	}
	if u.Email != nil {
		if err := ValidateEmail("email", *u.Email); err != nil {
			return err
		}
		email := *u.Email
		d.Email = &email
	}
	return a.Record(EventUserProfileUpdated, d)
}

// DeactivateUser records UserDeactivated on an active user.
func DeactivateUser(a *events.Aggregate[UserState], reason string) error {
	if !a.Exists() {
		return ruleErr(RuleUserNotFound, "user %s does not exist", a.ID())
	}
	if a.State().Status == UserStatusDeactivated {
		return ruleErr(RuleUserAlreadyDeactivated, "user %s is already deactivated", a.ID())
	}
	reason, err := NormalizeReason("reason", reason)
	if err != nil {
		return err
	}
	return a.Record(EventUserDeactivated, UserDeactivated{Reason: reason})
}
