package keyschedule

import (
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
)

// deriveKeyPair is KEM.DeriveKeyPair of the suite. It is set by
// external_derivekeypair.go, which is built only with the
// mls_derivekeypair tag until ciphersuite.Suite gains DeriveKeyPair; until
// then ExternalKeyPair reports ciphersuite.ErrUnsupported.
var deriveKeyPair func(s *ciphersuite.Suite, ikm []byte) (priv, pub []byte, err error)

// ExternalKeyPair is the group's external HPKE key pair (RFC 9420 §8.3):
//
//	external_priv, external_pub = KEM.DeriveKeyPair(external_secret)
//
// external_pub goes into the GroupInfo's external_pub extension; the private
// key opens the kem_output of an ExternalInit proposal.
func (e *EpochSecrets) ExternalKeyPair() (priv, pub []byte, err error) {
	if e.Retired() {
		return nil, nil, fmt.Errorf("external key pair: %w", ErrRetired)
	}
	if deriveKeyPair == nil {
		return nil, nil, fmt.Errorf("external key pair: KEM.DeriveKeyPair not built in: %w", ciphersuite.ErrUnsupported)
	}
	priv, pub, err = deriveKeyPair(e.suite, e.ExternalSecret)
	if err != nil {
		return nil, nil, fmt.Errorf("external key pair: %w", err)
	}
	return priv, pub, nil
}
