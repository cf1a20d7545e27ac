package rollout

import "testing"

func TestApplyVersion(t *testing.T) {
	enforce := Policy{Mode: ModeEnforce, MX: []string{"mx1.example.com"}, MaxAge: 604800}
	f := Facts{Policy: CurrentPolicy{Mode: ModeTesting, MX: []string{"mx1.example.com"}, MaxAge: 86400, Source: PolicySourceReports}}
	f.ApplyVersion(enforce, "20261130T041500Z")
	if f.Policy.Mode != ModeEnforce || f.Policy.Source != PolicySourcePublished || f.Policy.ID != "20261130T041500Z" || f.Policy.MaxAge != 604800 {
		t.Errorf("ApplyVersion over reports = %+v, want the published enforce policy", f.Policy)
	}
	live := Facts{Policy: CurrentPolicy{Mode: ModeTesting, Source: PolicySourceLive, ID: "1"}}
	live.ApplyVersion(enforce, "2")
	if live.Policy.Mode != ModeTesting || live.Policy.ID != "1" {
		t.Errorf("ApplyVersion over a live check = %+v, want the live policy kept", live.Policy)
	}
}
