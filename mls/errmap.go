package mls

import (
	"errors"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/framing"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/tree"
)

// mapFramingError adds this package's sentinel to an error of the message
// protection layer, keeping the original in the chain.
func mapFramingError(err error) error {
	var sentinel error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, framing.ErrBadSignature):
		sentinel = ErrBadSignature
	case errors.Is(err, framing.ErrBadMembershipTag):
		sentinel = ErrBadMembershipTag
	case errors.Is(err, framing.ErrBadConfirmationTag):
		sentinel = ErrBadConfirmationTag
	case errors.Is(err, framing.ErrWrongGroup):
		sentinel = ErrWrongGroup
	case errors.Is(err, framing.ErrWrongEpoch):
		sentinel = ErrWrongEpoch
	case errors.Is(err, framing.ErrSenderNotMember), errors.Is(err, framing.ErrUnknownExternalSender),
		errors.Is(err, secrettree.ErrUnknownLeaf):
		sentinel = ErrNotMember
	case errors.Is(err, framing.ErrDecryption), errors.Is(err, ciphersuite.ErrDecrypt):
		sentinel = ErrDecrypt
	case errors.Is(err, secrettree.ErrKeyConsumed), errors.Is(err, secrettree.ErrGenerationTooFar),
		errors.Is(err, secrettree.ErrRatchetExhausted):
		sentinel = ErrReplay
	case errors.Is(err, framing.ErrSenderNotAllowed), errors.Is(err, framing.ErrApplicationInPublic),
		errors.Is(err, framing.ErrNonZeroPadding), errors.Is(err, framing.ErrWrongWireFormat),
		errors.Is(err, codec.ErrMalformed):
		sentinel = ErrMalformed
	default:
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// mapTreeError adds this package's sentinel to an error of the ratchet tree
// layer: a leaf node rule, a tree rule, or an UpdatePath rule.
func mapTreeError(err error) error {
	var sentinel error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tree.ErrLeafSignatureInvalid):
		return fmt.Errorf("%w: %w: %w", ErrInvalidLeafNode, ErrBadSignature, err)
	case errors.Is(err, tree.ErrLifetimeExpired):
		return fmt.Errorf("%w: %w: %w", ErrInvalidLeafNode, ErrKeyPackageExpired, err)
	case errors.Is(err, tree.ErrLeafNodeSource), errors.Is(err, tree.ErrRequiredCapabilities),
		errors.Is(err, tree.ErrCredentialTypeUnsupported), errors.Is(err, tree.ErrExtensionUnsupported),
		errors.Is(err, tree.ErrCredentialInvalid), errors.Is(err, tree.ErrDuplicateSignatureKey):
		sentinel = ErrInvalidLeafNode
	case errors.Is(err, tree.ErrUpdatePathShape), errors.Is(err, tree.ErrPathKeyMismatch),
		errors.Is(err, tree.ErrNoDecryptionKey):
		sentinel = ErrInvalidCommit
	case errors.Is(err, ciphersuite.ErrDecrypt):
		sentinel = ErrDecrypt
	case errors.Is(err, tree.ErrDuplicateEncryptionKey), errors.Is(err, tree.ErrParentHashInvalid),
		errors.Is(err, tree.ErrMalformedTree), errors.Is(err, tree.ErrTreeHashMismatch),
		errors.Is(err, tree.ErrParentNotCovered), errors.Is(err, tree.ErrUnmergedLeafInvalid),
		errors.Is(err, tree.ErrIndexOutOfRange), errors.Is(err, tree.ErrBlankLeaf):
		sentinel = ErrInvalidTree
	default:
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}
