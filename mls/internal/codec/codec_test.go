package codec

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

func TestVarintBoundaries(t *testing.T) {
	for _, tc := range []struct {
		v   uint64
		enc []byte
	}{
		{0, []byte{0x00}},
		{37, []byte{0x25}},
		{63, []byte{0x3f}},
		{64, []byte{0x40, 0x40}},
		{15293, []byte{0x7b, 0xbd}},
		{0x3fff, []byte{0x7f, 0xff}},
		{0x4000, []byte{0x80, 0x00, 0x40, 0x00}},
		{494878333, []byte{0x9d, 0x7f, 0x3e, 0x7d}},
		{MaxVarint, []byte{0xbf, 0xff, 0xff, 0xff}},
	} {
		got, err := Marshal(func(b *cryptobyte.Builder) { AddVarint(b, tc.v) })
		if err != nil || !bytes.Equal(got, tc.enc) {
			t.Errorf("AddVarint(%d) = %x, %v; want %x", tc.v, got, err, tc.enc)
		}
		if VarintLen(tc.v) != len(tc.enc) {
			t.Errorf("VarintLen(%d) = %d, want %d", tc.v, VarintLen(tc.v), len(tc.enc))
		}
		var v uint64
		s := cryptobyte.String(tc.enc)
		if !ReadVarint(&s, &v) || v != tc.v || !s.Empty() {
			t.Errorf("ReadVarint(%x) = %d, want %d", tc.enc, v, tc.v)
		}
	}
}

func TestVarintRejects(t *testing.T) {
	for _, enc := range [][]byte{
		{},                          // empty
		{0x40},                      // truncated 2-byte form
		{0x80, 0x00, 0x00},          // truncated 4-byte form
		{0x40, 0x3f},                // 63 in two bytes
		{0x40, 0x00},                // 0 in two bytes
		{0x80, 0x00, 0x3f, 0xff},    // 0x3fff in four bytes
		{0xc0, 0, 0, 0, 0, 0, 0, 0}, // reserved 0b11 prefix
	} {
		var v uint64
		s := cryptobyte.String(enc)
		if ReadVarint(&s, &v) {
			t.Errorf("ReadVarint(%x) accepted %d", enc, v)
		}
	}
	if _, err := Marshal(func(b *cryptobyte.Builder) { AddVarint(b, MaxVarint+1) }); !errors.Is(err, ErrTooLong) {
		t.Errorf("AddVarint(2^30) error = %v, want ErrTooLong", err)
	}
}

func TestVectorsAndLists(t *testing.T) {
	enc, err := Marshal(func(b *cryptobyte.Builder) {
		AddVector(b, func(b *cryptobyte.Builder) {
			AddOpaque(b, []byte("ab"))
			AddOpaque(b, nil)
			AddOpaque(b, bytes.Repeat([]byte{7}, 100))
		})
		AddOptional(b, true, func(b *cryptobyte.Builder) { b.AddUint16(0xbeef) })
		AddOptional(b, false, nil)
		AddBool(b, true)
	})
	if err != nil {
		t.Fatal(err)
	}
	var items [][]byte
	var present1, present2, flag bool
	var v16 uint16
	err = Unmarshal(enc, "test", func(s *cryptobyte.String) bool {
		return ReadList(s, func(s *cryptobyte.String) bool {
			var item []byte
			if !ReadOpaque(s, &item) {
				return false
			}
			items = append(items, item)
			return true
		}) && ReadOptional(s, &present1, func(s *cryptobyte.String) bool { return s.ReadUint16(&v16) }) &&
			ReadOptional(s, &present2, nil) && ReadBool(s, &flag)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || string(items[0]) != "ab" || items[1] == nil || len(items[1]) != 0 || len(items[2]) != 100 {
		t.Errorf("list decoded as %q", items)
	}
	if !present1 || v16 != 0xbeef || present2 || !flag {
		t.Errorf("optional/bool decoded as %v %x %v %v", present1, v16, present2, flag)
	}
	// The copy must not alias the input.
	enc[2] ^= 0xff
	if string(items[0]) != "ab" {
		t.Error("ReadOpaque aliases its input")
	}
}

func TestStrictDecoding(t *testing.T) {
	readByte := func(s *cryptobyte.String) bool { var v uint8; return s.ReadUint8(&v) }
	if err := Unmarshal([]byte{1, 2}, "byte", readByte); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	// A length prefix far larger than the input fails without reading.
	huge := []byte{0xbf, 0xff, 0xff, 0xff, 0x00}
	var body cryptobyte.String
	s := cryptobyte.String(huge)
	if ReadVector(&s, &body) {
		t.Error("vector longer than its input accepted")
	}
	// Bools and optionals accept only 0 and 1.
	var b bool
	s = cryptobyte.String([]byte{2})
	if ReadBool(&s, &b) {
		t.Error("bool 2 accepted")
	}
	s = cryptobyte.String([]byte{2, 0})
	if ReadOptional(&s, &b, readByte) {
		t.Error("optional presence 2 accepted")
	}
	// A list element reader that consumes nothing cannot loop forever.
	s = cryptobyte.String([]byte{0x01, 0x00})
	if ReadList(&s, func(*cryptobyte.String) bool { return true }) {
		t.Error("ReadList accepted an element that consumed no bytes")
	}
}

func TestAddVectorPropagatesErrors(t *testing.T) {
	_, err := Marshal(func(b *cryptobyte.Builder) {
		AddVector(b, func(b *cryptobyte.Builder) { b.SetError(errTest) })
	})
	if !errors.Is(err, errTest) {
		t.Errorf("error inside AddVector = %v, want errTest", err)
	}
}

var errTest = errors.New("test error")

func FuzzReadVarint(f *testing.F) {
	for _, seed := range [][]byte{{0x25}, {0x7b, 0xbd}, {0x9d, 0x7f, 0x3e, 0x7d}, {0x40, 0x01}, {0xc0}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v uint64
		s := cryptobyte.String(data)
		if !ReadVarint(&s, &v) {
			return
		}
		used := data[:len(data)-len(s)]
		again, err := Marshal(func(b *cryptobyte.Builder) { AddVarint(b, v) })
		if err != nil || !bytes.Equal(again, used) {
			t.Fatalf("varint %x decoded to %d but re-encodes as %x (%v)", used, v, again, err)
		}
	})
}
