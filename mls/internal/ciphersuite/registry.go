package ciphersuite

// kem and signatureScheme are the per-suite public-key algorithms.
// TODO(ciphersuite): filled in by the HPKE and signature implementation.
type kem interface{}

type signatureScheme interface{}

var suites = map[ID]*Suite{
	X25519_AES128GCM_SHA256_Ed25519:        {id: X25519_AES128GCM_SHA256_Ed25519, newHash: newSHA256, aead: aeadAES128GCM},
	P256_AES128GCM_SHA256_P256:             {id: P256_AES128GCM_SHA256_P256, newHash: newSHA256, aead: aeadAES128GCM},
	X25519_CHACHA20POLY1305_SHA256_Ed25519: {id: X25519_CHACHA20POLY1305_SHA256_Ed25519, newHash: newSHA256, aead: aeadChaCha20Poly1305},
	X448_AES256GCM_SHA512_Ed448:            {id: X448_AES256GCM_SHA512_Ed448, newHash: newSHA512, aead: aeadAES256GCM},
	P521_AES256GCM_SHA512_P521:             {id: P521_AES256GCM_SHA512_P521, newHash: newSHA512, aead: aeadAES256GCM},
	X448_CHACHA20POLY1305_SHA512_Ed448:     {id: X448_CHACHA20POLY1305_SHA512_Ed448, newHash: newSHA512, aead: aeadChaCha20Poly1305},
	P384_AES256GCM_SHA384_P384:             {id: P384_AES256GCM_SHA384_P384, newHash: newSHA384, aead: aeadAES256GCM},
}
