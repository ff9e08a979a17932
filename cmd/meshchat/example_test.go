package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/meshchat/meshchat/node"
)

// Example_embedding is the README's embedding example (README.md, "Embed a
// node in a Go program"; TestReadmeEmbedding keeps the two identical): two
// nodes in one program, an open group, a join by topic ID and one message.
func Example_embedding() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dirA, _ := os.MkdirTemp("", "alice-")
	dirB, _ := os.MkdirTemp("", "bob-")
	defer os.RemoveAll(dirA)
	defer os.RemoveAll(dirB)

	// README-BEGIN
	alice, err := node.New(ctx, node.Config{
		DataDir:     dirA, // identity key and store; created with mode 0700
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := node.New(ctx, node.Config{
		DataDir:        dirB,
		ListenAddrs:    []string{"/ip4/127.0.0.1/tcp/0"},
		BootstrapPeers: alice.Addrs(), // full multiaddrs ending in /p2p/<peer ID>
	})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	group, err := alice.CreateGroup(ctx, node.GroupOptions{Name: "team", Policy: node.Open})
	if err != nil {
		log.Fatal(err)
	}
	// Join waits until a member (here Alice's node) has admitted Bob.
	bobsGroup, err := bob.Join(ctx, group.TopicID().String())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := group.Send(ctx, []byte("hello, Bob")); err != nil {
		log.Fatal(err)
	}
	select {
	case m := <-bobsGroup.Messages():
		fmt.Printf("from Alice: %v, epoch %d: %s\n", m.Sender == alice.ID(), m.Epoch, m.Data)
	case <-ctx.Done():
		log.Fatal("no message")
	}
	// README-END

	// Output:
	// from Alice: true, epoch 1: hello, Bob
}
