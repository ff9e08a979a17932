package mls

import (
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
)

// CipherSuite names the algorithms a group uses: KEM, AEAD, hash and
// signature scheme (RFC 9420 §5.1). The values are the IANA registry numbers
// of RFC 9420 §17.1; all seven registered suites are supported.
type CipherSuite uint16

// The cipher suites registered by RFC 9420 §17.1. The first is mandatory to
// implement and a good default.
const (
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519        CipherSuite = 0x0001
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256             CipherSuite = 0x0002
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 CipherSuite = 0x0003
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448            CipherSuite = 0x0004
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521             CipherSuite = 0x0005
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448     CipherSuite = 0x0006
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384             CipherSuite = 0x0007
)

// CipherSuites lists the supported cipher suites, in registry order.
func CipherSuites() []CipherSuite {
	return []CipherSuite{
		MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
		MLS_128_DHKEMP256_AES128GCM_SHA256_P256,
		MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
		MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448,
		MLS_256_DHKEMP521_AES256GCM_SHA512_P521,
		MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448,
		MLS_256_DHKEMP384_AES256GCM_SHA384_P384,
	}
}

// String returns the registry name of the suite.
func (cs CipherSuite) String() string { return ciphersuite.ID(cs).String() }

// lookupSuite returns the algorithms of cs, or an error wrapping
// ErrUnsupportedCipherSuite.
func lookupSuite(cs CipherSuite) (*ciphersuite.Suite, error) {
	s, err := ciphersuite.Lookup(ciphersuite.ID(cs))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedCipherSuite, err)
	}
	return s, nil
}
