package ciphersuite

import (
	"crypto/ecdh"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/dh/x448"
)

// dhGroup is the Diffie-Hellman group under a DHKEM (RFC 9180 §4.1). Keys
// cross this interface in their RFC 9180 §7.1 serialized form, so that MLS
// code can store and compare them as opaque bytes (RFC 9420 §5.1.1).
//
// Implementations draw every random byte from the io.Reader they are given:
// crypto/ecdh.Curve.GenerateKey ignores its reader since Go 1.26, which would
// make the rand parameters of this package's API a lie.
type dhGroup interface {
	// privateKeySize is Nsk, publicKeySize is Npk (which is also Nenc).
	privateKeySize() int
	publicKeySize() int
	// publicKey returns pk(priv), rejecting a malformed private key.
	publicKey(priv []byte) ([]byte, error)
	// validatePublicKey rejects a byte string that is not a public key.
	validatePublicKey(pub []byte) error
	// generate returns a fresh key pair drawn from rand.
	generate(rand io.Reader) (priv, pub []byte, err error)
	// encap generates an ephemeral key pair from rand and returns
	// DH(skE, pkR) and enc = pkE.
	encap(rand io.Reader, pkR []byte) (dh, enc []byte, err error)
	// decap returns DH(skR, pkE) for pkE = enc, and pkR = pk(skR).
	decap(skR, enc []byte) (dh, pkR []byte, err error)
}

// dhKEM is DHKEM(Group, KDF) of RFC 9180 §4.1.
type dhKEM struct {
	id      uint16
	kdf     labeledKDF // suite_id "KEM" || I2OSP(kem_id, 2), RFC 9180 §4.1
	nSecret int
	group   dhGroup
	// rejectionSampling selects the DeriveKeyPair of the NIST curves
	// (RFC 9180 §7.1.3: candidates under bitmask until one is a valid
	// scalar) rather than the one of X25519 and X448 (any Nsk bytes).
	rejectionSampling bool
	bitmask           byte
}

func newDHKEM(id uint16, newHash func() hash.Hash, nSecret int, group dhGroup, rejectionSampling bool, bitmask byte) *dhKEM {
	return &dhKEM{
		id:                id,
		kdf:               newLabeledKDF(newHash, binary.BigEndian.AppendUint16([]byte("KEM"), id)),
		nSecret:           nSecret,
		group:             group,
		rejectionSampling: rejectionSampling,
		bitmask:           bitmask,
	}
}

// extractAndExpand is RFC 9180 §4.1 ExtractAndExpand(dh, kem_context).
func (k *dhKEM) extractAndExpand(dh, kemContext []byte) ([]byte, error) {
	prk := k.kdf.extract(nil, labelEAEPRK, dh)
	defer clear(prk)
	return k.kdf.expand(prk, labelSharedSecret, kemContext, k.nSecret)
}

// encap is RFC 9180 §4.1 Encap(pkR): it returns the shared secret and enc.
func (k *dhKEM) encap(rand io.Reader, pkR []byte) (sharedSecret, enc []byte, err error) {
	dh, enc, err := k.group.encap(rand, pkR)
	if err != nil {
		return nil, nil, err
	}
	defer clear(dh)
	kemContext := make([]byte, 0, len(enc)+len(pkR))
	kemContext = append(append(kemContext, enc...), pkR...)
	sharedSecret, err = k.extractAndExpand(dh, kemContext)
	if err != nil {
		return nil, nil, err
	}
	return sharedSecret, enc, nil
}

// decap is RFC 9180 §4.1 Decap(enc, skR).
func (k *dhKEM) decap(enc, skR []byte) ([]byte, error) {
	dh, pkR, err := k.group.decap(skR, enc)
	if err != nil {
		return nil, err
	}
	defer clear(dh)
	kemContext := make([]byte, 0, len(enc)+len(pkR))
	kemContext = append(append(kemContext, enc...), pkR...)
	return k.extractAndExpand(dh, kemContext)
}

// errDeriveKeyPair is RFC 9180 §7.1.3 DeriveKeyPairError: 256 candidates
// in a row were invalid scalars (probability below 2^-128 per attempt).
var errDeriveKeyPair = errors.New("HPKE DeriveKeyPair: no valid candidate")

// deriveKeyPair is RFC 9180 §7.1.3 DeriveKeyPair(ikm). It accepts ikm of
// any length, as LabeledExtract does: MLS feeds it KDF.Nh-byte secrets
// (RFC 9420 §7.4, §8), and under the 64-byte SHA-512 of suites 4, 5 and 6
// that differs from Nsk of DHKEM(X448) (56) and DHKEM(P-521) (66), below the
// "SHOULD be at least Nsk" of RFC 9180 in the P-521 case. HPKE libraries
// that insist on len(ikm) == Nsk (circl panics) cannot serve MLS there; the
// external_pub values of key-schedule.json confirm this reading.
func (k *dhKEM) deriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	prk := k.kdf.extract(nil, labelDKPPRK, ikm)
	defer clear(prk)
	mac := k.kdf.expander(prk)
	nsk := k.group.privateKeySize()
	if !k.rejectionSampling {
		sk, err := k.kdf.expandWith(mac, labelSK, nil, nsk)
		if err != nil {
			return nil, nil, err
		}
		pub, err := k.group.publicKey(sk)
		if err != nil {
			clear(sk)
			return nil, nil, err
		}
		return sk, pub, nil
	}
	counter := make([]byte, 1)
	for c := 0; c <= 255; c++ {
		counter[0] = byte(c)
		sk, err := k.kdf.expandWith(mac, labelCandidate, counter, nsk)
		if err != nil {
			return nil, nil, err
		}
		sk[0] &= k.bitmask
		if pub, err := k.group.publicKey(sk); err == nil {
			return sk, pub, nil
		}
		clear(sk)
	}
	return nil, nil, errDeriveKeyPair
}

// montgomeryGroup is X25519 or X448 (RFC 7748) on circl. X448 exists only
// there; for X25519 circl's assembly is faster than crypto/ecdh's on amd64
// (fixed-base about 2x, variable-base about 1.3x: BenchmarkX25519Impl). A private key is any Nsk bytes (clamped when used,
// RFC 9180 §7.1.2); a public key is any Npk bytes, and low-order peers are
// caught by the all-zero check of DH (RFC 9180 §7.1.4).
type montgomeryGroup struct {
	size int // x25519.Size or x448.Size
}

var (
	groupX25519 dhGroup = montgomeryGroup{size: x25519.Size}
	groupX448   dhGroup = montgomeryGroup{size: x448.Size}
)

func (g montgomeryGroup) privateKeySize() int { return g.size }
func (g montgomeryGroup) publicKeySize() int  { return g.size }

func (g montgomeryGroup) checkLen(what string, b []byte) error {
	if len(b) != g.size {
		return fmt.Errorf("X%d %s of %d bytes, want %d: %w", g.bits(), what, len(b), g.size, ErrInvalidKey)
	}
	return nil
}

func (g montgomeryGroup) bits() int {
	if g.size == x25519.Size {
		return 25519
	}
	return 448
}

func (g montgomeryGroup) validatePublicKey(pub []byte) error {
	return g.checkLen("public key", pub)
}

// baseMult writes pk(sk) into pub; both are g.size bytes.
func (g montgomeryGroup) baseMult(pub, sk []byte) {
	if g.size == x25519.Size {
		x25519.KeyGen((*x25519.Key)(pub), (*x25519.Key)(sk))
	} else {
		x448.KeyGen((*x448.Key)(pub), (*x448.Key)(sk))
	}
}

// dh writes DH(sk, pk) into out and reports false when the result is all
// zero, that is when pk is a low-order point (RFC 9180 §7.1.4).
func (g montgomeryGroup) dh(out, sk, pk []byte) bool {
	if g.size == x25519.Size {
		return x25519.Shared((*x25519.Key)(out), (*x25519.Key)(sk), (*x25519.Key)(pk))
	}
	return x448.Shared((*x448.Key)(out), (*x448.Key)(sk), (*x448.Key)(pk))
}

func (g montgomeryGroup) publicKey(priv []byte) ([]byte, error) {
	if err := g.checkLen("private key", priv); err != nil {
		return nil, err
	}
	pub := make([]byte, g.size)
	g.baseMult(pub, priv)
	return pub, nil
}

func (g montgomeryGroup) generate(rand io.Reader) (priv, pub []byte, err error) {
	// Separate allocations, so that a retained public key does not keep
	// the private key's memory alive.
	priv, pub = make([]byte, g.size), make([]byte, g.size)
	if _, err := io.ReadFull(rand, priv); err != nil {
		return nil, nil, fmt.Errorf("generate X%d key: %w", g.bits(), err)
	}
	g.baseMult(pub, priv)
	return priv, pub, nil
}

func (g montgomeryGroup) encap(rand io.Reader, pkR []byte) (dh, enc []byte, err error) {
	if err := g.checkLen("public key", pkR); err != nil {
		return nil, nil, err
	}
	// One buffer: ephemeral secret, enc, and the DH output.
	buf := make([]byte, 3*g.size)
	skE, enc, dh := buf[:g.size], buf[g.size:2*g.size:2*g.size], buf[2*g.size:]
	defer clear(skE)
	if _, err := io.ReadFull(rand, skE); err != nil {
		return nil, nil, fmt.Errorf("HPKE encap: %w", err)
	}
	g.baseMult(enc, skE)
	if !g.dh(dh, skE, pkR) {
		return nil, nil, fmt.Errorf("HPKE encap: low-order X%d public key: %w", g.bits(), ErrInvalidKey)
	}
	return dh, enc, nil
}

func (g montgomeryGroup) decap(skR, enc []byte) (dh, pkR []byte, err error) {
	if err := g.checkLen("private key", skR); err != nil {
		return nil, nil, err
	}
	if err := g.checkLen("kem_output", enc); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 2*g.size)
	dh, pkR = buf[:g.size:g.size], buf[g.size:]
	if !g.dh(dh, skR, enc) {
		return nil, nil, fmt.Errorf("HPKE decap: low-order X%d kem_output: %w", g.bits(), ErrInvalidKey)
	}
	g.baseMult(pkR, skR)
	return dh, pkR, nil
}

// nistGroup is P-256, P-384 or P-521 on crypto/ecdh (circl's HPKE uses
// crypto/ecdh for these curves too). Private keys are big-endian scalars of
// exactly Nsk bytes in [1, n-1]; public keys are uncompressed SEC1 points
// (RFC 9180 §7.1.1).
type nistGroup struct {
	curve ecdh.Curve
	name  string
	nsk   int
	npk   int
	// topMask clears the bits of the first scalar byte above the order's
	// bit length when sampling (RFC 9180 §7.1.3 bitmask).
	topMask byte
}

var (
	groupP256 dhGroup = nistGroup{curve: ecdh.P256(), name: "P-256", nsk: 32, npk: 65, topMask: 0xff}
	groupP384 dhGroup = nistGroup{curve: ecdh.P384(), name: "P-384", nsk: 48, npk: 97, topMask: 0xff}
	groupP521 dhGroup = nistGroup{curve: ecdh.P521(), name: "P-521", nsk: 66, npk: 133, topMask: 0x01}
)

func (g nistGroup) privateKeySize() int { return g.nsk }
func (g nistGroup) publicKeySize() int  { return g.npk }

func (g nistGroup) parsePrivate(priv []byte) (*ecdh.PrivateKey, error) {
	if len(priv) != g.nsk {
		return nil, fmt.Errorf("%s private key of %d bytes, want %d: %w", g.name, len(priv), g.nsk, ErrInvalidKey)
	}
	k, err := g.curve.NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%s private key: %w", g.name, ErrInvalidKey)
	}
	return k, nil
}

func (g nistGroup) parsePublic(pub []byte) (*ecdh.PublicKey, error) {
	if len(pub) != g.npk {
		return nil, fmt.Errorf("%s public key of %d bytes, want %d: %w", g.name, len(pub), g.npk, ErrInvalidKey)
	}
	k, err := g.curve.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%s public key not on the curve: %w", g.name, ErrInvalidKey)
	}
	return k, nil
}

func (g nistGroup) publicKey(priv []byte) ([]byte, error) {
	k, err := g.parsePrivate(priv)
	if err != nil {
		return nil, err
	}
	return k.PublicKey().Bytes(), nil
}

func (g nistGroup) validatePublicKey(pub []byte) error {
	_, err := g.parsePublic(pub)
	return err
}

// maxSamplingAttempts bounds rejection sampling of a random scalar. For
// P-256, the worst curve, one attempt fails with probability below 2^-32.
const maxSamplingAttempts = 64

// generateKey draws a scalar from rand by rejection sampling.
func (g nistGroup) generateKey(rand io.Reader) (*ecdh.PrivateKey, error) {
	buf := make([]byte, g.nsk)
	defer clear(buf)
	for range maxSamplingAttempts {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return nil, fmt.Errorf("generate %s key: %w", g.name, err)
		}
		buf[0] &= g.topMask
		if k, err := g.curve.NewPrivateKey(buf); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("generate %s key: random source gave no valid scalar", g.name)
}

func (g nistGroup) generate(rand io.Reader) (priv, pub []byte, err error) {
	k, err := g.generateKey(rand)
	if err != nil {
		return nil, nil, err
	}
	return k.Bytes(), k.PublicKey().Bytes(), nil
}

func (g nistGroup) encap(rand io.Reader, pkR []byte) (dh, enc []byte, err error) {
	peer, err := g.parsePublic(pkR)
	if err != nil {
		return nil, nil, err
	}
	skE, err := g.generateKey(rand)
	if err != nil {
		return nil, nil, err
	}
	dh, err = skE.ECDH(peer)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE encap: %w", err)
	}
	return dh, skE.PublicKey().Bytes(), nil
}

func (g nistGroup) decap(skR, enc []byte) (dh, pkR []byte, err error) {
	k, err := g.parsePrivate(skR)
	if err != nil {
		return nil, nil, err
	}
	peer, err := g.parsePublic(enc)
	if err != nil {
		return nil, nil, fmt.Errorf("kem_output: %w", err)
	}
	dh, err = k.ECDH(peer)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE decap: %w", err)
	}
	return dh, k.PublicKey().Bytes(), nil
}
