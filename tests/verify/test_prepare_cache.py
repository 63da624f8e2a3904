"""The generalization cache: a task prepared by another version of ``prepare`` is never reused."""

from __future__ import annotations

import aarlab.w2s.prepare as prepare_module
from aarlab.verify._prepare import cache_key


def test_the_generalize_cache_key_changes_with_the_prepare_version(monkeypatch):
    now = cache_key("synthetic:1500", "hashbow-weak", "hashbow-strong", None, 2)
    assert cache_key("synthetic:1500", "hashbow-weak", "hashbow-strong", None, 2) == now  # stable
    monkeypatch.setattr(prepare_module, "PREPARE_VERSION", prepare_module.PREPARE_VERSION + 1)
    assert cache_key("synthetic:1500", "hashbow-weak", "hashbow-strong", None, 2) != now
