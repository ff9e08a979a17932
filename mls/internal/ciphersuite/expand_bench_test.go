package ciphersuite

import "testing"

// BenchmarkExpandWithLabel is one secret tree derivation
// (DeriveTreeSecret), as a message uses three on each side.
func BenchmarkExpandWithLabel(b *testing.B) {
	s, err := Lookup(X25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		b.Fatal(err)
	}
	secret := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.DeriveTreeSecret(secret, "secret", 7, 32); err != nil {
			b.Fatal(err)
		}
	}
}
