package keyschedule

import (
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/codec"
)

// ConfirmedTranscriptHash is RFC 9420 §8.2:
//
//	confirmed_transcript_hash_[n] = Hash(interim_transcript_hash_[n-1] ||
//	                                     ConfirmedTranscriptHashInput_[n])
//
// confirmedInput is the encoded ConfirmedTranscriptHashInput
// {WireFormat wire_format; FramedContent content; opaque signature<V>} of the
// Commit that starts epoch n, that is its AuthenticatedContent without the
// trailing confirmation_tag. For epoch 0 interimBefore is empty.
func ConfirmedTranscriptHash(suite *ciphersuite.Suite, interimBefore, confirmedInput []byte) []byte {
	h := suite.NewHash()
	h.Write(interimBefore)
	h.Write(confirmedInput)
	return h.Sum(nil)
}

// InterimTranscriptHash is RFC 9420 §8.2:
//
//	interim_transcript_hash_[n] = Hash(confirmed_transcript_hash_[n] ||
//	                                   InterimTranscriptHashInput_[n])
//
// where InterimTranscriptHashInput is {MAC confirmation_tag} and MAC is
// opaque<V>. Members take the tag from the Commit, joiners from the
// GroupInfo (§12.4.3.1).
func InterimTranscriptHash(suite *ciphersuite.Suite, confirmedTranscriptHash, confirmationTag []byte) ([]byte, error) {
	if len(confirmationTag) > codec.MaxVarint {
		return nil, fmt.Errorf("interim transcript hash: confirmation tag: %w", codec.ErrTooLong)
	}
	var prefix [4]byte
	h := suite.NewHash()
	h.Write(confirmedTranscriptHash)
	h.Write(varint(prefix[:0], uint64(len(confirmationTag))))
	h.Write(confirmationTag)
	return h.Sum(nil), nil
}

// varint appends the MLS variable-length integer encoding of v <= 2^30-1
// (RFC 9420 §2.1.2) to dst, without a builder so the hash input costs no
// allocation.
func varint(dst []byte, v uint64) []byte {
	switch codec.VarintLen(v) {
	case 1:
		return append(dst, byte(v))
	case 2:
		return append(dst, byte(v>>8)|0x40, byte(v))
	default:
		return append(dst, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	}
}

// ConfirmationTag is MAC(confirmation_key, confirmed_transcript_hash)
// (RFC 9420 §6.1), the confirmation_tag of a Commit and of a GroupInfo.
func ConfirmationTag(suite *ciphersuite.Suite, confirmationKey, confirmedTranscriptHash []byte) []byte {
	return suite.MAC(confirmationKey, confirmedTranscriptHash)
}

// VerifyConfirmationTag reports, in constant time, whether tag is
// MAC(confirmation_key, confirmed_transcript_hash) (RFC 9420 §6.1).
func VerifyConfirmationTag(suite *ciphersuite.Suite, confirmationKey, confirmedTranscriptHash, tag []byte) bool {
	return suite.VerifyMAC(confirmationKey, confirmedTranscriptHash, tag)
}
