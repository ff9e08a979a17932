// Package codec implements the TLS presentation language as RFC 9420 §2.1
// uses it: fixed-width integers from cryptobyte, plus the MLS variable-length
// integer (§2.1.2) that prefixes every vector<V>.
//
// Every MLS structure is encoded with a *cryptobyte.Builder and decoded from a
// *cryptobyte.String. The helpers here are the only place that knows how a
// variable-length vector is framed, so that every structure shares one strict
// decoder: non-minimal varints, the reserved 0b11 prefix and lengths past the
// input are all rejected.
package codec

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/cryptobyte"
)

// MaxVarint is the largest value a MLS variable-length integer can carry
// (30 usable bits, RFC 9420 §2.1.2), and so the longest vector<V>.
const MaxVarint = 1<<30 - 1

// ErrMalformed reports bytes that are not a valid encoding of the expected
// structure: truncated input, a bad varint, an unknown enum value, a bool that
// is neither 0 nor 1, or trailing bytes.
var ErrMalformed = errors.New("malformed encoding")

// ErrTooLong reports a value that cannot be encoded because it exceeds the
// 2^30-1 limit of a variable-length vector.
var ErrTooLong = errors.New("vector longer than 2^30-1 bytes")

// AddVarint appends v in the minimal MLS variable-length integer encoding.
// A value above MaxVarint sets ErrTooLong on the builder.
func AddVarint(b *cryptobyte.Builder, v uint64) {
	switch {
	case v <= 0x3f:
		b.AddUint8(uint8(v))
	case v <= 0x3fff:
		b.AddUint16(uint16(v) | 0x4000)
	case v <= MaxVarint:
		b.AddUint32(uint32(v) | 0x80000000)
	default:
		b.SetError(ErrTooLong)
	}
}

// VarintLen returns the number of bytes AddVarint uses for v.
func VarintLen(v uint64) int {
	switch {
	case v <= 0x3f:
		return 1
	case v <= 0x3fff:
		return 2
	default:
		return 4
	}
}

// ReadVarint reads a minimally encoded MLS variable-length integer.
// It reports false for truncated input, the reserved 0b11 prefix, and any
// value encoded in more bytes than needed (RFC 9420 §2.1.2).
func ReadVarint(s *cryptobyte.String, out *uint64) bool {
	if len(*s) == 0 {
		return false
	}
	prefix := (*s)[0] >> 6
	switch prefix {
	case 0:
		var v uint8
		if !s.ReadUint8(&v) {
			return false
		}
		*out = uint64(v)
	case 1:
		var v uint16
		if !s.ReadUint16(&v) {
			return false
		}
		v &= 0x3fff
		if v < 0x40 {
			return false
		}
		*out = uint64(v)
	case 2:
		var v uint32
		if !s.ReadUint32(&v) {
			return false
		}
		v &= 0x3fffffff
		if v < 0x4000 {
			return false
		}
		*out = uint64(v)
	default:
		return false
	}
	return true
}

// scratchPool holds the buffers AddVector builds vector bodies in, so that
// encoding a deep structure does not allocate and grow a fresh buffer for
// every nested vector. Buffers that grew past maxPooledScratch are dropped.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledScratch = 64 << 10

// AddVector appends a vector<V>: the bytes written by f, prefixed with their
// length as a varint. The body is built in a pooled scratch buffer and then
// copied once, because its minimal varint length is known only afterwards.
func AddVector(b *cryptobyte.Builder, f cryptobyte.BuilderContinuation) {
	scratch := scratchPool.Get().(*[]byte)
	child := cryptobyte.NewBuilder((*scratch)[:0])
	f(child)
	body, err := child.Bytes()
	if err != nil {
		b.SetError(err)
	} else {
		AddOpaque(b, body)
	}
	if cap(body) <= maxPooledScratch {
		*scratch = body[:0]
		scratchPool.Put(scratch)
	}
}

// AddOpaque appends opaque data<V>.
func AddOpaque(b *cryptobyte.Builder, data []byte) {
	if len(data) > MaxVarint {
		b.SetError(ErrTooLong)
		return
	}
	AddVarint(b, uint64(len(data)))
	b.AddBytes(data)
}

// ReadVector reads a vector<V> and sets out to its body, without copying.
// The length is checked against the remaining input before anything is
// allocated, so a huge length prefix on a short input costs nothing.
func ReadVector(s *cryptobyte.String, out *cryptobyte.String) bool {
	var n uint64
	if !ReadVarint(s, &n) {
		return false
	}
	if n > uint64(len(*s)) {
		return false
	}
	return s.ReadBytes((*[]byte)(out), int(n))
}

// ReadOpaque reads opaque data<V> into a fresh copy, so the result does not
// alias the input buffer. An empty vector yields a non-nil empty slice.
func ReadOpaque(s *cryptobyte.String, out *[]byte) bool {
	var body cryptobyte.String
	if !ReadVector(s, &body) {
		return false
	}
	*out = append(make([]byte, 0, len(body)), body...)
	return true
}

// ReadList reads a vector<V> of elements, calling readElem until the body is
// consumed. readElem must consume at least one byte or fail, which bounds the
// number of elements by the vector's length.
func ReadList(s *cryptobyte.String, readElem func(*cryptobyte.String) bool) bool {
	var body cryptobyte.String
	if !ReadVector(s, &body) {
		return false
	}
	for !body.Empty() {
		before := len(body)
		if !readElem(&body) || len(body) >= before {
			return false
		}
	}
	return true
}

// AddBool appends a TLS-PL bool (uint8 0 or 1).
func AddBool(b *cryptobyte.Builder, v bool) {
	if v {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
}

// ReadBool reads a uint8 that must be exactly 0 or 1.
func ReadBool(s *cryptobyte.String, out *bool) bool {
	var v uint8
	if !s.ReadUint8(&v) || v > 1 {
		return false
	}
	*out = v == 1
	return true
}

// AddOptional appends optional<T> (RFC 9420 §2.1.1): a presence byte and,
// when present, the value written by f.
func AddOptional(b *cryptobyte.Builder, present bool, f cryptobyte.BuilderContinuation) {
	AddBool(b, present)
	if present {
		f(b)
	}
}

// ReadOptional reads optional<T>: when the presence byte is 1 it calls
// readValue and sets *present; a presence byte other than 0 or 1 fails.
func ReadOptional(s *cryptobyte.String, present *bool, readValue func(*cryptobyte.String) bool) bool {
	if !ReadBool(s, present) {
		return false
	}
	if *present {
		return readValue(s)
	}
	return true
}

// Marshal runs f on a fresh builder and returns the bytes or the first error.
func Marshal(f func(*cryptobyte.Builder)) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	f(b)
	return b.Bytes()
}

// MustMarshal is Marshal for values whose encoding cannot fail (their sizes
// are bounded by construction). It panics on an encoding error, which would be
// a programming error, never a reaction to input.
func MustMarshal(f func(*cryptobyte.Builder)) []byte {
	out, err := Marshal(f)
	if err != nil {
		panic(fmt.Sprintf("codec: encoding a bounded value failed: %v", err))
	}
	return out
}

// Unmarshal decodes data with read, which must consume it exactly. Failure
// and trailing bytes both yield an error wrapping ErrMalformed that names what.
func Unmarshal(data []byte, what string, read func(*cryptobyte.String) bool) error {
	s := cryptobyte.String(data)
	if !read(&s) {
		return fmt.Errorf("decode %s: %w", what, ErrMalformed)
	}
	if !s.Empty() {
		return fmt.Errorf("decode %s: %d trailing bytes: %w", what, len(s), ErrMalformed)
	}
	return nil
}
