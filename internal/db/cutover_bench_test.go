package db_test

import (
	"context"
	"testing"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
)

// BenchmarkCutover100k times the legacy cutover (migration 4 alone) on 100,000 model configs and
// 100,000 user keys. Run: go test -run '^$' -bench Cutover100k -benchtime 1x ./internal/db/
// (the test cluster runs with fsync off; a production disk adds its flush time).
func BenchmarkCutover100k(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		pool := pgtest.Connect(b, pgtest.NewEmptyDatabase(b))
		m, err := db.NewMigrator(pool, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.UpTo(ctx, 1); err != nil {
			b.Fatal(err)
		}
		seedMany(b, pool, 100_000)
		if _, err := m.UpTo(ctx, 3); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := m.UpTo(ctx, db.CutoverVersion); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		m.Close()
	}
}
