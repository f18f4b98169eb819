package domain

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/annals-dev/annals/pkg/events"
)

// UserCategory is the category of user streams: "user-<uuid>".
const UserCategory = "user"

// Event types of users.
const (
	EventUserCreated        = "UserCreated"
	EventUserProfileUpdated = "UserProfileUpdated"
	EventUserDeactivated    = "UserDeactivated"
	// EventUserPersonalDataErased: the user's data key was destroyed (crypto-shredding).
	EventUserPersonalDataErased = "UserPersonalDataErased"
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

// UserPersonalDataErased: the user's personal data was erased. The user's data key (pkg/shred)
// was destroyed at ErasedAt, so the email and name of the user's earlier events no longer
// decrypt; readers drop what they hold of them. The user's status does not change.
type UserPersonalDataErased struct {
	UserID   string    `json:"user_id"`
	ErasedAt time.Time `json:"erased_at"`
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
	// ErasedAt is when the user's personal data was erased (UserPersonalDataErased); Email
	// and Name are then empty for good.
	ErasedAt *time.Time `json:"erased_at,omitempty"`
	// ErasedVersion is the version of the UserPersonalDataErased event; 0 when not erased.
	ErasedVersion int64 `json:"erased_version,omitempty"`
}

// Erased reports whether the user's personal data was erased.
func (s UserState) Erased() bool { return s.ErasedAt != nil }

// Active reports whether the user exists and is not deactivated.
func (s UserState) Active() bool { return s.Status == UserStatusActive }

// User defines the user aggregate.
var User = events.Definition[UserState]{
	Category: UserCategory,
	// Version 2: the state records the erasure (ErasedAt); snapshots of version 1 were taken
	// before it existed and may hold clear emails and names.
	StateSchemaVersion: 2,
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
	case EventUserPersonalDataErased:
		var d UserPersonalDataErased
		if err := decode(e, &d); err != nil {
			return err
		}
		if d.ErasedAt.IsZero() {
			return fmt.Errorf("%s: data needs erased_at", e.Type)
		}
		at := d.ErasedAt.UTC()
		s.Email, s.Name, s.ErasedAt, s.ErasedVersion = "", "", &at, e.Version
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

// Seal turns a personal value, validated and normalised, into what the event records: a
// ciphertext of the user's data key (shred.Keyring.Encrypt with the user's id as subject).
// A nil Seal records the values as they are.
type Seal func(value string) (string, error)

func (seal Seal) apply(v string) (string, error) {
	if seal == nil {
		return v, nil
	}
	out, err := seal(v)
	if err != nil {
		return "", fmt.Errorf("seal personal data: %w", err)
	}
	return out, nil
}

// CreateUser records UserCreated on a user that does not exist yet. The name is trimmed.
func CreateUser(a *events.Aggregate[UserState], email, name string) error {
	return CreateUserSealed(a, email, name, nil)
}

// CreateUserSealed is CreateUser recording the email and name as seal turns them.
func CreateUserSealed(a *events.Aggregate[UserState], email, name string, seal Seal) error {
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
	if email, err = seal.apply(email); err != nil {
		return err
	}
	if name, err = seal.apply(name); err != nil {
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
	return UpdateUserProfileSealed(a, u, nil)
}

// UpdateUserProfileSealed is UpdateUserProfile recording the fields as seal turns them. A
// user whose personal data was erased gets no new personal data.
func UpdateUserProfileSealed(a *events.Aggregate[UserState], u ProfileUpdate, seal Seal) error {
	if !a.Exists() {
		return ruleErr(RuleUserNotFound, "user %s does not exist", a.ID())
	}
	if a.State().Erased() {
		return ruleErr(RuleUserErased, "the personal data of user %s was erased", a.ID())
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
		if name, err = seal.apply(name); err != nil {
			return err
		}
		d.Name = &name
	}
	if u.Email != nil {
		if err := ValidateEmail("email", *u.Email); err != nil {
			return err
		}
		email, err := seal.apply(*u.Email)
		if err != nil {
			return err
		}
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

// ErasePersonalData records UserPersonalDataErased on a user whose personal data is not erased
// yet; erasedAt is when its data key was destroyed (shred.Erasure.ErasedAt).
func ErasePersonalData(a *events.Aggregate[UserState], erasedAt time.Time) error {
	if !a.Exists() {
		return ruleErr(RuleUserNotFound, "user %s does not exist", a.ID())
	}
	if a.State().Erased() {
		return ruleErr(RuleUserErased, "the personal data of user %s was erased already", a.ID())
	}
	return a.Record(EventUserPersonalDataErased, UserPersonalDataErased{UserID: a.ID(), ErasedAt: erasedAt.UTC()})
}
