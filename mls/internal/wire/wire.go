// Package wire is the data model of MLS: every structure of RFC 9420 that
// crosses the wire or is fed to a signature, MAC or hash, with an exact
// encoder and a strict decoder.
//
// Every struct type T has
//
//	func (x *T) Encode(b *cryptobyte.Builder)
//	func (x *T) Decode(s *cryptobyte.String) bool
//
// built on the mls/internal/codec helpers (TLS presentation language with MLS
// variable-length vectors, RFC 9420 §2.1). The exceptions are the two
// structures whose layout depends on a content type carried elsewhere,
// FramedContentAuthData and PrivateMessageContent: their Decode takes the
// content type as a second argument. Marshal and Unmarshal wrap the methods for
// whole byte strings.
//
// Decoding is strict, so that one byte string has exactly one meaning:
// non-minimal varints, the reserved 0b11 varint prefix, truncated input,
// trailing bytes (Unmarshal), bools other than 0 or 1, unknown values of
// closed enums and of any enum that selects the layout of what follows
// (Sender, FramedContent, Proposal, Credential, LeafNode, Node,
// PreSharedKeyID, ProposalOrRef, MLSMessage), duplicate extension types in an
// extension list (§13.4), non-zero padding (§6.3.1) and a ratchet tree with a
// trailing blank or a node of the wrong kind at a position (§12.4.3.3) are all
// rejected with an error wrapping ErrMalformed. Open registries carried as data
// (extension types inside Extension, the values listed in Capabilities and
// RequiredCapabilities, cipher suite numbers) keep unknown values unchanged.
//
// Decoded byte fields never alias the input: each is a fresh copy. Every
// list is bounded by its own byte length, so no allocation is sized by an
// unchecked length field, and no structure nests inside itself: extension
// payloads stay opaque bytes until a caller asks for them with
// Extensions.Get.
//
// Nothing here does cryptography. The structures that are signed, MACed or
// hashed (LeafNodeTBS, KeyPackageTBS, GroupInfoTBS, FramedContentTBS,
// AuthenticatedContentTBM, ConfirmedTranscriptHashInput,
// InterimTranscriptHashInput, SenderDataAAD, PrivateContentAAD, TreeHashInput,
// ParentHashInput, PSKLabel) are provided so that the code doing the
// cryptography only has to call Marshal on them.
package wire

import (
	"errors"
	"fmt"
	"strings"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// ErrMalformed reports bytes that are not a valid encoding of the expected
// structure. It is the codec's sentinel, so errors.Is works with either name.
var ErrMalformed = codec.ErrMalformed

// ErrInvalid reports a value that cannot be encoded because its fields
// contradict each other: a selector naming a body that is nil, an extension
// list with a duplicate type, a negative padding length. It is a programming
// error on the sending side, never a reaction to received bytes.
var ErrInvalid = errors.New("inconsistent value")

// Encoder is a structure that can append its TLS-PL encoding to a builder.
// Errors (ErrInvalid, codec.ErrTooLong) are recorded on the builder.
type Encoder interface {
	Encode(b *cryptobyte.Builder)
}

// Decoder is a structure that can read its encoding from the front of s,
// reporting false when the bytes are malformed. On failure the receiver's
// contents are unspecified.
type Decoder interface {
	Decode(s *cryptobyte.String) bool
}

// Marshal returns the encoding of v.
func Marshal(v Encoder) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	v.Encode(b)
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("wire: encode %s: %w", typeName(v), err)
	}
	return out, nil
}

// Unmarshal decodes data into v, which must consume it exactly. Malformed
// input and trailing bytes yield an error wrapping ErrMalformed that names the
// structure.
func Unmarshal(data []byte, v Decoder) error {
	s := cryptobyte.String(data)
	if !v.Decode(&s) {
		return fmt.Errorf("wire: decode %s: %w", typeName(v), ErrMalformed)
	}
	if !s.Empty() {
		return fmt.Errorf("wire: decode %s: %d trailing bytes: %w", typeName(v), len(s), ErrMalformed)
	}
	return nil
}

// typeName is the bare type name of v ("KeyPackage"), used only on the
// error path.
func typeName(v any) string {
	name := fmt.Sprintf("%T", v)
	name = strings.TrimPrefix(name, "*")
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// invalid records ErrInvalid with a reason on b.
func invalid(b *cryptobyte.Builder, format string, args ...any) {
	b.SetError(fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...)))
}

// readAlias reads opaque<V> into out without copying. Decoders use it for
// the byte fields of one structure and then pass them all to own, so that the
// structure gets its own copy in a single allocation.
func readAlias(s *cryptobyte.String, out *[]byte) bool {
	var body cryptobyte.String
	if !codec.ReadVector(s, &body) {
		return false
	}
	*out = body
	return true
}

// own replaces every non-nil field with a copy, all copies sharing one fresh
// allocation. Each copy is capped at its length, so appending to one field
// reallocates instead of overwriting the next. Absent (nil) fields stay nil.
func own(fields ...*[]byte) {
	n := 0
	for _, f := range fields {
		n += len(*f)
	}
	buf := make([]byte, 0, n)
	for _, f := range fields {
		if *f == nil {
			continue
		}
		start := len(buf)
		buf = append(buf, *f...)
		*f = buf[start:len(buf):len(buf)]
	}
}

// uint16Enum is any of the two-byte code point types.
type uint16Enum interface {
	~uint16
}

// addUint16List appends a vector<V> of two-byte values.
func addUint16List[T uint16Enum](b *cryptobyte.Builder, list []T) {
	codec.AddVector(b, func(b *cryptobyte.Builder) {
		for _, v := range list {
			b.AddUint16(uint16(v))
		}
	})
}

// readUint16List reads a vector<V> of two-byte values. The body length must
// be even; the slice is sized from the body actually present.
func readUint16List[T uint16Enum](s *cryptobyte.String, out *[]T) bool {
	var body cryptobyte.String
	if !codec.ReadVector(s, &body) || len(body)%2 != 0 {
		return false
	}
	list := make([]T, len(body)/2)
	for i := range list {
		var v uint16
		body.ReadUint16(&v)
		list[i] = T(v)
	}
	*out = list
	return true
}

// addUint32List appends a vector<V> of uint32 values.
func addUint32List(b *cryptobyte.Builder, list []uint32) {
	codec.AddVector(b, func(b *cryptobyte.Builder) {
		for _, v := range list {
			b.AddUint32(v)
		}
	})
}

// readUint32List reads a vector<V> of uint32 values; the body length must be
// a multiple of four.
func readUint32List(s *cryptobyte.String, out *[]uint32) bool {
	var body cryptobyte.String
	if !codec.ReadVector(s, &body) || len(body)%4 != 0 {
		return false
	}
	list := make([]uint32, len(body)/4)
	for i := range list {
		body.ReadUint32(&list[i])
	}
	*out = list
	return true
}

// addOpaqueList appends a vector<V> whose elements are each opaque<V>.
func addOpaqueList(b *cryptobyte.Builder, list [][]byte) {
	codec.AddVector(b, func(b *cryptobyte.Builder) {
		for _, v := range list {
			codec.AddOpaque(b, v)
		}
	})
}

// readOpaqueList reads a vector<V> of opaque<V> elements. Every element costs
// at least its one-byte length prefix, so the count is bounded by the body.
func readOpaqueList(s *cryptobyte.String, out *[][]byte) bool {
	var list [][]byte
	ok := codec.ReadList(s, func(s *cryptobyte.String) bool {
		var v []byte
		if !codec.ReadOpaque(s, &v) {
			return false
		}
		list = append(list, v)
		return true
	})
	if !ok {
		return false
	}
	if list == nil {
		list = [][]byte{}
	}
	*out = list
	return true
}

// readList reads a vector<V> of elements decoded by each T's Decode method.
func readList[T any, PT interface {
	*T
	Decoder
}](s *cryptobyte.String, out *[]T) bool {
	list := []T{}
	ok := codec.ReadList(s, func(s *cryptobyte.String) bool {
		var v T
		if !PT(&v).Decode(s) {
			return false
		}
		list = append(list, v)
		return true
	})
	if !ok {
		return false
	}
	*out = list
	return true
}

// addList appends a vector<V> of elements encoded by each T's Encode method.
func addList[T any, PT interface {
	*T
	Encoder
}](b *cryptobyte.Builder, list []T) {
	codec.AddVector(b, func(b *cryptobyte.Builder) {
		for i := range list {
			PT(&list[i]).Encode(b)
		}
	})
}
