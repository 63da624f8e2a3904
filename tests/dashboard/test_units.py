"""Pieces of the dashboard that need no server: the transcript index, charts and run-file readers."""

from __future__ import annotations

import json

from dashboard_testdata import transcript_records, write_transcript

from aarlab.dashboard._charts import Series, bar_chart, line_chart, nice_ticks
from aarlab.dashboard._results import best_so_far
from aarlab.dashboard._runfiles import read_generalization, state_agents
from aarlab.dashboard._transcripts import TranscriptIndex, summarize, timeline_after, timeline_page


def test_index_skips_a_torn_line_until_it_is_completed(tmp_path):
    path = tmp_path / "a.jsonl"
    records = transcript_records("a", 5, 1000.0)
    write_transcript(path, records, torn=False)
    index = TranscriptIndex()
    assert len(index.records(path)) == 6  # start + 5 turns
    with open(path, "a") as fh:
        fh.write('{"type": "stop", "time": 2000, "agent": "a", "rea')
    assert len(index.records(path)) == 6
    with open(path, "a") as fh:
        fh.write('son": "budget", "step": 5}\n')
    metas = index.records(path)
    assert len(metas) == 7 and metas[-1].type == "stop"
    assert summarize(path, index).stop_reason == "budget"


def test_index_starts_over_when_a_file_is_replaced(tmp_path):
    path = tmp_path / "a.jsonl"
    write_transcript(path, transcript_records("a", 5, 1000.0))
    index = TranscriptIndex()
    assert len(index.records(path)) == 6
    write_transcript(path, transcript_records("a", 2, 1000.0))
    assert len(index.records(path)) == 3


def test_summary_totals_cost_tokens_and_research_events(tmp_path):
    path = tmp_path / "a.jsonl"
    write_transcript(path, transcript_records("a", 35, 1000.0), torn=True)
    s = summarize(path, TranscriptIndex())
    assert s.turns == 35 and abs(s.cost_usd - 0.35) < 1e-9
    assert s.submissions == 7 and s.posts == 4  # every 5th step submits, every 7th (not 35th) posts


def test_timeline_pages_and_tail(tmp_path):
    path = tmp_path / "a.jsonl"
    write_transcript(path, transcript_records("a", 100, 1000.0))
    index = TranscriptIndex()
    last = timeline_page(path, None, 40, index)
    assert (last.page, last.pages, last.total) == (3, 3, 101) and len(last.entries) == 21
    first = timeline_page(path, 1, 40, index)
    assert first.entries[0].type == "start" and first.entries[1].tools[0].output == "ok 1"
    tail = timeline_after(path, 99, index=index)
    assert [e.index for e in tail.entries] == [99, 100] and tail.next_index == 101


def test_charts_escape_labels_and_handle_empty_data():
    svg = line_chart([Series("<script>x</script>", [(0.0, 0.1), (10.0, 0.5)])], title="t & u")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "t &amp; u" in svg
    assert "no data yet" in line_chart([], title="empty")
    assert "no data yet" in bar_chart([], title="empty")
    assert nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_best_so_far_keeps_only_improvements():
    assert best_so_far([(3, 0.2), (1, 0.1), (2, 0.05), (4, 0.4)]) == [(1, 0.1), (3, 0.2), (4, 0.4)]


def test_generalization_rows_from_the_verify_output(tmp_path):
    (tmp_path / "generalization.json").write_text(json.dumps([{"method": "m", "dataset": "d", "pgr": 0.5}]))
    (tmp_path / "generalize").mkdir()
    (tmp_path / "generalize" / "x.json").write_text(json.dumps({"method": "n", "rows": [{"dataset": "e"}]}))
    (tmp_path / "generalize" / "junk.json").write_text("{not json")
    rows = read_generalization(tmp_path)
    assert [(r["method"], r["dataset"]) for r in rows] == [("m", "d"), ("n", "e")]


def test_state_agents_accepts_dicts_and_lists():
    assert set(state_agents({"agents": {"a": {"status": "x"}}})) == {"a"}
    assert set(state_agents({"agents": [{"name": "b"}, "junk"]})) == {"b"}
    assert state_agents({}) == {}


def test_tree_rows_show_each_folder_once_before_its_files():
    from aarlab.dashboard._content import tree_rows

    rows = tree_rows([{"path": "b/c/x.py", "size": 1}, {"path": "a.py", "size": 2}, {"path": "b/y.py", "size": 3}])
    assert [(r["name"], r["depth"]) for r in rows] == [("a.py", 0), ("b/", 0), ("c/", 1), ("x.py", 2), ("y.py", 1)]


def test_missing_numbers_show_as_a_dash():
    from aarlab.dashboard._render import env

    template = env().from_string("{{ pm(g.pgr, g.pgr_se, g.seeds) }}|{{ g.acc|num }}|{{ pm(0.51234, 0.02, 3) }}")
    assert template.render(g={}) == '<span class="muted">–</span>|–|0.512 ± 0.020 <span class="muted">(n=3)</span>'


def test_team_spend_sums_every_agents_spend_so_far():
    from aarlab.dashboard._plots import _team_spend

    team = _team_spend([[(0.0, 1.0), (10.0, 2.0)], [(5.0, 0.5), (10.0, 1.5)]], samples=2)
    assert team == [(0.0, 1.0), (5.0, 1.5), (10.0, 3.5)]
    assert _team_spend([[], []]) == []
