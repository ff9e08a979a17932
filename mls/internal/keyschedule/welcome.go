package keyschedule

import (
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
)

// WelcomeKeyNonce derives the AEAD key and nonce that protect the GroupInfo
// of a Welcome (RFC 9420 §12.4.3.1):
//
//	welcome_nonce = ExpandWithLabel(welcome_secret, "nonce", "", AEAD.Nn)
//	welcome_key   = ExpandWithLabel(welcome_secret, "key", "", AEAD.Nk)
func WelcomeKeyNonce(suite *ciphersuite.Suite, welcomeSecret []byte) (key, nonce []byte, err error) {
	if len(welcomeSecret) != suite.HashSize() {
		return nil, nil, fmt.Errorf("welcome key: welcome_secret of %d bytes, want %d: %w", len(welcomeSecret), suite.HashSize(), ErrSecretLength)
	}
	if key, err = suite.ExpandWithLabel(welcomeSecret, "key", nil, suite.AEADKeySize()); err != nil {
		return nil, nil, fmt.Errorf("welcome key: %w", err)
	}
	if nonce, err = suite.ExpandWithLabel(welcomeSecret, "nonce", nil, suite.AEADNonceSize()); err != nil {
		clear(key)
		return nil, nil, fmt.Errorf("welcome nonce: %w", err)
	}
	return key, nonce, nil
}
