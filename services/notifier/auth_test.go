package main

import (
	"net/http"
	"testing"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/auth/authtest"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/services/notifier/api"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
	"github.com/annals-dev/annals/services/notifier/notify"
)

// The notifier's sent log refuses bad credentials, and only notifications:read reaches it;
// its to filter needs personal-data too. /openapi.json declares the route's scope.
func TestNotifier_AuthRoutes(t *testing.T) {
	is := authtest.NewIssuer(t)
	topics := notifiertest.NewTopics(t, 1, notify.Group)
	base, _ := is.StartService(t, app.Notifier, map[string]string{
		"KAFKA_TOPIC_PREFIX": topics.Prefix, "SMTP_ADDR": testenv.SMTPAddr(t), "SMTP_STARTTLS": "none",
	}, migrate, wire)
	routes := map[string]authtest.Route{
		"GET /v1/notifications": authtest.Req(auth.ScopeNotificationsRead, "GET", "/v1/notifications", ""),
	}
	is.Check(t, base, api.Policy(), routes, nil)
	t.Run("OpenAPI", func(t *testing.T) { authtest.CheckOpenAPI(t, base, api.Policy(), routes) })
	for i, tc := range []struct {
		key  string
		want int
	}{{is.Key(auth.ScopeNotificationsRead), 403}, {testenv.APIKey, 200}} {
		req := testenv.Client
		resp, err := func() (int, error) {
			r, err := newGet(base+"/v1/notifications?to=someone@example.com", tc.key)
			if err != nil {
				return 0, err
			}
			res, err := req.Do(r)
			if err != nil {
				return 0, err
			}
			res.Body.Close()
			return res.StatusCode, nil
		}()
		if err != nil {
			t.Fatal(err)
		}
		if resp != tc.want {
			t.Errorf("?to= with key %d: %d, want %d", i, resp, tc.want)
		}
	}
}

func newGet(url, key string) (*http.Request, error) {
	r, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+key)
	return r, nil
}
