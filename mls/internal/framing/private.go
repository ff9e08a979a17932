package framing

import (
	"crypto/rand"
	"fmt"
	"io"
	"slices"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// reuseGuardSize is the length of SenderData.reuse_guard (RFC 9420 §6.3.2).
const reuseGuardSize = 4

// aeadTagSize is the tag length of every AEAD of the registered suites
// (AES-GCM and ChaCha20-Poly1305); it only sizes buffers.
const aeadTagSize = 16

// PaddingPolicy chooses how many zero bytes to append to a
// PrivateMessageContent whose content and auth encode to n bytes
// (RFC 9420 §6.3.1), hiding the exact length of what is sent. It must
// return a value from 0 on; nil means NoPadding.
type PaddingPolicy func(n int) int

// NoPadding is the PaddingPolicy that adds no padding.
func NoPadding(int) int { return 0 }

// PadToMultiple returns the PaddingPolicy that pads the plaintext to the
// next multiple of block bytes, so that only the length rounded up to block
// leaks. A block below 2 means no padding.
func PadToMultiple(block int) PaddingPolicy {
	if block < 2 {
		return NoPadding
	}
	return func(n int) int { return (block - n%block) % block }
}

// ratchetFor is the secret-tree ratchet of a content type: application
// messages use the application ratchet, proposals and commits the handshake
// ratchet (RFC 9420 §6.3.1, §9).
func ratchetFor(ct wire.ContentType) secrettree.RatchetType {
	if ct == wire.ContentTypeApplication {
		return secrettree.Application
	}
	return secrettree.Handshake
}

// guardedNonce is the key schedule nonce with the reuse guard XORed into
// its first four bytes (RFC 9420 §6.3.1), in a fresh slice.
func guardedNonce(nonce []byte, guard [reuseGuardSize]byte) []byte {
	out := append([]byte(nil), nonce...)
	for i := range guard {
		out[i] ^= guard[i]
	}
	return out
}

// ProtectPrivate encrypts signed content as a PrivateMessage
// (RFC 9420 §6.3): the PrivateMessageContent, padded with zero bytes as
// padding chooses, under the next key of the sender's handshake or
// application ratchet with a fresh 4-byte reuse guard from rand (crypto/rand
// when nil) XORed into the nonce; then the SenderData under the key and nonce
// derived from sender_data_secret and a sample of that ciphertext. ac must
// have been made by Sign for wire.WireFormatPrivateMessage in this epoch by a
// member and, for a commit, carry its confirmation tag. The ratchet
// generation is consumed even if a later step fails, so a key is never
// used twice.
func (e *Epoch) ProtectPrivate(ac *wire.AuthenticatedContent, padding PaddingPolicy, rnd io.Reader) (*wire.PrivateMessage, error) {
	if ac.WireFormat != wire.WireFormatPrivateMessage {
		return nil, fmt.Errorf("framing: protect private: content signed for %v: %w", ac.WireFormat, ErrWrongWireFormat)
	}
	c := &ac.Content
	if err := e.checkGroupEpoch(c.GroupID, c.Epoch); err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	if err := checkSender(ac.WireFormat, c); err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	if err := e.checkConfirmationTagPresent(ac); err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	if e.keys.SecretTree == nil || e.keys.SenderDataSecret == nil {
		return nil, fmt.Errorf("framing: protect private: %w: no secret tree or sender_data_secret", ErrMissingKeys)
	}
	if padding == nil {
		padding = NoPadding
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	suite := e.suite

	// PrivateMessageContent: content, auth, then the padding zero bytes,
	// with room for the AEAD tag so that sealing happens in place.
	b := cryptobyte.NewBuilder(make([]byte, 0, len(c.ApplicationData)+len(ac.Auth.Signature)+len(ac.Auth.ConfirmationTag)+64))
	(&wire.PrivateMessageContent{
		ContentType:     c.ContentType,
		ApplicationData: c.ApplicationData,
		Proposal:        c.Proposal,
		Commit:          c.Commit,
		Auth:            ac.Auth,
	}).Encode(b)
	plaintext, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	pad := padding(len(plaintext))
	if pad < 0 || pad > codec.MaxVarint-len(plaintext)-64 {
		return nil, fmt.Errorf("framing: protect private: padding policy chose %d bytes for %d", pad, len(plaintext))
	}
	plaintext = slices.Grow(plaintext, pad+aeadTagSize)
	plaintext = append(plaintext, make([]byte, pad)...)

	var guard [reuseGuardSize]byte
	if _, err := io.ReadFull(rnd, guard[:]); err != nil {
		return nil, fmt.Errorf("framing: protect private: reuse guard: %w", err)
	}
	leaf := treemath.LeafIndex(c.Sender.LeafIndex)
	kn, err := e.keys.SecretTree.NextSendKey(leaf, ratchetFor(c.ContentType))
	if err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	defer kn.Zero()
	aead, err := suite.NewAEAD(kn.Key)
	if err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	msg := &wire.PrivateMessage{
		GroupID:           c.GroupID,
		Epoch:             c.Epoch,
		ContentType:       c.ContentType,
		AuthenticatedData: c.AuthenticatedData,
	}
	contentAAD, err := wire.Marshal(msg.ContentAAD())
	if err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	nonce := guardedNonce(kn.Nonce, guard)
	msg.Ciphertext = aead.Seal(plaintext[:0], nonce, plaintext, contentAAD)
	clear(nonce)

	senderData, err := wire.Marshal(&wire.SenderData{LeafIndex: c.Sender.LeafIndex, Generation: kn.Generation, ReuseGuard: guard})
	if err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	sdKey, sdNonce, err := secrettree.SenderDataKeyNonce(suite, e.keys.SenderDataSecret, msg.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	defer clear(sdKey)
	defer clear(sdNonce)
	sdAEAD, err := suite.NewAEAD(sdKey)
	if err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	sdAAD, err := wire.Marshal(msg.SenderDataAAD())
	if err != nil {
		return nil, fmt.Errorf("framing: protect private: %w", err)
	}
	msg.EncryptedSenderData = sdAEAD.Seal(senderData[:0:0], sdNonce, senderData, sdAAD)
	return msg, nil
}

// UnprotectPrivate decrypts a received PrivateMessage (RFC 9420 §6.3) with
// every check of §6.3.1 and §6.3.2: its group and epoch; the sender data
// AEAD; that the SenderData names a non-blank leaf (roster says which leaves
// are members; 0xffffffff and any other index past the tree fail with
// ErrSenderNotMember); the generation window and consumed keys of the secret
// tree (ErrGenerationTooFar, ErrKeyConsumed); the content AEAD under the
// reuse-guarded nonce; and all-zero padding (ErrNonZeroPadding). The
// ratchet generation is consumed only once the content AEAD has succeeded, so
// a forged or corrupted message leaves the secret tree as it was. The
// signature is checked next, by Verify.
func (e *Epoch) UnprotectPrivate(pm *wire.PrivateMessage, roster Roster) (*Unverified, error) {
	if err := e.checkGroupEpoch(pm.GroupID, pm.Epoch); err != nil {
		return nil, fmt.Errorf("framing: unprotect private: %w", err)
	}
	if e.keys.SecretTree == nil || e.keys.SenderDataSecret == nil {
		return nil, fmt.Errorf("framing: unprotect private: %w: no secret tree or sender_data_secret", ErrMissingKeys)
	}
	sd, err := e.openSenderData(pm)
	if err != nil {
		return nil, fmt.Errorf("framing: unprotect private: %w", err)
	}
	leaf := treemath.LeafIndex(sd.LeafIndex)
	if roster == nil {
		return nil, fmt.Errorf("framing: unprotect private: leaf %d: %w", leaf, ErrSenderNotMember)
	}
	if _, ok := roster.MemberSignatureKey(leaf); !ok {
		return nil, fmt.Errorf("framing: unprotect private: leaf %d: %w", leaf, ErrSenderNotMember)
	}

	contentAAD, err := wire.Marshal(pm.ContentAAD())
	if err != nil {
		return nil, fmt.Errorf("framing: unprotect private: %w", err)
	}
	var plaintext []byte
	err = e.keys.SecretTree.Open(leaf, ratchetFor(pm.ContentType), sd.Generation, func(kn secrettree.KeyNonce) error {
		aead, err := e.suite.NewAEAD(kn.Key)
		if err != nil {
			return err
		}
		nonce := guardedNonce(kn.Nonce, sd.ReuseGuard)
		defer clear(nonce)
		plaintext, err = aead.Open(nil, nonce, pm.Ciphertext, contentAAD)
		if err != nil {
			return ErrDecryption
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("framing: unprotect private: leaf %d generation %d: %w", leaf, sd.Generation, err)
	}
	defer clear(plaintext)

	pmc, err := decodePrivateMessageContent(plaintext, pm.ContentType)
	if err != nil {
		return nil, fmt.Errorf("framing: unprotect private: leaf %d: %w", leaf, err)
	}
	ac := &wire.AuthenticatedContent{
		WireFormat: wire.WireFormatPrivateMessage,
		Content:    *pmc.FramedContent(pm, wire.MemberSender(sd.LeafIndex)),
		Auth:       pmc.Auth,
	}
	return &Unverified{epoch: e, content: ac}, nil
}

// openSenderData decrypts and decodes the SenderData of pm (RFC 9420 §6.3.2).
func (e *Epoch) openSenderData(pm *wire.PrivateMessage) (*wire.SenderData, error) {
	key, nonce, err := secrettree.SenderDataKeyNonce(e.suite, e.keys.SenderDataSecret, pm.Ciphertext)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	defer clear(nonce)
	aead, err := e.suite.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	aad, err := wire.Marshal(pm.SenderDataAAD())
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nonce, pm.EncryptedSenderData, aad)
	if err != nil {
		return nil, fmt.Errorf("sender data: %w", ErrDecryption)
	}
	sd := new(wire.SenderData)
	if err := wire.Unmarshal(plain, sd); err != nil {
		return nil, err
	}
	return sd, nil
}

// decodePrivateMessageContent parses the plaintext of a PrivateMessage of
// content type ct (RFC 9420 §6.3.1): the content, the auth data, and then
// padding that must be all zero bytes. It is wire.PrivateMessageContent's
// decoding, done here so that bad padding gets its own error,
// ErrNonZeroPadding, rather than a generic malformed one.
func decodePrivateMessageContent(plaintext []byte, ct wire.ContentType) (*wire.PrivateMessageContent, error) {
	s := cryptobyte.String(plaintext)
	x := &wire.PrivateMessageContent{ContentType: ct}
	var ok bool
	switch ct {
	case wire.ContentTypeApplication:
		ok = codec.ReadOpaque(&s, &x.ApplicationData)
	case wire.ContentTypeProposal:
		x.Proposal = new(wire.Proposal)
		ok = x.Proposal.Decode(&s)
	case wire.ContentTypeCommit:
		x.Commit = new(wire.Commit)
		ok = x.Commit.Decode(&s)
	}
	if !ok || !x.Auth.Decode(&s, ct) {
		return nil, fmt.Errorf("decode PrivateMessageContent: %w", wire.ErrMalformed)
	}
	var nonZero byte
	for _, c := range s {
		nonZero |= c
	}
	if nonZero != 0 {
		return nil, ErrNonZeroPadding
	}
	x.Padding = len(s)
	return x, nil
}
