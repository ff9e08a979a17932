// Runs the meshchat benchmark scenario with ts-mls, an independent
// TypeScript implementation of MLS (RFC 9420), and prints one JSON object
// per operation on stdout: {"impl","n","op","count","ms"} where ms is the
// total wall time of count operations. cmd/meshbench runs the same scenario
// with our Go implementation and compares the two.
//
// Scenario (cipher suite 1, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519):
//   keypackage: N key packages generated;
//   create:     the creator makes the group;
//   add:        one commit adding the N-1 others, Welcome with ratchet tree;
//   join:       one new member joins from that Welcome (validating the tree);
//   update:     that member commits a fresh path (an empty commit);
//   process:    the creator processes the update commit;
//   seal/open:  the creator sends M 100-byte application messages, the
//               member opens them.
// Every message goes through its wire encoding and back.
//
// A warm-up run (N=4) precedes the measured one so that the JIT has
// compiled the hot paths.
//
// usage: node tsmls.mjs N [M]
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  joinGroup,
  processPrivateMessage,
  processPublicMessage,
  getCiphersuiteImpl,
  getCiphersuiteFromName,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  encodeMlsMessage,
  decodeMlsMessage,
} from "ts-mls"

const n = parseInt(process.argv[2] ?? "10", 10)
const m = parseInt(process.argv[3] ?? "100", 10)
const enc = new TextEncoder()

function timer(report) {
  return async (op, count, f) => {
    const t0 = performance.now()
    const r = await f()
    report(op, count, performance.now() - t0)
    return r
  }
}

function roundTrip(msg) {
  const bytes = encodeMlsMessage(msg)
  const [decoded] = decodeMlsMessage(bytes, 0)
  return [decoded, bytes.length]
}

const impl = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"))

async function scenario(n, m, report) {
  const timed = timer(report)
  const kps = await timed("keypackage", n, async () => {
    const out = []
    for (let i = 0; i < n; i++) {
      const cred = { credentialType: "basic", identity: enc.encode(`member-${i}`) }
      out.push(await generateKeyPackage(cred, defaultCapabilities(), defaultLifetime, [], impl))
    }
    return out
  })

  let alice = await timed("create", 1, () =>
    createGroup(enc.encode("peer benchmark group"), kps[0].publicPackage, kps[0].privatePackage, [], impl),
  )

  const add = await timed("add", 1, async () => {
    const proposals = kps.slice(1).map((kp) => ({ proposalType: "add", add: { keyPackage: kp.publicPackage } }))
    const r = await createCommit(
      { state: alice, cipherSuite: impl },
      { extraProposals: proposals, ratchetTreeExtension: true, wireAsPublicMessage: true },
    )
    const [welcome, size] = roundTrip({ welcome: r.welcome, wireformat: "mls_welcome", version: "mls10" })
    return { state: r.newState, welcome: welcome.welcome, size }
  })
  alice = add.state

  const joiner = kps[n - 1]
  let bob = await timed("join", 1, () => joinGroup(add.welcome, joiner.publicPackage, joiner.privatePackage, emptyPskIndex, impl))

  const update = await timed("update", 1, async () => {
    const r = await createCommit({ state: bob, cipherSuite: impl }, { wireAsPublicMessage: true })
    const [commit] = roundTrip(r.commit)
    return { state: r.newState, commit }
  })
  bob = update.state

  await timed("process", 1, async () => {
    const r = await processPublicMessage(alice, update.commit.publicMessage, emptyPskIndex, impl)
    alice = r.newState
  })

  const payload = new Uint8Array(100)
  const sealed = await timed("seal", m, async () => {
    const out = []
    for (let i = 0; i < m; i++) {
      const r = await createApplicationMessage(alice, payload, impl)
      alice = r.newState
      const [msg] = roundTrip({ privateMessage: r.privateMessage, wireformat: "mls_private_message", version: "mls10" })
      out.push(msg)
    }
    return out
  })

  await timed("open", m, async () => {
    for (const msg of sealed) {
      const r = await processPrivateMessage(bob, msg.privateMessage, emptyPskIndex, impl)
      bob = r.newState
      if (r.kind === "newState" || r.message.length !== 100) throw new Error("expected a 100-byte application message")
    }
  })
}

// A small run first, unreported, so that the JIT has compiled the hot paths.
await scenario(4, 10, () => {})
await scenario(n, m, (op, count, ms) => console.log(JSON.stringify({ impl: "ts-mls", n, op, count, ms })))
