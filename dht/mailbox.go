package dht

import (
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// Limits of a Welcome mailbox record; see the package documentation.
const (
	// MaxMailboxSize is the largest encoded mailbox record in bytes. A
	// Welcome carries the encrypted GroupInfo, which may include the
	// ratchet tree, so it grows with the group.
	MaxMailboxSize = 1 << 20
	// MaxMailboxLifetime is the longest a Welcome may wait for its joiner.
	MaxMailboxLifetime = 7 * 24 * time.Hour
	// MaxRefSize bounds the KeyPackageRef in a mailbox key; refs are hash
	// outputs (RFC 9420 §5.2), 64 bytes for SHA-512 suites.
	MaxRefSize = 64
)

// mailboxVersion is the only MailboxRecord version this package speaks.
const mailboxVersion = 1

// Welcome is a Welcome found in a mailbox.
type Welcome struct {
	// Ref is the KeyPackageRef the Welcome was filed under.
	Ref []byte
	// Data is the MLSMessage carrying the Welcome (RFC 9420 §12.4.3.1).
	Data []byte
	// Created is when the sender filed it.
	Created time.Time
	// Expires is when the record stops being valid.
	Expires time.Time
}

// mailboxKey returns the DHT key of the mailbox for ref.
func mailboxKey(ref []byte) string {
	return "/" + mailboxNamespace + "/" + string(ref)
}

// encodeMailbox encodes a MailboxRecord.
func encodeMailbox(created, expires time.Time, welcome []byte) ([]byte, error) {
	if len(welcome) == 0 {
		return nil, fmt.Errorf("encode mailbox record: empty Welcome: %w", ErrInvalidRecord)
	}
	if created.UnixMicro() < 0 || expires.Unix() <= 0 {
		return nil, fmt.Errorf("encode mailbox record: times before 1970: %w", ErrInvalidRecord)
	}
	var b cryptobyte.Builder
	b.AddUint8(mailboxVersion)
	b.AddUint64(uint64(created.UnixMicro()))
	b.AddUint64(uint64(expires.Unix()))
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(welcome) })
	enc, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode mailbox record: %w", err)
	}
	if len(enc) > MaxMailboxSize {
		return nil, fmt.Errorf("encode mailbox record: %d bytes exceeds %d: %w", len(enc), MaxMailboxSize, ErrInvalidRecord)
	}
	return enc, nil
}

// parseMailbox decodes a MailboxRecord strictly. It does not check times or
// the Welcome.
func parseMailbox(data []byte) (*Welcome, error) {
	if len(data) > MaxMailboxSize {
		return nil, fmt.Errorf("mailbox record of %d bytes exceeds %d: %w", len(data), MaxMailboxSize, ErrInvalidRecord)
	}
	s := cryptobyte.String(data)
	var (
		version          uint8
		created, expires uint64
		welcome          cryptobyte.String
	)
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("mailbox record: truncated: %w", ErrInvalidRecord)
	}
	if version != mailboxVersion {
		return nil, fmt.Errorf("mailbox record: version %d, want %d: %w", version, mailboxVersion, ErrInvalidRecord)
	}
	if !s.ReadUint64(&created) || !s.ReadUint64(&expires) || !s.ReadUint24LengthPrefixed(&welcome) {
		return nil, fmt.Errorf("mailbox record: truncated: %w", ErrInvalidRecord)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("mailbox record: %d trailing bytes: %w", len(s), ErrInvalidRecord)
	}
	if len(welcome) == 0 {
		return nil, fmt.Errorf("mailbox record: empty Welcome: %w", ErrInvalidRecord)
	}
	if created > uint64(1<<62) || expires > uint64(1<<62) {
		return nil, fmt.Errorf("mailbox record: time out of range: %w", ErrInvalidRecord)
	}
	return &Welcome{
		Data:    []byte(welcome),
		Created: time.UnixMicro(int64(created)),
		Expires: time.Unix(int64(expires), 0),
	}, nil
}
