package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/alerts"
	"github.com/kcguard/kcguard/pkg/breaker"
)

// The alerts tell operators what to run: every `kcguard ...` command they
// name must exist.
func TestAlertCommandsExist(t *testing.T) {
	at := time.Now()
	var texts []string
	for _, ev := range []breaker.Event{
		{From: breaker.StateClosed, To: breaker.StateOpen, At: at, NextProbe: at.Add(time.Minute)},
		{From: breaker.StateHalfOpen, To: breaker.StateClosed, At: at, OpenedAt: at.Add(-time.Minute)},
	} {
		a, ok := alerts.Of(ev, 3, nil)
		if !ok {
			t.Fatalf("%s>%s: no alert", ev.From, ev.To)
		}
		texts = append(texts, a.Text)
	}
	cmds := regexp.MustCompile(`kcguard( [a-z-]+)+`).FindAllString(strings.Join(texts, "\n"), -1)
	if len(cmds) < 4 {
		t.Fatalf("the alerts name %d commands: %v", len(cmds), cmds)
	}
	root := newRoot()
	for _, c := range cmds {
		args := strings.Fields(c)[1:]
		found, rest, err := root.Find(args)
		if err != nil || len(rest) > 0 || found == root {
			t.Errorf("alert names %q, which is not a kcguard command (%v)", c, err)
		}
	}
}
