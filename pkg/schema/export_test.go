package schema

import (
	"fmt"

	"github.com/annals-dev/annals/pkg/events"
)

// Internals for the external tests.

// LoadFS loads a catalog from the .avsc files at the root of fsys.
var LoadFS = load

// EncodeVersion is Encode with the given version of e's type rather than the current one.
func (c *Catalog) EncodeVersion(e events.Envelope, n int) ([]byte, uint64, error) {
	t, err := c.lookupType(e.Type)
	if err != nil {
		return nil, 0, err
	}
	if n < 1 || n > len(t.versions) {
		return nil, 0, fmt.Errorf("%s has no version %d", e.Type, n)
	}
	return c.encode(e, t.versions[n-1])
}

// AppendString is appendString.
var AppendString = appendString

// EncodeMsgpackVersion is EncodeMsgpack with the given version of e's type.
func (c *Catalog) EncodeMsgpackVersion(e events.Envelope, n int) ([]byte, uint64, error) {
	t, err := c.lookupType(e.Type)
	if err != nil {
		return nil, 0, err
	}
	if n < 1 || n > len(t.versions) {
		return nil, 0, fmt.Errorf("%s has no version %d", e.Type, n)
	}
	return c.encodeMsgpack(e, t.versions[n-1])
}

// EncodeProtobufVersion is EncodeProtobuf with the given version of e's type.
func (c *Catalog) EncodeProtobufVersion(e events.Envelope, n int) ([]byte, uint64, error) {
	t, err := c.lookupType(e.Type)
	if err != nil {
		return nil, 0, err
	}
	if n < 1 || n > len(t.versions) {
		return nil, 0, fmt.Errorf("%s has no version %d", e.Type, n)
	}
	return c.encodeProtobuf(e, t.versions[n-1])
}
