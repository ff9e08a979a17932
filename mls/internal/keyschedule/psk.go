package keyschedule

import (
	"errors"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// MaxPSKs is the most PSKs one epoch can inject: PSKLabel counts them in a
// uint16 (RFC 9420 §8.4).
const MaxPSKs = 0xffff

// ErrTooManyPSKs reports a PSK list longer than MaxPSKs.
var ErrTooManyPSKs = errors.New("too many PSKs")

// PSK is one pre-shared key injected into an epoch (RFC 9420 §8.4).
type PSK struct {
	// ID is the encoded PreSharedKeyID naming the PSK, psk_nonce included.
	ID []byte
	// Secret is the PSK value: the application's external PSK, or the
	// resumption_psk of the named group and epoch.
	Secret []byte
}

// PSKSecret combines psks, in the order of the Commit's PreSharedKey
// proposals or of GroupSecrets.psks, into psk_secret (RFC 9420 §8.4):
//
//	psk_extracted_[i] = KDF.Extract(0, psk_[i])
//	psk_input_[i]     = ExpandWithLabel(psk_extracted_[i], "derived psk",
//	                                    PSKLabel{id, i, n}, KDF.Nh)
//	psk_secret_[0]    = 0
//	psk_secret_[i+1]  = KDF.Extract(psk_input_[i], psk_secret_[i])
//
// KDF.Extract(salt, ikm) as in the §8.4 pseudocode: psk_input is the salt and
// the running psk_secret the input keying material (psk_secret.json agrees).
// With no PSKs the result is KDF.Nh zero bytes.
func PSKSecret(suite *ciphersuite.Suite, psks []PSK) ([]byte, error) {
	nh := suite.HashSize()
	if len(psks) > MaxPSKs {
		return nil, fmt.Errorf("psk_secret: %d PSKs: %w", len(psks), ErrTooManyPSKs)
	}
	pskSecret := make([]byte, nh)
	for i, psk := range psks {
		label, err := codec.Marshal(func(b *cryptobyte.Builder) {
			b.AddBytes(psk.ID)
			b.AddUint16(uint16(i))
			b.AddUint16(uint16(len(psks)))
		})
		if err != nil {
			clear(pskSecret)
			return nil, fmt.Errorf("psk_secret: PSKLabel %d: %w", i, err)
		}
		extracted := suite.Extract(nil, psk.Secret)
		input, err := suite.ExpandWithLabel(extracted, "derived psk", label, nh)
		clear(extracted)
		if err != nil {
			clear(pskSecret)
			return nil, fmt.Errorf("psk_secret: psk_input %d: %w", i, err)
		}
		next := suite.Extract(input, pskSecret)
		clear(input)
		clear(pskSecret)
		pskSecret = next
	}
	return pskSecret, nil
}
