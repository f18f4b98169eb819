package domain_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/shred"
	"github.com/annals-dev/annals/pkg/shred/shredtest"
)

func newKeyring(tb testing.TB) *shred.Keyring {
	tb.Helper()
	return shred.NewKeyring(shredtest.NewKEK(tb), shred.NewMemoryKeyStore(), shred.Options{})
}

func sealFor(keys *shred.Keyring, subject string) domain.Seal {
	return func(v string) (string, error) { return keys.Encrypt(context.Background(), subject, v) }
}

func TestCreateUserSealed(t *testing.T) {
	keys := newKeyring(t)
	t.Run("OK", func(t *testing.T) {
		u := users.New(userID)
		must(t, domain.CreateUserSealed(u, "ada@example.com", "  Ada ", sealFor(keys, userID)))
		s := u.State()
		if !shred.IsEncrypted(s.Email) || !shred.IsEncrypted(s.Name) {
			t.Fatalf("state = %+v, want ciphertexts", s)
		}
		if data := string(u.Pending()[0].Data); strings.Contains(data, "ada@") || strings.Contains(data, "Ada") {
			t.Errorf("event data %s holds clear personal data", data)
		}
		if name, err := keys.Decrypt(context.Background(), userID, s.Name); err != nil || name != "Ada" {
			t.Errorf("name decrypts to %q, %v; want the trimmed name", name, err)
		}
		replay(t, domain.User, u)
	})
	t.Run("ValidatesTheClearValue", func(t *testing.T) {
		u := users.New(userID)
		wantInvalid(t, unchanged(t, u, func() error {
			return domain.CreateUserSealed(u, "not an email", "Ada", sealFor(keys, userID))
		}), "email")
	})
	t.Run("SealFails", func(t *testing.T) {
		u := users.New(userID)
		down := errors.New("key store down")
		err := unchanged(t, u, func() error {
			return domain.CreateUserSealed(u, "ada@example.com", "Ada", func(string) (string, error) { return "", down })
		})
		if !errors.Is(err, down) {
			t.Errorf("error = %v, want the seal's", err)
		}
	})
}

func TestErasePersonalData(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	t.Run("OK", func(t *testing.T) {
		u := newUser(t)
		must(t, domain.ErasePersonalData(u, at))
		s := u.State()
		if s.Email != "" || s.Name != "" || !s.Erased() || !s.ErasedAt.Equal(at) || s.ErasedVersion != 1 || !s.Active() {
			t.Errorf("state = %+v, want email and name cleared, erased at version 1, still active", s)
		}
		replay(t, domain.User, u)
		var d domain.UserPersonalDataErased
		must(t, json.Unmarshal(u.Pending()[1].Data, &d))
		if d.UserID != userID || !d.ErasedAt.Equal(at) {
			t.Errorf("data = %+v", d)
		}
	})
	t.Run("RuleUserErased", func(t *testing.T) {
		u := newUser(t)
		must(t, domain.ErasePersonalData(u, at))
		wantRule(t, unchanged(t, u, func() error { return domain.ErasePersonalData(u, at) }), domain.RuleUserErased)
		name := "Ada"
		wantRule(t, unchanged(t, u, func() error { return domain.UpdateUserProfile(u, domain.ProfileUpdate{Name: &name}) }), domain.RuleUserErased)
		must(t, domain.DeactivateUser(u, "erased"))
	})
	t.Run("RuleUserNotFound", func(t *testing.T) {
		u := users.New(userID)
		wantRule(t, unchanged(t, u, func() error { return domain.ErasePersonalData(u, at) }), domain.RuleUserNotFound)
	})
}

func TestDecryptPersonalData(t *testing.T) {
	ctx := context.Background()
	keys := newKeyring(t)
	stream := "user-" + userID
	email, err := keys.Encrypt(ctx, userID, "ada@example.com")
	must(t, err)
	data := json.RawMessage(`{"user_id":"` + userID + `","email":"` + email + `","name":"Ada"}`)
	got, err := domain.DecryptPersonalData(ctx, keys, domain.EventUserCreated, stream, data)
	must(t, err)
	if want := `{"email":"ada@example.com","name":"Ada","user_id":"` + userID + `"}`; string(got) != want {
		t.Errorf("decrypted = %s, want %s", got, want)
	}
	if got, err := domain.DecryptPersonalData(ctx, keys, domain.EventUserCreated, "user-other", data); !errors.Is(err, shred.ErrNoKey) {
		t.Errorf("decrypted on the stream of a user without a key = %s, %v; want ErrNoKey", got, err)
	}
	must(t, keys.Erase(ctx, userID))
	got, err = domain.DecryptPersonalData(ctx, keys, domain.EventUserCreated, stream, data)
	must(t, err)
	if want := `{"email":"[erased]","name":"Ada","user_id":"` + userID + `"}`; string(got) != want {
		t.Errorf("decrypted after erasure = %s, want %s", got, want)
	}
	if got := domain.RedactPersonalData(domain.EventUserCreated, data, "[redacted]"); strings.Contains(string(got), email) {
		t.Errorf("redacted = %s, still holds the ciphertext", got)
	}
}
