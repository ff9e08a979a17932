package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/commitorder"
	"golang.org/x/crypto/cryptobyte"
)

// Every parser below copies the bytes it keeps: values read from the store
// are valid only inside their transaction.
//
// Store layout (all records start with a version byte, 1; encodings are TLS
// presentation language with fixed-width length prefixes):
//
//	meta        "mls-identity"         -> mls.Identity.MarshalBinary
//	keypackages KeyPackageRef          -> keyPackageRecord
//	groups      group ID               -> groupRecord
//	history     gkey || uint64 index   -> historyRecord
//	outbox      gkey || uint64 index   -> outboxRecord
//	handshake   gkey || uint64 epoch || hash8 -> commit (MLSMessage), sync.go
//	applog      gkey || uint64 epoch || hash8 -> PrivateMessage, applog.go
//
// where gkey is uint8 len(group ID) || group ID, so that one group's entries
// are contiguous and ordered by their index (or epoch), and hash8 is the
// first 8 bytes of the message's SHA-256.

// ErrCorruptStore reports a record in the store that does not decode.
var ErrCorruptStore = errors.New("node: corrupt store record")

const recordVersion = 1

var metaMLSIdentity = []byte("mls-identity")

// keyPackageKind says why the node holds a KeyPackage's private keys.
type keyPackageKind uint8

const (
	kpOneTime    keyPackageKind = 1 // in the DHT bundle, used once
	kpLastResort keyPackageKind = 2 // in the DHT bundle, reusable (RFC 9420 §16.8)
	kpJoin       keyPackageKind = 3 // sent in a join request on a topic
)

// keyPackageRecord is a private KeyPackage kept until a Welcome uses it:
//
//	uint8 version; uint8 kind; uint64 created (Unix seconds);
//	opaque private_key_package<1..2^24-1>;   // mls.PrivateKeyPackage.MarshalBinary
type keyPackageRecord struct {
	Kind    keyPackageKind
	Created time.Time
	Private []byte
}

func (r *keyPackageRecord) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(recordVersion)
	b.AddUint8(uint8(r.Kind))
	b.AddUint64(uint64(r.Created.Unix()))
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r.Private) })
	return b.Bytes()
}

func parseKeyPackageRecord(data []byte) (*keyPackageRecord, error) {
	s := cryptobyte.String(data)
	var version, kind uint8
	var created uint64
	var priv cryptobyte.String
	if !s.ReadUint8(&version) || version != recordVersion || !s.ReadUint8(&kind) || !s.ReadUint64(&created) ||
		!s.ReadUint24LengthPrefixed(&priv) || !s.Empty() || kind < 1 || kind > 3 || created > 1<<62 {
		return nil, fmt.Errorf("KeyPackage record: %w", ErrCorruptStore)
	}
	return &keyPackageRecord{Kind: keyPackageKind(kind), Created: time.Unix(int64(created), 0), Private: bytes.Clone(priv)}, nil
}

// groupRecord is one group's persisted state:
//
//	uint8  version; uint8 removed;          // 0 or 1
//	uint64 next_seq;                         // next appMeta.Seq to send
//	uint64 sent_since_rotation;
//	uint64 last_rotation;                    // Unix microseconds
//	opaque state<1..2^32-1>;                 // mls.Group.MarshalBinary
//
// The next history and outbox indexes are not stored: they follow the last
// key of the group's entries, which are written in their own transactions.
type groupRecord struct {
	Removed           bool
	NextSeq           uint64
	SentSinceRotation uint64
	LastRotation      time.Time
	State             []byte
}

func (r *groupRecord) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(recordVersion)
	if r.Removed {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
	b.AddUint64(r.NextSeq)
	b.AddUint64(r.SentSinceRotation)
	b.AddUint64(uint64(r.LastRotation.UnixMicro()))
	b.AddUint32LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r.State) })
	return b.Bytes()
}

func parseGroupRecord(data []byte) (*groupRecord, error) {
	s := cryptobyte.String(data)
	var version, removed uint8
	var lastRot uint64
	var state cryptobyte.String
	r := new(groupRecord)
	if !s.ReadUint8(&version) || version != recordVersion || !s.ReadUint8(&removed) || removed > 1 ||
		!s.ReadUint64(&r.NextSeq) || !s.ReadUint64(&r.SentSinceRotation) || !s.ReadUint64(&lastRot) ||
		!readUint32Prefixed(&s, &state) || !s.Empty() || len(state) == 0 || lastRot > 1<<62 {
		return nil, fmt.Errorf("group record: %w", ErrCorruptStore)
	}
	r.Removed = removed == 1
	r.LastRotation = time.UnixMicro(int64(lastRot))
	r.State = bytes.Clone(state)
	return r, nil
}

// historyRecord is one application message, received or sent:
//
//	uint8  version; opaque message_id[16];
//	opaque sender<1..2^8-1>;     // raw peer ID bytes
//	uint32 leaf; uint64 epoch; uint64 seq;
//	uint64 sent_at; uint64 received_at;  // Unix microseconds
//	uint8  own;                  // 0 or 1
//	opaque data<0..2^24-1>;
func marshalHistory(m *Message) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(recordVersion)
	b.AddBytes(m.ID[:])
	b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(m.Sender)) })
	b.AddUint32(m.SenderLeaf)
	b.AddUint64(m.Epoch)
	b.AddUint64(m.Seq)
	b.AddUint64(uint64(m.SentAt.UnixMicro()))
	b.AddUint64(uint64(m.ReceivedAt.UnixMicro()))
	if m.Own {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(m.Data) })
	return b.Bytes()
}

func parseHistory(data []byte) (*Message, error) {
	s := cryptobyte.String(data)
	var version, own uint8
	var sender, body cryptobyte.String
	var sent, recv uint64
	m := new(Message)
	if !s.ReadUint8(&version) || version != recordVersion || !s.CopyBytes(m.ID[:]) ||
		!s.ReadUint8LengthPrefixed(&sender) || !s.ReadUint32(&m.SenderLeaf) || !s.ReadUint64(&m.Epoch) ||
		!s.ReadUint64(&m.Seq) || !s.ReadUint64(&sent) || !s.ReadUint64(&recv) || !s.ReadUint8(&own) ||
		own > 1 || !s.ReadUint24LengthPrefixed(&body) || !s.Empty() || sent > 1<<62 || recv > 1<<62 {
		return nil, fmt.Errorf("history record: %w", ErrCorruptStore)
	}
	id, err := peer.IDFromBytes(sender)
	if err != nil {
		return nil, fmt.Errorf("history record: sender: %w", ErrCorruptStore)
	}
	m.Sender = id
	m.SentAt = time.UnixMicro(int64(sent))
	m.ReceivedAt = time.UnixMicro(int64(recv))
	m.Own = own == 1
	m.Data = bytes.Clone(body)
	return m, nil
}

// outboxKind says what an outbox entry carries.
type outboxKind uint8

const (
	outboxApplication outboxKind = 1 // PrivateMessage with application data
	outboxCommit      outboxKind = 2 // PublicMessage commit
	outboxWelcome     outboxKind = 3 // Welcome, for the topic, mailbox and direct delivery
	outboxProposal    outboxKind = 4 // PublicMessage proposal (an own Update)
)

// outboxRecord is a message persisted before it is published, removed once
// published (see the package documentation, "Persistence"):
//
//	uint8 version; uint8 kind;
//	opaque message<1..2^24-1>;   // MLSMessage, exactly as sent
//	opaque message_id[16];       // application messages (zero otherwise)
//	opaque peers<0..2^16-1>;     // Welcome: uint8-prefixed raw peer IDs to deliver to directly
//	opaque state<0..32>;         // Welcome: StateID its commit made (0 or 32 bytes)
type outboxRecord struct {
	Index   uint64
	Kind    outboxKind
	Message []byte
	ID      commitorder.MessageID
	Peers   []peer.ID
	// State is, for a Welcome, the state its commit made: the Welcome
	// waits until that state has settled and is dropped if it lost.
	State commitorder.StateID
}

func (r *outboxRecord) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(recordVersion)
	b.AddUint8(uint8(r.Kind))
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r.Message) })
	b.AddBytes(r.ID[:])
	b.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) {
		for _, p := range r.Peers {
			c.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(p)) })
		}
	})
	b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) {
		if !r.State.IsZero() {
			c.AddBytes(r.State[:])
		}
	})
	return b.Bytes()
}

func parseOutboxRecord(data []byte) (*outboxRecord, error) {
	s := cryptobyte.String(data)
	var version, kind uint8
	var msg, peers, state cryptobyte.String
	r := new(outboxRecord)
	if !s.ReadUint8(&version) || version != recordVersion || !s.ReadUint8(&kind) || kind < 1 || kind > 4 ||
		!s.ReadUint24LengthPrefixed(&msg) || len(msg) == 0 || !s.CopyBytes(r.ID[:]) ||
		!s.ReadUint16LengthPrefixed(&peers) || !s.ReadUint8LengthPrefixed(&state) ||
		(len(state) != 0 && len(state) != len(r.State)) || !s.Empty() {
		return nil, fmt.Errorf("outbox record: %w", ErrCorruptStore)
	}
	for !peers.Empty() {
		var raw cryptobyte.String
		if !peers.ReadUint8LengthPrefixed(&raw) {
			return nil, fmt.Errorf("outbox record: %w", ErrCorruptStore)
		}
		id, err := peer.IDFromBytes(raw)
		if err != nil {
			return nil, fmt.Errorf("outbox record: peer: %w", ErrCorruptStore)
		}
		r.Peers = append(r.Peers, id)
	}
	copy(r.State[:], state)
	r.Kind = outboxKind(kind)
	r.Message = bytes.Clone(msg)
	return r, nil
}

// readUint32Prefixed reads an opaque field with a 32-bit length prefix
// (cryptobyte has no reader for it).
func readUint32Prefixed(s *cryptobyte.String, out *cryptobyte.String) bool {
	var n uint32
	if !s.ReadUint32(&n) {
		return false
	}
	var body []byte
	if !s.ReadBytes(&body, int(n)) {
		return false
	}
	*out = body
	return true
}

// groupKey is the prefix of a group's history and outbox keys.
func groupKey(groupID []byte) []byte {
	k := make([]byte, 0, 1+len(groupID))
	k = append(k, byte(len(groupID)))
	return append(k, groupID...)
}

// indexKey appends a big-endian index to a group prefix.
func indexKey(groupID []byte, index uint64) []byte {
	return binary.BigEndian.AppendUint64(groupKey(groupID), index)
}

// indexOf returns the index at the end of a history or outbox key.
func indexOf(key []byte) uint64 {
	if len(key) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(key[len(key)-8:])
}
