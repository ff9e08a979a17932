package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Every persisted object starts with a kind byte and a format version byte,
// so that bytes of one kind are never read as another and a future layout
// can be told apart from this one.
const (
	kindIdentity          uint8 = 1
	kindPrivateKeyPackage uint8 = 2
	kindGroup             uint8 = 3

	identityVersion          uint8 = 1
	privateKeyPackageVersion uint8 = 1
	groupVersion             uint8 = 1
)

// unmarshalState checks the kind and version header of data and decodes the
// body with read, which must consume it exactly. Every failure wraps
// ErrCorruptState.
func unmarshalState(data []byte, kind, version uint8, what string, read func(*cryptobyte.String) bool) error {
	s := cryptobyte.String(data)
	var k, v uint8
	if !s.ReadUint8(&k) || !s.ReadUint8(&v) {
		return fmt.Errorf("load %s: truncated header: %w", what, ErrCorruptState)
	}
	if k != kind {
		return fmt.Errorf("load %s: bytes hold object kind %d, not %d: %w", what, k, kind, ErrCorruptState)
	}
	if v != version {
		return fmt.Errorf("load %s: unknown format version %d (want %d): %w", what, v, version, ErrCorruptState)
	}
	if !read(&s) {
		return fmt.Errorf("load %s: truncated or corrupt body: %w", what, ErrCorruptState)
	}
	if !s.Empty() {
		return fmt.Errorf("load %s: %d trailing bytes: %w", what, len(s), ErrCorruptState)
	}
	return nil
}
