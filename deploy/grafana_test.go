package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("grafana/pgone.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/pgone.json: %v", err)
	}
	return d
}

// TestDashboardShape: a uid for provisioning, unique panel ids, and a query
// in every panel that is not a row.
func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" {
		t.Error("the dashboard has no uid (provisioning and links need one)")
	}
	ids := map[int]string{}
	for _, p := range d.Panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
		}
	}
}

// TestDashboardMetricsArePgones: every pgone_* name a panel uses is defined
// in pgone's source (cmd/pgone's real-Prometheus test then requires series).
func TestDashboardMetricsArePgones(t *testing.T) {
	defined := definedMetricNames(t)
	suffix := regexp.MustCompile(`_(bucket|sum|count)$`)
	checked := 0
	for _, p := range readDashboard(t).Panels {
		for _, tg := range p.Targets {
			for _, name := range regexp.MustCompile(`\bpgone_[a-z0-9_]+`).FindAllString(tg.Expr, -1) {
				checked++
				if !defined[name] && !defined[suffix.ReplaceAllString(name, "")] {
					t.Errorf("panel %q uses %s, which no package of pgone defines", p.Title, name)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no panel query names a pgone_* metric: the dashboard did not decode")
	}
}
