//go:build unix

package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"sotto/agent/api"
)

// LockName is the file an agent holds locked for its lifetime.
const LockName = "agent.lock"

// RunningError reports that an agent already runs for a home.
type RunningError struct {
	Home string
	PID  int // 0: unknown
}

func (e *RunningError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("agent: an agent already runs for %s (pid %d)", e.Home, e.PID)
	}
	return fmt.Sprintf("agent: an agent already runs for %s", e.Home)
}

// ErrUnsafeHome is returned by Listen for a home folder others could
// write to.
var ErrUnsafeHome = errors.New("agent: the home folder must belong to this user and not be writable by its group or others")

// Listen opens the agent's socket in home (api.SocketName, mode 0600)
// after checking that home is safe and taking the home's agent lock;
// closing the listener removes the socket and releases the lock. On
// Linux, connections from another uid are closed unread.
func Listen(home string) (net.Listener, error) {
	st, err := os.Stat(home)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || st.Mode().Perm()&0o022 != 0 || (ok && int(sys.Uid) != os.Getuid()) {
		return nil, fmt.Errorf("%w (%s: %v)", ErrUnsafeHome, home, st.Mode().Perm())
	}
	lockPath := filepath.Join(home, LockName)
	lf, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(lockPath)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		lf.Close()
		return nil, &RunningError{Home: home, PID: pid}
	}
	fail := func(err error) (net.Listener, error) {
		lf.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := lf.Truncate(0); err != nil {
		return fail(err)
	}
	if _, err := lf.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return fail(err)
	}
	sock := api.Socket(home)
	// Holding the lock, a socket left here is a dead agent's.
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fail(err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return fail(err)
	}
	return &ownerListener{UnixListener: ln, lock: lf, uid: os.Getuid()}, nil
}

// ownerListener accepts only connections of the agent's own user (where
// the OS tells: peerUID) and holds the home's agent lock until closed.
type ownerListener struct {
	*net.UnixListener
	lock *os.File
	uid  int // the only uid served
}

func (l *ownerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if uid, ok := peerUID(c); ok && uid != l.uid {
			c.Close()
			continue
		}
		return c, nil
	}
}

func (l *ownerListener) Close() error {
	err := l.UnixListener.Close()
	l.lock.Close()
	return err
}

// Running reports the agent running for home: its pid (0: unknown) and
// whether one runs, from the home's agent lock.
func Running(home string) (int, bool) {
	lockPath := filepath.Join(home, LockName)
	lf, err := os.OpenFile(lockPath, os.O_RDONLY, 0)
	if err != nil {
		return 0, false
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		_ = unix.Flock(int(lf.Fd()), unix.LOCK_UN)
		return 0, false
	}
	b, _ := os.ReadFile(lockPath)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, true
}
