package dht

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Record namespaces of the meshchat DHT.
const (
	keyPackageNamespace = "mckp"
	mailboxNamespace    = "mcwm"
)

// KeyPackageVerifier checks one KeyPackage as RFC 9420 §10.1 requires of a
// KeyPackage received from anyone: it decodes the MLSMessage, checks the
// version and cipher suite, the leaf node's signature and the KeyPackage
// signature, and that now lies within the leaf node's lifetime. It returns
// the identity of the KeyPackage's credential (for a basic credential, the
// identity field, RFC 9420 §5.3.1). The mls package provides the production
// implementation.
type KeyPackageVerifier interface {
	VerifyKeyPackage(raw []byte, now time.Time) (identity []byte, err error)
}

// WelcomeVerifier checks that raw is an MLSMessage carrying a Welcome (RFC
// 9420 §12.4.3.1) whose public parts decode, and returns the KeyPackageRefs
// of its recipients (the new_member field of each EncryptedGroupSecrets).
// Storers cannot decrypt a Welcome, so this is all they can check. The mls
// package provides the production implementation.
type WelcomeVerifier interface {
	VerifyWelcome(raw []byte) (recipients [][]byte, err error)
}

// bundleValidator is the record.Validator of the "mckp" namespace.
type bundleValidator struct {
	verifier KeyPackageVerifier
	now      func() time.Time
}

var _ record.Validator = bundleValidator{}

// Validate implements record.Validator: the bundle under key must be signed by
// the key's peer, unexpired, and carry only KeyPackages that verify and name
// that peer.
func (v bundleValidator) Validate(key string, value []byte) error {
	_, err := v.validate(key, value)
	return err
}

func (v bundleValidator) validate(key string, value []byte) (*parsedBundle, error) {
	id, err := keyPeerID(key)
	if err != nil {
		return nil, err
	}
	b, err := parseBundle(value)
	if err != nil {
		return nil, err
	}
	if b.PeerID != id {
		return nil, fmt.Errorf("bundle for %s stored under the key of %s: %w", b.PeerID, id, ErrInvalidRecord)
	}
	if err := b.verifySignature(); err != nil {
		return nil, err
	}
	now := v.now()
	if !now.Before(b.Expires) {
		return nil, fmt.Errorf("bundle of %s expired at %v: %w", id, b.Expires, errors.Join(ErrExpired, ErrInvalidRecord))
	}
	if b.Expires.After(now.Add(MaxBundleLifetime + MaxClockSkew)) {
		return nil, fmt.Errorf("bundle of %s claims validity until %v, beyond %v: %w", id, b.Expires, MaxBundleLifetime, ErrInvalidRecord)
	}
	for i, kp := range b.KeyPackages {
		identity, err := v.verifier.VerifyKeyPackage(kp.Data, now)
		if err != nil {
			return nil, fmt.Errorf("bundle of %s: KeyPackage %d: %v: %w", id, i, err, ErrInvalidRecord)
		}
		if !bytes.Equal(identity, []byte(id)) {
			return nil, fmt.Errorf("bundle of %s: KeyPackage %d names another identity: %w", id, i, ErrInvalidRecord)
		}
	}
	return b, nil
}

// Select implements record.Validator: the highest sequence wins; equal
// sequences are broken by the greater encoding so that every node agrees.
// Values that do not decode are never selected.
func (v bundleValidator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestSeq uint64
	for i, val := range values {
		b, err := parseBundle(val)
		if err != nil {
			continue
		}
		if best < 0 || b.Sequence > bestSeq ||
			(b.Sequence == bestSeq && bytes.Compare(val, values[best]) > 0) {
			best, bestSeq = i, b.Sequence
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("select bundle: no decodable value: %w", ErrInvalidRecord)
	}
	return best, nil
}

// mailboxValidator is the record.Validator of the "mcwm" namespace.
type mailboxValidator struct {
	verifier WelcomeVerifier
	now      func() time.Time
}

var _ record.Validator = mailboxValidator{}

// Validate implements record.Validator: the record must be current and carry
// a Welcome that the key's KeyPackageRef is a recipient of.
func (v mailboxValidator) Validate(key string, value []byte) error {
	_, err := v.validate(key, value)
	return err
}

func (v mailboxValidator) validate(key string, value []byte) (*Welcome, error) {
	ref, err := keyRef(key)
	if err != nil {
		return nil, err
	}
	w, err := parseMailbox(value)
	if err != nil {
		return nil, err
	}
	now := v.now()
	if w.Created.After(now.Add(MaxClockSkew)) {
		return nil, fmt.Errorf("mailbox record created in the future (%v): %w", w.Created, ErrInvalidRecord)
	}
	if !now.Before(w.Expires) {
		return nil, fmt.Errorf("mailbox record expired at %v: %w", w.Expires, errors.Join(ErrExpired, ErrInvalidRecord))
	}
	if w.Expires.After(w.Created.Add(MaxMailboxLifetime)) {
		return nil, fmt.Errorf("mailbox record lives past %v: %w", MaxMailboxLifetime, ErrInvalidRecord)
	}
	recipients, err := v.verifier.VerifyWelcome(w.Data)
	if err != nil {
		return nil, fmt.Errorf("mailbox record: %v: %w", err, ErrInvalidRecord)
	}
	found := false
	for _, r := range recipients {
		if bytes.Equal(r, ref) {
			found = true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("mailbox record: Welcome is not for KeyPackageRef %x: %w", ref, ErrInvalidRecord)
	}
	w.Ref = ref
	return w, nil
}

// Select implements record.Validator: the newest record wins; ties are broken
// by the greater encoding.
func (v mailboxValidator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestCreated time.Time
	for i, val := range values {
		w, err := parseMailbox(val)
		if err != nil {
			continue
		}
		if best < 0 || w.Created.After(bestCreated) ||
			(w.Created.Equal(bestCreated) && bytes.Compare(val, values[best]) > 0) {
			best, bestCreated = i, w.Created
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("select mailbox record: no decodable value: %w", ErrInvalidRecord)
	}
	return best, nil
}

// keyPeerID extracts the peer ID from a "/mckp/" key.
func keyPeerID(key string) (peer.ID, error) {
	ns, rest, err := record.SplitKey(key)
	if err != nil || ns != keyPackageNamespace {
		return "", fmt.Errorf("key is not in the %q namespace: %w", keyPackageNamespace, ErrInvalidRecord)
	}
	id, err := peer.IDFromBytes([]byte(rest))
	if err != nil {
		return "", fmt.Errorf("key does not hold a peer ID: %v: %w", err, ErrInvalidRecord)
	}
	return id, nil
}

// keyRef extracts the KeyPackageRef from a "/mcwm/" key.
func keyRef(key string) ([]byte, error) {
	ns, rest, err := record.SplitKey(key)
	if err != nil || ns != mailboxNamespace {
		return nil, fmt.Errorf("key is not in the %q namespace: %w", mailboxNamespace, ErrInvalidRecord)
	}
	if len(rest) == 0 || len(rest) > MaxRefSize {
		return nil, fmt.Errorf("KeyPackageRef of %d bytes, want 1..%d: %w", len(rest), MaxRefSize, ErrInvalidRecord)
	}
	return []byte(rest), nil
}

// newValidator returns the namespaced validator of the meshchat DHT: our two
// namespaces and nothing else.
func newValidator(kp KeyPackageVerifier, wv WelcomeVerifier, now func() time.Time) record.NamespacedValidator {
	return record.NamespacedValidator{
		keyPackageNamespace: bundleValidator{verifier: kp, now: now},
		mailboxNamespace:    mailboxValidator{verifier: wv, now: now},
	}
}
