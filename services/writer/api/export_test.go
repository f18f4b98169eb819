package api

// Internals for the external tests.
var (
	DecodeCreateUser  = decodeCreateUser
	DecodeUpdateUser  = decodeUpdateUser
	DecodeReason      = decodeReason
	DecodeItem        = decodeItem
	DecodeCreateOrder = decodeCreateOrder
	DecodeEmpty       = decodeEmpty
)

// StatusOf is the HTTP status classify gives err.
func StatusOf(err error) int { return classify(err).status }
