package maintenance

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/summoner-bot/summoner/internal/human"
	"github.com/summoner-bot/summoner/storage"
)

// ReportAction is what ran for one minion, in the user's words.
type ReportAction string

// The actions a report lists.
const (
	ActionDump        ReportAction = "dump"
	ActionColdBackup  ReportAction = "cold backup"
	ActionTestRestore ReportAction = "test restore"
	ActionPrune       ReportAction = "prune"
)

// MinionResult is what one action did for one minion.
type MinionResult struct {
	Minion   string
	Action   ReportAction
	BackupID string        // the backup stored or checked, "" for none
	Size     int64         // bytes stored (or checked); 0 when not known
	Duration time.Duration // how long the action took
	// StoredOn names the destinations holding a good copy, by their config
	// names only: a backend's own name may show a host, a user or a path.
	StoredOn []string
	// MissedOn names the destinations that should have had a copy and did
	// not: the backup is safe elsewhere, but one copy is missing.
	MissedOn []string
	Verified bool   // the copy was read back, or the test restore matched
	Detail   string // a short note, e.g. "removed 3 old backups"
	Err      error  // the action failed
}

// Failed is whether the action failed outright.
func (r MinionResult) Failed() bool { return r.Err != nil }

// Report is the outcome of one run of a job.
type Report struct {
	Job      string // the job's name, "dump"
	Title    string // how messages name the job, "the nightly dump"
	Started  time.Time
	Duration time.Duration
	Results  []MinionResult
	// Err is a failure of the run as a whole (nothing could be listed, the
	// job crashed, the deadline passed before any minion was done).
	Err error
	// Skipped: the previous run was still going when this one was due.
	Skipped bool
	// SkippedMore counts the runs skipped while this one went on, after
	// the first skip (which was reported on its own).
	SkippedMore int
	// CatchUpOf is when the run was due, for a run caught up at start-up.
	CatchUpOf time.Time
	// MissedAt, when set, says the job did not run: it fell due then, while
	// Summoner was stopped, too long ago to catch up; it runs next at NextRun.
	MissedAt, NextRun time.Time
	// Digest, when set, makes this report the weekly digest.
	Digest *Digest
}

// Failed is whether anything in the run failed.
func (r Report) Failed() bool {
	if r.Err != nil {
		return true
	}
	for _, m := range r.Results {
		if m.Failed() {
			return true
		}
	}
	return false
}

// Render is the report as a chat message: failures first and loud, then
// the successes as a compact table.
func (r Report) Render() string {
	title := r.Title
	if title == "" {
		title = "the " + strings.ReplaceAll(r.Job, "_", " ") + " job"
	}
	if r.Skipped {
		return fmt.Sprintf("⏭️ %s was still running when the next one was due; this run was skipped.", reportCapital(title))
	}
	if !r.MissedAt.IsZero() {
		return fmt.Sprintf("⏭️ %s was due %s, while Summoner was stopped. That is more than a day ago, so it was not run late; it runs next %s.",
			reportCapital(title), r.MissedAt.Format(reportTimeLayout), r.NextRun.Format(reportTimeLayout))
	}
	if r.Digest != nil {
		return r.Digest.Render()
	}
	var b strings.Builder
	var failed, refused, warned, good []MinionResult
	for _, m := range r.Results {
		var room *NoRoomError
		switch {
		case errors.As(m.Err, &room):
			refused = append(refused, m)
		case m.Failed():
			failed = append(failed, m)
		case len(m.MissedOn) > 0:
			warned = append(warned, m)
		default:
			good = append(good, m)
		}
	}
	icon := "✅"
	if r.Failed() {
		icon = "⚠️"
	} else if len(warned) > 0 {
		icon = "🟡"
	}
	fmt.Fprintf(&b, "%s **%s**", icon, reportCapital(title))
	if len(r.Results) > 0 {
		fmt.Fprintf(&b, ": %d ok", len(good)+len(warned))
		if len(failed) > 0 {
			fmt.Fprintf(&b, ", **%d failed**", len(failed))
		}
		if len(refused) > 0 {
			fmt.Fprintf(&b, ", **%d did not run**", len(refused))
		}
	}
	if r.Duration > 0 {
		fmt.Fprintf(&b, " · took %s", reportDuration(r.Duration))
	}
	b.WriteString("\n")
	if !r.CatchUpOf.IsZero() {
		fmt.Fprintf(&b, "🔁 Run at start-up: it was due %s, while Summoner was stopped.\n", r.CatchUpOf.Format(reportTimeLayout))
	}
	// Errors in PublicError's words: a report goes to a channel, and the
	// log has the detail.
	if r.Err != nil {
		fmt.Fprintf(&b, "⚠️ **The run failed:** %s\n", PublicError(r.Err))
	}
	for _, m := range failed {
		fmt.Fprintf(&b, "⚠️ **%s: %s failed:** %s\n", m.Minion, m.Action, PublicError(m.Err))
	}
	for _, m := range refused {
		fmt.Fprintf(&b, "⚠️ **%s: %s did not run:** %s\n", m.Minion, m.Action, PublicError(m.Err))
	}
	for _, m := range warned {
		fmt.Fprintf(&b, "🟡 **%s: %s stored on %s only;** %s did not get a copy (the logs say why).\n",
			m.Minion, m.Action, reportList(m.StoredOn), reportList(m.MissedOn))
	}
	if len(r.Results) == 0 && r.Err == nil {
		b.WriteString("Nothing to do: no minion needed it.\n")
	}
	if ok := append(warned, good...); len(ok) > 0 {
		sort.SliceStable(ok, func(i, j int) bool { return ok[i].Minion < ok[j].Minion })
		b.WriteString("\n| Minion | What | Size | Took | Stored on | Verified |\n|---|---|---|---|---|---|\n")
		for _, m := range ok {
			size, where, verified := "–", "–", "–"
			if m.Size > 0 {
				size = human.Bytes(m.Size)
			}
			if len(m.StoredOn) > 0 {
				where = strings.Join(m.StoredOn, ", ")
			}
			if m.Verified {
				verified = "✅"
			}
			what := string(m.Action)
			if m.Detail != "" {
				what += ": " + m.Detail
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", m.Minion, what, size, reportDuration(m.Duration), where, verified)
		}
	}
	if r.SkippedMore > 0 {
		if r.SkippedMore == 1 {
			b.WriteString("\n⏭️ 1 more run was due while this one went on; it was skipped.\n")
		} else {
			fmt.Fprintf(&b, "\n⏭️ %d more runs were due while this one went on; they were skipped.\n", r.SkippedMore)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// DigestBackup is one stored backup as the digest sees it: the parts of a
// storage.Manifest it needs, so the digest is testable without storage.
type DigestBackup struct {
	Minion  string
	Kind    string // storage.KindDump or storage.KindCold
	Created time.Time
	Size    int64 // the plain bytes (payload), not the compressed ones
}

// DigestBackupsOf turns a repository listing into the digest's input.
func DigestBackupsOf(bs []storage.Backup) []DigestBackup {
	out := make([]DigestBackup, 0, len(bs))
	for _, b := range bs {
		if m := b.Manifest; m != nil && len(b.Copies) > 0 {
			out = append(out, DigestBackup{Minion: m.Minion, Kind: m.Kind, Created: m.Created, Size: m.Payload.Size})
		}
	}
	return out
}

// Digest is the weekly summary of every minion's backups.
type Digest struct {
	Now     time.Time
	Minions []string // every minion that should have backups, so one with none shows
	Backups []DigestBackup
	// StaleAfter flags a minion whose newest backup is older (0: 48h).
	StaleAfter time.Duration
}

// digestTrend is how many dump sizes the digest shows per minion.
const digestTrend = 4

// Render is the digest as a chat message: warnings first, then a table.
func (d Digest) Render() string {
	stale := d.StaleAfter
	if stale <= 0 {
		stale = 48 * time.Hour
	}
	byMinion := map[string][]DigestBackup{}
	for _, m := range d.Minions {
		byMinion[m] = nil
	}
	for _, bk := range d.Backups {
		byMinion[bk.Minion] = append(byMinion[bk.Minion], bk)
	}
	names := make([]string, 0, len(byMinion))
	for m := range byMinion {
		names = append(names, m)
	}
	sort.Strings(names)

	var warn, rows strings.Builder
	for _, name := range names {
		bs := byMinion[name]
		sort.Slice(bs, func(i, j int) bool { return bs[i].Created.Before(bs[j].Created) })
		if len(bs) == 0 {
			fmt.Fprintf(&warn, "⚠️ **%s** has no backup yet.\n", name)
			fmt.Fprintf(&rows, "| %s | never | – | – |\n", name)
			continue
		}
		last := bs[len(bs)-1]
		age := d.Now.Sub(last.Created)
		if age > stale {
			fmt.Fprintf(&warn, "⚠️ **%s**: the newest backup is %s old.\n", name, human.Age(age))
		}
		var dumps []int64
		for _, bk := range bs {
			if bk.Kind == storage.KindDump {
				dumps = append(dumps, bk.Size)
			}
		}
		if n := len(dumps); n >= 2 && dumps[n-1]*2 < dumps[n-2] {
			fmt.Fprintf(&warn, "⚠️ **%s**: the newest dump (%s) is less than half the size of the one before (%s). Check that the app still has its data.\n",
				name, human.Bytes(dumps[n-1]), human.Bytes(dumps[n-2]))
		}
		trend := "–"
		if len(dumps) > 0 {
			shown := dumps[max(0, len(dumps)-digestTrend):]
			parts := make([]string, len(shown))
			for i, s := range shown {
				parts[i] = human.Bytes(s)
			}
			trend = strings.Join(parts, " → ")
		}
		fmt.Fprintf(&rows, "| %s | %s ago (%s) | %s | %s |\n", name, human.Age(age), reportKind(last.Kind), human.Bytes(last.Size), trend)
	}

	var b strings.Builder
	b.WriteString("📊 **Weekly backup digest**\n")
	if len(names) == 0 {
		b.WriteString("No minions and no backups yet.")
		return b.String()
	}
	if warn.Len() == 0 {
		b.WriteString("✅ Every minion has a recent backup and no dump shrank by half.\n")
	}
	b.WriteString(warn.String())
	b.WriteString("\n| Minion | Last good backup | Size | Dumps, oldest to newest |\n|---|---|---|---|\n")
	b.WriteString(rows.String())
	return strings.TrimRight(b.String(), "\n")
}

func reportKind(kind string) string {
	if kind == storage.KindCold {
		return "cold backup"
	}
	return kind
}

// reportTimeLayout is how reports show a time.
const reportTimeLayout = "Mon 2 Jan 15:04 MST"

func reportList(names []string) string {
	if len(names) == 0 {
		return "no destination"
	}
	return strings.Join(names, ", ")
}

func reportCapital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// reportDuration is a run's duration, rounded for people.
func reportDuration(d time.Duration) string {
	if d < time.Second {
		return "<1s"
	}
	return human.Age(d)
}
