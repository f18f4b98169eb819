package readmodel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/shred"
	"github.com/annals-dev/annals/pkg/shred/shredtest"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// shredEnv is an env whose projection opens personal values with a keyring of its own.
type shredEnv struct {
	*env
	keys     *shred.Keyring
	keyStore *flakyKeys
}

// flakyKeys is a key store that fails every call with down while down is set.
type flakyKeys struct {
	shred.KeyStore
	down error
}

func (f *flakyKeys) Get(ctx context.Context, subject string) (shred.WrappedKey, error) {
	if f.down != nil {
		return shred.WrappedKey{}, f.down
	}
	return f.KeyStore.Get(ctx, subject)
}

func newShredEnv(t *testing.T) *shredEnv {
	t.Helper()
	store := &flakyKeys{KeyStore: shred.NewMemoryKeyStore()}
	// No cache: every Decrypt asks the store, as a process started after the erasure does.
	keys := shred.NewKeyring(shredtest.NewKEK(t), store, shred.Options{CacheTTL: -1})
	return &shredEnv{env: newEnv(t, readmodel.Options{Keys: keys}), keys: keys, keyStore: store}
}

func (e *shredEnv) seal(t *testing.T, id uuid.UUID, clear string) string {
	t.Helper()
	v, err := e.keys.Encrypt(context.Background(), id.String(), clear)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// userEvents are a user's creation and renaming, with the values encrypted, as the writer
// records them.
func (e *shredEnv) userEvents(t *testing.T, id uuid.UUID, email, name string) (created, renamed [2]any) {
	created = [2]any{domain.EventUserCreated, map[string]string{"user_id": id.String(),
		"email": e.seal(t, id, email), "name": e.seal(t, id, name)}}
	newEmail, newName := e.seal(t, id, "re."+email), e.seal(t, id, name+" II")
	renamed = [2]any{domain.EventUserProfileUpdated, map[string]*string{"email": &newEmail, "name": &newName}}
	return created, renamed
}

// clearIn returns the tables of the schema with a row holding one of the values.
func clearIn(t *testing.T, e *env, values ...string) []string {
	t.Helper()
	var out []string
	for _, row := range testenv.SchemaRows(t, e.pool) {
		for _, v := range values {
			if strings.Contains(row.Text, v) {
				out = append(out, row.Table+": "+v)
			}
		}
	}
	return out
}

func TestProjection_PersonalData(t *testing.T) {
	ctx := context.Background()

	t.Run("Decrypted", func(t *testing.T) {
		e := newShredEnv(t)
		id := uuid.New()
		stream := "user-" + id.String()
		created, renamed := e.userEvents(t, id, "ada@example.com", "Ada")
		e.mustApply(t, ev(stream, 0, created[0].(string), created[1]))
		u, err := e.proj.User(ctx, id)
		if err != nil || u.Email != "ada@example.com" || u.Name != "Ada" {
			t.Fatalf("after UserCreated: %+v, %v", u, err)
		}
		e.mustApply(t, ev(stream, 1, renamed[0].(string), renamed[1]))
		u, err = e.proj.User(ctx, id)
		if err != nil || u.Email != "re.ada@example.com" || u.Name != "Ada II" {
			t.Fatalf("after UserProfileUpdated: %+v, %v", u, err)
		}
	})

	t.Run(domain.EventUserPersonalDataErased, func(t *testing.T) {
		e := newShredEnv(t)
		erased, kept := uuid.New(), uuid.New()
		for _, id := range []uuid.UUID{erased, kept} {
			created, renamed := e.userEvents(t, id, id.String()[:8]+"@example.com", "Name "+id.String()[:8])
			e.appendRaw(t, "user-"+id.String(), created[0].(string), created[1])
			e.appendRaw(t, "user-"+id.String(), renamed[0].(string), renamed[1])
		}
		e.mustApply(t, e.allEvents(t)...)
		secrets := []string{erased.String()[:8] + "@example.com", "Name " + erased.String()[:8]}
		if got := clearIn(t, e.env, secrets...); len(got) == 0 {
			t.Fatalf("the read models do not hold the user's clear data before the erasure")
		}
		// The writer destroys the key, then records the event.
		if err := e.keys.Erase(ctx, erased.String()); err != nil {
			t.Fatal(err)
		}
		e.mustApply(t, e.appendRaw(t, "user-"+erased.String(), domain.EventUserPersonalDataErased,
			map[string]any{"user_id": erased.String(), "erased_at": at}))
		u, err := e.proj.User(ctx, erased)
		if err != nil || u.Email != "" || u.Name != "" || u.Version != 2 {
			t.Fatalf("erased user: %+v, %v", u, err)
		}
		if got := clearIn(t, e.env, secrets...); len(got) > 0 {
			t.Errorf("clear data after the erasure: %v", got)
		}

		// A rebuild, and a reprocess, from the event store bring nothing back.
		if _, err := e.proj.Rebuild(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := e.proj.Reprocess(ctx, at.AddDate(-1, 0, 0), at.AddDate(100, 0, 0), nil); err != nil {
			t.Fatal(err)
		}
		u, err = e.proj.User(ctx, erased)
		if err != nil || u.Email != "" || u.Name != "" {
			t.Fatalf("erased user after a rebuild: %+v, %v", u, err)
		}
		if got := clearIn(t, e.env, secrets...); len(got) > 0 {
			t.Errorf("clear data after a rebuild: %v", got)
		}
		k, err := e.proj.User(ctx, kept)
		if err != nil || k.Email != "re."+kept.String()[:8]+"@example.com" || k.Name != "Name "+kept.String()[:8]+" II" {
			t.Errorf("the user not erased: %+v, %v", k, err)
		}
	})

	t.Run("Batch", func(t *testing.T) {
		// A user's whole life in one batch, folded in Go: decrypted, then erased.
		e := newShredEnv(t)
		id := uuid.New()
		stream := "user-" + id.String()
		created, renamed := e.userEvents(t, id, "alan@example.com", "Alan")
		evs := []events.Envelope{ev(stream, 0, created[0].(string), created[1]), ev(stream, 1, renamed[0].(string), renamed[1])}
		if err := e.handleBatch(t, evs); err != nil {
			t.Fatal(err)
		}
		if u, err := e.proj.User(ctx, id); err != nil || u.Email != "re.alan@example.com" || u.Name != "Alan II" {
			t.Fatalf("%+v, %v", u, err)
		}
		if err := e.handleBatch(t, []events.Envelope{ev(stream, 2, domain.EventUserPersonalDataErased, map[string]any{"user_id": id.String(), "erased_at": at})}); err != nil {
			t.Fatal(err)
		}
		if u, err := e.proj.User(ctx, id); err != nil || u.Email != "" || u.Name != "" || u.Version != 2 {
			t.Fatalf("%+v, %v", u, err)
		}
	})

	t.Run("KeyDestroyedFirst", func(t *testing.T) {
		// The key is gone before the projector sees the user's events: they read as erased.
		e := newShredEnv(t)
		id := uuid.New()
		stream := "user-" + id.String()
		created, _ := e.userEvents(t, id, "grace@example.com", "Grace")
		if err := e.keys.Erase(ctx, id.String()); err != nil {
			t.Fatal(err)
		}
		e.mustApply(t, ev(stream, 0, created[0].(string), created[1]))
		u, err := e.proj.User(ctx, id)
		if err != nil || u.Email != readmodel.Erased || u.Name != readmodel.Erased {
			t.Fatalf("%+v, %v", u, err)
		}
	})

	t.Run("DamagedCiphertextIsPermanent", func(t *testing.T) {
		e := newShredEnv(t)
		id, other := uuid.New(), uuid.New()
		// Sealed for another subject: it does not open with this user's key.
		err := e.apply(t, ev("user-"+id.String(), 0, domain.EventUserCreated,
			map[string]string{"email": e.seal(t, other, "x@example.com"), "name": e.seal(t, id, "X")}))
		if !consume.IsPermanent(err) {
			t.Fatalf("got %v, want a Permanent error", err)
		}
	})

	t.Run("KeyStoreDownIsRetried", func(t *testing.T) {
		e := newShredEnv(t)
		id := uuid.New()
		created, _ := e.userEvents(t, id, "linus@example.com", "Linus")
		down := errors.New("connection refused")
		e.keyStore.down = down
		ue := ev("user-"+id.String(), 0, created[0].(string), created[1])
		err := e.apply(t, ue)
		if err == nil || consume.IsPermanent(err) || !errors.Is(err, down) {
			t.Fatalf("got %v, want the store's failure, not Permanent", err)
		}
		e.keyStore.down = nil
		e.mustApply(t, ue)
		if u, err := e.proj.User(ctx, id); err != nil || u.Email != "linus@example.com" {
			t.Fatalf("%+v, %v", u, err)
		}
	})

	t.Run("KeyStoreDownIsUnavailable", func(t *testing.T) {
		e := newShredEnv(t)
		id := uuid.New()
		created, _ := e.userEvents(t, id, "ada@example.com", "Ada")
		e.keyStore.down = errors.New("connection refused")
		err := e.apply(t, ev("user-"+id.String(), 0, created[0].(string), created[1]))
		if !consume.IsUnavailable(err) || consume.IsPermanent(err) {
			t.Fatalf("got %v, want a consume.Unavailable error: the event is not dead-lettered for it", err)
		}
	})

	t.Run("KeyUnusableIsUnavailable", func(t *testing.T) {
		e := newShredEnv(t)
		id := uuid.New()
		created, _ := e.userEvents(t, id, "grace@example.com", "Grace")
		// The projector reads the keys with another KEK than the writer's: a wrong key file.
		wrong := shred.NewKeyring(shredtest.NewKEK(t), e.keyStore, shred.Options{CacheTTL: -1})
		p := readmodel.New(e.pool, readmodel.Options{Keys: wrong})
		tx, err := e.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		err = p.Apply(ctx, tx, ev("user-"+id.String(), 0, created[0].(string), created[1]))
		if !errors.Is(err, shred.ErrKeyUnusable) || !consume.IsUnavailable(err) || consume.IsPermanent(err) {
			t.Fatalf("got %v, want ErrKeyUnusable marked consume.Unavailable", err)
		}
	})
}
