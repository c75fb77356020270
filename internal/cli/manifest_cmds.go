package cli

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/change/manifest"
	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fim"
)

// maxManifestFile bounds what manifest verify and submit read; Keyring.Open
// refuses more anyway.
const maxManifestFile = 64 << 20

func newManifestCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "manifest",
		Short: "Make, sign, verify and submit CI/CD deployment manifests",
		Long: `A deployment manifest lists the files a pipeline run deploys with their
SHA-256, signed with the pipeline's ed25519 key. A change whose new content is
what a valid manifest lists for the host is authorized by it. The format is in
docs/change-control.md.`,
	}
	c.AddCommand(newManifestKeygenCmd(e), newManifestSignCmd(e), newManifestVerifyCmd(e), newManifestSubmitCmd(e))
	return c
}

func newManifestKeygenCmd(e *env) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "keygen PIPELINE --out FILE",
		Short: "Generate a pipeline signing key; prints the verifier key to register in the policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("name the private key file with --out (keep it in the CI secret store)")
			}
			skey, vkey, err := note.GenerateKey(rand.Reader, args[0])
			if err != nil {
				return fmt.Errorf("generate key: %w", err)
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return fmt.Errorf("write private key: %w", err)
			}
			if _, err := f.WriteString(skey + "\n"); err != nil {
				f.Close()
				return fmt.Errorf("write private key: %w", err)
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return fmt.Errorf("write private key: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("write private key: %w", err)
			}
			fmt.Fprintln(e.stdout, vkey)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "file to create for the private key (mode 0600)")
	return c
}

func newManifestSignCmd(e *env) *cobra.Command {
	var keyFile, expires string
	var m manifest.Manifest
	c := &cobra.Command{
		Use:   "sign --key FILE --run ID --commit REV --author PERSON [--reviewer PERSON...] --host GLOB... FILE|DEST=SRC...",
		Short: "Hash the deployed files and print a signed manifest",
		Long: `Hashes each FILE (recorded under its absolute path) or SRC (recorded as DEST, an
absolute path: the file's path on the target hosts) and prints the signed
manifest on standard output.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			b, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("read signing key: %w", err)
			}
			signer, err := note.NewSigner(strings.TrimSpace(string(b)))
			if err != nil {
				return fmt.Errorf("read signing key %s: %w", keyFile, err)
			}
			m.Pipeline = signer.Name()
			m.Created = e.now().UTC().Truncate(time.Second)
			if expires != "" {
				d, err := time.ParseDuration(expires)
				if err != nil {
					return fmt.Errorf("--expires: %w", err)
				}
				t := m.Created.Add(d)
				m.Expires = &t
			}
			if m.Reviewers == nil {
				m.Reviewers = []string{}
			}
			slices.Sort(m.Reviewers)
			for _, a := range args {
				dest, src, ok := strings.Cut(a, "=")
				if !ok {
					if dest, err = filepath.Abs(a); err != nil {
						return err
					}
					src = a
				}
				sum, err := hashFile(src)
				if err != nil {
					return err
				}
				m.Files = append(m.Files, manifest.File{Path: dest, SHA256: sum})
			}
			slices.SortFunc(m.Files, func(a, b manifest.File) int { return fim.ComparePaths(a.Path, b.Path) })
			signed, err := manifest.Sign(&m, signer)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(signed)
			return err
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "the pipeline's private key file (from manifest keygen)")
	c.Flags().StringVar(&m.Run, "run", "", "pipeline run ID")
	c.Flags().StringVar(&m.Commit, "commit", "", "source revision deployed")
	c.Flags().StringVar(&m.Author, "author", "", "person ID of the commit's author")
	c.Flags().StringSliceVar(&m.Reviewers, "reviewer", nil, "person ID of a reviewer (repeatable)")
	c.Flags().StringSliceVar(&m.Hosts, "host", nil, "host glob the deploy targets (repeatable)")
	c.Flags().StringVar(&expires, "expires", "", "validity from now (e.g. 24h); default no expiry")
	return c
}

func hashFile(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return sum, fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return sum, fmt.Errorf("hash %s: not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("hash %s: %w", path, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

func readManifestFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestFile+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if len(b) > maxManifestFile {
		return nil, fmt.Errorf("read manifest %s: larger than %d bytes", path, maxManifestFile)
	}
	return b, nil
}

func describeManifest(v *manifest.Verified) string {
	m := v.Manifest
	return fmt.Sprintf("%s/%s: commit %s by %s, reviewed by %s, %d file%s for %s, signed by pipeline %s",
		m.Pipeline, m.Run, m.Commit, m.Author, strings.Join(m.Reviewers, ", "), len(m.Files), plural(len(m.Files)),
		strings.Join(m.Hosts, ", "), v.Pipeline.ID)
}

func newManifestVerifyCmd(e *env) *cobra.Command {
	var f ccFlags
	c := &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify a signed manifest against the pipeline keys of the policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			b, err := readManifestFile(args[0])
			if err != nil {
				return err
			}
			ctl, _, err := openControl(c.Context(), &f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			v, err := ctl.Classifier().Keyring().Open(b)
			if err != nil {
				return fmt.Errorf("manifest %s: %w", args[0], err)
			}
			fmt.Fprintf(e.stdout, "valid: %s\n", describeManifest(v))
			return nil
		},
	}
	f.register(c)
	return c
}

func newManifestSubmitCmd(e *env) *cobra.Command {
	var f ccFlags
	c := &cobra.Command{
		Use:   "submit FILE",
		Short: "Verify a signed manifest and store it, so the changes it lists are authorized",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			b, err := readManifestFile(args[0])
			if err != nil {
				return err
			}
			ctl, _, err := openControl(c.Context(), &f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			v, err := ctl.SubmitManifest(c.Context(), b)
			if err != nil {
				return err
			}
			if err := recordAction(c.Context(), &f, ctl.Policy(), evidence.KindUserAction, map[string]any{"action": "manifest-submit", "manifest": string(b)}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "submitted %s\n", describeManifest(v))
			return nil
		},
	}
	f.register(c)
	return c
}
