"""Assertions about cleaned notebooks, shared by the runner and stamp tests."""


def assert_clean(nb) -> None:
    """No papermill metadata; execution counts renumbered 1, 2, 3, ... over the code cells
    (never None: nbval rejects cells that have outputs but no count)."""
    assert "papermill" not in nb.metadata
    for cell in nb.cells:
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code_cells] == list(range(1, len(code_cells) + 1))
    for c in code_cells:
        assert all(out.execution_count == c.execution_count for out in c.outputs if out.output_type == "execute_result")
