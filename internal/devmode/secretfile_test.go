package devmode

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteSecretFile: the file ends up 0600 with the content, written through nothing another
// user prepared (a symlink at a predictable temporary name), with no temporary file left.
func TestWriteSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.token")
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path+".tmp"); err != nil { // the name the old code wrote through
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSecretFile(path, "rsv_secret"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "rsv_secret\n" {
		t.Fatalf("content %q, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if v, _ := os.ReadFile(victim); string(v) != "untouched" {
		t.Errorf("wrote through the symlink: victim holds %q", v)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 { // admin.token, victim, the planted symlink
		for _, e := range entries {
			t.Log(e.Name())
		}
		t.Errorf("%d entries left in the directory, want 3", len(entries))
	}
}
