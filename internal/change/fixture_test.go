package change

import (
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/change/manifest"
	"github.com/vigilfim/vigil/internal/fim"
)

// The worked example of docs/change-control.md: alice requests CHG-1 for
// /etc/app/**, bob approves, carol (an implementer) edits
// /etc/app/app.conf in the window.

var (
	t0      = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) // the change
	opened  = t0.Add(-3 * time.Hour)
	approve = t0.Add(-90 * time.Minute)
)

func uidp(u uint32) *uint32 { return &u }

// sudoActor is a person who logged in as themselves and ran sudo: uid 0,
// login uid theirs.
func sudoActor(auid uint32, login string) *Actor {
	return &Actor{UID: 0, AUID: uidp(auid), User: "root", LoginUser: login, Exe: "/usr/bin/vim.basic", Comm: "vim"}
}

var (
	alice = sudoActor(1001, "alice")
	bob   = sudoActor(1002, "bob")
	carol = sudoActor(1003, "carol")
	dave  = sudoActor(1004, "dave")
	erin  = sudoActor(1005, "erin")
	dpkg  = &Actor{UID: 0, AUID: uidp(1003), User: "root", LoginUser: "carol", Exe: "/usr/bin/dpkg", Comm: "dpkg"}
)

// testConfig returns the example directory; pipelineKey is the deploy-app
// pipeline's verifier key.
func testConfig(pipelineKey string) *Config {
	return &Config{
		People: []PersonConfig{
			{ID: "alice", Name: "Alice", Logins: []string{"alice"}, UIDs: []uint32{1001}, Roles: []string{"app-admins"}},
			{ID: "bob", Logins: []string{"bob"}, UIDs: []uint32{1002}, Roles: []string{"change-approvers"}},
			{ID: "carol", Logins: []string{"carol"}, UIDs: []uint32{1003}, Roles: []string{"app-admins"}},
			{ID: "dave", Logins: []string{"dave"}, UIDs: []uint32{1004}, Roles: []string{"app-admins"}},
			{ID: "erin", Logins: []string{"erin"}, UIDs: []uint32{1005}, Roles: []string{"app-admins", "developer", "production-deployer"}},
			{ID: "frank", Logins: []string{"frank"}, UIDs: []uint32{1006}},
			{ID: "grace", Logins: []string{"grace"}, UIDs: []uint32{1007}, Roles: []string{"change-approvers"}, API: []string{"grace@example.com"}},
		},
		Roles: []RoleConfig{
			{Name: "app-admins", Implement: []Scope{{Paths: []string{"/etc/app/**"}, Hosts: []string{"app-*"}}}},
			{Name: "change-approvers", Approve: true},
			{Name: "developer"},
			{Name: "production-deployer", Implement: []Scope{{Paths: []string{"/srv/**"}}}},
		},
		Pipelines: []PipelineConfig{{ID: "deploy-app", Key: pipelineKey, Hosts: []string{"app-*"}, Paths: []string{"/srv/app/**"}}},
		SoD:       SoDConfig{ConflictingRoles: [][]string{{"developer", "production-deployer"}}},
	}
}

type keys struct {
	signer note.Signer
	vkey   string
	// stranger is a key no pipeline registered.
	stranger note.Signer
}

func newKeys(t testing.TB) keys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "deploy-app")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	skey2, _, err := note.GenerateKey(rand.Reader, "deploy-app")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := note.NewSigner(skey2)
	if err != nil {
		t.Fatal(err)
	}
	return keys{signer: s, vkey: vkey, stranger: s2}
}

func compile(t testing.TB, cfg *Config) *Classifier {
	t.Helper()
	c, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// chg1 is CHG-1 approved by bob.
func chg1() Request {
	return Request{
		ID: "CHG-1", Title: "Tune app", Requester: "alice", Implementers: []string{"carol", "erin"},
		Scope:  Scope{Paths: []string{"/etc/app/**"}, Hosts: []string{"app-*"}},
		Window: Window{Start: t0.Add(-time.Hour), End: t0.Add(2 * time.Hour)},
		State:  StateApproved, Opened: opened,
		Approvals: []Decision{{By: "bob", At: approve}},
	}
}

func digest(content string) fim.Digest {
	s := sha256.Sum256([]byte(content))
	return fim.Digest{Alg: fim.SHA256, Sum: s[:]}
}

// modified is a content change of path to the given content.
func modified(path, content string) fim.Change {
	old := &fim.Entry{Path: path, Type: fim.TypeFile, Mode: 0o644, Content: digest("old " + content)}
	nw := *old
	nw.Content = digest(content)
	nw.Inode++
	return fim.Change{Path: path, Kind: fim.Modified, Old: old, New: &nw,
		Changed: fim.AttrSet(fim.AttrContent) | fim.AttrSet(fim.AttrMtime) | fim.AttrSet(fim.AttrCtime) | fim.AttrSet(fim.AttrInode)}
}

func baseInput() Input {
	return Input{
		Change:   modified("/etc/app/app.conf", "workers = 8\n"),
		Host:     "app-1",
		At:       t0,
		Now:      t0.Add(time.Minute),
		Actor:    carol,
		Requests: []Request{chg1()},
	}
}

// appManifest is a manifest of the deploy-app pipeline for /srv/app.
func appManifest() *manifest.Manifest {
	exp := t0.Add(7 * 24 * time.Hour)
	return &manifest.Manifest{
		Pipeline: "deploy-app", Run: "412", Commit: "9fceb02", Author: "erin", Reviewers: []string{"bob", "erin"},
		Hosts: []string{"app-*"}, Created: t0.Add(-time.Hour), Expires: &exp,
		Files: []manifest.File{
			{Path: "/srv/app/bin/app", SHA256: sha256.Sum256([]byte("app v2"))},
			{Path: "/srv/app/static/index.html", SHA256: sha256.Sum256([]byte("<html>v2</html>"))},
		},
	}
}

func openManifest(t testing.TB, c *Classifier, s note.Signer, m *manifest.Manifest) (*manifest.Verified, error) {
	t.Helper()
	signed, err := manifest.Sign(m, s)
	if err != nil {
		t.Fatal(err)
	}
	return c.Keyring().Open(signed)
}
