package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/auth/authtest"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/shred"
)

// The writer started with PERSONAL_DATA_KEY_FILE records emails and names encrypted, and
// erases them for a principal with users:erase, never for one with only commands.
func TestWriter_PersonalDataErasure(t *testing.T) {
	file, err := shred.NewKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "personal-data.key")
	if err := os.WriteFile(keyFile, file, 0o400); err != nil {
		t.Fatal(err)
	}
	is := authtest.NewIssuer(t)
	vars := map[string]string{"KAFKA_TOPIC_PREFIX": "test-" + testenv.UniqueName(t), "MIGRATE_ON_START": "true",
		"PERSONAL_DATA_KEY_FILE": keyFile}
	base, m := is.StartService(t, app.Writer, vars, ownTopics(t), migrateOnStart, wire)

	send := func(method, path, body, bearer string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	code, created := send("POST", "/v1/users", `{"email":"hedy@example.com","name":"Hedy Lamarr"}`, testenv.APIKey)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, created)
	}
	id := created["id"].(string)
	var clear int
	if err := m.DB.QueryRow(context.Background(), `select count(*) from annals_events where data::text like '%hedy%' or data::text like '%Hedy%'`).Scan(&clear); err != nil || clear != 0 {
		t.Errorf("events holding the clear email or name = %d, %v; want 0", clear, err)
	}
	if code, u := send("GET", "/v1/users/"+id, "", testenv.APIKey); code != http.StatusOK || u["email"] != "hedy@example.com" {
		t.Errorf("GET user = %d %v, want the email decrypted", code, u)
	}

	commands := is.Token(t, is.Claims("operator", auth.ScopeCommands))
	if code, body := send("DELETE", "/v1/users/"+id+"/personal-data", "", commands); code != http.StatusForbidden {
		t.Errorf("erasure with only commands = %d %v, want 403", code, body)
	}
	if code, body := send("DELETE", "/v1/users/"+id+"/personal-data", "", ""); code != http.StatusUnauthorized {
		t.Errorf("erasure without credentials = %d %v, want 401", code, body)
	}
	dpo := is.Token(t, is.Claims("dpo", auth.ScopeUsersErase))
	code, erased := send("DELETE", "/v1/users/"+id+"/personal-data", "", dpo)
	if code != http.StatusAccepted || erased["version"] != float64(1) {
		t.Fatalf("erasure with users:erase = %d %v, want 202 at version 1", code, erased)
	}
	if code, u := send("GET", "/v1/users/"+id, "", testenv.APIKey); code != http.StatusOK || u["email"] != "" || u["erased_at"] == nil {
		t.Errorf("GET erased user = %d %v", code, u)
	}
	var by string
	if err := m.DB.QueryRow(context.Background(), `select erased_by from annals_subject_keys where subject = $1 and wrapped_key is null`, id).Scan(&by); err != nil || !strings.Contains(by, "dpo") {
		t.Errorf("tombstone erased_by = %q, %v; want the principal", by, err)
	}
}
