package dht

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/cryptobyte"
)

func newTestKey(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, id
}

func testBundle(id peer.ID, seq uint64, expires time.Time, n int) *Bundle {
	b := &Bundle{PeerID: id, Sequence: seq, Expires: expires.Truncate(time.Second)}
	for i := range n {
		b.KeyPackages = append(b.KeyPackages, KeyPackage{Data: makeTestKP(id, expires.Add(time.Hour)), LastResort: i == n-1})
	}
	return b
}

func testBundleValidator(now time.Time) bundleValidator {
	return bundleValidator{verifier: testKPVerifier{}, now: func() time.Time { return now }}
}

func TestBundleRoundTrip(t *testing.T) {
	priv, id := newTestKey(t)
	now := time.Now()
	b := testBundle(id, 42, now.Add(time.Hour), 3)
	enc, err := signBundle(b, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := testBundleValidator(now).validate(keyPackageKey(id), enc)
	if err != nil {
		t.Fatalf("valid bundle refused: %v", err)
	}
	if got.PeerID != id || got.Sequence != 42 || !got.Expires.Equal(b.Expires) || len(got.KeyPackages) != 3 {
		t.Fatalf("decoded %+v, want %+v", got.Bundle, b)
	}
	for i := range b.KeyPackages {
		if !bytes.Equal(got.KeyPackages[i].Data, b.KeyPackages[i].Data) || got.KeyPackages[i].LastResort != b.KeyPackages[i].LastResort {
			t.Fatalf("entry %d differs", i)
		}
	}
	if !got.LastResort().LastResort || len(got.OneTime()) != 2 {
		t.Fatal("LastResort/OneTime split wrong")
	}
}

// resign re-encodes a bundle body produced by edit and signs it with priv,
// bypassing signBundle's shape checks, to produce records a malicious
// publisher could make.
func resign(t *testing.T, priv crypto.PrivKey, body func(b *cryptobyte.Builder)) []byte {
	t.Helper()
	var bb cryptobyte.Builder
	body(&bb)
	bodyBytes := bb.BytesOrPanic()
	sig, err := priv.Sign(bundleSignedContent(bodyBytes))
	if err != nil {
		t.Fatal(err)
	}
	var out cryptobyte.Builder
	out.AddBytes(bodyBytes)
	out.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(sig) })
	return out.BytesOrPanic()
}

func TestBundleValidatorRefuses(t *testing.T) {
	priv, id := newTestKey(t)
	otherPriv, otherID := newTestKey(t)
	now := time.Now()
	v := testBundleValidator(now)
	key := keyPackageKey(id)
	good := testBundle(id, 1, now.Add(time.Hour), 2)
	goodEnc, err := signBundle(good, priv)
	if err != nil {
		t.Fatal(err)
	}

	mustSign := func(b *Bundle, k crypto.PrivKey) []byte {
		t.Helper()
		enc, err := signBundle(b, k)
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	withKPs := func(kps ...KeyPackage) *Bundle {
		return &Bundle{PeerID: id, Sequence: 2, Expires: now.Add(time.Hour).Truncate(time.Second), KeyPackages: kps}
	}
	validKP := makeTestKP(id, now.Add(2*time.Hour))
	lastResort := KeyPackage{Data: makeTestKP(id, now.Add(2*time.Hour)), LastResort: true}

	cases := []struct {
		name    string
		key     string
		value   []byte
		expired bool
	}{
		{"wrong signer", key, mustSign(withKPs(lastResort), otherPriv), false},
		{"record for another peer under this key", key, mustSign(testBundle(otherID, 1, now.Add(time.Hour), 1), otherPriv), false},
		{"tampered KeyPackage", key, mustSign(withKPs(KeyPackage{Data: tamper(validKP)}, lastResort), priv), false},
		{"KeyPackage of another identity", key, mustSign(withKPs(KeyPackage{Data: makeTestKP(otherID, now.Add(2*time.Hour))}, lastResort), priv), false},
		{"expired KeyPackage", key, mustSign(withKPs(KeyPackage{Data: makeTestKP(id, now.Add(-time.Minute))}, lastResort), priv), false},
		{"expired bundle", key, mustSign(testBundle(id, 1, now.Add(-time.Second), 1), priv), true},
		{"bundle too far in the future", key, mustSign(testBundle(id, 1, now.Add(MaxBundleLifetime+time.Hour), 1), priv), false},
		{"flipped signature", key, append(goodEnc[:len(goodEnc)-1:len(goodEnc)-1], goodEnc[len(goodEnc)-1]^1), false},
		{"trailing byte", key, append(goodEnc[:len(goodEnc):len(goodEnc)], 0), false},
		{"truncated", key, goodEnc[:len(goodEnc)-10], false},
		{"empty", key, nil, false},
		{"wrong namespace", "/mcwm/" + string(id), goodEnc, false},
		{"key not a peer ID", "/mckp/xyz", goodEnc, false},
		{"version 2", key, resign(t, priv, func(b *cryptobyte.Builder) {
			b.AddUint8(2)
			b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(id)) })
			b.AddUint64(1)
			b.AddUint64(uint64(now.Add(time.Hour).Unix()))
			b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) {
				c.AddUint8(1)
				c.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(validKP) })
			})
		}), false},
	}
	// Shape violations a malicious publisher could sign.
	shape := func(name string, entries func(c *cryptobyte.Builder)) {
		cases = append(cases, struct {
			name    string
			key     string
			value   []byte
			expired bool
		}{name, key, resign(t, priv, func(b *cryptobyte.Builder) {
			b.AddUint8(bundleVersion)
			b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(id)) })
			b.AddUint64(1)
			b.AddUint64(uint64(now.Add(time.Hour).Unix()))
			b.AddUint24LengthPrefixed(entries)
		}), false})
	}
	entry := func(c *cryptobyte.Builder, flag uint8, kp []byte) {
		c.AddUint8(flag)
		c.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(kp) })
	}
	kp2 := makeTestKP(id, now.Add(2*time.Hour))
	shape("no last resort", func(c *cryptobyte.Builder) { entry(c, 0, validKP) })
	shape("two last resort", func(c *cryptobyte.Builder) { entry(c, 1, validKP); entry(c, 1, kp2) })
	shape("flag 2", func(c *cryptobyte.Builder) { entry(c, 2, validKP) })
	shape("duplicate KeyPackage", func(c *cryptobyte.Builder) { entry(c, 0, validKP); entry(c, 1, validKP) })
	shape("no entries", func(c *cryptobyte.Builder) {})
	shape("too many entries", func(c *cryptobyte.Builder) {
		for i := range MaxBundleKeyPackages + 1 {
			entry(c, uint8(i/MaxBundleKeyPackages), makeTestKP(id, now.Add(2*time.Hour)))
		}
	})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Validate(tc.key, tc.value)
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("err = %v, want ErrInvalidRecord", err)
			}
			if errors.Is(err, ErrExpired) != tc.expired {
				t.Fatalf("errors.Is(err, ErrExpired) = %v, want %v (%v)", !tc.expired, tc.expired, err)
			}
		})
	}
	if err := v.Validate(key, goodEnc); err != nil {
		t.Fatalf("control: good bundle refused: %v", err)
	}
}

func TestSignBundleRefusesBadShape(t *testing.T) {
	priv, id := newTestKey(t)
	now := time.Now()
	kp := makeTestKP(id, now.Add(time.Hour))
	for name, kps := range map[string][]KeyPackage{
		"none":            nil,
		"no last resort":  {{Data: kp}},
		"two last resort": {{Data: kp, LastResort: true}, {Data: makeTestKP(id, now.Add(time.Hour)), LastResort: true}},
		"duplicate":       {{Data: kp}, {Data: kp, LastResort: true}},
		"empty entry":     {{Data: nil, LastResort: true}},
	} {
		_, err := signBundle(&Bundle{PeerID: id, Sequence: 1, Expires: now.Add(time.Hour), KeyPackages: kps}, priv)
		if !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: err = %v, want ErrInvalidRecord", name, err)
		}
	}
}

func TestBundleSelect(t *testing.T) {
	priv, id := newTestKey(t)
	now := time.Now()
	v := testBundleValidator(now)
	key := keyPackageKey(id)
	var encs [][]byte
	for _, seq := range []uint64{5, 9, 7} {
		enc, err := signBundle(testBundle(id, seq, now.Add(time.Hour), 1), priv)
		if err != nil {
			t.Fatal(err)
		}
		encs = append(encs, enc)
	}
	i, err := v.Select(key, encs)
	if err != nil || i != 1 {
		t.Fatalf("Select = %d, %v; want 1 (sequence 9)", i, err)
	}
	// Ties are broken by content, independent of order.
	a, _ := signBundle(testBundle(id, 3, now.Add(time.Hour), 1), priv)
	b, _ := signBundle(testBundle(id, 3, now.Add(time.Hour), 1), priv)
	i1, err1 := v.Select(key, [][]byte{a, b})
	i2, err2 := v.Select(key, [][]byte{b, a})
	if err1 != nil || err2 != nil || !bytes.Equal([][]byte{a, b}[i1], [][]byte{b, a}[i2]) {
		t.Fatal("tie-break depends on order")
	}
	if want := max(string(a), string(b)); string([][]byte{a, b}[i1]) != want {
		t.Fatal("tie-break did not pick the greater encoding")
	}
	// Undecodable values are never selected.
	i, err = v.Select(key, [][]byte{[]byte("junk"), encs[0]})
	if err != nil || i != 1 {
		t.Fatalf("Select with junk = %d, %v; want 1", i, err)
	}
	if _, err := v.Select(key, [][]byte{[]byte("junk")}); err == nil {
		t.Fatal("Select chose from only junk")
	}
}

func TestMailboxValidator(t *testing.T) {
	now := time.Now()
	v := mailboxValidator{verifier: testWelcomeVerifier{}, now: func() time.Time { return now }}
	ref, other := randomRef(), randomRef()
	welcome := makeTestWelcome(other, ref)
	enc := func(created, expires time.Time, w []byte) []byte {
		t.Helper()
		e, err := encodeMailbox(created, expires, w)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	good := enc(now, now.Add(time.Hour), welcome)
	w, err := v.validate(mailboxKey(ref), good)
	if err != nil {
		t.Fatalf("valid record refused: %v", err)
	}
	if !bytes.Equal(w.Ref, ref) || !bytes.Equal(w.Data, welcome) || w.Created.UnixMicro() != now.UnixMicro() {
		t.Fatalf("decoded %+v", w)
	}
	if err := v.Validate(mailboxKey(other), good); err != nil {
		t.Fatalf("second recipient refused: %v", err)
	}

	cases := map[string]struct {
		key     string
		value   []byte
		expired bool
	}{
		"not a recipient":     {mailboxKey(randomRef()), good, false},
		"expired":             {mailboxKey(ref), enc(now.Add(-2*time.Hour), now.Add(-time.Hour), welcome), true},
		"created in future":   {mailboxKey(ref), enc(now.Add(time.Hour), now.Add(2*time.Hour), welcome), false},
		"lives too long":      {mailboxKey(ref), enc(now, now.Add(MaxMailboxLifetime+time.Hour), welcome), false},
		"not a Welcome":       {mailboxKey(ref), enc(now, now.Add(time.Hour), []byte("TWL1garbage")), false},
		"trailing byte":       {mailboxKey(ref), append(good[:len(good):len(good)], 0), false},
		"truncated":           {mailboxKey(ref), good[:len(good)-1], false},
		"wrong namespace":     {"/mckp/" + string(ref), good, false},
		"ref too long":        {mailboxKey(make([]byte, MaxRefSize+1)), good, false},
		"version 2":           {mailboxKey(ref), append([]byte{2}, good[1:]...), false},
		"empty":               {mailboxKey(ref), nil, false},
		"empty key remainder": {"/mcwm/", good, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := v.Validate(tc.key, tc.value)
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("err = %v, want ErrInvalidRecord", err)
			}
			if errors.Is(err, ErrExpired) != tc.expired {
				t.Fatalf("expired = %v, want %v (%v)", !tc.expired, tc.expired, err)
			}
		})
	}

	older := enc(now.Add(-time.Minute), now.Add(time.Hour), makeTestWelcome(ref))
	newer := enc(now, now.Add(time.Hour), makeTestWelcome(ref))
	if i, err := v.Select(mailboxKey(ref), [][]byte{older, newer}); err != nil || i != 1 {
		t.Fatalf("Select = %d, %v; want newest", i, err)
	}
	if i, err := v.Select(mailboxKey(ref), [][]byte{newer, older}); err != nil || i != 0 {
		t.Fatalf("Select = %d, %v; want newest", i, err)
	}
}
