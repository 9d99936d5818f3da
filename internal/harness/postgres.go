package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway PostgreSQL cluster listening on 127.0.0.1.
type Postgres struct {
	Port int
	Dir  string
	bin  string
	cred *syscall.Credential
}

// pgBinDir finds the directory holding initdb and pg_ctl.
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) > 0 {
		return filepath.Dir(matches[len(matches)-1]), nil
	}
	return "", errors.New("initdb and pg_ctl not found (install PostgreSQL's server package, e.g. postgresql-15)")
}

// credential picks the user to run PostgreSQL as: initdb refuses root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and no postgres or nobody user to run PostgreSQL as")
}

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// StartPostgres initialises a cluster in a temporary directory and starts
// it on a free port. Durability is off: it is for tests. Set fsync to keep
// the defaults of a real server (for benchmarks).
func StartPostgres(fsync bool) (*Postgres, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "openmeet-pg-")
	if err != nil {
		return nil, fmt.Errorf("failed to create data dir: %w", err)
	}
	p := &Postgres{Dir: dir, bin: bin, cred: cred}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("failed to chown data dir: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := p.command("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb failed: %w\n%s", err, out)
	}
	opts := "-c listen_addresses=127.0.0.1 -c unix_socket_directories=" + dir + " -c max_connections=200"
	if !fsync {
		opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	for attempt := 0; ; attempt++ {
		if p.Port, err = FreePort(); err != nil {
			break
		}
		out, startErr := p.command("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60",
			"-o", opts+" -p "+strconv.Itoa(p.Port), "start").CombinedOutput()
		if startErr == nil {
			return p, nil
		}
		err = fmt.Errorf("pg_ctl start failed: %w\n%s", startErr, out)
		if attempt == 2 {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, err
}

// Stop stops the cluster and removes its directory.
func (p *Postgres) Stop() error {
	out, err := p.command("pg_ctl", "-D", filepath.Join(p.Dir, "data"), "-m", "fast", "-w", "stop").CombinedOutput()
	_ = os.RemoveAll(p.Dir)
	if err != nil {
		return fmt.Errorf("pg_ctl stop failed: %w\n%s", err, out)
	}
	return nil
}

// URI is the connection URI of database name.
func (p *Postgres) URI(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, name)
}

// CreateDatabase creates an empty database and returns its URI.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := p.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return p.URI(name), nil
}

// DropDatabase drops a database, closing its connections.
func (p *Postgres) DropDatabase(ctx context.Context, name string) error {
	return p.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func (p *Postgres) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, p.URI("postgres"))
	if err != nil {
		return fmt.Errorf("failed to connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("failed to run %q: %w", sql, err)
	}
	return nil
}

var (
	sharedPGOnce sync.Once
	sharedPG     *Postgres
	sharedPGErr  error
)

// PostgresURI returns the URI of a fresh, empty database on the package's
// shared cluster, dropped when the test ends.
func PostgresURI(tb testing.TB) string {
	tb.Helper()
	sharedPGOnce.Do(func() {
		sharedPG, sharedPGErr = StartPostgres(false)
		if sharedPGErr == nil {
			atStop(sharedPG.Stop)
		}
	})
	if sharedPGErr != nil {
		unavailable(tb, "PostgreSQL is not available: %v", sharedPGErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := UniqueName("test")
	uri, err := sharedPG.CreateDatabase(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sharedPG.DropDatabase(ctx, name); err != nil {
			tb.Logf("failed to drop %s: %v", name, err)
		}
	})
	return uri
}
