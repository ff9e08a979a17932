//go:build mls_derivekeypair

// Built only with -tags mls_derivekeypair until ciphersuite.Suite has
// DeriveKeyPair; then this constraint line is to be deleted.

package keyschedule

import "github.com/meshchat/meshchat/mls/internal/ciphersuite"

func init() { deriveKeyPair = (*ciphersuite.Suite).DeriveKeyPair }
