package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, documented in the README and `kcguard --help`.
const (
	exitOK     = 0
	exitChecks = 1  // a checklist, health check or migration found problems
	exitFailed = 2  // the command could not do its work (AWS, Keycloak, configuration)
	exitUsage  = 64 // unknown command, bad flag or argument (BSD EX_USAGE)
)

// usage marks an error the caller made in the command line.
type usage struct{ err error }

func (u usage) Error() string { return u.err.Error() }
func (u usage) Unwrap() error { return u.err }

func usageError(err error) error { return usage{err} }

func exitCode(err error) int {
	var u usage
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errChecksFailed):
		return exitChecks
	case errors.As(err, &u), strings.HasPrefix(err.Error(), "required flag(s)"):
		return exitUsage
	}
	return exitFailed
}

// strictTree makes every command group refuse what it does not know: cobra
// only checks the root's subcommands, so `kcguard sync sync-now` used to
// print help and exit 0, and old scripts "succeeded". A group called alone
// still prints its help. Argument checks become usage errors too.
func strictTree(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return usageError(fmt.Errorf("unknown command %q for %q; see %s --help", args[0], cmd.CommandPath(), cmd.CommandPath()))
		}
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError(err)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		strictTree(sub)
	}
}

// jsonFlag gives a status-like command --json. Checklists (✓/✗) print
// their checks as one JSON array at the end, whatever the outcome.
func jsonFlag(e *env, c *cobra.Command) {
	c.Flags().BoolVar(&e.asJSON, "json", false, "print JSON instead of text")
	run := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		if e.asJSON && e.checks != nil {
			if jerr := e.printJSON(e.checks); jerr != nil && err == nil {
				err = jerr
			}
		}
		return err
	}
}

// checkJSON is one ✓/✗ line as JSON.
type checkJSON struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// jsonCommands are the status-like commands, by path under the root.
var jsonCommands = [][]string{
	{"breaker", "status"}, {"breaker", "open"}, {"breaker", "close"}, {"breaker", "reset"},
	{"sync", "status"}, {"sync", "test"}, {"sessions", "list"}, {"users", "show"},
	{"migrate", "status"}, {"config", "validate"}, {"list-sessions"},
}

func addJSONFlags(e *env, root *cobra.Command) {
	for _, path := range jsonCommands {
		c, rest, err := root.Find(path)
		if err != nil || len(rest) > 0 || c.Name() != path[len(path)-1] {
			panic(fmt.Sprintf("addJSONFlags: no command %v", path))
		}
		jsonFlag(e, c)
	}
}

// deprecatedAlias is an old command name kept for the old runbooks: a
// fresh copy of the command at path under group (path empty: the group
// itself), renamed, that warns on every use and is left out of help.
func deprecatedAlias(e *env, old string, group func(*env) *cobra.Command, path ...string) *cobra.Command {
	c := group(e)
	replacement := c.Name()
	for _, name := range path {
		var next *cobra.Command
		for _, sub := range c.Commands() {
			if sub.Name() == name {
				next = sub
			}
		}
		if next == nil {
			panic("deprecatedAlias: no command " + name) // a programming error, caught by the tests
		}
		c.RemoveCommand(next)
		c, replacement = next, replacement+" "+name
	}
	c.Use = old + strings.TrimPrefix(c.Use, c.Name())
	c.Deprecated = fmt.Sprintf("use \"kcguard %s\"", replacement)
	return c
}
