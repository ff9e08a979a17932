package ciphersuite

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"
)

// allSuites returns every registered suite in registry order.
func allSuites(t testing.TB) []*Suite {
	t.Helper()
	var out []*Suite
	for id := ID(1); id <= 7; id++ {
		s, err := Lookup(id)
		if err != nil {
			t.Fatalf("Lookup(%d): %v", id, err)
		}
		out = append(out, s)
	}
	return out
}

func forEachSuite(t *testing.T, f func(t *testing.T, s *Suite)) {
	for _, s := range allSuites(t) {
		t.Run(fmt.Sprintf("suite=%d", uint16(s.ID())), func(t *testing.T) { f(t, s) })
	}
}

// detReader is a deterministic byte stream (SHA-256 in counter mode over a
// seed), standing in for a caller-supplied random source.
type detReader struct {
	seed    string
	counter uint64
	buf     []byte
}

func (r *detReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			block := sha256.Sum256(fmt.Appendf(nil, "%s/%d", r.seed, r.counter))
			r.counter++
			r.buf = block[:]
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}

func wantErr(t *testing.T, what string, err, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Errorf("%s: error %v, want one wrapping %q", what, err, sentinel)
	}
}

// flipPositions lists the bits to flip in an n-byte value: every bit of
// the first and last four bytes (lengths, tags, SEC1 prefix, DER headers)
// and one bit, varying, of every byte between, to keep P-521 tests quick.
func flipPositions(n int) []int {
	var out []int
	for i := 0; i < n; i++ {
		if i < 4 || i >= n-4 {
			for bit := 0; bit < 8; bit++ {
				out = append(out, 8*i+bit)
			}
		} else {
			out = append(out, 8*i+i%8)
		}
	}
	return out
}

func flipBit(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i/8] ^= 1 << (i % 8)
	return out
}

func TestLookupUnsupported(t *testing.T) {
	for _, id := range []ID{0, 8, 0x00ff, 0xfeff, 0xffff} {
		s, err := Lookup(id)
		if s != nil || !errors.Is(err, ErrUnsupported) {
			t.Errorf("Lookup(0x%04x) = %v, %v; want nil, ErrUnsupported", uint16(id), s, err)
		}
	}
}

func TestSignatureNegative(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *Suite) {
		key, err := s.GenerateSigningKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		other, err := s.GenerateSigningKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub := key.PublicKey()
		if len(pub) != s.SignaturePublicKeySize() {
			t.Fatalf("public key of %d bytes, want %d", len(pub), s.SignaturePublicKeySize())
		}
		content := []byte("leaf node to be signed")
		sig, err := s.SignWithLabel(key, "LeafNodeTBS", content)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyWithLabel(pub, "LeafNodeTBS", content, sig); err != nil {
			t.Fatalf("own signature does not verify: %v", err)
		}

		// Single-bit flips of the signature are rejected.
		for _, i := range flipPositions(len(sig)) {
			wantErr(t, fmt.Sprintf("bit %d flipped", i), s.VerifyWithLabel(pub, "LeafNodeTBS", content, flipBit(sig, i)), ErrInvalidSignature)
		}
		// Every truncation, an extension and the empty signature.
		for n := 0; n < len(sig); n++ {
			wantErr(t, fmt.Sprintf("truncated to %d", n), s.VerifyWithLabel(pub, "LeafNodeTBS", content, sig[:n]), ErrInvalidSignature)
		}
		wantErr(t, "extended", s.VerifyWithLabel(pub, "LeafNodeTBS", content, append(bytes.Clone(sig), 0)), ErrInvalidSignature)
		wantErr(t, "nil signature", s.VerifyWithLabel(pub, "LeafNodeTBS", content, nil), ErrInvalidSignature)
		wantErr(t, "oversized signature", s.VerifyWithLabel(pub, "LeafNodeTBS", content, make([]byte, 1<<16)), ErrInvalidSignature)

		// Wrong key, label, content.
		wantErr(t, "wrong key", s.VerifyWithLabel(other.PublicKey(), "LeafNodeTBS", content, sig), ErrInvalidSignature)
		wantErr(t, "wrong label", s.VerifyWithLabel(pub, "GroupInfoTBS", content, sig), ErrInvalidSignature)
		wantErr(t, "wrong content", s.VerifyWithLabel(pub, "LeafNodeTBS", append(bytes.Clone(content), '!'), sig), ErrInvalidSignature)
		// The label is inside SignContent: an unlabelled Verify fails.
		wantErr(t, "unlabelled verify", s.Verify(pub, content, sig), ErrInvalidSignature)

		// Malformed public keys: truncated, empty, oversized.
		for _, bad := range [][]byte{nil, {}, pub[:1], pub[:len(pub)-1], append(bytes.Clone(pub), 0), make([]byte, 1<<16)} {
			wantErr(t, fmt.Sprintf("public key of %d bytes", len(bad)), s.VerifyWithLabel(bad, "LeafNodeTBS", content, sig), ErrInvalidKey)
		}
		if s.sig != sigEd25519 && s.sig != sigEd448 {
			// ECDSA: a point off the curve, the compressed form, and a
			// wrong SEC1 prefix are not keys.
			offCurve := bytes.Clone(pub)
			offCurve[len(offCurve)-1] ^= 1
			wantErr(t, "point off the curve", s.VerifyWithLabel(offCurve, "LeafNodeTBS", content, sig), ErrInvalidKey)
			compressed := bytes.Clone(pub)
			compressed[0] = 0x02
			wantErr(t, "0x02 prefix", s.VerifyWithLabel(compressed, "LeafNodeTBS", content, sig), ErrInvalidKey)
		}

		// Raw private keys of the wrong size.
		raw := key.Bytes()
		for _, bad := range [][]byte{nil, raw[:len(raw)-1], append(bytes.Clone(raw), 0)} {
			if _, err := s.ParseSigningKey(bad); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("ParseSigningKey(%d bytes): %v, want ErrInvalidKey", len(bad), err)
			}
		}
		if k, err := s.ParseSigningKey(raw); err != nil || !bytes.Equal(k.PublicKey(), pub) {
			t.Errorf("ParseSigningKey(Bytes()) = %v; public key differs or error", err)
		}
		if s.sig != sigEd25519 && s.sig != sigEd448 {
			// ECDSA scalars 0 and >= n are not keys.
			for _, bad := range [][]byte{make([]byte, len(raw)), bytes.Repeat([]byte{0xff}, len(raw))} {
				if _, err := s.ParseSigningKey(bad); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("ParseSigningKey(%x...): %v, want ErrInvalidKey", bad[:4], err)
				}
			}
		}

		// A zeroed key no longer signs, and a nil key never did.
		key.Zero()
		if _, err := s.Sign(key, content); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Sign after Zero: %v, want ErrInvalidKey", err)
		}
		if key.Bytes() != nil {
			t.Error("Bytes after Zero is not nil")
		}
		if _, err := s.Sign(nil, content); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Sign(nil key): %v, want ErrInvalidKey", err)
		}
	})
}

func TestSigningKeyOtherScheme(t *testing.T) {
	suites := allSuites(t)
	for _, signer := range suites {
		key, err := signer.GenerateSigningKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range suites {
			_, err := s.Sign(key, []byte("m"))
			same := s.sig == signer.sig
			if same && err != nil {
				t.Errorf("suite %d key on suite %d (same scheme): %v", signer.ID(), s.ID(), err)
			}
			if !same && !errors.Is(err, ErrInvalidKey) {
				t.Errorf("suite %d key on suite %d: %v, want ErrInvalidKey", signer.ID(), s.ID(), err)
			}
		}
	}
}

// TestDeterministicRandom checks that the caller's random source is the
// only one used: the same stream gives the same keys and ciphertexts.
func TestDeterministicRandom(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *Suite) {
		run := func() (sigPub, hpkePriv, hpkePub, kemOutput, ct, extOut, initSecret []byte) {
			r := &detReader{seed: "deterministic"}
			sk, err := s.GenerateSigningKey(r)
			if err != nil {
				t.Fatal(err)
			}
			hpkePriv, hpkePub, err = s.GenerateHPKEKey(r)
			if err != nil {
				t.Fatal(err)
			}
			kemOutput, ct, err = s.EncryptWithLabel(hpkePub, "L", []byte("ctx"), []byte("pt"), r)
			if err != nil {
				t.Fatal(err)
			}
			extOut, initSecret, err = s.ExternalInitSender(hpkePub, r)
			if err != nil {
				t.Fatal(err)
			}
			return sk.PublicKey(), hpkePriv, hpkePub, kemOutput, ct, extOut, initSecret
		}
		a1, a2, a3, a4, a5, a6, a7 := run()
		b1, b2, b3, b4, b5, b6, b7 := run()
		for i, pair := range [][2][]byte{{a1, b1}, {a2, b2}, {a3, b3}, {a4, b4}, {a5, b5}, {a6, b6}, {a7, b7}} {
			if !bytes.Equal(pair[0], pair[1]) {
				t.Errorf("output %d differs between runs with the same random stream", i)
			}
		}
		if pub, err := s.HPKEPublicKey(a2); err != nil || !bytes.Equal(pub, a3) {
			t.Errorf("HPKEPublicKey(generated priv) = %x, %v; want %x", pub, err, a3)
		}
		if len(a2) != s.HPKEPrivateKeySize() || len(a3) != s.HPKEPublicKeySize() {
			t.Errorf("generated HPKE key of %d/%d bytes, want %d/%d", len(a2), len(a3), s.HPKEPrivateKeySize(), s.HPKEPublicKeySize())
		}
		if got, err := s.ExternalInitReceiver(a2, a6); err != nil || !bytes.Equal(got, a7) {
			t.Errorf("ExternalInitReceiver = %x, %v; want %x", got, err, a7)
		}

		// A failing random source is an error, not a panic or a weak key.
		failing := io.LimitReader(rand.Reader, 0)
		if _, err := s.GenerateSigningKey(failing); err == nil {
			t.Error("GenerateSigningKey with an empty reader succeeded")
		}
		if _, _, err := s.GenerateHPKEKey(failing); err == nil {
			t.Error("GenerateHPKEKey with an empty reader succeeded")
		}
		if _, _, err := s.EncryptWithLabel(a3, "L", nil, nil, failing); err == nil {
			t.Error("EncryptWithLabel with an empty reader succeeded")
		}
	})
}

func TestDeriveKeyPairAnyLength(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *Suite) {
		seen := map[string]bool{}
		for _, n := range []int{0, 1, 32, 48, 56, 64, 66, 200} {
			ikm := bytes.Repeat([]byte{0x5a}, n)
			priv, pub, err := s.DeriveKeyPair(ikm)
			if err != nil {
				t.Fatalf("DeriveKeyPair(%d bytes): %v", n, err)
			}
			priv2, pub2, err := s.DeriveKeyPair(ikm)
			if err != nil || !bytes.Equal(priv, priv2) || !bytes.Equal(pub, pub2) {
				t.Fatalf("DeriveKeyPair(%d bytes) is not deterministic", n)
			}
			if seen[string(pub)] {
				t.Errorf("DeriveKeyPair(%d bytes) repeats an earlier key", n)
			}
			seen[string(pub)] = true
			if err := s.ValidateHPKEPublicKey(pub); err != nil {
				t.Errorf("derived public key invalid: %v", err)
			}
		}
	})
}

func TestHPKENegative(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *Suite) {
		priv, pub, err := s.GenerateHPKEKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		otherPriv, _, err := s.GenerateHPKEKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		label, context, plaintext := "UpdatePathNode", []byte("group context"), []byte("path secret of 32 bytes.........")
		kemOutput, ct, err := s.EncryptWithLabel(pub, label, context, plaintext, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := s.DecryptWithLabel(priv, label, context, kemOutput, ct); err != nil || !bytes.Equal(pt, plaintext) {
			t.Fatalf("round trip: %x, %v", pt, err)
		}
		open := func(priv []byte, label string, context, kemOutput, ct []byte) error {
			pt, err := s.DecryptWithLabel(priv, label, context, kemOutput, ct)
			if err == nil {
				t.Errorf("decryption succeeded with plaintext %x", pt)
			}
			return err
		}

		// Tampered ciphertext: bit flips, truncations, extension.
		for _, i := range flipPositions(len(ct)) {
			wantErr(t, fmt.Sprintf("ciphertext bit %d", i), open(priv, label, context, kemOutput, flipBit(ct, i)), ErrDecrypt)
		}
		for _, n := range []int{0, 1, 15, 16, len(ct) - 1} {
			wantErr(t, fmt.Sprintf("ciphertext truncated to %d", n), open(priv, label, context, kemOutput, ct[:n]), ErrDecrypt)
		}
		wantErr(t, "ciphertext extended", open(priv, label, context, kemOutput, append(bytes.Clone(ct), 0)), ErrDecrypt)

		// Tampered kem_output: bit flips (a NIST point usually leaves
		// the curve, an X25519/X448 one becomes another key), truncations,
		// extension, empty.
		for _, i := range flipPositions(len(kemOutput)) {
			wantErr(t, fmt.Sprintf("kem_output bit %d", i), open(priv, label, context, flipBit(kemOutput, i), ct), ErrDecrypt)
		}
		for _, bad := range [][]byte{nil, kemOutput[:1], kemOutput[:len(kemOutput)-1], append(bytes.Clone(kemOutput), 0), make([]byte, 1<<16)} {
			wantErr(t, fmt.Sprintf("kem_output of %d bytes", len(bad)), open(priv, label, context, bad, ct), ErrDecrypt)
		}
		// An all-zero kem_output: the point at infinity's neighbour for NIST
		// (not a valid encoding), a low-order point for X25519/X448.
		wantErr(t, "all-zero kem_output", open(priv, label, context, make([]byte, len(kemOutput)), ct), ErrDecrypt)

		// Wrong label, context, or private key.
		wantErr(t, "wrong label", open(priv, "UpdatePathNodE", context, kemOutput, ct), ErrDecrypt)
		wantErr(t, "wrong context", open(priv, label, []byte("other context"), kemOutput, ct), ErrDecrypt)
		wantErr(t, "wrong private key", open(otherPriv, label, context, kemOutput, ct), ErrDecrypt)

		// A malformed private key is the caller's fault: ErrInvalidKey, not ErrDecrypt.
		for _, bad := range [][]byte{nil, priv[:len(priv)-1], append(bytes.Clone(priv), 0)} {
			err := open(bad, label, context, kemOutput, ct)
			wantErr(t, fmt.Sprintf("private key of %d bytes", len(bad)), err, ErrInvalidKey)
			if errors.Is(err, ErrDecrypt) {
				t.Errorf("private key of %d bytes: %v also wraps ErrDecrypt", len(bad), err)
			}
		}
		if _, err := s.HPKEPublicKey(priv[:1]); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("HPKEPublicKey(1 byte): %v, want ErrInvalidKey", err)
		}

		// Malformed public keys for encryption and validation.
		for _, bad := range [][]byte{nil, pub[:1], pub[:len(pub)-1], append(bytes.Clone(pub), 0)} {
			if _, _, err := s.EncryptWithLabel(bad, label, context, plaintext, nil); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("EncryptWithLabel to %d-byte key: %v, want ErrInvalidKey", len(bad), err)
			}
			if err := s.ValidateHPKEPublicKey(bad); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("ValidateHPKEPublicKey(%d bytes): %v, want ErrInvalidKey", len(bad), err)
			}
			if _, _, err := s.ExternalInitSender(bad, nil); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("ExternalInitSender to %d-byte key: %v, want ErrInvalidKey", len(bad), err)
			}
		}
		zeroPub := make([]byte, len(pub))
		if _, _, err := s.EncryptWithLabel(zeroPub, label, context, plaintext, nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("EncryptWithLabel to all-zero key: %v, want ErrInvalidKey", err)
		}
		if s.kem.rejectionSampling {
			if err := s.ValidateHPKEPublicKey(zeroPub); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("ValidateHPKEPublicKey(all zero): %v, want ErrInvalidKey", err)
			}
			offCurve := bytes.Clone(pub)
			offCurve[len(offCurve)-1] ^= 1
			if err := s.ValidateHPKEPublicKey(offCurve); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("ValidateHPKEPublicKey(off curve): %v, want ErrInvalidKey", err)
			}
			// Scalars 0 and >= n are not private keys.
			for _, bad := range [][]byte{make([]byte, len(priv)), bytes.Repeat([]byte{0xff}, len(priv))} {
				if _, err := s.HPKEPublicKey(bad); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("HPKEPublicKey(%x...): %v, want ErrInvalidKey", bad[:2], err)
				}
				wantErr(t, "out-of-range private key", open(bad, label, context, kemOutput, ct), ErrInvalidKey)
			}
		}

		// External init: a different private key gives a different secret;
		// a malformed kem_output is rejected.
		extOut, initSecret, err := s.ExternalInitSender(pub, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.ExternalInitReceiver(otherPriv, extOut); err != nil || bytes.Equal(got, initSecret) {
			t.Errorf("ExternalInitReceiver with the wrong key = %x, %v; want a different secret", got, err)
		}
		for _, bad := range [][]byte{nil, extOut[:len(extOut)-1], append(bytes.Clone(extOut), 0), make([]byte, len(extOut))} {
			if _, err := s.ExternalInitReceiver(priv, bad); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("ExternalInitReceiver(%d-byte kem_output): %v, want ErrInvalidKey", len(bad), err)
			}
		}
	})
}
