package ciphersuite

import (
	"crypto/ecdh"
	"crypto/ed25519"
	stdhpke "crypto/hpke"
	"crypto/rand"
	"fmt"
	"testing"

	circlhpke "github.com/cloudflare/circl/hpke"

	"github.com/cloudflare/circl/dh/x25519"
	circled25519 "github.com/cloudflare/circl/sign/ed25519"
)

// Inputs shaped like MLS traffic: a LeafNodeTBS-sized signed content, and
// a 32-byte path secret encrypted to a node key under a GroupContext.
var (
	benchContent   = make([]byte, 256)
	benchContext   = make([]byte, 96)
	benchPlaintext = make([]byte, 32)
)

func benchSuites(b *testing.B, f func(b *testing.B, s *Suite)) {
	for _, s := range allSuites(b) {
		b.Run(fmt.Sprintf("suite=%d", uint16(s.ID())), func(b *testing.B) {
			b.ReportAllocs()
			f(b, s)
		})
	}
}

// BenchmarkSign is SignWithLabel (RFC 9420 §5.1.2) with a parsed key.
func BenchmarkSign(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *Suite) {
		key, err := s.GenerateSigningKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.SignWithLabel(key, "LeafNodeTBS", benchContent); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerify is VerifyWithLabel from the wire-form public key.
func BenchmarkVerify(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *Suite) {
		key, err := s.GenerateSigningKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		sig, err := s.SignWithLabel(key, "LeafNodeTBS", benchContent)
		if err != nil {
			b.Fatal(err)
		}
		pub := key.PublicKey()
		for b.Loop() {
			if err := s.VerifyWithLabel(pub, "LeafNodeTBS", benchContent, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSeal is EncryptWithLabel (RFC 9420 §5.1.3).
func BenchmarkSeal(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *Suite) {
		_, pub, err := s.GenerateHPKEKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, _, err := s.EncryptWithLabel(pub, "UpdatePathNode", benchContext, benchPlaintext, rand.Reader); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOpen is DecryptWithLabel (RFC 9420 §5.1.3).
func BenchmarkOpen(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *Suite) {
		priv, pub, err := s.GenerateHPKEKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		kemOutput, ct, err := s.EncryptWithLabel(pub, "UpdatePathNode", benchContext, benchPlaintext, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", benchContext, kemOutput, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDeriveKeyPair derives a node key pair from a KDF.Nh-byte secret
// (RFC 9420 §7.4).
func BenchmarkDeriveKeyPair(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *Suite) {
		ikm := make([]byte, s.HashSize())
		for b.Loop() {
			if _, _, err := s.DeriveKeyPair(ikm); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkX25519Impl compares circl's X25519 with crypto/ecdh's, the
// choice behind montgomeryGroup.
func BenchmarkX25519Impl(b *testing.B) {
	var sk, pk, ss x25519.Key
	rand.Read(sk[:])
	x25519.KeyGen(&pk, &sk)
	b.Run("circl/basemult", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			x25519.KeyGen(&pk, &sk)
		}
	})
	b.Run("circl/dh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			x25519.Shared(&ss, &sk, &pk)
		}
	})
	b.Run("stdlib/basemult", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			// NewPrivateKey computes the public key eagerly.
			if _, err := ecdh.X25519().NewPrivateKey(sk[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	stdPriv, _ := ecdh.X25519().NewPrivateKey(sk[:])
	stdPub, _ := ecdh.X25519().NewPublicKey(pk[:])
	b.Run("stdlib/dh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := stdPriv.ECDH(stdPub); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEd25519Impl compares crypto/ed25519 with circl's Ed25519, the
// choice behind ed25519Scheme.
func BenchmarkEd25519Impl(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub := priv.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(priv, benchContent)
	b.Run("stdlib/sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ed25519.Sign(priv, benchContent)
		}
	})
	b.Run("stdlib/verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, benchContent, sig) {
				b.Fatal("verify failed")
			}
		}
	})
	cPriv, cPub := circled25519.PrivateKey(priv), circled25519.PublicKey(pub)
	b.Run("circl/sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			circled25519.Sign(cPriv, benchContent)
		}
	})
	b.Run("circl/verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !circled25519.Verify(cPub, benchContent, sig) {
				b.Fatal("verify failed")
			}
		}
	})
}

// BenchmarkHPKEImpl compares this package's HPKE base mode with circl/hpke
// and crypto/hpke on the same job: wire-form key bytes in, one 32-byte
// message sealed or opened under the EncryptContext info.
func BenchmarkHPKEImpl(b *testing.B) {
	for _, s := range allSuites(b) {
		priv, pub, err := s.GenerateHPKEKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		info, err := encryptContext("UpdatePathNode", benchContext)
		if err != nil {
			b.Fatal(err)
		}
		kemOutput, ct, err := s.EncryptWithLabel(pub, "UpdatePathNode", benchContext, benchPlaintext, nil)
		if err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("suite=%d", uint16(s.ID()))

		b.Run(name+"/this/seal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.EncryptWithLabel(pub, "UpdatePathNode", benchContext, benchPlaintext, rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/this/open", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", benchContext, kemOutput, ct); err != nil {
					b.Fatal(err)
				}
			}
		})

		cs := circlSuite(s)
		scheme := circlhpke.KEM(s.kem.id).Scheme()
		b.Run(name+"/circl/seal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pk, err := scheme.UnmarshalBinaryPublicKey(pub)
				if err != nil {
					b.Fatal(err)
				}
				sender, err := cs.NewSender(pk, info)
				if err != nil {
					b.Fatal(err)
				}
				_, sealer, err := sender.Setup(rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := sealer.Seal(benchPlaintext, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/circl/open", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sk, err := scheme.UnmarshalBinaryPrivateKey(priv)
				if err != nil {
					b.Fatal(err)
				}
				recv, err := cs.NewReceiver(sk, info)
				if err != nil {
					b.Fatal(err)
				}
				opener, err := recv.Setup(kemOutput)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := opener.Open(ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})

		kem, kdf, aead, ok := stdSuite(b, s)
		if !ok {
			continue
		}
		b.Run(name+"/stdlib/seal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pk, err := kem.NewPublicKey(pub)
				if err != nil {
					b.Fatal(err)
				}
				_, sender, err := stdhpke.NewSender(pk, kdf, aead, info)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := sender.Seal(nil, benchPlaintext); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/stdlib/open", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sk, err := kem.NewPrivateKey(priv)
				if err != nil {
					b.Fatal(err)
				}
				r, err := stdhpke.NewRecipient(kemOutput, sk, kdf, aead, info)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Open(nil, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
