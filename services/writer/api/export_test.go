package api

import "github.com/annals-dev/annals/internal/httpx"

// Internals for the external tests.
var (
	DecodeCreateUser  = decodeCreateUser
	DecodeUpdateUser  = decodeUpdateUser
	DecodeReason      = decodeReason
	DecodeItem        = decodeItem
	DecodeCreateOrder = decodeCreateOrder
	DecodeEmpty       = decodeEmpty
)

// StatusOf is the HTTP status the writer's error table gives err.
func StatusOf(err error) int { return httpx.Errors{Rules: errorRules}.Problem(err).Status }
