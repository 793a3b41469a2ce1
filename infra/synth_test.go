package main

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// synthesized is one stage's stack, synthesized once per test binary: the
// jsii runtime (Node.js) makes each synth cost seconds.
type synthesized struct {
	stack    *Stack
	template assertions.Template
	json     map[string]any
}

var (
	synthMu sync.Mutex
	synths  = map[string]*synthesized{}
)

// synth builds the stack for a stage the way main does (with the
// AwsSolutions checks), against stand-in bootstraps: these tests are about
// the infrastructure, not the binaries.
func synth(t *testing.T, stageName string) *synthesized {
	t.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	if s, ok := synths[stageName]; ok {
		return s
	}
	stage, err := StageNamed(stageName)
	if err != nil {
		t.Fatal(err)
	}
	dist := lambdaDist(t)
	outdir, err := os.MkdirTemp(scratch, "cdk.out-")
	if err != nil {
		t.Fatal(err)
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(outdir)})
	st := NewStack(app, "Kcguard-"+stage.Name, &StackProps{Stage: stage, LambdaDist: dist, AlertEmail: "ops@example.com"})
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	tpl := assertions.Template_FromStack(st.Stack, nil)
	s := &synthesized{stack: st, template: tpl, json: (*tpl.ToJSON())}
	synths[stageName] = s
	return s
}

// scratch holds what outlives single tests (t.TempDir would vanish with
// the first one): stand-in bootstraps and cloud assemblies.
var scratch string

// lambdaDist is a folder with an empty bootstrap per function.
var (
	distOnce sync.Once
	distDir  string
	distErr  error
)

func lambdaDist(t *testing.T) string {
	distOnce.Do(func() {
		distDir, distErr = os.MkdirTemp(scratch, "dist-")
		if distErr != nil {
			return
		}
		for _, f := range Functions {
			dir := filepath.Join(distDir, f.Name)
			if distErr = os.MkdirAll(dir, 0o755); distErr != nil {
				return
			}
			if distErr = os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); distErr != nil {
				return
			}
		}
	})
	if distErr != nil {
		t.Fatal(distErr)
	}
	return distDir
}

func TestMain(m *testing.M) {
	var err error
	if scratch, err = os.MkdirTemp("", "kcguard-infra-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	jsii.Close()
	os.RemoveAll(scratch)
	os.Exit(code)
}
