// Package keyschedule derives the secrets of an MLS epoch (RFC 9420 §8):
// the step from one epoch to the next for members (init_secret,
// commit_secret, psk_secret and the new GroupContext) and the start of an
// epoch for a joiner of a Welcome (joiner_secret, psk_secret, GroupContext;
// §12.4.3.1), together with what those secrets feed: exporters (§8.5), the
// PSK chain (§8.4), transcript hashes and confirmation tags (§8.2, §6.1), the
// Welcome key and nonce (§12.4.3.1) and the external key pair (§8.3).
//
// The package works on bytes: structures such as the GroupContext and
// PreSharedKeyID arrive already encoded, so it does not depend on the wire
// structs. Secrets it creates are zeroed when they are consumed or retired
// (§9.2).
package keyschedule

import (
	"errors"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
)

// ErrRetired reports the use of an EpochSecrets after Retire.
var ErrRetired = errors.New("epoch secrets retired")

// ErrSecretLength reports an input secret whose length is not KDF.Nh of the
// suite (RFC 9420 §8: every key schedule secret is KDF.Nh bytes).
var ErrSecretLength = errors.New("secret has the wrong length")

// EpochSecrets holds every secret of one epoch (RFC 9420 §8, table
// "Epoch-Derived Secrets"), each KDF.Nh bytes. The epoch_secret itself is not
// kept: it is consumed by deriving these and zeroed at once.
//
// The fields alias memory that Retire zeroes; copy a value to keep it past the
// epoch. An EpochSecrets is not safe for concurrent mutation.
type EpochSecrets struct {
	suite *ciphersuite.Suite

	// JoinerSecret is joiner_secret, which a committer sends to new members
	// in GroupSecrets (§12.4.3.1). Zeroed by ForgetJoinerSecrets.
	JoinerSecret []byte
	// WelcomeSecret is welcome_secret, which keys the encrypted GroupInfo of
	// a Welcome (see WelcomeKeyNonce). Zeroed by ForgetJoinerSecrets.
	WelcomeSecret []byte

	// SenderDataSecret ("sender data") keys the sender data encryption of
	// PrivateMessage (§6.3.2).
	SenderDataSecret []byte
	// EncryptionSecret ("encryption") is the root of the secret tree (§9).
	EncryptionSecret []byte
	// ExporterSecret ("exporter") feeds MLS-Exporter (§8.5).
	ExporterSecret []byte
	// ExternalSecret ("external") seeds the external HPKE key pair (§8.3).
	ExternalSecret []byte
	// ConfirmationKey ("confirm") keys the confirmation tag (§6.1, §8.2).
	ConfirmationKey []byte
	// MembershipKey ("membership") keys the membership tag of a
	// PublicMessage (§6.2).
	MembershipKey []byte
	// ResumptionPSK ("resumption") is this epoch's resumption PSK (§8.6).
	ResumptionPSK []byte
	// EpochAuthenticator ("authentication") lets members compare their view
	// of the group out of band (§8.7).
	EpochAuthenticator []byte
	// InitSecret ("init") is init_secret_[n], the input of the next epoch.
	InitSecret []byte
}

// epochLabels pairs each DeriveSecret label of §8 with the field it fills.
func (e *EpochSecrets) epochLabels() []struct {
	label string
	dst   *[]byte
} {
	return []struct {
		label string
		dst   *[]byte
	}{
		{"sender data", &e.SenderDataSecret},
		{"encryption", &e.EncryptionSecret},
		{"exporter", &e.ExporterSecret},
		{"external", &e.ExternalSecret},
		{"confirm", &e.ConfirmationKey},
		{"membership", &e.MembershipKey},
		{"resumption", &e.ResumptionPSK},
		{"authentication", &e.EpochAuthenticator},
		{"init", &e.InitSecret},
	}
}

// optionalSecret returns s, or KDF.Nh zero bytes when s is nil: the "0" of
// the §8 diagram for an absent commit_secret or psk_secret.
func optionalSecret(suite *ciphersuite.Suite, s []byte, what string) ([]byte, error) {
	nh := suite.HashSize()
	if s == nil {
		return make([]byte, nh), nil
	}
	if len(s) != nh {
		return nil, fmt.Errorf("%s of %d bytes, want %d: %w", what, len(s), nh, ErrSecretLength)
	}
	return s, nil
}

// Advance derives the secrets of epoch n for a member moving on from epoch
// n-1 (RFC 9420 §8):
//
//	joiner_secret = ExpandWithLabel(KDF.Extract(init_secret_[n-1], commit_secret),
//	                                "joiner", GroupContext_[n], KDF.Nh)
//
// and then as Join. initSecret is the previous epoch's InitSecret (or, for an
// external commit, the secret exported from the ExternalInit HPKE context,
// §8.3); commitSecret and pskSecret may be nil for the all-zero value (a
// Commit without a path, no PSKs). groupContext is the encoded GroupContext
// of epoch n (§8.1). The inputs are not modified; the caller retires the
// previous epoch.
func Advance(suite *ciphersuite.Suite, initSecret, commitSecret, pskSecret, groupContext []byte) (*EpochSecrets, error) {
	if len(initSecret) != suite.HashSize() {
		return nil, fmt.Errorf("key schedule: init_secret of %d bytes, want %d: %w", len(initSecret), suite.HashSize(), ErrSecretLength)
	}
	commitSecret, err := optionalSecret(suite, commitSecret, "commit_secret")
	if err != nil {
		return nil, fmt.Errorf("key schedule: %w", err)
	}
	// KDF.Extract takes the salt from the top of the §8 diagram (init_secret)
	// and the input keying material from the left (commit_secret).
	extracted := suite.Extract(initSecret, commitSecret)
	joinerSecret, err := suite.ExpandWithLabel(extracted, "joiner", groupContext, suite.HashSize())
	clear(extracted)
	if err != nil {
		return nil, fmt.Errorf("key schedule: joiner_secret: %w", err)
	}
	return join(suite, joinerSecret, pskSecret, groupContext)
}

// Join derives the secrets of an epoch from its joiner_secret, as a new
// member does from the GroupSecrets of a Welcome (RFC 9420 §8, §12.4.3.1):
//
//	member         = KDF.Extract(joiner_secret, psk_secret)
//	welcome_secret = DeriveSecret(member, "welcome")
//	epoch_secret   = ExpandWithLabel(member, "epoch", GroupContext_[n], KDF.Nh)
//
// followed by one DeriveSecret per epoch secret (a joiner that still needs
// the GroupInfo key first uses WelcomeSecret). pskSecret may be nil for
// the all-zero value (no PSKs). joinerSecret is copied, not retained.
func Join(suite *ciphersuite.Suite, joinerSecret, pskSecret, groupContext []byte) (*EpochSecrets, error) {
	if len(joinerSecret) != suite.HashSize() {
		return nil, fmt.Errorf("key schedule: joiner_secret of %d bytes, want %d: %w", len(joinerSecret), suite.HashSize(), ErrSecretLength)
	}
	return join(suite, append([]byte(nil), joinerSecret...), pskSecret, groupContext)
}

// join is Join taking ownership of joinerSecret, which it zeroes on failure.
func join(suite *ciphersuite.Suite, joinerSecret, pskSecret, groupContext []byte) (_ *EpochSecrets, err error) {
	defer func() {
		if err != nil {
			clear(joinerSecret)
		}
	}()
	pskSecret, err = optionalSecret(suite, pskSecret, "psk_secret")
	if err != nil {
		return nil, fmt.Errorf("key schedule: %w", err)
	}
	member := suite.Extract(joinerSecret, pskSecret)
	defer clear(member)
	e := &EpochSecrets{suite: suite, JoinerSecret: joinerSecret}
	if e.WelcomeSecret, err = suite.DeriveSecret(member, "welcome"); err != nil {
		return nil, fmt.Errorf("key schedule: welcome_secret: %w", err)
	}
	epochSecret, err := suite.ExpandWithLabel(member, "epoch", groupContext, suite.HashSize())
	if err != nil {
		e.Retire()
		return nil, fmt.Errorf("key schedule: epoch_secret: %w", err)
	}
	// epoch_secret is consumed by the derivations below (§9.2).
	defer clear(epochSecret)
	for _, d := range e.epochLabels() {
		if *d.dst, err = suite.DeriveSecret(epochSecret, d.label); err != nil {
			e.Retire()
			return nil, fmt.Errorf("key schedule: %s secret: %w", d.label, err)
		}
	}
	return e, nil
}

// ForgetJoinerSecrets zeroes and drops joiner_secret and welcome_secret,
// once the Welcome for this epoch has been built or processed: they are
// consumed and must not outlive that use (RFC 9420 §9.2).
func (e *EpochSecrets) ForgetJoinerSecrets() {
	clear(e.JoinerSecret)
	clear(e.WelcomeSecret)
	e.JoinerSecret, e.WelcomeSecret = nil, nil
}

// Retire zeroes and drops every secret of the epoch, when the group moves to
// the next epoch or is left (RFC 9420 §9.2). The caller keeps InitSecret
// only by advancing first. Later calls to methods report ErrRetired.
func (e *EpochSecrets) Retire() {
	e.ForgetJoinerSecrets()
	for _, d := range e.epochLabels() {
		clear(*d.dst)
		*d.dst = nil
	}
}

// Retired reports whether Retire has been called.
func (e *EpochSecrets) Retired() bool { return e.InitSecret == nil }

// Exporter is MLS-Exporter(Label, Context, Length) of RFC 9420 §8.5:
//
//	ExpandWithLabel(DeriveSecret(exporter_secret, Label), "exported",
//	                Hash(Context), Length)
//
// label is used as given (any bytes); the "MLS 1.0 " prefix is added by
// ExpandWithLabel.
func (e *EpochSecrets) Exporter(label string, context []byte, length int) ([]byte, error) {
	if e.Retired() {
		return nil, fmt.Errorf("exporter: %w", ErrRetired)
	}
	secret, err := e.suite.DeriveSecret(e.ExporterSecret, label)
	if err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	defer clear(secret)
	out, err := e.suite.ExpandWithLabel(secret, "exported", e.suite.Hash(context), length)
	if err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	return out, nil
}

// ConfirmationTag is MAC(confirmation_key, confirmed_transcript_hash) for
// this epoch (RFC 9420 §6.1).
func (e *EpochSecrets) ConfirmationTag(confirmedTranscriptHash []byte) ([]byte, error) {
	if e.Retired() {
		return nil, fmt.Errorf("confirmation tag: %w", ErrRetired)
	}
	return ConfirmationTag(e.suite, e.ConfirmationKey, confirmedTranscriptHash), nil
}

// VerifyConfirmationTag reports, in constant time, whether tag is this
// epoch's confirmation tag over confirmedTranscriptHash (RFC 9420 §6.1,
// §12.4.2, §12.4.3.1). A retired epoch verifies nothing.
func (e *EpochSecrets) VerifyConfirmationTag(confirmedTranscriptHash, tag []byte) bool {
	if e.Retired() {
		return false
	}
	return VerifyConfirmationTag(e.suite, e.ConfirmationKey, confirmedTranscriptHash, tag)
}
