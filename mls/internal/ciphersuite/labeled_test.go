package ciphersuite

import (
	"bytes"
	"testing"
)

// TestLabeledEncryptor checks that the prepared encryptor produces exactly
// EncryptWithLabel's output for the same ephemeral randomness, in every
// suite, and that DecryptWithLabel opens it; and that a different context
// does not open.
func TestLabeledEncryptor(t *testing.T) {
	context := bytes.Repeat([]byte("encrypted group info "), 100)
	plaintext := []byte("group secrets")
	for _, s := range allSuites(t) {
		t.Run(s.String(), func(t *testing.T) {
			priv, pub, err := s.GenerateHPKEKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := s.NewLabeledEncryptor("Welcome", context)
			if err != nil {
				t.Fatal(err)
			}
			seed := bytes.Repeat([]byte{7}, 256)
			kem1, ct1, err := enc.Encrypt(pub, plaintext, bytes.NewReader(seed))
			if err != nil {
				t.Fatal(err)
			}
			kem2, ct2, err := s.EncryptWithLabel(pub, "Welcome", context, plaintext, bytes.NewReader(seed))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(kem1, kem2) || !bytes.Equal(ct1, ct2) {
				t.Fatal("LabeledEncryptor and EncryptWithLabel differ for the same randomness")
			}
			got, err := s.DecryptWithLabel(priv, "Welcome", context, kem1, ct1)
			if err != nil || !bytes.Equal(got, plaintext) {
				t.Fatalf("decrypt: %q, %v", got, err)
			}
			if _, err := s.DecryptWithLabel(priv, "Welcome", context[1:], kem1, ct1); err == nil {
				t.Fatal("opened under another context")
			}
			// Many recipients, fresh randomness each.
			for range 3 {
				p2, pub2, _ := s.GenerateHPKEKey(nil)
				kem, ct, err := enc.Encrypt(pub2, plaintext, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := s.DecryptWithLabel(p2, "Welcome", context, kem, ct); err != nil || !bytes.Equal(got, plaintext) {
					t.Fatalf("recipient: %q, %v", got, err)
				}
			}
		})
	}
}
