package ciphersuite

import (
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"hash"
)

// labeledKDF is the labelled HKDF of HPKE (RFC 9180 §4) for one suite_id:
//
//	LabeledExtract(salt, label, ikm) =
//	    Extract(salt, "HPKE-v1" || suite_id || label || ikm)
//	LabeledExpand(prk, label, info, L) =
//	    Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L)
//
// It runs HKDF (RFC 5869 §2.2, §2.3) on crypto/hmac directly so that the
// pieces of each labelled input are written to the MAC as they are rather
// than concatenated first, and so that one keyed MAC serves several
// expansions of the same PRK. The HPKE and MLS vectors and the interop tests
// against circl/hpke and crypto/hpke pin it down.
type labeledKDF struct {
	newHash func() hash.Hash
	prefix  []byte // "HPKE-v1" || suite_id
}

func newLabeledKDF(newHash func() hash.Hash, suiteID []byte) labeledKDF {
	return labeledKDF{newHash: newHash, prefix: append([]byte("HPKE-v1"), suiteID...)}
}

// HPKE labels (RFC 9180 §4.1, §5.1, §5.3, §7.1.3), as byte slices so that
// writing them to a MAC does not allocate.
var (
	labelEAEPRK       = []byte("eae_prk")
	labelSharedSecret = []byte("shared_secret")
	labelDKPPRK       = []byte("dkp_prk")
	labelSK           = []byte("sk")
	labelCandidate    = []byte("candidate")
	labelPSKIDHash    = []byte("psk_id_hash")
	labelInfoHash     = []byte("info_hash")
	labelSecret       = []byte("secret")
	labelKey          = []byte("key")
	labelBaseNonce    = []byte("base_nonce")
	labelExp          = []byte("exp")
	labelSec          = []byte("sec")
)

// extract is LabeledExtract(salt, label, ikm). An empty salt is HMAC's
// all-zero key block, the same as HashLen zero bytes (RFC 5869 §2.2).
func (k labeledKDF) extract(salt, label, ikm []byte) []byte {
	mac := hmac.New(k.newHash, salt)
	mac.Write(k.prefix)
	mac.Write(label)
	mac.Write(ikm)
	return mac.Sum(nil)
}

// expander returns a MAC keyed with prk, to pass to expandWith.
func (k labeledKDF) expander(prk []byte) hash.Hash { return hmac.New(k.newHash, prk) }

// expand is LabeledExpand(prk, label, info, length).
func (k labeledKDF) expand(prk, label, info []byte, length int) ([]byte, error) {
	return k.expandWith(k.expander(prk), label, info, length)
}

// expandWith is LabeledExpand with the PRK already keyed into mac.
func (k labeledKDF) expandWith(mac hash.Hash, label, info []byte, length int) ([]byte, error) {
	size := mac.Size()
	if length < 0 || length > 255*size || length > 0xffff {
		return nil, fmt.Errorf("HPKE LabeledExpand %q: length %d out of range", label, length)
	}
	blocks := (length + size - 1) / size
	out := make([]byte, 0, blocks*size)
	// I2OSP(L, 2) and HKDF's one-byte block counter.
	lenAndCounter := make([]byte, 3)
	binary.BigEndian.PutUint16(lenAndCounter, uint16(length))
	var prev []byte
	for i := 1; i <= blocks; i++ {
		mac.Reset()
		mac.Write(prev)
		mac.Write(lenAndCounter[:2])
		mac.Write(k.prefix)
		mac.Write(label)
		mac.Write(info)
		lenAndCounter[2] = byte(i)
		mac.Write(lenAndCounter[2:])
		out = mac.Sum(out)
		prev = out[len(out)-size:]
	}
	clear(out[length:cap(out)])
	return out[:length:length], nil
}
