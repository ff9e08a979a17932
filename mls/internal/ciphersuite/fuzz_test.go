package ciphersuite

import (
	"errors"
	"testing"
)

// FuzzVerify feeds arbitrary public keys and signatures to every suite's
// Verify: it must never panic, and every failure must be one of the two
// sentinels callers branch on.
func FuzzVerify(f *testing.F) {
	for _, s := range allSuites(f) {
		key, err := s.GenerateSigningKey(nil)
		if err != nil {
			f.Fatal(err)
		}
		sig, err := s.Sign(key, []byte("msg"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(s.ID()), key.PublicKey(), []byte("msg"), sig)
	}
	f.Add(uint8(2), []byte{4}, []byte{}, []byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, id uint8, pub, msg, sig []byte) {
		s, err := Lookup(ID(id%7 + 1))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Verify(pub, msg, sig)
		if err != nil && !errors.Is(err, ErrInvalidKey) && !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("Verify: unexpected error kind: %v", err)
		}
	})
}

// FuzzDecryptWithLabel feeds arbitrary keys, KEM outputs and ciphertexts
// to every suite's DecryptWithLabel and ExternalInitReceiver: no panic, and
// failures wrap ErrInvalidKey or ErrDecrypt.
func FuzzDecryptWithLabel(f *testing.F) {
	for _, s := range allSuites(f) {
		priv, pub, err := s.GenerateHPKEKey(nil)
		if err != nil {
			f.Fatal(err)
		}
		kemOutput, ct, err := s.EncryptWithLabel(pub, "L", nil, []byte("pt"), nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(s.ID()), priv, kemOutput, ct)
	}
	f.Fuzz(func(t *testing.T, id uint8, priv, kemOutput, ct []byte) {
		s, err := Lookup(ID(id%7 + 1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.DecryptWithLabel(priv, "L", nil, kemOutput, ct); err != nil &&
			!errors.Is(err, ErrInvalidKey) && !errors.Is(err, ErrDecrypt) {
			t.Fatalf("DecryptWithLabel: unexpected error kind: %v", err)
		}
		if _, err := s.ExternalInitReceiver(priv, kemOutput); err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("ExternalInitReceiver: unexpected error kind: %v", err)
		}
		_, _ = s.HPKEPublicKey(priv)
		_ = s.ValidateHPKEPublicKey(kemOutput)
		_, _ = s.ParseSigningKey(priv)
	})
}
