package ciphersuite

import (
	"bytes"
	stdhpke "crypto/hpke"
	"crypto/rand"
	"testing"

	circlhpke "github.com/cloudflare/circl/hpke"
)

// The HPKE of this package is checked against two independent
// implementations: circl/hpke (all seven suites) and Go's crypto/hpke (all
// but the X448 suites, which it lacks). Each direction is tested: our Seal
// opened by them, their Seal opened by us, and the §8.3 exporter.

func circlSuite(s *Suite) circlhpke.Suite {
	return circlhpke.NewSuite(circlhpke.KEM(s.kem.id), circlhpke.KDF(s.kdfID), circlhpke.AEAD(s.aead.hpkeID()))
}

// stdSuite returns crypto/hpke's algorithms for s, or ok=false for X448.
func stdSuite(t testing.TB, s *Suite) (kem stdhpke.KEM, kdf stdhpke.KDF, aead stdhpke.AEAD, ok bool) {
	if s.kem.id == kemX448 {
		return nil, nil, nil, false
	}
	kem, err := stdhpke.NewKEM(s.kem.id)
	if err != nil {
		t.Fatal(err)
	}
	kdf, err = stdhpke.NewKDF(s.kdfID)
	if err != nil {
		t.Fatal(err)
	}
	aead, err = stdhpke.NewAEAD(s.aead.hpkeID())
	if err != nil {
		t.Fatal(err)
	}
	return kem, kdf, aead, true
}

func TestHPKEInteropCircl(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *Suite) {
		cs := circlSuite(s)
		scheme := circlhpke.KEM(s.kem.id).Scheme()
		priv, pub, err := s.GenerateHPKEKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		cPub, err := scheme.UnmarshalBinaryPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		cPriv, err := scheme.UnmarshalBinaryPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		label, context, plaintext := "Welcome", []byte("context"), []byte("group secrets")
		info, err := encryptContext(label, context)
		if err != nil {
			t.Fatal(err)
		}

		// Ours to circl.
		kemOutput, ct, err := s.EncryptWithLabel(pub, label, context, plaintext, nil)
		if err != nil {
			t.Fatal(err)
		}
		recv, err := cs.NewReceiver(cPriv, info)
		if err != nil {
			t.Fatal(err)
		}
		opener, err := recv.Setup(kemOutput)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := opener.Open(ct, nil); err != nil || !bytes.Equal(pt, plaintext) {
			t.Errorf("circl Open(our ciphertext) = %x, %v", pt, err)
		}

		// Circl to ours.
		sender, err := cs.NewSender(cPub, info)
		if err != nil {
			t.Fatal(err)
		}
		enc, sealer, err := sender.Setup(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ct2, err := sealer.Seal(plaintext, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := s.DecryptWithLabel(priv, label, context, enc, ct2); err != nil || !bytes.Equal(pt, plaintext) {
			t.Errorf("DecryptWithLabel(circl ciphertext) = %x, %v", pt, err)
		}

		// External init (RFC 9420 §8.3) both ways: SetupBase with empty info,
		// then Export.
		extSender, err := cs.NewSender(cPub, nil)
		if err != nil {
			t.Fatal(err)
		}
		extEnc, extSealer, err := extSender.Setup(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		want := extSealer.Export([]byte(externalInitLabel), uint(s.HashSize()))
		if got, err := s.ExternalInitReceiver(priv, extEnc); err != nil || !bytes.Equal(got, want) {
			t.Errorf("ExternalInitReceiver(circl kem_output) = %x, %v; want %x", got, err, want)
		}
		ourEnc, ourSecret, err := s.ExternalInitSender(pub, nil)
		if err != nil {
			t.Fatal(err)
		}
		extRecv, err := cs.NewReceiver(cPriv, nil)
		if err != nil {
			t.Fatal(err)
		}
		extOpener, err := extRecv.Setup(ourEnc)
		if err != nil {
			t.Fatal(err)
		}
		if got := extOpener.Export([]byte(externalInitLabel), uint(s.HashSize())); !bytes.Equal(got, ourSecret) {
			t.Errorf("circl export of our kem_output = %x, want %x", got, ourSecret)
		}

		// DeriveKeyPair agrees with circl where circl accepts the input
		// (ikm of exactly Nsk bytes).
		ikm := make([]byte, s.HPKEPrivateKeySize())
		rand.Read(ikm)
		_, dPub, err := s.DeriveKeyPair(ikm)
		if err != nil {
			t.Fatal(err)
		}
		cdPub, _ := scheme.DeriveKeyPair(ikm)
		if cb, _ := cdPub.MarshalBinary(); !bytes.Equal(cb, dPub) {
			t.Errorf("DeriveKeyPair = %x, circl %x", dPub, cb)
		}
	})
}

func TestHPKEInteropStdlib(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *Suite) {
		kem, kdf, aead, ok := stdSuite(t, s)
		if !ok {
			t.Skip("crypto/hpke has no DHKEM(X448)")
		}
		priv, pub, err := s.GenerateHPKEKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		sPub, err := kem.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		sPriv, err := kem.NewPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		label, context, plaintext := "UpdatePathNode", []byte("ctx"), []byte("path secret")
		info, err := encryptContext(label, context)
		if err != nil {
			t.Fatal(err)
		}

		kemOutput, ct, err := s.EncryptWithLabel(pub, label, context, plaintext, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := stdhpke.NewRecipient(kemOutput, sPriv, kdf, aead, info)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := r.Open(nil, ct); err != nil || !bytes.Equal(pt, plaintext) {
			t.Errorf("crypto/hpke Open(our ciphertext) = %x, %v", pt, err)
		}

		enc, sender, err := stdhpke.NewSender(sPub, kdf, aead, info)
		if err != nil {
			t.Fatal(err)
		}
		ct2, err := sender.Seal(nil, plaintext)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := s.DecryptWithLabel(priv, label, context, enc, ct2); err != nil || !bytes.Equal(pt, plaintext) {
			t.Errorf("DecryptWithLabel(crypto/hpke ciphertext) = %x, %v", pt, err)
		}

		extEnc, extSender, err := stdhpke.NewSender(sPub, kdf, aead, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := extSender.Export(externalInitLabel, s.HashSize())
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.ExternalInitReceiver(priv, extEnc); err != nil || !bytes.Equal(got, want) {
			t.Errorf("ExternalInitReceiver(crypto/hpke kem_output) = %x, %v; want %x", got, err, want)
		}

		// crypto/hpke's DeriveKeyPair takes ikm of any length, like ours:
		// compare on the KDF.Nh-sized secrets MLS actually derives from.
		for _, n := range []int{s.HashSize(), s.HPKEPrivateKeySize(), 7} {
			ikm := make([]byte, n)
			rand.Read(ikm)
			_, dPub, err := s.DeriveKeyPair(ikm)
			if err != nil {
				t.Fatal(err)
			}
			sk, err := kem.DeriveKeyPair(ikm)
			if err != nil {
				t.Fatal(err)
			}
			if got := sk.PublicKey().Bytes(); !bytes.Equal(got, dPub) {
				t.Errorf("DeriveKeyPair(%d bytes) = %x, crypto/hpke %x", n, dPub, got)
			}
		}
	})
}
