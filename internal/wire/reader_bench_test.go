package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
)

// Micro-benchmarks of the framing hot path. `make bench-micro` runs them
// with -count 6 -benchmem; compare two runs with benchstat.

// benchFrame builds one message: type, int32 length, body.
func benchFrame(typ byte, body []byte) []byte {
	f := make([]byte, HeaderLen, HeaderLen+len(body))
	f[0] = typ
	binary.BigEndian.PutUint32(f[1:], uint32(4+len(body)))
	return append(f, body...)
}

// dataRow encodes a DataRow with the given column values.
func dataRow(cols ...string) []byte {
	body := binary.BigEndian.AppendUint16(nil, uint16(len(cols)))
	for _, c := range cols {
		body = binary.BigEndian.AppendUint32(body, uint32(len(c)))
		body = append(body, c...)
	}
	return benchFrame('D', body)
}

// replyStream is a server reply as pgbench -S gets it, repeated: a
// RowDescription, DataRows, CommandComplete and ReadyForQuery per query;
// rows is the number of DataRows per reply.
func replyStream(replies, rows int) []byte {
	rowDesc := benchFrame('T', append([]byte("\x00\x01abalance\x00"), make([]byte, 18)...))
	row := dataRow("123456", "some text value of a typical width", "2024-01-01 00:00:00+00")
	cc := benchFrame('C', []byte("SELECT 1\x00"))
	rfq := benchFrame('Z', []byte{'I'})
	var b bytes.Buffer
	for range replies {
		b.Write(rowDesc)
		for range rows {
			b.Write(row)
		}
		b.Write(cc)
		b.Write(rfq)
	}
	return b.Bytes()
}

// loopReader replays data forever without allocating.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func benchmarkReaderNext(b *testing.B, rows int) {
	data := replyStream(64, rows)
	frames := 64 * (rows + 3)
	r := NewReader(bufio.NewReaderSize(&loopReader{data: data}, 8192), 1<<20)
	b.SetBytes(int64(len(data) / frames))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderNext measures framing one message of a select-only reply
// (1 row) and of a 100-row result.
func BenchmarkReaderNext(b *testing.B) {
	b.Run("rows=1", func(b *testing.B) { benchmarkReaderNext(b, 1) })
	b.Run("rows=100", func(b *testing.B) { benchmarkReaderNext(b, 100) })
}

// BenchmarkReaderNextLarge measures a message larger than the buffer, which
// goes through the reader's scratch copy.
func BenchmarkReaderNextLarge(b *testing.B) {
	data := benchFrame('D', bytes.Repeat([]byte{'x'}, 64<<10))
	r := NewReader(bufio.NewReaderSize(&loopReader{data: data}, 8192), 1<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelay pumps whole replies from a reader to a buffered writer the
// way the proxy relays server output: write each frame, flush when no whole
// frame is buffered. One op is one reply (RowDescription, rows,
// CommandComplete, ReadyForQuery).
func BenchmarkRelay(b *testing.B) {
	for _, rows := range []int{1, 100} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			const replies = 64
			data := replyStream(replies, rows)
			r := NewReader(bufio.NewReaderSize(&loopReader{data: data}, 8192), 1<<20)
			w := bufio.NewWriterSize(io.Discard, 8192)
			b.SetBytes(int64(len(data) / replies))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for {
					typ, frame, err := r.Next()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := w.Write(frame); err != nil {
						b.Fatal(err)
					}
					if !r.HasFrame() {
						if err := w.Flush(); err != nil {
							b.Fatal(err)
						}
					}
					if typ == 'Z' {
						break
					}
				}
			}
		})
	}
}
