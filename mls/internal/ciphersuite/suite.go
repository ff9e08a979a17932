// Package ciphersuite carries the algorithms of each MLS cipher suite
// (RFC 9420 §5.1, registry in §17.1) behind one Suite value, in the manner of
// circl/hpke: a Suite knows its hash, KDF, AEAD, HPKE KEM and signature
// scheme, and offers the labelled operations MLS builds on (§5.1.2, §5.1.3,
// §5.2, §8, §9).
package ciphersuite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// ID is a cipher suite identifier from the MLS registry (RFC 9420 §17.1).
type ID uint16

// The seven cipher suites registered by RFC 9420 §17.1.
const (
	X25519_AES128GCM_SHA256_Ed25519        ID = 0x0001
	P256_AES128GCM_SHA256_P256             ID = 0x0002
	X25519_CHACHA20POLY1305_SHA256_Ed25519 ID = 0x0003
	X448_AES256GCM_SHA512_Ed448            ID = 0x0004
	P521_AES256GCM_SHA512_P521             ID = 0x0005
	X448_CHACHA20POLY1305_SHA512_Ed448     ID = 0x0006
	P384_AES256GCM_SHA384_P384             ID = 0x0007
)

// ErrUnsupported reports a cipher suite this implementation cannot build.
// It is never silently replaced by another suite.
var ErrUnsupported = errors.New("unsupported cipher suite")

// ErrDecrypt reports an AEAD or HPKE decryption failure.
var ErrDecrypt = errors.New("decryption failed")

// ErrInvalidSignature reports a signature that does not verify.
var ErrInvalidSignature = errors.New("invalid signature")

// ErrInvalidKey reports a public or private key that cannot be parsed for the
// suite's algorithm.
var ErrInvalidKey = errors.New("invalid key")

type aeadID int

const (
	aeadAES128GCM aeadID = iota
	aeadAES256GCM
	aeadChaCha20Poly1305
)

// Suite is one MLS cipher suite. Suites are immutable and safe for
// concurrent use; obtain them with Lookup.
type Suite struct {
	id      ID
	newHash func() hash.Hash
	aead    aeadID
	kem     *dhKEM
	sig     signatureScheme
	// hpkeKDF carries the HPKE suite_id; kdfID is the KDF's HPKE
	// identifier; pskIDHash is the constant psk_id_hash of base mode
	// (RFC 9180 §5.1), computed once per suite.
	hpkeKDF   labeledKDF
	kdfID     uint16
	pskIDHash []byte
}

// Lookup returns the suite for id, or an error wrapping ErrUnsupported.
func Lookup(id ID) (*Suite, error) {
	s, ok := suites[id]
	if !ok {
		return nil, fmt.Errorf("cipher suite 0x%04x: %w", uint16(id), ErrUnsupported)
	}
	return s, nil
}

// ID returns the suite's registry value.
func (s *Suite) ID() ID { return s.id }

// String names the suite as the registry does.
func (s *Suite) String() string { return s.id.String() }

// String names the suite as the registry does.
func (id ID) String() string {
	switch id {
	case X25519_AES128GCM_SHA256_Ed25519:
		return "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
	case P256_AES128GCM_SHA256_P256:
		return "MLS_128_DHKEMP256_AES128GCM_SHA256_P256"
	case X25519_CHACHA20POLY1305_SHA256_Ed25519:
		return "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519"
	case X448_AES256GCM_SHA512_Ed448:
		return "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448"
	case P521_AES256GCM_SHA512_P521:
		return "MLS_256_DHKEMP521_AES256GCM_SHA512_P521"
	case X448_CHACHA20POLY1305_SHA512_Ed448:
		return "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448"
	case P384_AES256GCM_SHA384_P384:
		return "MLS_256_DHKEMP384_AES256GCM_SHA384_P384"
	}
	return fmt.Sprintf("unknown(0x%04x)", uint16(id))
}

// Hash returns the suite's hash of data.
func (s *Suite) Hash(data []byte) []byte {
	h := s.newHash()
	h.Write(data)
	return h.Sum(nil)
}

// NewHash returns a fresh hash.Hash of the suite's hash function.
func (s *Suite) NewHash() hash.Hash { return s.newHash() }

// HashSize is the suite's hash output length, which is also KDF.Nh (the
// length of every epoch secret) and the MAC length.
func (s *Suite) HashSize() int { return s.newHash().Size() }

// Extract is HKDF-Extract(salt, ikm) with the suite's hash.
func (s *Suite) Extract(salt, ikm []byte) []byte {
	if len(salt) == 0 {
		// HKDF treats an empty salt as HashLen zero bytes (RFC 5869 §2.2).
		salt = make([]byte, s.HashSize())
	}
	prk, err := hkdf.Extract(s.newHash, ikm, salt)
	if err != nil {
		// hkdf.Extract fails only in FIPS-only mode for short keys.
		panic("ciphersuite: HKDF-Extract: " + err.Error())
	}
	return prk
}

// Expand is HKDF-Expand(prk, info, length) with the suite's hash.
func (s *Suite) Expand(prk, info []byte, length int) ([]byte, error) {
	if s.kdfID == kdfSHA256 && length <= sha256.Size && len(prk) <= sha256.BlockSize && len(info) <= maxOneBlockInfo {
		return expandSHA256OneBlock(prk, info, length), nil
	}
	out, err := hkdf.Expand(s.newHash, prk, string(info), length)
	if err != nil {
		return nil, fmt.Errorf("HKDF-Expand: %w", err)
	}
	return out, nil
}

// maxOneBlockInfo bounds the info expandSHA256OneBlock takes, so that its
// buffers live on the stack.
const maxOneBlockInfo = 192

// expandSHA256OneBlock is HKDF-Expand(prk, info, length) with SHA-256 when
// the output fits in one block (RFC 5869 §2.3: T(1) = HMAC(prk, info ||
// 0x01)), with HMAC (RFC 2104) computed by two one-shot hashes over stack
// buffers: H((K ^ opad) || H((K ^ ipad) || info || 0x01)). It allocates
// only the result, where crypto/hkdf allocates an HMAC state per call; the
// secret tree derives three such secrets per message on each side.
// prk is at most one block and info at most maxOneBlockInfo bytes.
func expandSHA256OneBlock(prk, info []byte, length int) []byte {
	var inner [sha256.BlockSize + maxOneBlockInfo + 1]byte
	var outer [sha256.BlockSize + sha256.Size]byte
	copy(inner[:], prk)
	copy(outer[:], prk)
	for i := range sha256.BlockSize {
		inner[i] ^= 0x36
		outer[i] ^= 0x5c
	}
	n := copy(inner[sha256.BlockSize:], info)
	inner[sha256.BlockSize+n] = 0x01
	ih := sha256.Sum256(inner[:sha256.BlockSize+n+1])
	copy(outer[sha256.BlockSize:], ih[:])
	t := sha256.Sum256(outer[:])
	clear(inner[:sha256.BlockSize])
	clear(outer[:sha256.BlockSize])
	out := make([]byte, length)
	copy(out, t[:length])
	clear(t[:])
	return out
}

// MAC computes HMAC with the suite's hash (RFC 9420 §5.1: the MAC of every
// suite is HMAC over its hash).
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// VerifyMAC reports whether tag is the MAC of data under key, in constant
// time; a tag of any other length fails.
func (s *Suite) VerifyMAC(key, data, tag []byte) bool {
	return hmac.Equal(s.MAC(key, data), tag)
}

// AEADKeySize is Nk of the suite's AEAD.
func (s *Suite) AEADKeySize() int {
	if s.aead == aeadAES128GCM {
		return 16
	}
	return 32
}

// AEADNonceSize is Nn of the suite's AEAD (12 bytes for every registered suite).
func (s *Suite) AEADNonceSize() int { return 12 }

// NewAEAD returns the suite's AEAD keyed with key.
func (s *Suite) NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != s.AEADKeySize() {
		return nil, fmt.Errorf("AEAD key of %d bytes, want %d: %w", len(key), s.AEADKeySize(), ErrInvalidKey)
	}
	switch s.aead {
	case aeadChaCha20Poly1305:
		return chacha20poly1305.New(key)
	default:
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	}
}

func newSHA256() hash.Hash { return sha256.New() }
func newSHA384() hash.Hash { return sha512.New384() }
func newSHA512() hash.Hash { return sha512.New() }
