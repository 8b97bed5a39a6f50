// Package deploy holds no code: it is the home of the files pgone is
// deployed with, and of the tests that check each of them.
//
//   - prometheus/alerts.yml and alerts_test.yml: `promtool check rules` and
//     `promtool test rules` (prometheus_test.go).
//   - grafana/pgone.json: the dashboard; its panel queries and the alert
//     expressions are evaluated by a real Prometheus scraping a real pgone in
//     cmd/pgone/deploy_test.go (it needs pgone's serve in process).
//   - compose/: the whole stack for docker compose; compose_test.go parses
//     it and checks that mounted files exist and ports agree, without docker.
//   - compose/alertmanager.yml: `amtool check-config` and `amtool config
//     routes test` for every alert (alertmanager_test.go); the
//     real-Prometheus test runs a real AlertManager with it.
//   - helm/pgone/: the chart; helm_test.go runs `helm lint` and `helm template`.
//
// The tools (promtool from Debian's prometheus package, amtool from its
// prometheus-alertmanager package, helm built from its Go module) are
// installed by scripts/deps.sh; a missing one fails the test
// with what to install, it never skips.
package deploy
