package main

import (
	"encoding/json"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress reports long work one item at a time: a bar on standard error
// when that is a terminal (an operator watching), else one JSON line per
// item on standard output (a script or a log collector reading).
type progress struct {
	bar   *progressbar.ProgressBar
	enc   *json.Encoder
	task  string
	total int
	done  int
}

// progressLine is the JSON line written per item when not on a terminal.
type progressLine struct {
	Task  string `json:"task"`
	Done  int    `json:"done"`
	Total int    `json:"total"`
	Item  any    `json:"item"`
}

func newProgress(stderr, stdout io.Writer, task string, total int) *progress {
	p := &progress{task: task, total: total}
	if isTerminal(stderr) {
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription(task), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	} else {
		p.enc = json.NewEncoder(stdout)
	}
	return p
}

// onTerminal reports whether a bar is drawn (the caller then prints a
// human summary rather than JSON).
func (p *progress) onTerminal() bool { return p.bar != nil }

// step records one finished item.
func (p *progress) step(item any) {
	p.done++
	if p.bar != nil {
		_ = p.bar.Add(1)
		return
	}
	_ = p.enc.Encode(progressLine{Task: p.task, Done: p.done, Total: p.total, Item: item})
}

// interrupt clears the bar so a line can be printed above it.
func (p *progress) interrupt() {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
}

// finish removes the bar.
func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
