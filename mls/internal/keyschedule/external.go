package keyschedule

import "fmt"

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
	priv, pub, err = e.suite.DeriveKeyPair(e.ExternalSecret)
	if err != nil {
		return nil, nil, fmt.Errorf("external key pair: %w", err)
	}
	return priv, pub, nil
}
