package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what the user types goes into
// master, the program reads tty, and whatever the terminal echoes comes
// back out of master.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		// The no-echo claim needs a real terminal: never pass by skipping
		// where the suite is the gate.
		if os.Getenv("CI") != "" {
			t.Fatalf("no pseudo-terminals here: %v", err)
		}
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestPasswordPromptDoesNotEcho types a password on a real (pseudo)
// terminal: it is read, and the terminal shows none of it.
func TestPasswordPromptDoesNotEcho(t *testing.T) {
	master, tty := openPTY(t)
	const pw = "Typed-Secret-42"
	type result struct {
		pw  string
		err error
	}
	got := make(chan result, 1)
	go func() {
		p, err := readPassword(tty)
		got <- result{p, err}
	}()
	// Type once the prompt has switched echo off, as a person would.
	deadline := time.Now().Add(5 * time.Second)
	for {
		termios, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if termios.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the prompt never turned echo off")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := master.WriteString(pw + "\n"); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.pw != pw {
		t.Fatalf("read %q, %v; want the typed password", r.pw, r.err)
	}
	// Echo is back on now: a marker typed next is echoed after whatever
	// the terminal echoed while the password was typed.
	if _, err := master.WriteString("END\n"); err != nil {
		t.Fatal(err)
	}
	var echoed []byte
	buf := make([]byte, 256)
	for !strings.Contains(string(echoed), "END") {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		echoed = append(echoed, buf[:n]...)
	}
	if strings.Contains(string(echoed), "Typed") {
		t.Fatalf("the terminal echoed the password: %q", echoed)
	}
}
