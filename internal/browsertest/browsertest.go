// Package browsertest starts the headless Chromium that the browser tests
// drive (testreq.ChromiumPath; testreq.Chromium decides whether they run).
package browsertest

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tlsrpt/tlsrpt/internal/testreq"
)

// New starts headless Chromium with a private profile and a window of
// width × height pixels, stopped when the test ends. The context has no
// deadline: chromedp's first command on it starts the browser and must
// not be bounded; the tests bound their steps with a child context.
func New(t testing.TB, width, height int) context.Context {
	t.Helper()
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(testreq.ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	t.Cleanup(cancelA)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	return bctx
}

// Dialogs are the confirmation dialogs a browser showed (AcceptDialogs).
type Dialogs struct {
	mu    sync.Mutex
	texts []string
}

// AcceptDialogs accepts every JavaScript dialog of the browser of ctx (a
// context of New, before its first command) and keeps its text.
func AcceptDialogs(t testing.TB, ctx context.Context) *Dialogs {
	t.Helper()
	d := &Dialogs{}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			d.mu.Lock()
			d.texts = append(d.texts, e.Message)
			d.mu.Unlock()
			// The listener must not run commands itself.
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	})
	if err != nil {
		t.Fatalf("listening to the browser: %v", err)
	}
	return d
}

// Texts returns the texts of the dialogs shown so far, in order.
func (d *Dialogs) Texts() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.texts)
}
