package httpx

import "net/http"

// Pattern returns the route req matches, "METHOD /path" as Routes lists it, or "" when it
// matches none (a 404 or a 405). Middleware in front of the router uses it to know the route
// before the router runs.
func (r *Router) Pattern(req *http.Request) string {
	_, pattern := r.mux.Handler(req)
	return pattern
}
