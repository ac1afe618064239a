package operations_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// begins counts the calls the server began: a call refused by the transport never begins, and
// the authenticator (an interceptor) runs only in calls that did.
type begins struct{ n atomic.Int64 }

func (b *begins) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (b *begins) HandleRPC(_ context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.Begin); ok {
		b.n.Add(1)
	}
}
func (b *begins) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (b *begins) HandleConn(context.Context, stats.ConnStats)                       {}

// padded adds metadata fields of 1 KiB each, about n bytes in all.
func padded(ctx context.Context, n int) context.Context {
	value := strings.Repeat("p", 1024-32-len("x-pad-0000"))
	for i := 0; n > 0; i++ {
		size := min(n, 1024)
		ctx = metadata.AppendToOutgoingContext(ctx, fmt.Sprintf("x-pad-%04d", i), value[:max(size-32-len("x-pad-0000"), 0)])
		n -= size
	}
	return ctx
}

// TestOversizedMetadataIsRefusedBeforeAuthentication: the server announces server.MaxHeaderBytes
// (docs/CONTRACT.md §15). A grpc-go client refuses to send more; a client that ignores the
// announcement and sends 1 MiB of metadata without a token gets its stream reset or its connection
// closed, and the call never begins, so the authenticator never sees it. Calls under the limit,
// a few hundred bytes under it included, work.
func TestOversizedMetadataIsRefusedBeforeAuthentication(t *testing.T) {
	seen := &begins{}
	e := testenv.New(t, testenv.Options{Configure: func(c *server.Config) { c.StatsHandler = seen }})
	list := func(ctx context.Context) error {
		_, err := e.Admin.ListProviders(ctx, &resolverv1.ListProvidersRequest{})
		return err
	}

	// A grpc-go client: refused before anything is sent.
	before := seen.n.Load()
	err := list(padded(context.Background(), 1<<20))
	if status.Code(err) != codes.Internal {
		t.Fatalf("a grpc-go client sending 1 MiB of metadata: %v, want INTERNAL (refused by the client)", err)
	}
	t.Logf("a grpc-go client sending 1 MiB of metadata sees: %v", err)
	if n := seen.n.Load() - before; n != 0 {
		t.Fatalf("%d calls began on the server", n)
	}

	// A client that ignores the announcement. First, as a control, calls without a token under the
	// limit, in one frame and in several: they begin and are answered (UNAUTHENTICATED).
	path := resolverv1.AdminService_ListProviders_FullMethodName
	for _, c := range []struct{ padding, frame int }{{0, 16 << 10}, {server.MaxHeaderBytes - 1024, 4 << 10}} {
		before = seen.n.Load()
		if got := rawCall(t, e.Addr, path, c.padding, c.frame); got != "response" {
			t.Fatalf("a raw call without a token, %d bytes of padding in frames of %d: %s, want a response", c.padding, c.frame, got)
		}
		if n := seen.n.Load() - before; n != 1 {
			t.Fatalf("a raw call under the limit: %d calls began, want 1", n)
		}
	}
	before = seen.n.Load()
	got := rawCall(t, e.Addr, path, 1<<20, 16<<10)
	if got == "response" {
		t.Fatal("a raw call with 1 MiB of metadata was answered")
	}
	t.Logf("a client ignoring the limit and sending 1 MiB of metadata sees: %s", got)
	if n := seen.n.Load() - before; n != 0 {
		t.Fatalf("the oversized raw call began on the server (%d calls): it reached the authenticator", n)
	}
	if strings.Contains(e.Logs.String(), "x-pad") {
		t.Error("the oversized metadata reached the log")
	}

	// Under the limit: a normal call, and one a few hundred bytes under (the token, the method and
	// gRPC's own headers take about 600 bytes; 15 KiB of padding leaves about 400).
	if err := list(e.AsAdmin()); err != nil {
		t.Fatalf("a normal call: %v", err)
	}
	if err := list(padded(e.AsAdmin(), server.MaxHeaderBytes-1024)); err != nil {
		t.Fatalf("a call with %d bytes of padding: %v", server.MaxHeaderBytes-1024, err)
	}
	if err := list(padded(e.AsAdmin(), server.MaxHeaderBytes)); status.Code(err) != codes.Internal {
		t.Fatalf("a call with %d bytes of padding (over the limit with the other headers): %v, want INTERNAL", server.MaxHeaderBytes, err)
	}

	// The health-only listener has its own, smaller, limit.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.Server.ServeHealth(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	if _, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a probe on the health listener: %v", err)
	}
	if _, err := health.Check(padded(context.Background(), server.HealthMaxHeaderBytes), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Internal {
		t.Fatalf("a probe with %d bytes of metadata on the health listener: %v, want INTERNAL", server.HealthMaxHeaderBytes, err)
	}
}

// rawCall makes one unary call over a bare HTTP/2 connection that ignores the server's
// SETTINGS_MAX_HEADER_LIST_SIZE, with padding bytes of metadata (fields of 1 KiB) and no token,
// its header block cut into frames of maxFrame bytes, and says what came back: "response" (response headers on the stream), "reset" (RST_STREAM),
// "goaway" (GOAWAY) or "closed" (the connection ended).
func rawCall(t *testing.T, addr, path string, padding, maxFrame int) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))

	var block []byte
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", addr},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		block = hpackLiteral(block, f[0], f[1])
	}
	value := strings.Repeat("p", 1024-32-len("x-pad-0000"))
	for i := 0; i*1024 < padding; i++ {
		block = hpackLiteral(block, fmt.Sprintf("x-pad-%04d", i), value)
	}

	var out []byte
	out = append(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"...)
	out = h2Frame(out, 0x4, 0, 0, nil) // SETTINGS (none)
	maxFrame = min(maxFrame, 16<<10)   // the smallest SETTINGS_MAX_FRAME_SIZE, which every peer takes
	for first := true; first || len(block) > 0; first = false {
		n := min(len(block), maxFrame)
		typ, flags := byte(0x9), byte(0) // CONTINUATION
		if first {
			typ = 0x1 // HEADERS
		}
		if n == len(block) {
			flags |= 0x4 // END_HEADERS
		}
		out = h2Frame(out, typ, flags, 1, block[:n])
		block = block[n:]
	}
	out = h2Frame(out, 0x0, 0x1, 1, make([]byte, 5)) // DATA, END_STREAM: an empty request message
	// The server may close the connection while we write; what it sent first is still read.
	writeErr := make(chan error, 1)
	go func() { _, err := conn.Write(out); writeErr <- err }()
	defer func() { <-writeErr }()

	hdr := make([]byte, 9)
	for {
		if _, err := io.ReadFull(conn, hdr); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server neither answered nor refused within 10s")
			}
			return "closed"
		}
		length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		typ, stream := hdr[3], binary.BigEndian.Uint32(hdr[5:])&0x7fffffff
		if _, err := io.CopyN(io.Discard, conn, int64(length)); err != nil {
			return "closed"
		}
		// The server's SETTINGS go unacknowledged: an acknowledgement written now could land
		// between the request's HEADERS and CONTINUATION frames, and the server does not insist.
		switch {
		case typ == 0x1 && stream == 1:
			return "response"
		case typ == 0x3 && stream == 1:
			return "reset"
		case typ == 0x7:
			return "goaway"
		}
	}
}

func h2Frame(b []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	b = binary.BigEndian.AppendUint32(b, stream)
	return append(b, payload...)
}

// hpackLiteral encodes a header field as a literal without indexing, with a new name and no
// Huffman coding (RFC 7541 §6.2.2).
func hpackLiteral(b []byte, name, value string) []byte {
	b = append(b, 0x00)
	for _, s := range []string{name, value} {
		b = hpackLength(b, len(s))
		b = append(b, s...)
	}
	return b
}

// hpackLength encodes n with a 7-bit prefix (RFC 7541 §5.1).
func hpackLength(b []byte, n int) []byte {
	if n < 127 {
		return append(b, byte(n))
	}
	b = append(b, 127)
	for n -= 127; n >= 128; n >>= 7 {
		b = append(b, byte(n&0x7f|0x80))
	}
	return append(b, byte(n))
}
