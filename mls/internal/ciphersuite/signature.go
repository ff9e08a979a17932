package ciphersuite

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// signatureScheme is one signature algorithm of the MLS registry
// (RFC 9420 §5.1, §17.1). Each scheme is a singleton pointer, so that a
// SigningKey can be matched to a suite by comparing schemes.
type signatureScheme interface {
	name() string
	publicKeySize() int
	generate(rand io.Reader) (*SigningKey, error)
	parse(raw []byte) (*SigningKey, error)
	sign(key *SigningKey, msg []byte) ([]byte, error)
	verify(pub, msg, sig []byte) error
}

// SigningKey is a signature private key parsed once and kept ready to sign
// (RFC 9420 §5.1.2). Obtain one from Suite.GenerateSigningKey or
// Suite.ParseSigningKey; it signs only for suites of its own signature
// scheme. A SigningKey is safe for concurrent signing, but not concurrently
// with Zero.
type SigningKey struct {
	scheme signatureScheme
	pub    []byte
	// ed is the Ed25519 (64 bytes) or Ed448 (114 bytes) private key: the
	// RFC 8032 seed followed by the public key.
	ed []byte
	ec *ecdsa.PrivateKey
}

// PublicKey returns the SignaturePublicKey of RFC 9420 §5.1.1: the RFC 8032
// encoding for Ed25519 and Ed448, the uncompressed SEC1 point for ECDSA.
func (k *SigningKey) PublicKey() []byte { return append([]byte(nil), k.pub...) }

// Bytes returns the raw private key as the interop test vectors carry it:
// the 32-byte Ed25519 or 57-byte Ed448 seed (RFC 8032), or for ECDSA the
// big-endian scalar padded to the field size (SEC 1 §2.3.6). It returns nil
// after Zero.
func (k *SigningKey) Bytes() []byte {
	switch {
	case k.ed != nil:
		return append([]byte(nil), k.ed[:len(k.ed)-len(k.pub)]...) // seed || pub
	case k.ec != nil:
		b, err := k.ec.Bytes()
		if err != nil {
			return nil
		}
		return b
	}
	return nil
}

// Zero overwrites the private key material this value holds and makes it
// unusable. It is best effort: the standard library keeps derived copies
// of ECDSA and Ed25519 keys (big.Int words, cached expanded keys) that are
// released rather than overwritten.
func (k *SigningKey) Zero() {
	clear(k.ed)
	k.ed = nil
	if k.ec != nil && k.ec.D != nil {
		clear(k.ec.D.Bits())
	}
	k.ec = nil
}

// GenerateSigningKey returns a fresh signature key pair for the suite's
// signature scheme, drawn from rand (crypto/rand.Reader when nil).
func (s *Suite) GenerateSigningKey(rand io.Reader) (*SigningKey, error) {
	k, err := s.sig.generate(randOrDefault(rand))
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", s.sig.name(), err)
	}
	return k, nil
}

// ParseSigningKey parses a raw private key in the form SigningKey.Bytes
// returns. A key of the wrong length or out of range wraps ErrInvalidKey.
func (s *Suite) ParseSigningKey(raw []byte) (*SigningKey, error) {
	k, err := s.sig.parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s key: %w", s.sig.name(), err)
	}
	return k, nil
}

// SignaturePublicKeySize is the length of the suite's SignaturePublicKey
// (RFC 9420 §5.1.1).
func (s *Suite) SignaturePublicKeySize() int { return s.sig.publicKeySize() }

// Sign is Signature.Sign of the suite's scheme over msg (RFC 9420 §5.1.2):
// an RFC 8032 signature (R || S) for EdDSA, a DER-encoded ECDSA-Sig-Value
// over the suite hash of msg for ECDSA. A key of another scheme, or one
// that was zeroed, wraps ErrInvalidKey.
func (s *Suite) Sign(key *SigningKey, msg []byte) ([]byte, error) {
	if key == nil || key.scheme != s.sig || (key.ed == nil && key.ec == nil) {
		return nil, fmt.Errorf("sign: key is not a live %s key: %w", s.sig.name(), ErrInvalidKey)
	}
	return s.sig.sign(key, msg)
}

// Verify is Signature.Verify of the suite's scheme (RFC 9420 §5.1.2). A
// public key that does not parse wraps ErrInvalidKey; a signature that is
// malformed or does not verify wraps ErrInvalidSignature.
func (s *Suite) Verify(pub, msg, sig []byte) error {
	return s.sig.verify(pub, msg, sig)
}

// signContent encodes SignContent {opaque label<V> = "MLS 1.0 " + label;
// opaque content<V>} (RFC 9420 §5.1.2).
func signContent(label string, content []byte) ([]byte, error) {
	return codec.Marshal(func(b *cryptobyte.Builder) {
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			b.AddBytes([]byte(labelPrefix))
			b.AddBytes([]byte(label))
		})
		codec.AddOpaque(b, content)
	})
}

// SignWithLabel is RFC 9420 §5.1.2:
// Signature.Sign(key, SignContent{"MLS 1.0 " + label, content}).
func (s *Suite) SignWithLabel(key *SigningKey, label string, content []byte) ([]byte, error) {
	tbs, err := signContent(label, content)
	if err != nil {
		return nil, fmt.Errorf("SignWithLabel %q: %w", label, err)
	}
	sig, err := s.Sign(key, tbs)
	if err != nil {
		return nil, fmt.Errorf("SignWithLabel %q: %w", label, err)
	}
	return sig, nil
}

// VerifyWithLabel is RFC 9420 §5.1.2:
// Signature.Verify(pub, SignContent{"MLS 1.0 " + label, content}, sig).
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, sig []byte) error {
	tbs, err := signContent(label, content)
	if err != nil {
		return fmt.Errorf("VerifyWithLabel %q: %w", label, err)
	}
	if err := s.sig.verify(pub, tbs, sig); err != nil {
		return fmt.Errorf("VerifyWithLabel %q: %w", label, err)
	}
	return nil
}

// ed25519Scheme is Ed25519 (RFC 8032) on crypto/ed25519, which signs as fast
// as circl's and without allocating (BenchmarkEd25519Impl).
type ed25519Scheme struct{}

var sigEd25519 signatureScheme = &ed25519Scheme{}

func (*ed25519Scheme) name() string       { return "Ed25519" }
func (*ed25519Scheme) publicKeySize() int { return ed25519.PublicKeySize }

func (e *ed25519Scheme) generate(rand io.Reader) (*SigningKey, error) {
	var seed [ed25519.SeedSize]byte
	defer clear(seed[:])
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, err
	}
	return e.parse(seed[:])
}

func (*ed25519Scheme) parse(raw []byte) (*SigningKey, error) {
	if len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("Ed25519 seed of %d bytes, want %d: %w", len(raw), ed25519.SeedSize, ErrInvalidKey)
	}
	priv := ed25519.NewKeyFromSeed(raw)
	return &SigningKey{scheme: sigEd25519, ed: priv, pub: append([]byte(nil), priv[ed25519.SeedSize:]...)}, nil
}

func (*ed25519Scheme) sign(key *SigningKey, msg []byte) ([]byte, error) {
	return ed25519.Sign(key.ed, msg), nil
}

func (*ed25519Scheme) verify(pub, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("Ed25519 public key of %d bytes: %w", len(pub), ErrInvalidKey)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("Ed25519: %w", ErrInvalidSignature)
	}
	return nil
}

// ed448Scheme is Ed448 (RFC 8032, empty context) on circl, the only
// implementation at hand.
type ed448Scheme struct{}

var sigEd448 signatureScheme = &ed448Scheme{}

func (*ed448Scheme) name() string       { return "Ed448" }
func (*ed448Scheme) publicKeySize() int { return ed448.PublicKeySize }

func (e *ed448Scheme) generate(rand io.Reader) (*SigningKey, error) {
	var seed [ed448.SeedSize]byte
	defer clear(seed[:])
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, err
	}
	return e.parse(seed[:])
}

func (*ed448Scheme) parse(raw []byte) (*SigningKey, error) {
	if len(raw) != ed448.SeedSize {
		return nil, fmt.Errorf("Ed448 seed of %d bytes, want %d: %w", len(raw), ed448.SeedSize, ErrInvalidKey)
	}
	priv := ed448.NewKeyFromSeed(raw)
	return &SigningKey{scheme: sigEd448, ed: priv, pub: append([]byte(nil), priv[ed448.SeedSize:]...)}, nil
}

func (*ed448Scheme) sign(key *SigningKey, msg []byte) ([]byte, error) {
	return ed448.Sign(key.ed, msg, ""), nil
}

func (*ed448Scheme) verify(pub, msg, sig []byte) error {
	if len(pub) != ed448.PublicKeySize {
		return fmt.Errorf("Ed448 public key of %d bytes: %w", len(pub), ErrInvalidKey)
	}
	if len(sig) != ed448.SignatureSize || !ed448.Verify(pub, msg, sig, "") {
		return fmt.Errorf("Ed448: %w", ErrInvalidSignature)
	}
	return nil
}

// ecdsaScheme is ECDSA over a NIST curve with its paired SHA-2 hash
// (ecdsa_secp256r1_sha256, ecdsa_secp384r1_sha384, ecdsa_secp521r1_sha512;
// RFC 8446 §4.2.3), on crypto/ecdsa. Signatures are DER (RFC 9420 §5.1.2).
type ecdsaScheme struct {
	label   string
	curve   elliptic.Curve
	scalar  int // bytes of a private scalar
	pubSize int // bytes of an uncompressed point
	topMask byte
}

var (
	sigP256 signatureScheme = &ecdsaScheme{label: "ECDSA P-256/SHA-256", curve: elliptic.P256(), scalar: 32, pubSize: 65, topMask: 0xff}
	sigP384 signatureScheme = &ecdsaScheme{label: "ECDSA P-384/SHA-384", curve: elliptic.P384(), scalar: 48, pubSize: 97, topMask: 0xff}
	sigP521 signatureScheme = &ecdsaScheme{label: "ECDSA P-521/SHA-512", curve: elliptic.P521(), scalar: 66, pubSize: 133, topMask: 0x01}
)

func (e *ecdsaScheme) name() string       { return e.label }
func (e *ecdsaScheme) publicKeySize() int { return e.pubSize }

// digest hashes msg with the curve's paired hash into buf.
func (e *ecdsaScheme) digest(buf *[sha512.Size]byte, msg []byte) []byte {
	switch e.scalar {
	case 32:
		*(*[sha256.Size]byte)(buf[:]) = sha256.Sum256(msg)
		return buf[:sha256.Size]
	case 48:
		*(*[sha512.Size384]byte)(buf[:]) = sha512.Sum384(msg)
		return buf[:sha512.Size384]
	default:
		*buf = sha512.Sum512(msg)
		return buf[:]
	}
}

// generate draws the scalar from rand by rejection sampling, because
// ecdsa.GenerateKey ignores its reader since Go 1.26.
func (e *ecdsaScheme) generate(rand io.Reader) (*SigningKey, error) {
	buf := make([]byte, e.scalar)
	defer clear(buf)
	for range maxSamplingAttempts {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return nil, err
		}
		buf[0] &= e.topMask
		if k, err := e.parse(buf); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("random source gave no valid %s scalar", e.label)
}

func (e *ecdsaScheme) parse(raw []byte) (*SigningKey, error) {
	if len(raw) != e.scalar {
		return nil, fmt.Errorf("%s private key of %d bytes, want %d: %w", e.label, len(raw), e.scalar, ErrInvalidKey)
	}
	priv, err := ecdsa.ParseRawPrivateKey(e.curve, raw)
	if err != nil {
		return nil, fmt.Errorf("%s private key out of range: %w", e.label, ErrInvalidKey)
	}
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%s public key: %w", e.label, err)
	}
	return &SigningKey{scheme: e, ec: priv, pub: pub}, nil
}

func (e *ecdsaScheme) sign(key *SigningKey, msg []byte) ([]byte, error) {
	var buf [sha512.Size]byte
	sig, err := ecdsa.SignASN1(rand.Reader, key.ec, e.digest(&buf, msg))
	if err != nil {
		return nil, fmt.Errorf("%s sign: %w", e.label, err)
	}
	return sig, nil
}

func (e *ecdsaScheme) verify(pub, msg, sig []byte) error {
	if len(pub) != e.pubSize {
		return fmt.Errorf("%s public key of %d bytes, want %d: %w", e.label, len(pub), e.pubSize, ErrInvalidKey)
	}
	pk, err := ecdsa.ParseUncompressedPublicKey(e.curve, pub)
	if err != nil {
		return fmt.Errorf("%s public key: %w", e.label, ErrInvalidKey)
	}
	var buf [sha512.Size]byte
	if !ecdsa.VerifyASN1(pk, e.digest(&buf, msg), sig) {
		return fmt.Errorf("%s: %w", e.label, ErrInvalidSignature)
	}
	return nil
}
