package cache

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

func testKey(i int) Key {
	var k Key
	binary.BigEndian.PutUint64(k[:], uint64(i))
	return k
}

func entryOfSize(size int) *Entry {
	e := &Entry{Database: "d"}
	e.Reply = make([]byte, size-e.Size())
	return e
}

func TestMemoryByteBound(t *testing.T) {
	const maxBytes, size = 1 << 20, 4 << 10
	m, err := NewMemory(maxBytes, 64<<10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 * maxBytes / size {
		if !m.Set(testKey(i), entryOfSize(size)) {
			t.Fatalf("entry %d refused", i)
		}
	}
	m.c.CleanUp()
	if got := m.Bytes(); got > maxBytes || got < maxBytes/2 {
		t.Fatalf("holds %d bytes, want at most %d (and not nearly empty)", got, maxBytes)
	}
	if got, want := m.Len(), int(m.Bytes())/size; got != want {
		t.Fatalf("Len = %d, want %d (Bytes/size)", got, want)
	}
}

func TestMemoryRefusesLargeEntry(t *testing.T) {
	m, err := NewMemory(1<<20, 1000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Set(testKey(1), entryOfSize(1000)) {
		t.Fatal("entry of exactly max_entry_bytes refused")
	}
	if m.Set(testKey(2), entryOfSize(1001)) {
		t.Fatal("entry over max_entry_bytes taken")
	}
	if _, ok := m.Get(testKey(2)); ok {
		t.Fatal("refused entry is there")
	}
}

// TestMemoryTTL waits on the condition (the entry gone), bounded, rather
// than sleeping a guessed time.
func TestMemoryTTL(t *testing.T) {
	m, err := NewMemory(1<<20, 1<<16, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	short := entryOfSize(200)
	short.TTL = 20 * time.Millisecond
	m.Set(testKey(1), short)
	m.Set(testKey(2), entryOfSize(200)) // the default: an hour
	set := time.Now()
	if _, ok := m.Get(testKey(1)); !ok {
		t.Fatal("entry gone at once")
	}
	for {
		if _, ok := m.Get(testKey(1)); !ok {
			break
		}
		if time.Since(set) > 5*time.Second {
			t.Fatal("entry with a 20ms TTL still there after 5s")
		}
		time.Sleep(time.Millisecond)
	}
	if _, ok := m.Get(testKey(2)); !ok {
		t.Fatal("entry with the default TTL expired")
	}
}

func TestMemoryConcurrent(t *testing.T) {
	m, err := NewMemory(64<<10, 4<<10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := testKey(i % 97)
				if i%3 == g%3 {
					m.Set(k, entryOfSize(1<<10))
				} else if e, ok := m.Get(k); ok && e.Size() != 1<<10 {
					t.Errorf("got an entry of %d bytes", e.Size())
				}
			}
		})
	}
	wg.Wait()
	m.c.CleanUp()
	if m.Bytes() > 64<<10 {
		t.Fatalf("holds %d bytes over the 64 KiB bound", m.Bytes())
	}
}

func TestMemoryGetNoAllocs(t *testing.T) {
	m, err := NewMemory(1<<20, 1<<16, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	m.Set(testKey(1), entryOfSize(4096))
	if n := testing.AllocsPerRun(1000, func() {
		if e, ok := m.Get(testKey(1)); !ok || len(e.Reply) == 0 {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Fatalf("Get allocates %v times", n)
	}
}

// BenchmarkMemoryGetHit is the L1 hit path (run with -benchmem: 0 allocs).
func BenchmarkMemoryGetHit(b *testing.B) {
	m, err := NewMemory(64<<20, 1<<16, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	const n = 1024
	for i := range n {
		m.Set(testKey(i), entryOfSize(4096))
	}
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = testKey(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := m.Get(keys[i%n]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}
