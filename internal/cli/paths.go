package cli

import (
	"fmt"
	"os"
	"path/filepath"
)

// The default state directory: /var/lib/vigil for root (as packaged FIM
// tools do), the XDG state directory otherwise, so that an unprivileged
// trial run works without touching system paths.
func defaultStateDir() (string, error) {
	if os.Geteuid() == 0 {
		return "/var/lib/vigil", nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "vigil"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find state directory: %w (use --db)", err)
	}
	return filepath.Join(home, ".local", "state", "vigil"), nil
}

// statePaths resolves --db and --key. The key defaults to the directory of
// the baseline, so one --db flag is enough to run a self-contained trial.
type statePaths struct {
	db, key string
}

func resolveState(db, key string) (statePaths, error) {
	if db == "" {
		dir, err := defaultStateDir()
		if err != nil {
			return statePaths{}, err
		}
		db = filepath.Join(dir, "baseline.vgl")
	}
	db, err := filepath.Abs(db)
	if err != nil {
		return statePaths{}, fmt.Errorf("resolve --db: %w", err)
	}
	if key == "" {
		key = filepath.Join(filepath.Dir(db), "vigil.key")
	}
	return statePaths{db: db, key: key}, nil
}
