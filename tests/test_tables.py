"""Markdown tables (tables.py)."""

from dataclasses import dataclass

import pytest

from backprop2lib.tables import markdown_table, settings_table


@dataclass(frozen=True)
class _Settings:
    iterations: int = 70_000
    inner_mse_lr: float = 0.01
    grid: tuple = (0.001, 0.03, 1.0)


def test_markdown_table_rows_and_width_check():
    assert markdown_table(["a", "b"], [[1, 2], ["x", "y"]]) == "| a | b |\n|---|---|\n| 1 | 2 |\n| x | y |"
    with pytest.raises(ValueError, match="rows: every row needs 2 cells"):
        markdown_table(["a", "b"], [[1]])


def test_settings_table_lists_the_named_fields_in_order():
    s = _Settings()
    assert settings_table(s) == ("| setting | value |\n|---|---|\n| iterations | 70000 |\n| inner_mse_lr | 0.01 |\n"
                                 "| grid | 0.001, 0.03, 1 |")
    assert settings_table(s, ["grid", "iterations"]).splitlines()[2:] == ["| grid | 0.001, 0.03, 1 |",
                                                                         "| iterations | 70000 |"]
    with pytest.raises(ValueError, match=r"names: \['epochs'\] are not fields of _Settings"):
        settings_table(s, ["epochs"])
    with pytest.raises(ValueError, match="settings: expected a dataclass instance"):
        settings_table({"iterations": 1})
