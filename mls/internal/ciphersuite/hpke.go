package ciphersuite

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// This file is HPKE base mode (RFC 9180 §5.1.1, §5.2, §5.3) over the suite's
// DHKEM, KDF and AEAD, and the MLS operations built on it (RFC 9420 §5.1.3,
// §8.3). It is written here rather than taken from circl/hpke or
// crypto/hpke because MLS needs what neither gives: DeriveKeyPair on secrets
// whose length is not Nsk (circl panics), ephemeral keys drawn from the caller's
// reader (crypto/hpke ignores it), and no per-call parsing into library key
// objects. BenchmarkHPKEImpl compares the three; the interop tests check this
// one against both.

// HPKE algorithm identifiers (RFC 9180 §7).
const (
	kemP256   uint16 = 0x0010
	kemP384   uint16 = 0x0011
	kemP521   uint16 = 0x0012
	kemX25519 uint16 = 0x0020
	kemX448   uint16 = 0x0021

	kdfSHA256 uint16 = 0x0001
	kdfSHA384 uint16 = 0x0002
	kdfSHA512 uint16 = 0x0003

	aeadIDAES128GCM        uint16 = 0x0001
	aeadIDAES256GCM        uint16 = 0x0002
	aeadIDChaCha20Poly1305 uint16 = 0x0003
)

// hpkeModeBase is mode_base of RFC 9180 §5.
const hpkeModeBase = 0x00

// externalInitLabel is the exporter context of RFC 9420 §8.3.
const externalInitLabel = "MLS 1.0 external init secret"

// hpkeSuiteID is "HPKE" || I2OSP(kem_id, 2) || I2OSP(kdf_id, 2) ||
// I2OSP(aead_id, 2) (RFC 9180 §5.1).
func hpkeSuiteID(kemID, kdfID, aeadID uint16) []byte {
	id := []byte("HPKE")
	id = binary.BigEndian.AppendUint16(id, kemID)
	id = binary.BigEndian.AppendUint16(id, kdfID)
	return binary.BigEndian.AppendUint16(id, aeadID)
}

// hpkeContext is the part of an RFC 9180 §5.1 encryption context MLS uses:
// key and base_nonce for the single message at sequence number 0, or
// exporter_secret.
type hpkeContext struct {
	key, baseNonce, exporterSecret []byte
}

func (c *hpkeContext) zero() {
	clear(c.key)
	clear(c.baseNonce)
	clear(c.exporterSecret)
}

// keySchedule is RFC 9180 §5.1 KeyScheduleBase(shared_secret, info) with
// the default (empty) PSK. It derives only what the caller needs:
// encryption keys, the exporter secret, or both.
func (s *Suite) keySchedule(sharedSecret, info []byte, wantAEAD, wantExporter bool) (hpkeContext, error) {
	return s.keyScheduleHashed(sharedSecret, s.infoHash(info), wantAEAD, wantExporter)
}

// infoHash is info_hash = LabeledExtract("", "info_hash", info) of
// RFC 9180 §5.1, the only part of the key schedule that reads info.
func (s *Suite) infoHash(info []byte) []byte {
	return s.hpkeKDF.extract(nil, labelInfoHash, info)
}

// keyScheduleHashed is keySchedule with info_hash already computed, so that
// encryptions sharing one info hash it once.
func (s *Suite) keyScheduleHashed(sharedSecret, infoHash []byte, wantAEAD, wantExporter bool) (hpkeContext, error) {
	ksc := make([]byte, 0, 1+len(s.pskIDHash)+len(infoHash))
	ksc = append(ksc, hpkeModeBase)
	ksc = append(ksc, s.pskIDHash...)
	ksc = append(ksc, infoHash...)
	secret := s.hpkeKDF.extract(sharedSecret, labelSecret, nil)
	defer clear(secret)
	mac := s.hpkeKDF.expander(secret)

	var ctx hpkeContext
	var err error
	if wantAEAD {
		if ctx.key, err = s.hpkeKDF.expandWith(mac, labelKey, ksc, s.AEADKeySize()); err != nil {
			return hpkeContext{}, err
		}
		if ctx.baseNonce, err = s.hpkeKDF.expandWith(mac, labelBaseNonce, ksc, s.AEADNonceSize()); err != nil {
			ctx.zero()
			return hpkeContext{}, err
		}
	}
	if wantExporter {
		if ctx.exporterSecret, err = s.hpkeKDF.expandWith(mac, labelExp, ksc, s.HashSize()); err != nil {
			ctx.zero()
			return hpkeContext{}, err
		}
	}
	return ctx, nil
}

// export is RFC 9180 §5.3 Context.Export(exporter_context, L).
func (s *Suite) export(ctx *hpkeContext, exporterContext string, length int) ([]byte, error) {
	return s.hpkeKDF.expand(ctx.exporterSecret, labelSec, []byte(exporterContext), length)
}

// encryptContext encodes EncryptContext {opaque label<V> = "MLS 1.0 " +
// label; opaque context<V>} (RFC 9420 §5.1.3).
func encryptContext(label string, context []byte) ([]byte, error) {
	return codec.Marshal(func(b *cryptobyte.Builder) {
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			b.AddBytes([]byte(labelPrefix))
			b.AddBytes([]byte(label))
		})
		codec.AddOpaque(b, context)
	})
}

// EncryptWithLabel is RFC 9420 §5.1.3: SealBase(pub, EncryptContext, "",
// plaintext) in HPKE base mode (RFC 9180 §6.1), with the ephemeral key drawn
// from rand (crypto/rand.Reader when rand is nil). It returns the KEM output
// (enc) and the ciphertext. An unusable public key wraps ErrInvalidKey.
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte, rand io.Reader) (kemOutput, ciphertext []byte, err error) {
	info, err := encryptContext(label, context)
	if err != nil {
		return nil, nil, fmt.Errorf("EncryptWithLabel %q: %w", label, err)
	}
	shared, enc, err := s.kem.encap(randOrDefault(rand), pub)
	if err != nil {
		return nil, nil, fmt.Errorf("EncryptWithLabel %q: %w", label, err)
	}
	defer clear(shared)
	ctx, err := s.keySchedule(shared, info, true, false)
	if err != nil {
		return nil, nil, fmt.Errorf("EncryptWithLabel %q: %w", label, err)
	}
	defer ctx.zero()
	aead, err := s.NewAEAD(ctx.key)
	if err != nil {
		return nil, nil, fmt.Errorf("EncryptWithLabel %q: %w", label, err)
	}
	// Sequence number 0: the nonce is base_nonce itself (RFC 9180 §5.2).
	return enc, aead.Seal(nil, ctx.baseNonce, plaintext, nil), nil
}

// LabeledEncryptor performs EncryptWithLabel (RFC 9420 §5.1.3) for many
// recipients under one label and context. The HPKE info (the encoded
// EncryptContext) and its info_hash are computed once, not per recipient:
// a Welcome encrypts every new member's GroupSecrets with the whole
// encrypted GroupInfo, ratchet tree included, as context (§12.4.3.1), so
// hashing it per recipient would make a Welcome to N new members cost
// O(N × tree size).
type LabeledEncryptor struct {
	s        *Suite
	label    string
	infoHash []byte
}

// NewLabeledEncryptor prepares EncryptWithLabel(., label, context, .) for
// any number of recipients.
func (s *Suite) NewLabeledEncryptor(label string, context []byte) (*LabeledEncryptor, error) {
	info, err := encryptContext(label, context)
	if err != nil {
		return nil, fmt.Errorf("EncryptWithLabel %q: %w", label, err)
	}
	return &LabeledEncryptor{s: s, label: label, infoHash: s.infoHash(info)}, nil
}

// Encrypt is EncryptWithLabel(pub, label, context, plaintext) with the
// encryptor's label and context; the result is exactly what
// Suite.EncryptWithLabel returns for the same ephemeral key.
func (e *LabeledEncryptor) Encrypt(pub, plaintext []byte, rand io.Reader) (kemOutput, ciphertext []byte, err error) {
	s := e.s
	shared, enc, err := s.kem.encap(randOrDefault(rand), pub)
	if err != nil {
		return nil, nil, fmt.Errorf("EncryptWithLabel %q: %w", e.label, err)
	}
	defer clear(shared)
	ctx, err := s.keyScheduleHashed(shared, e.infoHash, true, false)
	if err != nil {
		return nil, nil, fmt.Errorf("EncryptWithLabel %q: %w", e.label, err)
	}
	defer ctx.zero()
	aead, err := s.NewAEAD(ctx.key)
	if err != nil {
		return nil, nil, fmt.Errorf("EncryptWithLabel %q: %w", e.label, err)
	}
	return enc, aead.Seal(nil, ctx.baseNonce, plaintext, nil), nil
}

// DecryptWithLabel is RFC 9420 §5.1.3: OpenBase(kemOutput, priv,
// EncryptContext, "", ciphertext). A kemOutput or ciphertext that does not
// decrypt under priv wraps ErrDecrypt (a kemOutput that is not even a public
// key also wraps ErrInvalidKey); a malformed priv wraps ErrInvalidKey only.
func (s *Suite) DecryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	if len(priv) != s.kem.group.privateKeySize() {
		return nil, fmt.Errorf("DecryptWithLabel %q: private key of %d bytes, want %d: %w",
			label, len(priv), s.kem.group.privateKeySize(), ErrInvalidKey)
	}
	info, err := encryptContext(label, context)
	if err != nil {
		return nil, fmt.Errorf("DecryptWithLabel %q: %w", label, err)
	}
	shared, err := s.kem.decap(kemOutput, priv)
	if err != nil {
		return nil, s.decapError("DecryptWithLabel", label, priv, err)
	}
	defer clear(shared)
	ctx, err := s.keySchedule(shared, info, true, false)
	if err != nil {
		return nil, fmt.Errorf("DecryptWithLabel %q: %w", label, err)
	}
	defer ctx.zero()
	aead, err := s.NewAEAD(ctx.key)
	if err != nil {
		return nil, fmt.Errorf("DecryptWithLabel %q: %w", label, err)
	}
	pt, err := aead.Open(nil, ctx.baseNonce, ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("DecryptWithLabel %q: %w", label, ErrDecrypt)
	}
	return pt, nil
}

// decapError classifies a Decap failure: a bad private key is the caller's
// ErrInvalidKey; anything else is a bad kem_output, hence also ErrDecrypt.
func (s *Suite) decapError(op, label string, priv []byte, err error) error {
	if _, perr := s.kem.group.publicKey(priv); perr != nil {
		return fmt.Errorf("%s %q: %w", op, label, perr)
	}
	return fmt.Errorf("%s %q: %w: %w", op, label, ErrDecrypt, err)
}

// ExternalInitSender is the joiner's half of RFC 9420 §8.3:
//
//	kem_output, context = SetupBaseS(external_pub, "")
//	init_secret = context.export("MLS 1.0 external init secret", KDF.Nh)
//
// with the ephemeral key drawn from rand (crypto/rand.Reader when nil).
func (s *Suite) ExternalInitSender(externalPub []byte, rand io.Reader) (kemOutput, initSecret []byte, err error) {
	shared, enc, err := s.kem.encap(randOrDefault(rand), externalPub)
	if err != nil {
		return nil, nil, fmt.Errorf("external init: %w", err)
	}
	defer clear(shared)
	initSecret, err = s.exportExternalInit(shared)
	if err != nil {
		return nil, nil, err
	}
	return enc, initSecret, nil
}

// ExternalInitReceiver is the group members' half of RFC 9420 §8.3:
//
//	context = SetupBaseR(kem_output, external_priv, "")
//	init_secret = context.export("MLS 1.0 external init secret", KDF.Nh)
//
// A kemOutput that is not a valid public key wraps ErrInvalidKey.
func (s *Suite) ExternalInitReceiver(externalPriv, kemOutput []byte) (initSecret []byte, err error) {
	shared, err := s.kem.decap(kemOutput, externalPriv)
	if err != nil {
		return nil, fmt.Errorf("external init: %w", err)
	}
	defer clear(shared)
	return s.exportExternalInit(shared)
}

func (s *Suite) exportExternalInit(shared []byte) ([]byte, error) {
	ctx, err := s.keySchedule(shared, nil, false, true)
	if err != nil {
		return nil, fmt.Errorf("external init: %w", err)
	}
	defer ctx.zero()
	out, err := s.export(&ctx, externalInitLabel, s.HashSize())
	if err != nil {
		return nil, fmt.Errorf("external init: %w", err)
	}
	return out, nil
}

// GenerateHPKEKey returns a fresh HPKE key pair of the suite's KEM drawn
// from rand (crypto/rand.Reader when nil), in the serialized forms of
// RFC 9180 §7.1 (X25519/X448 private keys unclamped, as DeriveKeyPair
// returns them).
func (s *Suite) GenerateHPKEKey(rand io.Reader) (priv, pub []byte, err error) {
	priv, pub, err = s.kem.group.generate(randOrDefault(rand))
	if err != nil {
		return nil, nil, fmt.Errorf("generate HPKE key: %w", err)
	}
	return priv, pub, nil
}

// DeriveKeyPair is the KEM's DeriveKeyPair (RFC 9180 §7.1.3) as MLS uses it
// for node, leaf and external keys (RFC 9420 §5.1, §7.4, §8.3). ikm may have
// any length.
func (s *Suite) DeriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	priv, pub, err = s.kem.deriveKeyPair(ikm)
	if err != nil {
		return nil, nil, fmt.Errorf("DeriveKeyPair: %w", err)
	}
	return priv, pub, nil
}

// HPKEPublicKey returns the public key of an HPKE private key, so that a
// stored or received key pair can be checked for consistency
// (RFC 9420 §12.4.3.1, §7.4). A malformed key wraps ErrInvalidKey.
func (s *Suite) HPKEPublicKey(priv []byte) ([]byte, error) {
	pub, err := s.kem.group.publicKey(priv)
	if err != nil {
		return nil, fmt.Errorf("HPKE public key: %w", err)
	}
	return pub, nil
}

// ValidateHPKEPublicKey checks that pub is a public key of the suite's KEM
// (RFC 9180 §7.1.1, §7.1.4): Npk bytes, and for the NIST curves an
// uncompressed point on the curve. X25519 and X448 keys are checked for
// length only; a low-order point fails at encryption time. Failure wraps
// ErrInvalidKey.
func (s *Suite) ValidateHPKEPublicKey(pub []byte) error {
	if err := s.kem.group.validatePublicKey(pub); err != nil {
		return fmt.Errorf("HPKE public key: %w", err)
	}
	return nil
}

// HPKEPublicKeySize is Npk of the suite's KEM (RFC 9180 §7.1), which is
// also the size of a KEM output.
func (s *Suite) HPKEPublicKeySize() int { return s.kem.group.publicKeySize() }

// HPKEPrivateKeySize is Nsk of the suite's KEM (RFC 9180 §7.1).
func (s *Suite) HPKEPrivateKeySize() int { return s.kem.group.privateKeySize() }

func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}
