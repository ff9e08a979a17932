package ciphersuite

import (
	"crypto/sha256"
	"crypto/sha512"
	"hash"
)

// KEMs of RFC 9180 §7.1 used by the MLS suites: DHKEM(Group, HKDF-Hash)
// with Nsecret equal to the hash length.
var (
	kemDHX25519 = newDHKEM(kemX25519, sha256.New, 32, groupX25519, false, 0)
	kemDHX448   = newDHKEM(kemX448, sha512.New, 64, groupX448, false, 0)
	kemDHP256   = newDHKEM(kemP256, sha256.New, 32, groupP256, true, 0xff)
	kemDHP384   = newDHKEM(kemP384, sha512.New384, 48, groupP384, true, 0xff)
	kemDHP521   = newDHKEM(kemP521, sha512.New, 64, groupP521, true, 0x01)
)

// suites is the registry of RFC 9420 §17.1. Every entry is complete; an ID
// missing here is ErrUnsupported.
var suites = map[ID]*Suite{
	X25519_AES128GCM_SHA256_Ed25519:        newSuite(X25519_AES128GCM_SHA256_Ed25519, newSHA256, kdfSHA256, aeadAES128GCM, kemDHX25519, sigEd25519),
	P256_AES128GCM_SHA256_P256:             newSuite(P256_AES128GCM_SHA256_P256, newSHA256, kdfSHA256, aeadAES128GCM, kemDHP256, sigP256),
	X25519_CHACHA20POLY1305_SHA256_Ed25519: newSuite(X25519_CHACHA20POLY1305_SHA256_Ed25519, newSHA256, kdfSHA256, aeadChaCha20Poly1305, kemDHX25519, sigEd25519),
	X448_AES256GCM_SHA512_Ed448:            newSuite(X448_AES256GCM_SHA512_Ed448, newSHA512, kdfSHA512, aeadAES256GCM, kemDHX448, sigEd448),
	P521_AES256GCM_SHA512_P521:             newSuite(P521_AES256GCM_SHA512_P521, newSHA512, kdfSHA512, aeadAES256GCM, kemDHP521, sigP521),
	X448_CHACHA20POLY1305_SHA512_Ed448:     newSuite(X448_CHACHA20POLY1305_SHA512_Ed448, newSHA512, kdfSHA512, aeadChaCha20Poly1305, kemDHX448, sigEd448),
	P384_AES256GCM_SHA384_P384:             newSuite(P384_AES256GCM_SHA384_P384, newSHA384, kdfSHA384, aeadAES256GCM, kemDHP384, sigP384),
}

// newSuite assembles a suite and precomputes its constant HPKE inputs.
func newSuite(id ID, newHash func() hash.Hash, kdfID uint16, aead aeadID, kem *dhKEM, sig signatureScheme) *Suite {
	s := &Suite{id: id, newHash: newHash, aead: aead, kem: kem, sig: sig, kdfID: kdfID}
	s.hpkeKDF = newLabeledKDF(newHash, hpkeSuiteID(kem.id, kdfID, aead.hpkeID()))
	// psk_id_hash of base mode, where psk_id is empty (RFC 9180 §5.1).
	s.pskIDHash = s.hpkeKDF.extract(nil, labelPSKIDHash, nil)
	return s
}

// hpkeID is the AEAD's identifier in the HPKE registry (RFC 9180 §7.3).
func (a aeadID) hpkeID() uint16 {
	switch a {
	case aeadAES128GCM:
		return aeadIDAES128GCM
	case aeadAES256GCM:
		return aeadIDAES256GCM
	default:
		return aeadIDChaCha20Poly1305
	}
}
