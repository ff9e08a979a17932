package dht

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/cryptobyte"
)

// The real KeyPackage and Welcome checks live in package mls, which this
// package must not depend on. These test doubles use a small signed format of
// their own so that a forged or tampered "KeyPackage" really fails:
//
//	testKeyPackage: "TKP1" || identity<u8> || not_before u64 || not_after u64 ||
//	                ed25519 public key [32] || nonce [8] || signature [64]
//
// The signature covers everything before it; the verifier checks it, the
// lifetime, and returns identity.
//
//	testWelcome: "TWL1" || refs<u8> of ref<u8> || payload<u16>
//
// The Welcome verifier checks the framing and returns the refs.

const testKPMagic = "TKP1"

type testKPVerifier struct{}

func (testKPVerifier) VerifyKeyPackage(raw []byte, now time.Time) ([]byte, error) {
	s := cryptobyte.String(raw)
	var magic, pub, nonce, sig []byte
	var identity cryptobyte.String
	var notBefore, notAfter uint64
	if !s.ReadBytes(&magic, 4) || string(magic) != testKPMagic {
		return nil, errors.New("test KeyPackage: bad magic")
	}
	if !s.ReadUint8LengthPrefixed(&identity) || !s.ReadUint64(&notBefore) || !s.ReadUint64(&notAfter) ||
		!s.ReadBytes(&pub, ed25519.PublicKeySize) || !s.ReadBytes(&nonce, 8) {
		return nil, errors.New("test KeyPackage: truncated")
	}
	signed := raw[:len(raw)-len(s)]
	if !s.ReadBytes(&sig, ed25519.SignatureSize) || !s.Empty() {
		return nil, errors.New("test KeyPackage: bad signature field")
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), signed, sig) {
		return nil, errors.New("test KeyPackage: signature does not verify")
	}
	if t := now.Unix(); t < int64(notBefore) || t > int64(notAfter) {
		return nil, fmt.Errorf("test KeyPackage: lifetime [%d, %d] excludes %d", notBefore, notAfter, t)
	}
	return []byte(identity), nil
}

// makeTestKP returns a test KeyPackage for identity valid over [now-1h,
// notAfter].
func makeTestKP(identity peer.ID, notAfter time.Time) []byte {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	var b cryptobyte.Builder
	b.AddBytes([]byte(testKPMagic))
	b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(identity)) })
	b.AddUint64(uint64(time.Now().Add(-time.Hour).Unix()))
	b.AddUint64(uint64(notAfter.Unix()))
	b.AddBytes(pub)
	b.AddBytes(nonce)
	signed := b.BytesOrPanic()
	return append(signed, ed25519.Sign(priv, signed)...)
}

// tamper returns a copy of kp with one signed byte flipped.
func tamper(kp []byte) []byte {
	out := append([]byte(nil), kp...)
	out[len(out)-ed25519.SignatureSize-1] ^= 1
	return out
}

const testWelcomeMagic = "TWL1"

type testWelcomeVerifier struct{}

func (testWelcomeVerifier) VerifyWelcome(raw []byte) ([][]byte, error) {
	s := cryptobyte.String(raw)
	var magic []byte
	var refs, payload cryptobyte.String
	if !s.ReadBytes(&magic, 4) || string(magic) != testWelcomeMagic {
		return nil, errors.New("test Welcome: bad magic")
	}
	if !s.ReadUint8LengthPrefixed(&refs) || !s.ReadUint16LengthPrefixed(&payload) || !s.Empty() {
		return nil, errors.New("test Welcome: bad framing")
	}
	var out [][]byte
	for !refs.Empty() {
		var ref cryptobyte.String
		if !refs.ReadUint8LengthPrefixed(&ref) || len(ref) == 0 {
			return nil, errors.New("test Welcome: bad ref")
		}
		out = append(out, []byte(ref))
	}
	if len(out) == 0 {
		return nil, errors.New("test Welcome: no recipients")
	}
	return out, nil
}

// makeTestWelcome returns a test Welcome for refs with a random payload.
func makeTestWelcome(refs ...[]byte) []byte {
	payload := make([]byte, 48)
	rand.Read(payload)
	var b cryptobyte.Builder
	b.AddBytes([]byte(testWelcomeMagic))
	b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) {
		for _, r := range refs {
			c.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r) })
		}
	})
	b.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(payload) })
	return b.BytesOrPanic()
}

// randomRef returns a random 32-byte stand-in for a KeyPackageRef.
func randomRef() []byte {
	r := make([]byte, 32)
	rand.Read(r)
	return r
}
