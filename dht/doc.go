// Package dht is meshchat's serverless directory: a Kademlia DHT
// (go-libp2p-kad-dht) under the private protocol prefix "/meshchat", holding
// two kinds of records, each in its own namespace with its own
// record.Validator:
//
//   - KeyPackage bundles ("/mckp/"): the MLS KeyPackages (RFC 9420 §10) a
//     peer offers so that others can add it to a group while it is offline.
//   - Welcome mailboxes ("/mcwm/"): a Welcome (RFC 9420 §12.4.3.1) for a
//     joiner who was offline when it was added, waiting under one of the
//     joiner's KeyPackageRefs (RFC 9420 §5.2).
//
// The DHT never talks to the public IPFS network: the protocol prefix is
// "/meshchat", no default bootstrap peers are used, and only the two
// namespaces below are accepted (the libp2p "pk" and "ipns" validators are
// not installed).
//
// Every node that stores a record runs the validator before storing it, and
// every node that fetches one runs it again before using it, so a forged,
// tampered or expired record is refused everywhere. Note that go-libp2p-kad-dht
// only logs a remote peer's refusal: PutValue succeeds as long as the local
// copy validates.
//
// # Identity
//
// A peer's MLS basic credential (RFC 9420 §5.3.1) carries as its identity the
// raw bytes of the peer's libp2p peer ID (the multihash form, as
// peer.ID's underlying string, not the base58 or CID text form). The bundle
// validator requires exactly that for every KeyPackage, which makes "add peer
// X" unambiguous: the only KeyPackages accepted under X's key are signed by
// X's libp2p key and name X in their credential. Peer IDs must embed their
// public key (identity multihash, as for Ed25519 keys), because the validator
// takes the signing key from the record key's peer ID.
//
// # KeyPackage bundle record
//
// Key: "/mckp/" followed by the raw peer ID bytes.
//
// Value, in TLS presentation language (big-endian, fixed-width length
// prefixes, encoded and parsed with golang.org/x/crypto/cryptobyte):
//
//	struct {
//	    uint8  last_resort;              // 0 or 1
//	    opaque key_package<1..2^24-1>;   // MLSMessage carrying a KeyPackage
//	} BundleEntry;
//
//	struct {
//	    uint8  version;                  // 1
//	    opaque peer_id<1..2^8-1>;        // raw peer ID bytes, equal to the key's
//	    uint64 sequence;                 // higher replaces lower
//	    uint64 expires;                  // Unix seconds; invalid at or after
//	    BundleEntry entries<1..2^24-1>;  // 1..MaxBundleKeyPackages entries
//	    opaque signature<1..2^16-1>;
//	} KeyPackageBundle;
//
// The signature is made with the peer's libp2p private key (crypto.PrivKey.Sign)
// over the ASCII label "meshchat dht keypackage bundle v1" followed by the
// encoding of every field before signature. Exactly one entry has
// last_resort = 1 (RFC 9420 §16.8); the others are meant for one use each. No
// two entries may carry the same KeyPackage. The encoded record is at most
// MaxBundleSize bytes.
//
// A bundle is valid at time now if it decodes strictly (no trailing bytes,
// closed values as above), its peer_id equals the key's peer ID, the
// signature verifies with the public key embedded in that peer ID,
// now < expires <= now + MaxBundleLifetime + MaxClockSkew, and every
// KeyPackage passes the injected KeyPackageVerifier at now with a credential
// identity equal to the peer ID bytes. Select prefers the highest sequence
// (ties: the lexicographically greater encoding, so every node picks the
// same record).
//
// Publishers use the current time in microseconds as the sequence, or the
// previous sequence plus one if that is larger, so a restarted node does not
// need to remember its last sequence.
//
// # Welcome mailbox record
//
// Key: "/mcwm/" followed by the raw KeyPackageRef bytes (1..MaxRefSize bytes)
// of the KeyPackage the Welcome was made for.
//
//	struct {
//	    uint8  version;                  // 1
//	    uint64 created;                  // Unix microseconds
//	    uint64 expires;                  // Unix seconds; invalid at or after
//	    opaque welcome<1..2^24-1>;       // MLSMessage carrying a Welcome
//	} MailboxRecord;
//
// A mailbox record is valid at time now if it decodes strictly,
// created <= now + MaxClockSkew, now < expires <= created +
// MaxMailboxLifetime, the injected WelcomeVerifier accepts the Welcome, and
// the key's KeyPackageRef is among the Welcome's recipients. Select prefers
// the newest created (ties: the greater encoding). The encoded record is at
// most MaxMailboxSize bytes.
//
// The Welcome is encrypted to the joiner (RFC 9420 §12.4.3.1), so storing it
// publicly reveals only its size, timing and the KeyPackageRef. Storers cannot
// decrypt it and so cannot tell a real Welcome from a well-formed fake that
// lists the same ref; a peer that knows a ref (refs of published KeyPackages
// are public) can therefore overwrite a waiting Welcome with a newer fake. The
// joiner notices (the fake does not decrypt) but loses the real one; members
// should also deliver Welcomes on the group topic.
package dht
