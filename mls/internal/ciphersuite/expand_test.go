package ciphersuite

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// TestExpandOneBlock checks the allocation-free HKDF-Expand path against
// crypto/hkdf for every length it serves, PRKs of 0 to 64 bytes and infos
// up to its limit, and that longer requests still agree (generic path).
func TestExpandOneBlock(t *testing.T) {
	s, err := Lookup(X25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	for _, prkLen := range []int{0, 1, 16, 32, 63, 64, 65} {
		for _, infoLen := range []int{0, 1, 22, 55, 56, 64, 128, maxOneBlockInfo, maxOneBlockInfo + 1} {
			for _, length := range []int{0, 1, 12, 16, 31, 32, 33, 64} {
				prk := make([]byte, prkLen)
				info := make([]byte, infoLen)
				rand.Read(prk)
				rand.Read(info)
				got, err := s.Expand(prk, info, length)
				if err != nil {
					t.Fatal(err)
				}
				want, err := hkdf.Expand(sha256.New, prk, string(info), length)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("prk %d, info %d, length %d: %x, want %x", prkLen, infoLen, length, got, want)
				}
			}
		}
	}
}
