package commitorder

import (
	"testing"
	"time"
)

// BenchmarkThreeWayRace: three commits race on each epoch, arriving worst
// first, so each epoch costs three applies and two switches.
func BenchmarkThreeWayRace(b *testing.B) {
	f := &fixture{o: newOwner("bench", nil)}
	f.tr = New(f.o.rootState(rootID), Config{}, t0)
	now := t0
	for i := 0; b.Loop(); i++ {
		cur := f.tr.Current()
		for _, leaf := range []uint32{2, 1, 0} {
			if _, err := f.tr.Receive(f.commit(cur.ID(), cur.Epoch(), leaf, nil, nil), now); err != nil {
				b.Fatal(err)
			}
		}
		now = now.Add(time.Second)
	}
}

func BenchmarkDedupFirst(b *testing.B) {
	d := NewDedup(0, 0)
	var id MessageID
	now := t0
	for i := 0; b.Loop(); i++ {
		id[0], id[1], id[2] = byte(i), byte(i>>8), byte(i>>16)
		d.First(id, now)
		now = now.Add(time.Millisecond)
	}
}
