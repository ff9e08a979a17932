package tree

import "errors"

// The sentinel errors below name the rule a tree, leaf node or UpdatePath
// broke, one error per rule, so that a caller (and a test) can tell with
// errors.Is which check failed. Every returned error wraps exactly one of
// them, with the node or leaf index in the message.
var (
	// ErrMalformedTree reports a ratchet tree whose shape is impossible: a
	// parent node in a leaf slot or the reverse, a trailing blank node, an
	// empty tree, a node count that is not 2^(d+1)-1 after padding, or more
	// leaves than the tree math can address (RFC 9420 §12.4.3.3).
	ErrMalformedTree = errors.New("malformed ratchet tree")

	// ErrIndexOutOfRange reports a leaf or node index that lies outside the
	// tree (RFC 9420 §4.1.1). Indices from the network are checked against
	// the current tree before anything is read at them.
	ErrIndexOutOfRange = errors.New("index out of range")

	// ErrBlankLeaf reports an operation that needs a member at a leaf that
	// is blank, such as removing or updating an empty leaf (RFC 9420 §12.1.3).
	ErrBlankLeaf = errors.New("leaf is blank")

	// ErrTreeHashMismatch reports a tree whose root tree hash differs from
	// the expected one, e.g. the tree_hash of the GroupInfo
	// (RFC 9420 §7.8, §12.4.3.1).
	ErrTreeHashMismatch = errors.New("tree hash mismatch")

	// ErrParentHashInvalid reports a parent_hash value that must match a
	// recomputed parent hash and does not: the committer's new leaf in an
	// UpdatePath (RFC 9420 §7.9.2), or, when joining, the node below an
	// uncovered parent that has every property of its chain link except the
	// hash (then the error wraps ErrParentNotCovered too).
	ErrParentHashInvalid = errors.New("parent hash invalid")

	// ErrParentNotCovered reports a non-blank parent node that no
	// parent-hash chain from a leaf reaches, or that more than one chain
	// reaches (RFC 9420 §7.9.2: every non-blank parent node must be covered
	// by exactly one chain). When a child had the shape of a chain link but
	// the wrong parent_hash, the error also wraps ErrParentHashInvalid.
	ErrParentNotCovered = errors.New("parent node not covered by a parent-hash chain")

	// ErrUnmergedLeafInvalid reports an unmerged_leaves entry that is
	// unsorted or repeated (RFC 9420 §7.1), that does not name a non-blank
	// leaf below the parent, or whose leaf is missing from the
	// unmerged_leaves of a non-blank node between it and the parent
	// (RFC 9420 §12.4.3.1).
	ErrUnmergedLeafInvalid = errors.New("invalid unmerged leaf")

	// ErrDuplicateEncryptionKey reports an HPKE encryption key that appears
	// in more than one node of the tree, or a new key (in a leaf node or an
	// UpdatePath) that is already in the tree (RFC 9420 §7.3, §12.4.2,
	// §12.4.3.1).
	ErrDuplicateEncryptionKey = errors.New("duplicate encryption key")

	// ErrDuplicateSignatureKey reports a signature key used by more than one
	// member (RFC 9420 §7.3).
	ErrDuplicateSignatureKey = errors.New("duplicate signature key")

	// ErrLeafSignatureInvalid reports a LeafNode whose signature over its
	// LeafNodeTBS does not verify with its signature_key, including a leaf
	// moved to an index other than the one it signed (RFC 9420 §7.2, §7.3).
	ErrLeafSignatureInvalid = errors.New("leaf node signature invalid")

	// ErrLifetimeExpired reports a key_package LeafNode whose lifetime does
	// not contain the current time, or whose total lifetime exceeds the
	// application's maximum (RFC 9420 §7.2, §7.3).
	ErrLifetimeExpired = errors.New("leaf node lifetime not valid now")

	// ErrLeafNodeSource reports a LeafNode whose leaf_node_source does not
	// fit where it appears: key_package in a KeyPackage, update in an Update
	// proposal, commit in an UpdatePath (RFC 9420 §7.3).
	ErrLeafNodeSource = errors.New("wrong leaf node source")

	// ErrRequiredCapabilities reports a LeafNode that does not list an
	// extension, proposal or credential type named by the group's
	// required_capabilities extension (RFC 9420 §7.3, §11.1).
	ErrRequiredCapabilities = errors.New("leaf lacks a required capability")

	// ErrCredentialTypeUnsupported reports a credential type that a member
	// cannot handle: the leaf's own credential type missing from its
	// capabilities, a credential type not supported by every member, or a
	// leaf not supporting a credential type in use by another member
	// (RFC 9420 §7.2, §7.3).
	ErrCredentialTypeUnsupported = errors.New("credential type not supported by all members")

	// ErrExtensionUnsupported reports a non-default extension in a LeafNode
	// that its own capabilities do not list (RFC 9420 §7.2, §7.3).
	ErrExtensionUnsupported = errors.New("leaf extension not in its capabilities")

	// ErrCredentialInvalid reports a credential the application's validator
	// rejected (RFC 9420 §5.3.1, §7.3).
	ErrCredentialInvalid = errors.New("credential rejected")

	// ErrUpdatePathShape reports an UpdatePath whose node count differs from
	// the sender's filtered direct path, or whose encrypted_path_secret count
	// differs from the size of the copath node's resolution
	// (RFC 9420 §7.6).
	ErrUpdatePathShape = errors.New("update path does not fit the tree")

	// ErrPathKeyMismatch reports a public key derived from a decrypted path
	// secret that differs from the key the UpdatePath (or the tree) holds for
	// that node (RFC 9420 §7.5, §12.4.3.1).
	ErrPathKeyMismatch = errors.New("derived public key does not match")

	// ErrNoDecryptionKey reports an UpdatePath the member cannot decrypt:
	// it is the sender, or it holds no private key for any node of the
	// resolution its path secret was encrypted to (RFC 9420 §7.5).
	ErrNoDecryptionKey = errors.New("no private key to decrypt the path secret")
)
