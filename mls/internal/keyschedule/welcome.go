package keyschedule

import (
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
)

// WelcomeSecret derives welcome_secret from joiner_secret and psk_secret
// alone (RFC 9420 §8):
//
//	welcome_secret = DeriveSecret(KDF.Extract(joiner_secret, psk_secret), "welcome")
//
// A joiner needs it before it can read the GroupContext, which travels in
// the GroupInfo that welcome_secret encrypts (§12.4.3.1); Join derives the
// rest of the epoch once the GroupContext is known. pskSecret may be nil for
// the all-zero value.
func WelcomeSecret(suite *ciphersuite.Suite, joinerSecret, pskSecret []byte) ([]byte, error) {
	if len(joinerSecret) != suite.HashSize() {
		return nil, fmt.Errorf("welcome_secret: joiner_secret of %d bytes, want %d: %w", len(joinerSecret), suite.HashSize(), ErrSecretLength)
	}
	pskSecret, err := optionalSecret(suite, pskSecret, "psk_secret")
	if err != nil {
		return nil, fmt.Errorf("welcome_secret: %w", err)
	}
	member := suite.Extract(joinerSecret, pskSecret)
	defer clear(member)
	ws, err := suite.DeriveSecret(member, "welcome")
	if err != nil {
		return nil, fmt.Errorf("welcome_secret: %w", err)
	}
	return ws, nil
}

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
