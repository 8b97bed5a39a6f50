package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// BinDirEnv overrides where BinDir looks for the PostgreSQL server binaries.
const BinDirEnv = "PGONE_PG_BINDIR"

// ErrNotInstalled matches (errors.Is) the errors returned when a required
// binary is missing; their text says what to install.
var ErrNotInstalled = errors.New("pgtest: required binary not installed")

type notInstalledError string

func (e notInstalledError) Error() string        { return string(e) }
func (e notInstalledError) Is(target error) bool { return target == ErrNotInstalled }

const postgresMissing = notInstalledError("PostgreSQL server binaries not found (initdb); on Debian: apt-get install -y postgresql (or run make deps)")

// BinDir returns the directory holding initdb, postgres and pg_basebackup.
// It tries, in order: $PGONE_PG_BINDIR, `pg_config --bindir`, the highest
// /usr/lib/postgresql/*/bin, and the directory of initdb on PATH. The search
// must stay in step with scripts/deps.sh.
func BinDir() (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		if isExecutable(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
		return "", notInstalledError(fmt.Sprintf("%s=%s has no initdb; unset it or point it at the PostgreSQL server bin directory (%s)", BinDirEnv, dir, postgresMissing))
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if dir != "" && isExecutable(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	if dir := highestDebianBinDir(); dir != "" {
		return dir, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	return "", postgresMissing
}

// highestDebianBinDir returns /usr/lib/postgresql/<highest major>/bin if it
// holds initdb, else "".
func highestDebianBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type candidate struct {
		dir     string
		version float64
	}
	var found []candidate
	for _, dir := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		if err != nil || !isExecutable(filepath.Join(dir, "initdb")) {
			continue
		}
		found = append(found, candidate{dir, v})
	}
	if len(found) == 0 {
		return ""
	}
	sort.Slice(found, func(i, j int) bool { return found[i].version > found[j].version })
	return found[0].dir
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// requireBinaries checks that each named program exists in dir.
func requireBinaries(dir string, names ...string) error {
	for _, name := range names {
		if !isExecutable(filepath.Join(dir, name)) {
			return notInstalledError(fmt.Sprintf("%s not found in %s; on Debian: apt-get install -y postgresql (or run make deps)", name, dir))
		}
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before the caller binds it; the Start
// functions retry with a new port when that happens.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
