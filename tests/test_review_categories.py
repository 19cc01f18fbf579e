"""Error categories: the default list, configuration from a file or medcap.toml, checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcap.config import load_settings
from medcap.review import (
    DEFAULT_CATEGORIES,
    SIGNIFICANT_COLUMN,
    CategoryConfigError,
    ErrorCategory,
    category_column,
    load_categories,
)


def test_defaults_match_the_issue() -> None:
    assert [(c.key, c.shortcut) for c in DEFAULT_CATEGORIES] == [
        ("wrong_laterality", "l"), ("wrong_modality", "m"), ("wrong_anatomy", "a"),
        ("missed_finding", "f"), ("hallucinated_finding", "h"), ("wrong_measurement", "s"),
        ("not_a_caption", "n")]
    assert DEFAULT_CATEGORIES[5].label == "Wrong size, count or measurement"
    assert category_column("wrong_laterality") == "error_wrong_laterality"
    assert SIGNIFICANT_COLUMN == "clinically_significant"
    assert load_categories({}) == DEFAULT_CATEGORIES


def test_categories_from_a_toml_file_named_in_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "categories.toml"
    path.write_text('categories = [\n  { key = "wrong_view", label = "Wrong view", shortcut = "V" },\n'
                    '  { key = "other", label = "Other" },\n]\n', encoding="utf-8")
    assert load_categories({"MEDCAP_CATEGORIES": str(path)}) == (
        ErrorCategory("wrong_view", "Wrong view", "v"), ErrorCategory("other", "Other", ""))


def test_categories_from_json_and_from_medcap_toml(tmp_path: Path) -> None:
    path = tmp_path / "categories.json"
    path.write_text(json.dumps([{"key": "a1", "label": "A one", "shortcut": "x"}]), encoding="utf-8")
    assert load_categories({"MEDCAP_CATEGORIES": str(path)})[0].key == "a1"
    config = tmp_path / "medcap.toml"
    config.write_text('[[review.categories]]\nkey = "inline"\nlabel = "Inline"\nshortcut = "i"\n',
                      encoding="utf-8")
    settings = load_settings(env={}, config_file=config)
    assert load_categories(settings) == (ErrorCategory("inline", "Inline", "i"),)
    overridden = load_settings(env={"MEDCAP_CATEGORIES": str(path)}, config_file=config)
    assert load_categories(overridden)[0].key == "a1", "the environment wins over the file"
    assert load_categories(load_settings(env={}, config_file=tmp_path / "none.toml")) == \
        DEFAULT_CATEGORIES


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "non-empty list"),
        ([{"key": "Bad Key", "label": "x"}], "entry 1: key 'Bad Key'"),
        ([{"key": "ok", "label": ""}], "label must be"),
        ([{"key": "ok", "label": "x\ny"}], "label must be"),
        ([{"key": "ok", "label": "x", "shortcut": "j"}], "shortcut 'j'"),
        ([{"key": "ok", "label": "x", "shortcut": "1"}], "shortcut '1'"),
        ([{"key": "a", "label": "x"}, {"key": "a", "label": "y"}], "key 'a' is used twice"),
        ([{"key": "a", "label": "x", "shortcut": "q"}, {"key": "b", "label": "y", "shortcut": "q"}],
         "shortcut 'q' is used twice"),
        (["wrong_laterality"], "entry 1 is not a table"),
    ],
)
def test_bad_category_lists_are_explained(tmp_path: Path, entries, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    with pytest.raises(CategoryConfigError, match=message):
        load_categories({"MEDCAP_CATEGORIES": str(path)})


def test_unreadable_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(CategoryConfigError, match="Cannot read the category file"):
        load_categories({"MEDCAP_CATEGORIES": str(tmp_path / "missing.toml")})
    broken = tmp_path / "broken.toml"
    broken.write_text("categories = [", encoding="utf-8")
    with pytest.raises(CategoryConfigError, match="broken.toml"):
        load_categories({"MEDCAP_CATEGORIES": str(broken)})
