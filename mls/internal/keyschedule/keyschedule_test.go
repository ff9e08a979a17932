package keyschedule

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
)

func mustSuite(t testing.TB, id ciphersuite.ID) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func filled(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// TestSecretLengthsChecked: every input secret must be KDF.Nh bytes; nil
// stands for the all-zero commit_secret / psk_secret and nothing else does.
func TestSecretLengthsChecked(t *testing.T) {
	s := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	nh := s.HashSize()
	gc := []byte("group context")
	good := filled(nh, 7)
	for name, f := range map[string]func() error{
		"short init_secret":            func() error { _, err := Advance(s, good[:nh-1], good, good, gc); return err },
		"nil init_secret":              func() error { _, err := Advance(s, nil, good, good, gc); return err },
		"long commit_secret":           func() error { _, err := Advance(s, good, filled(nh+1, 1), good, gc); return err },
		"empty commit_secret":          func() error { _, err := Advance(s, good, []byte{}, good, gc); return err },
		"short psk_secret":             func() error { _, err := Advance(s, good, good, good[:1], gc); return err },
		"short joiner_secret":          func() error { _, err := Join(s, good[:nh-1], nil, gc); return err },
		"long psk on join":             func() error { _, err := Join(s, good, filled(2*nh, 1), gc); return err },
		"short welcome":                func() error { _, _, err := WelcomeKeyNonce(s, good[:4]); return err },
		"short joiner, welcome_secret": func() error { _, err := WelcomeSecret(s, good[:4], nil); return err },
		"short psk, welcome_secret":    func() error { _, err := WelcomeSecret(s, good, good[:4]); return err },
	} {
		if err := f(); !errors.Is(err, ErrSecretLength) {
			t.Errorf("%s: err = %v, want ErrSecretLength", name, err)
		}
	}

	zeros := make([]byte, nh)
	a, err := Advance(s, good, nil, nil, gc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Advance(s, good, zeros, zeros, gc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.EpochAuthenticator, b.EpochAuthenticator) || !bytes.Equal(a.InitSecret, b.InitSecret) {
		t.Error("nil commit/psk secrets differ from the all-zero ones")
	}
}

// TestInputsBindSecrets: changing any input of the schedule changes every
// derived secret, the member and joiner paths agree, and the joiner secret
// passed to Join is copied.
func TestInputsBindSecrets(t *testing.T) {
	s := mustSuite(t, ciphersuite.P256_AES128GCM_SHA256_P256)
	nh := s.HashSize()
	base, err := Advance(s, filled(nh, 1), filled(nh, 2), filled(nh, 3), []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	joinerCopy := append([]byte(nil), base.JoinerSecret...)
	joined, err := Join(s, joinerCopy, filled(nh, 3), []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(joined.EncryptionSecret, base.EncryptionSecret) || !bytes.Equal(joined.WelcomeSecret, base.WelcomeSecret) {
		t.Error("joiner path disagrees with member path")
	}
	joined.Retire()
	if !bytes.Equal(joinerCopy, base.JoinerSecret) {
		t.Error("Join kept and zeroed the caller's joiner_secret")
	}
	variants := map[string]func() (*EpochSecrets, error){
		"init": func() (*EpochSecrets, error) {
			return Advance(s, filled(nh, 9), filled(nh, 2), filled(nh, 3), []byte("gc"))
		},
		"commit": func() (*EpochSecrets, error) {
			return Advance(s, filled(nh, 1), filled(nh, 9), filled(nh, 3), []byte("gc"))
		},
		"psk": func() (*EpochSecrets, error) {
			return Advance(s, filled(nh, 1), filled(nh, 2), filled(nh, 9), []byte("gc"))
		},
		"context": func() (*EpochSecrets, error) {
			return Advance(s, filled(nh, 1), filled(nh, 2), filled(nh, 3), []byte("gC"))
		},
	}
	for name, f := range variants {
		e, err := f()
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range e.epochLabels() {
			if bytes.Equal(*d.dst, *base.epochLabels()[i].dst) {
				t.Errorf("changing %s leaves the %q secret unchanged", name, d.label)
			}
		}
		if name != "psk" && bytes.Equal(e.JoinerSecret, base.JoinerSecret) {
			t.Errorf("changing %s leaves joiner_secret unchanged", name)
		}
	}
}

// TestRetire: retiring zeroes the memory the fields pointed to and makes
// later use fail; ForgetJoinerSecrets drops only the joiner secrets.
func TestRetire(t *testing.T) {
	s := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	nh := s.HashSize()
	e, err := Advance(s, filled(nh, 1), filled(nh, 2), nil, []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	cth := []byte("confirmed transcript hash")
	tag, err := e.ConfirmationTag(cth)
	if err != nil || !e.VerifyConfirmationTag(cth, tag) {
		t.Fatalf("fresh epoch: tag %x, %v", tag, err)
	}
	joiner, welcome := e.JoinerSecret, e.WelcomeSecret
	e.ForgetJoinerSecrets()
	if e.JoinerSecret != nil || e.WelcomeSecret != nil || !allZero(joiner) || !allZero(welcome) {
		t.Error("ForgetJoinerSecrets left joiner or welcome secret")
	}
	if e.Retired() {
		t.Fatal("ForgetJoinerSecrets retired the epoch")
	}
	var held [][]byte
	for _, d := range e.epochLabels() {
		held = append(held, *d.dst)
	}
	e.Retire()
	for i, h := range held {
		if !allZero(h) {
			t.Errorf("secret %q not zeroed", e.epochLabels()[i].label)
		}
	}
	if !e.Retired() {
		t.Error("Retired() false after Retire")
	}
	if _, err := e.Exporter("x", nil, 16); !errors.Is(err, ErrRetired) {
		t.Errorf("Exporter after Retire: %v", err)
	}
	if _, err := e.ConfirmationTag(cth); !errors.Is(err, ErrRetired) {
		t.Errorf("ConfirmationTag after Retire: %v", err)
	}
	if e.VerifyConfirmationTag(cth, tag) {
		t.Error("retired epoch verifies a tag")
	}
	if _, _, err := e.ExternalKeyPair(); !errors.Is(err, ErrRetired) {
		t.Errorf("ExternalKeyPair after Retire: %v", err)
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return len(b) > 0
}

// TestExporterArguments: the label, context and length all change the
// output, and a length ExpandWithLabel cannot encode is refused.
func TestExporterArguments(t *testing.T) {
	s := mustSuite(t, ciphersuite.X25519_CHACHA20POLY1305_SHA256_Ed25519)
	e, err := Advance(s, filled(32, 1), nil, nil, []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := e.Exporter("label", []byte("ctx"), 32)
	other, _ := e.Exporter("label2", []byte("ctx"), 32)
	ctx, _ := e.Exporter("label", []byte("ctx2"), 32)
	short, _ := e.Exporter("label", []byte("ctx"), 16)
	if bytes.Equal(base, other) || bytes.Equal(base, ctx) || bytes.Equal(base, short) || len(short) != 16 {
		t.Error("exporter output does not depend on its arguments")
	}
	if _, err := e.Exporter("label", nil, 1<<16); err == nil {
		t.Error("Exporter accepted a length of 2^16")
	}
	if _, err := e.Exporter("label", nil, -1); err == nil {
		t.Error("Exporter accepted a negative length")
	}
}

// TestPSKSecretProperties: no PSKs give KDF.Nh zero bytes for every suite,
// order matters, and more than 2^16-1 PSKs are refused.
func TestPSKSecretProperties(t *testing.T) {
	for _, id := range []ciphersuite.ID{1, 4, 7} {
		s := mustSuite(t, id)
		got, err := PSKSecret(s, nil)
		if err != nil || len(got) != s.HashSize() || !bytes.Equal(got, make([]byte, s.HashSize())) {
			t.Errorf("suite %d: no PSKs: %x, %v", id, got, err)
		}
	}
	s := mustSuite(t, 1)
	a := PSK{ID: []byte{1, 1, 'a', 0}, Secret: []byte("first")}
	b := PSK{ID: []byte{1, 1, 'b', 0}, Secret: []byte("second")}
	ab, _ := PSKSecret(s, []PSK{a, b})
	ba, _ := PSKSecret(s, []PSK{b, a})
	one, _ := PSKSecret(s, []PSK{a})
	if bytes.Equal(ab, ba) || bytes.Equal(ab, one) {
		t.Error("psk_secret ignores the order or number of PSKs")
	}
	if _, err := PSKSecret(s, make([]PSK, MaxPSKs+1)); !errors.Is(err, ErrTooManyPSKs) {
		t.Errorf("2^16 PSKs: %v, want ErrTooManyPSKs", err)
	}
}

// TestWelcomeKeyNonce checks the §12.4.3.1 derivation against a value
// computed independently (Python hmac/hashlib HKDF with the KDFLabel encoded
// by hand) for welcome_secret = 00 01 ... 1f under suite 1.
func TestWelcomeKeyNonce(t *testing.T) {
	s := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	ws := make([]byte, 32)
	for i := range ws {
		ws[i] = byte(i)
	}
	key, nonce, err := WelcomeKeyNonce(s, ws)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(key) != "c126d7de69a09208a3332a41b6a45fce" || hex.EncodeToString(nonce) != "8516a62bd4d298c4355a2689" {
		t.Errorf("welcome key %x nonce %x", key, nonce)
	}
	s7 := mustSuite(t, ciphersuite.P384_AES256GCM_SHA384_P384)
	key, nonce, err = WelcomeKeyNonce(s7, filled(48, 5))
	if err != nil || len(key) != 32 || len(nonce) != 12 {
		t.Errorf("suite 7: key %d bytes, nonce %d bytes, %v", len(key), len(nonce), err)
	}
}

// TestInterimTranscriptHashEncoding: the tag is hashed as a MAC<V>, so its
// length prefix is part of the input (2 bytes from 64 bytes on).
func TestInterimTranscriptHashEncoding(t *testing.T) {
	s := mustSuite(t, ciphersuite.X448_AES256GCM_SHA512_Ed448)
	cth := []byte("confirmed")
	tag := filled(64, 0xaa)
	got, err := InterimTranscriptHash(s, cth, tag)
	if err != nil {
		t.Fatal(err)
	}
	want := s.Hash(append(append(append([]byte(nil), cth...), 0x40, 0x40), tag...))
	if !bytes.Equal(got, want) {
		t.Errorf("interim hash %x, want %x", got, want)
	}
	if got, _ := InterimTranscriptHash(s, cth, nil); !bytes.Equal(got, s.Hash(append(append([]byte(nil), cth...), 0))) {
		t.Error("empty tag not hashed as a zero-length vector")
	}
}

// TestExternalKeyPairNeedsDeriveKeyPair documents the gap: until
// ciphersuite.Suite.DeriveKeyPair exists the external key pair is refused
// with ErrUnsupported rather than faked.
func TestExternalKeyPairNeedsDeriveKeyPair(t *testing.T) {
	if deriveKeyPair != nil {
		t.Skip("DeriveKeyPair is built in; key-schedule.json checks external_pub")
	}
	s := mustSuite(t, 1)
	e, err := Advance(s, filled(32, 1), nil, nil, []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.ExternalKeyPair(); !errors.Is(err, ciphersuite.ErrUnsupported) {
		t.Errorf("ExternalKeyPair without DeriveKeyPair: %v", err)
	}
}

func BenchmarkAdvance(b *testing.B) {
	s := mustSuite(b, 1)
	init, commit, gc := filled(32, 1), filled(32, 2), filled(120, 3)
	b.ReportAllocs()
	for b.Loop() {
		e, err := Advance(s, init, commit, nil, gc)
		if err != nil {
			b.Fatal(err)
		}
		e.Retire()
	}
}

func BenchmarkPSKSecret3(b *testing.B) {
	s := mustSuite(b, 1)
	psks := []PSK{{ID: filled(70, 1), Secret: filled(32, 2)}, {ID: filled(70, 3), Secret: filled(32, 4)}, {ID: filled(70, 5), Secret: filled(32, 6)}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PSKSecret(s, psks); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExporter(b *testing.B) {
	s := mustSuite(b, 1)
	e, _ := Advance(s, filled(32, 1), nil, nil, []byte("gc"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Exporter("meshchat test", []byte("context"), 32); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTranscriptUpdate(b *testing.B) {
	s := mustSuite(b, 1)
	interim, input, key := filled(32, 1), filled(400, 2), filled(32, 3)
	b.ReportAllocs()
	for b.Loop() {
		confirmed := ConfirmedTranscriptHash(s, interim, input)
		tag := ConfirmationTag(s, key, confirmed)
		if _, err := InterimTranscriptHash(s, confirmed, tag); err != nil {
			b.Fatal(err)
		}
	}
}
